// Package samplemath is the arithmetic of sampling, shared by the host and
// by plugins so that both compute the same bits: the loops the host runs as
// sampler primitives (TopK, Softmax, Draw, TopPCut; sdk/ABI.md §4) and the
// exponential and logarithm that sampler policies use (Exp, Log).
//
// The host's primitives (host/plugin/primitive) and the Go SDK's native
// primitives (sdk/go/sampler, outside wasip1) are thin wrappers of this
// package, and a policy compiled to WebAssembly calls Exp and Log from here
// rather than the math package: see RATIONALE.md, "Why do samplers compute
// exp and log with their own code?". The package is plain Go with no
// dependencies beyond the standard library, and it allocates nothing.
package samplemath

import (
	"errors"
	"fmt"
	"math"
)

// ErrInput reports an input a function cannot take: a NaN where a number
// is due, a temperature that is not positive and finite, an output slice
// shorter than the result.
var ErrInput = errors.New("samplemath: invalid input")

// TopK writes the k largest values of vals to out, largest first, and
// their indices to ids; ties go to the lower index, and NaN counts as
// smaller than any number (NaNs among themselves by index). It returns how
// many it wrote, min(k, len(vals)); ids and out must hold that many. It
// runs in O(n log k) without allocating: ids is the heap.
func TopK(vals []float32, k int, ids []int32, out []float32) (int, error) {
	if k < 0 {
		return 0, fmt.Errorf("%w: top %d", ErrInput, k)
	}
	k = min(k, len(vals))
	if len(ids) < k || len(out) < k {
		return 0, fmt.Errorf("%w: room for %d and %d results, %d needed", ErrInput, len(ids), len(out), k)
	}
	if k == 0 {
		return 0, nil
	}
	h := ids[:k]
	for i := range h {
		h[i] = int32(i)
	}
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(vals, h, i)
	}
	// h[0] is the worst value kept. Most values lose to it; compare with it
	// directly and touch the heap only for the few that win. v > worst is
	// false for a NaN v, and a NaN worst loses to any number; an equal v
	// has a higher index than every kept one, so it loses too.
	worst := vals[h[0]]
	for i := k; i < len(vals); i++ {
		v := vals[i]
		if !(v > worst) && worst == worst {
			continue
		}
		if better(vals, int32(i), h[0]) {
			h[0] = int32(i)
			siftDown(vals, h, 0)
			worst = vals[h[0]]
		}
	}
	// Heap sort: move the worst to the back, one at a time.
	for end := k - 1; end > 0; end-- {
		h[0], h[end] = h[end], h[0]
		siftDown(vals, h[:end], 0)
	}
	for j, i := range h {
		out[j] = vals[i]
	}
	return k, nil
}

// better orders indices into vals: the larger value first, NaN last, ties
// to the lower index. It is a strict total order, so any correct selection
// gives the same answer.
func better(vals []float32, a, b int32) bool {
	va, vb := vals[a], vals[b]
	switch {
	case va != va && vb != vb:
		return a < b
	case va != va:
		return false
	case vb != vb:
		return true
	case va != vb:
		return va > vb
	}
	return a < b
}

// siftDown restores the heap property below i: every parent is worse than
// its children, so h[0] is the worst.
func siftDown(vals []float32, h []int32, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && better(vals, h[c], h[c+1]) {
			c++ // the worse child
		}
		if !better(vals, h[i], h[c]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// Softmax writes softmax(vals / temp) to out (which may be vals):
// exp((v − max)/temp), each rounded to float32, over their float64 sum.
// temp must be positive and finite; −Inf values get probability 0; NaN, or
// a vector of only −Inf, is an error. Empty vals is an error too.
func Softmax(vals []float32, temp float32, out []float32) error {
	if len(out) < len(vals) {
		return fmt.Errorf("%w: softmax of %d values into %d", ErrInput, len(vals), len(out))
	}
	if !(temp > 0) || math.IsInf(float64(temp), 0) {
		return fmt.Errorf("%w: temperature %v", ErrInput, temp)
	}
	mx := float32(math.Inf(-1))
	for _, v := range vals {
		if v != v {
			return fmt.Errorf("%w: NaN", ErrInput)
		}
		mx = max(mx, v)
	}
	if math.IsInf(float64(mx), -1) {
		return fmt.Errorf("%w: every value is -Inf", ErrInput)
	}
	var sum float64
	for i, v := range vals {
		e := Exp(float64((v - mx) / temp))
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
// probs (in float64, in order) exceeds u·Σprobs, for u in [0, 1). Rounding
// can leave u·Σ beyond the last partial sum; the last index with non-zero
// probability is then drawn, never one with probability 0. A probability
// that is negative, NaN or +Inf, or all of them 0, is an error.
func Draw(probs []float32, u float32) (int, error) {
	if len(probs) == 0 {
		return 0, fmt.Errorf("%w: draw from no values", ErrInput)
	}
	if !(u >= 0 && u < 1) {
		return 0, fmt.Errorf("%w: uniform %v is not in [0, 1)", ErrInput, u)
	}
	var total float64
	last := -1
	for i, p := range probs {
		if !(p >= 0) || math.IsInf(float64(p), 1) {
			return 0, fmt.Errorf("%w: probability %v at %d", ErrInput, p, i)
		}
		if p > 0 {
			last = i
		}
		total += float64(p)
	}
	if last < 0 {
		return 0, fmt.Errorf("%w: every probability is 0", ErrInput)
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
// that is negative, NaN or infinite is an error, and so is empty probs.
func TopPCut(probs []float32, p float32) (int, error) {
	if len(probs) == 0 {
		return 0, fmt.Errorf("%w: top-p over no values", ErrInput)
	}
	if !(p > 0 && p <= 1) {
		return 0, fmt.Errorf("%w: top-p mass %v is not in (0, 1]", ErrInput, p)
	}
	var total float64
	for i, q := range probs {
		if !(q >= 0) || math.IsInf(float64(q), 1) {
			return 0, fmt.Errorf("%w: probability %v at %d", ErrInput, q, i)
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
