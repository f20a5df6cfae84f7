package sampling

import (
	"math"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
	"github.com/ulan-ai/ulan/host/sampling/internal/expsum"
)

// topKMin is the shortest row topK skips through; shorter rows go to
// primitive.TopK.
const topKMin = 4096

// topKMax is the largest k topK takes itself.
const topKMax = 1024

// topK is primitive.TopK — the k largest of vals, largest first, ties to
// the lower index, NaN last — for a whole row: the same answer in one
// pass that skips most of the row eight values at a time. A heap holds the
// k best so far, its root the worst of them, w; a later value can only
// enter if it is above w (an equal one has a higher index than all k, so
// it loses to each; NaN loses to any number), so the pass jumps to the
// next group of eight that holds a value above w, offers that group's
// values to the heap, and goes on from the group's end with the raised w.
// The order is a strict total order, so the heap's final content, sorted,
// is primitive.TopK's.
//
// The same pass scans the row into sc (reset by the caller; nil for
// none): the jumps are expsum.Scanner.AddBelow, so that the row's scan
// (its largest value, finite count and NaN check) costs no pass of its
// own.
func topK(vals []float32, k int, ids []int32, out []float32, sc *expsum.Scanner) (int, error) {
	if sc == nil {
		sc = new(expsum.Scanner)
		sc.Reset()
	}
	if k <= 0 || k > topKMax || len(vals) < topKMin || len(ids) < k || len(out) < k {
		sc.Add(vals)
		return primitive.TopK(vals, k, ids, out)
	}
	// The heap holds each candidate as one key (candKey), so that its
	// order is one integer comparison: the first k must have no NaN
	// (else there is no threshold to skip by), and a later value enters
	// only above w.
	var buf [topKMax]uint64
	c := buf[:k]
	for j, v := range vals[:k] {
		if v != v {
			sc.Add(vals)
			return primitive.TopK(vals, k, ids, out)
		}
		c[j] = candKey(v, j)
	}
	for j := k/2 - 1; j >= 0; j-- {
		siftDownKey(c, j)
	}
	w := vals[candIndex(c[0])]
	offer := func(j int) {
		c[0] = candKey(vals[j], j)
		siftDownKey(c, 0)
		w = vals[candIndex(c[0])]
	}
	// The groups of eight that hold the first k are scanned whole; their
	// values past the first k are offered like any other.
	i := (k + 7) &^ 7
	sc.Add(vals[:i])
	for j := k; j < i; j++ {
		if vals[j] > w {
			offer(j)
		}
	}
	for {
		i += sc.AddBelow(vals[i:], w)
		end := min(i+8, len(vals))
		for j := i; j < end; j++ {
			if vals[j] > w {
				offer(j)
			}
		}
		sc.Add(vals[i:end])
		if i = end; i == len(vals) {
			break
		}
	}
	// Heap sort: move the worst to the back, one at a time.
	for end := k - 1; end > 0; end-- {
		c[0], c[end] = c[end], c[0]
		siftDownKey(c[:end], 0)
	}
	for j, key := range c {
		ids[j] = int32(candIndex(key))
		out[j] = vals[ids[j]]
	}
	return k, nil
}

// candKey is a candidate (a value that is not NaN, and its index) as an
// integer that orders candidates as primitive.TopK does: a larger key is
// a better candidate — the larger value, ties (−0 equal to +0) to the lower
// index. The high 32 bits are the value's bits made monotonic (sign bit
// flipped for positives, all bits for negatives; −0 counted as +0), the
// low 32 the index, inverted.
func candKey(v float32, i int) uint64 {
	b := math.Float32bits(v)
	if b == 1<<31 {
		b = 0 // −0 is +0
	}
	if b&(1<<31) != 0 {
		b = ^b
	} else {
		b |= 1 << 31
	}
	return uint64(b)<<32 | uint64(^uint32(i))
}

// candIndex is a key's index.
func candIndex(key uint64) int { return int(^uint32(key)) }

// siftDownKey restores the min-heap of keys (the worst candidate at the
// root) below i.
func siftDownKey(h []uint64, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1] < h[c] {
			c++
		}
		if h[c] >= h[i] {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
