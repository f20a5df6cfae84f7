// Package primitive holds the loops that plugins call the host for instead of
// running them in WebAssembly (sdk/ABI.md §6): selection, softmax and the
// draw for samplers. Each is plain Go, bounded in its inputs, and usable
// natively, so a built-in fallback composes the same functions a plugin
// calls and gives the same answers.
package primitive

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
)

// MaxValues bounds the length of a vector a plugin may hand one primitive
// (a little above the largest vocabularies, 256k).
const MaxValues = 1 << 19

// MaxTopK bounds the k of TopK.
const MaxTopK = 4096

// ErrBounds reports an input over a primitive's bounds.
var ErrBounds = errors.New("primitive: input out of bounds")

// TopK writes the k largest values of vals, largest first, with their
// indices; ties go to the lower index, and NaN counts as smallest. It
// returns how many it wrote: min(k, len(vals)).
func TopK(vals []float32, k int, ids []int32, out []float32) (int, error) {
	if len(vals) > MaxValues || k < 0 || k > MaxTopK {
		return 0, fmt.Errorf("%w: top %d of %d values", ErrBounds, k, len(vals))
	}
	k = min(k, len(vals))
	if len(ids) < k || len(out) < k {
		return 0, fmt.Errorf("%w: room for %d and %d results, %d needed", ErrBounds, len(ids), len(out), k)
	}
	if k == 0 {
		return 0, nil
	}
	h := &minHeap{vals: vals, idx: make([]int32, 0, k)}
	for i := range k {
		heap.Push(h, int32(i))
	}
	// Most values lose to the worst kept one; compare with it directly and
	// touch the heap only for the few that win (NaN never does: v > x is
	// false for NaN, and a NaN worst is replaced by anything).
	worst := vals[h.idx[0]]
	for i := k; i < len(vals); i++ {
		v := vals[i]
		if !(v > worst) && worst == worst {
			continue
		}
		if h.better(int32(i), h.idx[0]) {
			h.idx[0] = int32(i)
			heap.Fix(h, 0)
			worst = vals[h.idx[0]]
		}
	}
	for j := k - 1; j >= 0; j-- {
		i := heap.Pop(h).(int32)
		ids[j], out[j] = i, vals[i]
	}
	return k, nil
}

// minHeap keeps the k best indices seen, worst on top.
type minHeap struct {
	vals []float32
	idx  []int32
}

// better orders by value, then by lower index; NaN is worst.
func (h *minHeap) better(a, b int32) bool {
	va, vb := h.vals[a], h.vals[b]
	switch {
	case va != va: // NaN
		return false
	case vb != vb:
		return true
	case va != vb:
		return va > vb
	}
	return a < b
}

func (h *minHeap) Len() int           { return len(h.idx) }
func (h *minHeap) Less(i, j int) bool { return h.better(h.idx[j], h.idx[i]) }
func (h *minHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *minHeap) Push(x any)         { h.idx = append(h.idx, x.(int32)) }
func (h *minHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// Softmax writes softmax(vals / temp) to out (which may be vals). The sum
// is taken in float64. temp must be positive and finite; −Inf values get
// probability 0; a vector of all −Inf is an error.
func Softmax(vals []float32, temp float32, out []float32) error {
	if len(vals) > MaxValues || len(out) < len(vals) {
		return fmt.Errorf("%w: softmax of %d values into %d", ErrBounds, len(vals), len(out))
	}
	if !(temp > 0) || math.IsInf(float64(temp), 0) {
		return fmt.Errorf("%w: temperature %v", ErrBounds, temp)
	}
	mx := float32(math.Inf(-1))
	for _, v := range vals {
		if v != v {
			return fmt.Errorf("%w: NaN", ErrBounds)
		}
		mx = max(mx, v)
	}
	if math.IsInf(float64(mx), -1) {
		return fmt.Errorf("%w: every value is -Inf", ErrBounds)
	}
	var sum float64
	for i, v := range vals {
		e := math.Exp(float64((v - mx) / temp))
		out[i] = float32(e)
		sum += e
	}
	inv := 1 / sum
	for i := range vals {
		out[i] = float32(float64(out[i]) * inv)
	}
	return nil
}

// Draw picks an index by inverse CDF: the first i where the running sum of
// probs exceeds u·Σprobs, for u in [0, 1). Rounding can leave u·Σ beyond
// the last partial sum; the last index with non-zero probability is then
// drawn, never one with probability 0.
func Draw(probs []float32, u float32) (int, error) {
	if len(probs) == 0 || len(probs) > MaxValues {
		return 0, fmt.Errorf("%w: draw from %d values", ErrBounds, len(probs))
	}
	if !(u >= 0 && u < 1) {
		return 0, fmt.Errorf("%w: uniform %v is not in [0, 1)", ErrBounds, u)
	}
	var total float64
	last := -1
	for i, p := range probs {
		if !(p >= 0) || math.IsInf(float64(p), 1) {
			return 0, fmt.Errorf("%w: probability %v at %d", ErrBounds, p, i)
		}
		if p > 0 {
			last = i
		}
		total += float64(p)
	}
	if last < 0 {
		return 0, fmt.Errorf("%w: every probability is 0", ErrBounds)
	}
	target := float64(u) * total
	var run float64
	for i, p := range probs {
		run += float64(p)
		if run > target && p > 0 {
			return i, nil
		}
	}
	return last, nil
}

// TopPCut returns how many of the leading probs reach the mass p: the
// smallest m ≥ 1 whose first m probabilities sum (in float64, in order) to
// at least p·Σprobs, or len(probs) if rounding leaves the sum short. With
// probs sorted largest first (as TopK and Softmax leave them), the first m
// are the nucleus of top-p sampling. p must be in (0, 1]; a probability
// that is negative, NaN or infinite is an error.
func TopPCut(probs []float32, p float32) (int, error) {
	if len(probs) == 0 || len(probs) > MaxValues {
		return 0, fmt.Errorf("%w: top-p over %d values", ErrBounds, len(probs))
	}
	if !(p > 0 && p <= 1) {
		return 0, fmt.Errorf("%w: top-p mass %v is not in (0, 1]", ErrBounds, p)
	}
	var total float64
	for i, q := range probs {
		if !(q >= 0) || math.IsInf(float64(q), 1) {
			return 0, fmt.Errorf("%w: probability %v at %d", ErrBounds, q, i)
		}
		total += float64(q)
	}
	target := float64(p) * total
	var run float64
	for i, q := range probs {
		run += float64(q)
		if run >= target {
			return i + 1, nil
		}
	}
	return len(probs), nil
}
