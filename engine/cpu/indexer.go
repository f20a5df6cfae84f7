package cpu

import (
	"math"
	"sync"

	"github.com/ulan-ai/ulan/engine"
)

// IndexTopK is V4's lightning indexer (spec §2.6). A token at position p
// scores the (p+1)/Ratio indexer keys of its sequence — a quarter of the
// context, never dense attention — and keeps the exact top k. With no more
// visible keys than k every one is kept, in order, without scoring. The
// Hadamard rotation llama.cpp and the reference apply to both q and the
// keys is orthogonal and so left out: it does not change q·K.
func (c *context) IndexTopK(q, weights, keys engine.Tensor, b *engine.Batch, spec engine.IndexSpec) engine.Tensor {
	qt, ok := c.f32("IndexTopK q", q)
	wt, ok2 := c.f32("IndexTopK weights", weights)
	kt, ok3 := c.f32("IndexTopK keys", keys)
	if !ok || !ok2 || !ok3 {
		return &tensor{}
	}
	T := len(b.Tokens)
	if len(qt.shape) != 3 || qt.shape[0] != T {
		return c.fail("IndexTopK: q %v for %d tokens", qt, T)
	}
	H, d := qt.shape[1], qt.shape[2]
	K, r := spec.TopK, spec.Ratio
	if K <= 0 || r <= 0 || len(wt.shape) != 2 || wt.shape[0] != T || wt.shape[1] != H || kt.shape[1] != d {
		return c.fail("IndexTopK: q %v, weights %v, keys %v, top %d, ratio %d", qt, wt, kt, K, r)
	}
	out := &tensor{shape: []int{T, K}, dt: engine.I32, i: make([]int32, T*K)}
	for i := range out.i {
		out.i[i] = -1
	}
	for t := range T {
		s, p := int(b.Seq[t]), int(b.Positions[t])
		n := (p + 1) / r
		if n <= K {
			for w := range n {
				out.i[t*K+w] = int32(w)
			}
			continue
		}
		for _, w := range []int{0, n - 1} {
			if row := b.PagedRow(s, w*r, r); (row+1)*d > len(kt.f) {
				return c.fail("IndexTopK: key row %d beyond %v", row, kt)
			}
		}
	}
	// score fills scores[w] for keys [lo, hi) of token t.
	score := func(t int, iq *indexQuery, scores []float32, lo, hi int) {
		s := int(b.Seq[t])
		iq.score(kt.f, func(w int) int { return b.PagedRow(s, w*r, r) }, scores, lo, hi)
	}
	// rank scores token t's keys with the scratch x and keeps the top K.
	rank := func(t int, x *indexScratch, parallel bool) {
		n := (int(b.Positions[t]) + 1) / r
		iq := x.query(qt.f[t*H*d:(t+1)*H*d], wt.f[t*H:(t+1)*H], H, d, spec.Scale)
		x.scores = grow(x.scores, n)
		scores := x.scores
		if parallel {
			c.b.parallel(n, 64, func(lo, hi int) { score(t, iq, scores, lo, hi) })
		} else {
			score(t, iq, scores, 0, n)
		}
		for i, w := range x.topK(scores, K) {
			out.i[t*K+i] = int32(w)
		}
	}
	var many []int // tokens with more visible keys than K
	for t := range T {
		if (int(b.Positions[t])+1)/r > K {
			many = append(many, t)
		}
	}
	if len(many) >= c.b.threads {
		// A prompt, or a decode step of several sequences: one token per
		// goroutine at a time.
		c.b.each(len(many), func(i int) {
			x := indexScratchPool.Get().(*indexScratch)
			defer indexScratchPool.Put(x)
			rank(many[i], x, false)
		})
		return out
	}
	// Decode steps of one sequence: each token's keys split over the
	// goroutines.
	x := indexScratchPool.Get().(*indexScratch)
	defer indexScratchPool.Put(x)
	for _, t := range many {
		rank(t, x, true)
	}
	return out
}

// indexScratch is one goroutine's buffers for IndexTopK, kept between
// calls: the laid-out query, the scores and topK's keys.
type indexScratch struct {
	iq     indexQuery
	scores []float32
	keys   []uint64
	top    []int
}

var indexScratchPool = sync.Pool{New: func() any { return new(indexScratch) }}

// topK returns the indices of the k largest scores (ties: the lower index
// wins), in increasing index order.
func topK(scores []float32, k int) []int {
	var x indexScratch
	return x.topK(scores, k)
}

// topK is [topK] with x's buffers (the result is x's too). Every score
// becomes a distinct key that orders as (score, −index) does (−0 counts as
// +0, a NaN above +Inf); the k-th largest key is found by selection on a
// copy, and the indices whose keys are at least that one, exactly k, are
// taken in order.
func (x *indexScratch) topK(scores []float32, k int) []int {
	n := len(scores)
	k = min(k, n)
	x.keys = grow(x.keys, 2*n)
	keys, sel := x.keys[:n], x.keys[n:]
	for i, s := range scores {
		b := math.Float32bits(s + 0) // −0 + 0 = +0
		if b&(1<<31) != 0 {
			b = ^b
		} else {
			b |= 1 << 31
		}
		keys[i] = uint64(b)<<32 | uint64(^uint32(i))
	}
	x.top = x.top[:0]
	if k == 0 {
		return x.top
	}
	copy(sel, keys)
	least := selectKth(sel, n-k)
	for i, key := range keys {
		if key >= least {
			x.top = append(x.top, i)
		}
	}
	return x.top
}

// selectKth reorders v (distinct values) so that v[j] is the value of rank
// j (ascending) and returns it: quickselect, each round partitioning
// around the median of the first, middle and last values.
func selectKth(v []uint64, j int) uint64 {
	lo, hi := 0, len(v)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		a, b, c := v[lo], v[mid], v[hi]
		pivot := max(min(a, b), min(max(a, b), c))
		i, k := lo, hi
		for i <= k {
			for v[i] < pivot {
				i++
			}
			for v[k] > pivot {
				k--
			}
			if i <= k {
				v[i], v[k] = v[k], v[i]
				i++
				k--
			}
		}
		// v[lo..k] ≤ pivot ≤ v[i..hi], and v[k+1..i-1] = pivot.
		switch {
		case j <= k:
			hi = k
		case j >= i:
			lo = i
		default:
			return v[j]
		}
	}
	return v[j]
}

// Int32s returns the values of an I32 tensor (the indexer's selection, the
// router's experts) or nil for other types: a test seam, valid while the
// context that made the tensor is open.
func (t *tensor) Int32s() []int32 { return t.i }
