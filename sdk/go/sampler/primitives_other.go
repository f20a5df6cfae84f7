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
