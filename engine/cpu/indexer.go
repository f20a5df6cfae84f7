package cpu

import (
	"container/heap"
	"sort"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
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
	score := func(t int, scores []float32, lo, hi int) {
		s := int(b.Seq[t])
		qs := qt.f[t*H*d : (t+1)*H*d]
		ws := wt.f[t*H : (t+1)*H]
		for w := lo; w < hi; w++ {
			row := b.PagedRow(s, w*r, r)
			key := kt.f[row*d : (row+1)*d]
			// Four heads per read of the key.
			var sum float32
			var dots [4]float32
			for h0 := 0; h0 < H; h0 += 4 {
				n := min(4, H-h0)
				if n == 4 {
					kernel.DotF32x4(key, qs[h0*d:(h0+1)*d], qs[(h0+1)*d:(h0+2)*d], qs[(h0+2)*d:(h0+3)*d], qs[(h0+3)*d:(h0+4)*d], &dots)
				} else {
					for k := range n {
						dots[k] = kernel.DotF32(key, qs[(h0+k)*d:(h0+k+1)*d])
					}
				}
				for k := range n {
					if dots[k] > 0 {
						sum += dots[k] * (ws[h0+k] * spec.Scale)
					}
				}
			}
			scores[w] = sum
		}
	}
	selectTop := func(t int, scores []float32) {
		for i, w := range topK(scores, K) {
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
		// A prompt: one token per goroutine at a time.
		c.b.each(len(many), func(i int) {
			t := many[i]
			scores := make([]float32, (int(b.Positions[t])+1)/r)
			score(t, scores, 0, len(scores))
			selectTop(t, scores)
		})
		return out
	}
	// Decode steps: each token's keys split over the goroutines.
	for _, t := range many {
		scores := make([]float32, (int(b.Positions[t])+1)/r)
		c.b.parallel(len(scores), 64, func(lo, hi int) { score(t, scores, lo, hi) })
		selectTop(t, scores)
	}
	return out
}

// topK returns the indices of the k largest scores (ties: the lower index
// wins), in increasing index order.
func topK(scores []float32, k int) []int {
	h := &minHeap{s: scores}
	for i := range scores {
		if h.Len() < k {
			heap.Push(h, i)
		} else if h.less(h.idx[0], i) {
			h.idx[0] = i
			heap.Fix(h, 0)
		}
	}
	// Increasing index order, for a selection that reads keys in order.
	sort.Ints(h.idx)
	return h.idx
}

// minHeap keeps the best indices seen, the worst on top.
type minHeap struct {
	s   []float32
	idx []int
}

// less orders a before b when a is worse: a lower score, or an equal score
// at a higher index.
func (h *minHeap) less(a, b int) bool {
	if h.s[a] != h.s[b] {
		return h.s[a] < h.s[b]
	}
	return a > b
}

func (h *minHeap) Len() int           { return len(h.idx) }
func (h *minHeap) Less(i, j int) bool { return h.less(h.idx[i], h.idx[j]) }
func (h *minHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *minHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *minHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// Int32s returns the values of an I32 tensor (the indexer's selection, the
// router's experts) or nil for other types: a test seam, valid while the
// context that made the tensor is open.
func (t *tensor) Int32s() []int32 { return t.i }
