package sampler

// The host's sampler primitives (sdk/ABI.md §4): the loops over a row's
// candidates run natively in the host instead of in WebAssembly. Outside
// wasip1 (in a plugin's own tests) they run in Go with the same semantics.

// MaxTopK bounds TopK's k (the host's bound).
const MaxTopK = 4096

// TopK writes the indices (into vals) and values of the k largest of vals,
// largest first, to ids and out, and returns how many it wrote:
// min(k, len(vals)). Ties go to the lower index; NaN counts as smallest.
// ids and out must hold that many.
func TopK(vals []float32, k int, ids []int32, out []float32) (int, error) {
	if k < 0 || k > MaxTopK {
		return 0, errPrimitive("top_k: k out of range")
	}
	k = min(k, len(vals))
	if len(ids) < k || len(out) < k {
		return 0, errPrimitive("top_k: output shorter than k")
	}
	if k == 0 {
		return 0, nil
	}
	return topK(vals, k, ids, out)
}

// Softmax writes softmax(vals / temp) to out (which may be vals). temp
// must be positive and finite; −Inf values get probability 0; NaN or a row
// of only −Inf is an error.
func Softmax(vals []float32, temp float32, out []float32) error {
	if len(out) < len(vals) {
		return errPrimitive("softmax: output shorter than input")
	}
	if len(vals) == 0 {
		return nil
	}
	return softmax(vals, temp, out)
}

// Draw returns the index the uniform u in [0, 1) falls on in the CDF of
// probs (never one of probability 0).
func Draw(probs []float32, u float32) (int, error) {
	if len(probs) == 0 {
		return 0, errPrimitive("draw: no probabilities")
	}
	return draw(probs, u)
}

// TopPCut returns how many of the leading probs reach the mass p (in
// (0, 1]): the smallest m ≥ 1 whose first m sum to at least p·Σprobs. With
// probs sorted largest first, as TopK and Softmax leave them, those are
// top-p's nucleus.
func TopPCut(probs []float32, p float32) (int, error) {
	if len(probs) == 0 {
		return 0, errPrimitive("top_p_cut: no probabilities")
	}
	return topPCut(probs, p)
}

// TokenBytes returns the bytes of token id in the model's vocabulary (what
// the host detokenizes it to), for policies that look at text: a grammar,
// a banned substring. buf is reused when it is large enough.
func TokenBytes(id int32, buf []byte) ([]byte, error) { return tokenBytes(id, buf) }

type errPrimitive string

func (e errPrimitive) Error() string { return "sampler: " + string(e) }
