package sampling

import (
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
	// The heap holds values beside their indices, ordered by candWorse,
	// which needs no NaN cases: the first k must have none (else there is
	// no threshold to skip by), and a later value enters only above w.
	var buf [topKMax]cand
	c := buf[:k]
	for j, v := range vals[:k] {
		if v != v {
			sc.Add(vals)
			return primitive.TopK(vals, k, ids, out)
		}
		c[j] = cand{v, int32(j)}
	}
	for j := k/2 - 1; j >= 0; j-- {
		siftDownCand(c, j)
	}
	w := c[0].v
	offer := func(j int) {
		c[0] = cand{vals[j], int32(j)}
		siftDownCand(c, 0)
		w = c[0].v
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
		siftDownCand(c[:end], 0)
	}
	for j, e := range c {
		ids[j], out[j] = e.i, e.v
	}
	return k, nil
}

// cand is a candidate of topK's heap: a value that is not NaN, and its index.
type cand struct {
	v float32
	i int32
}

// candWorse is worse for candidates without NaN: the smaller value, ties to
// the higher index.
func candWorse(a, b cand) bool {
	return a.v < b.v || a.v == b.v && a.i > b.i
}

// siftDownCand restores the heap of candidates (the worst at the root)
// below i.
func siftDownCand(h []cand, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && candWorse(h[c+1], h[c]) {
			c++
		}
		if !candWorse(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
