//go:build !wasip1

package sampler

import (
	"math"
	"sort"
)

// Natively (tests), the primitives run in Go with the host's semantics.

func topK(vals []float32, k int, ids []int32, out []float32) (int, error) {
	idx := make([]int32, len(vals))
	for i := range idx {
		idx[i] = int32(i)
	}
	// Largest first, NaN as smallest, ties to the lower index (stable).
	key := func(i int32) float64 {
		if v := vals[i]; v == v {
			return float64(v)
		}
		return math.Inf(-1)
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := key(idx[a]), key(idx[b])
		if ka == kb {
			return (vals[idx[a]] == vals[idx[a]]) && !(vals[idx[b]] == vals[idx[b]])
		}
		return ka > kb
	})
	for i := range k {
		ids[i], out[i] = idx[i], vals[idx[i]]
	}
	return k, nil
}

func softmax(vals []float32, temp float32, out []float32) error {
	if !(temp > 0) || math.IsInf(float64(temp), 0) {
		return errPrimitive("softmax: a temperature that is not positive and finite, a NaN, or only -Inf")
	}
	mx := float32(math.Inf(-1))
	for _, v := range vals {
		if v != v {
			return errPrimitive("softmax: a temperature that is not positive and finite, a NaN, or only -Inf")
		}
		mx = max(mx, v)
	}
	if math.IsInf(float64(mx), -1) {
		return errPrimitive("softmax: a temperature that is not positive and finite, a NaN, or only -Inf")
	}
	var sum float64
	for i, v := range vals {
		e := math.Exp(float64((v - mx) / temp))
		out[i] = float32(e)
		sum += e
	}
	for i := range vals {
		out[i] = float32(float64(out[i]) / sum)
	}
	return nil
}

func draw(probs []float32, u float32) (int, error) {
	if !(u >= 0 && u < 1) {
		return 0, errPrimitive("draw: a uniform outside [0, 1), or probabilities that are negative, infinite or all 0")
	}
	var total float64
	last := -1
	for i, p := range probs {
		if !(p >= 0) || math.IsInf(float64(p), 1) {
			return 0, errPrimitive("draw: a uniform outside [0, 1), or probabilities that are negative, infinite or all 0")
		}
		if p > 0 {
			last = i
		}
		total += float64(p)
	}
	if last < 0 {
		return 0, errPrimitive("draw: a uniform outside [0, 1), or probabilities that are negative, infinite or all 0")
	}
	target, run := float64(u)*total, 0.0
	for i, p := range probs {
		run += float64(p)
		if run > target && p > 0 {
			return i, nil
		}
	}
	return last, nil
}

func topPCut(probs []float32, p float32) (int, error) {
	if !(p > 0 && p <= 1) {
		return 0, errPrimitive("top_p_cut: a mass outside (0, 1] or a bad probability")
	}
	var total float64
	for _, q := range probs {
		if !(q >= 0) || math.IsInf(float64(q), 1) {
			return 0, errPrimitive("top_p_cut: a mass outside (0, 1] or a bad probability")
		}
		total += float64(q)
	}
	target, run := float64(p)*total, 0.0
	for i, q := range probs {
		run += float64(q)
		if run >= target {
			return i + 1, nil
		}
	}
	return len(probs), nil
}

// TestHost stands in for the host's state when a plugin's logic runs
// natively, in its own tests: the histories History reads (by the handle
// NewTestRow gives a row) and the vocabulary TokenBytes reads. It exists
// only outside wasip1.
type TestHost struct {
	History map[int64][]int32
	Vocab   [][]byte
}

var testHost TestHost

// UseTestHost installs h for History and TokenBytes in native tests.
func UseTestHost(h TestHost) { testHost = h }

// NewTestRow returns a row of sequence handle for native tests, whose
// History reads the TestHost's history of that handle.
func NewTestRow(handle int64, ids []int32, logits []float32) *Row {
	return &Row{IDs: ids, Logits: logits, Out: append([]float32(nil), logits...), Token: -1, handle: handle}
}

func history(h int64, max int) ([]int32, error) {
	hist, ok := testHost.History[h]
	if !ok {
		return nil, errPrimitive("history: the host knows no such sequence")
	}
	if max > 0 && len(hist) > max {
		hist = hist[len(hist)-max:]
	}
	return append([]int32(nil), hist...), nil
}

func tokenBytes(id int32, buf []byte) ([]byte, error) {
	if id < 0 || int(id) >= len(testHost.Vocab) {
		return nil, errPrimitive("token_bytes: no such token, or the host has no vocabulary")
	}
	return append(buf[:0], testHost.Vocab[id]...), nil
}
