package cpu

import (
	"fmt"
	"math"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// spans says where each sequence's tokens sit in a batch: the position of
// its first token in the step and that token's index. A sequence's tokens
// must be consecutive in the batch with consecutive positions (as the
// runner lays them out), so that position j ≥ first[s] of sequence s is
// token index[s] + j − first[s] of this step.
type spans struct {
	first, index []int
}

func batchSpans(b *engine.Batch) (spans, error) {
	n := len(b.Seqs)
	sp := spans{first: make([]int, n), index: make([]int, n)}
	for s := range sp.index {
		sp.index[s] = -1
	}
	for t, s32 := range b.Seq {
		s := int(s32)
		if s < 0 || s >= n {
			return sp, fmt.Errorf("token %d: sequence %d of %d", t, s, n)
		}
		p := int(b.Positions[t])
		if sp.index[s] < 0 {
			sp.index[s], sp.first[s] = t, p
			continue
		}
		if t-sp.index[s] != p-sp.first[s] {
			return sp, fmt.Errorf("token %d: sequence %d's tokens are not consecutive positions in consecutive places (position %d)", t, s, p)
		}
	}
	return sp, nil
}

// inStep reports whether position j of sequence s is one of this step's
// tokens, and which.
func (sp spans) inStep(s, j int) (int, bool) {
	if j < sp.first[s] {
		return 0, false
	}
	return sp.index[s] + j - sp.first[s], true
}

func (c *context) SparseAttention(q, kv, ring, entries, sel engine.Tensor, b *engine.Batch, spec engine.SparseSpec) engine.Tensor {
	qt, ok := c.f32("SparseAttention q", q)
	kt, ok2 := c.f32("SparseAttention kv", kv)
	rt, ok3 := c.f32("SparseAttention ring", ring)
	if !ok || !ok2 || !ok3 {
		return &tensor{}
	}
	T := len(b.Tokens)
	if len(qt.shape) != 3 || qt.shape[0] != T {
		return c.fail("SparseAttention: q %v for %d tokens", qt, T)
	}
	H, d := qt.shape[1], qt.shape[2]
	W := spec.Window
	if W <= 0 || len(kt.shape) != 2 || kt.shape[0] != T || kt.shape[1] != d || rt.shape[1] != d {
		return c.fail("SparseAttention: kv %v, ring %v for q %v and window %d", kt, rt, qt, W)
	}
	var et *tensor
	if spec.Ratio > 0 {
		if et, ok = c.f32("SparseAttention entries", entries); !ok {
			return &tensor{}
		}
		if et.shape[1] != d {
			return c.fail("SparseAttention: entries %v for keys of %d", et, d)
		}
	}
	var st *tensor
	if sel != nil {
		s, isT := sel.(*tensor)
		if !isT || s.dt != engine.I32 || len(s.shape) != 2 || s.shape[0] != T {
			return c.fail("SparseAttention: selection must be i32 [%d, k]", T)
		}
		st = s
	}
	var sinks []float32
	if spec.Sinks != nil {
		skt, ok := c.f32("SparseAttention sinks", spec.Sinks)
		if !ok {
			return &tensor{}
		}
		if len(skt.f) != H {
			return c.fail("SparseAttention: sinks %v for %d heads", skt, H)
		}
		sinks = skt.f
	}
	sp, err := batchSpans(b)
	if err != nil {
		return c.fail("SparseAttention: %v", err)
	}
	// Every key row a token sees, gathered once per token: the window
	// (from this step or the ring), then the entries.
	keys := make([][][]float32, T)
	for t := range T {
		s, p := int(b.Seq[t]), int(b.Positions[t])
		ringRow := b.StateRow(s, W)
		if (ringRow+W)*d > len(rt.f) {
			return c.fail("SparseAttention: state slot %d beyond ring %v", b.Seqs[s].State, rt)
		}
		var ks [][]float32
		for j := max(0, p-W+1); j <= p; j++ {
			if i, ok := sp.inStep(s, j); ok {
				ks = append(ks, kt.f[i*d:(i+1)*d])
				continue
			}
			r := ringRow + j%W
			ks = append(ks, rt.f[r*d:(r+1)*d])
		}
		if spec.Ratio > 0 {
			n := (p + 1) / spec.Ratio
			add := func(w int) bool {
				r := b.PagedRow(s, w*spec.Ratio, spec.Ratio)
				if (r+1)*d > len(et.f) {
					c.fail("SparseAttention: entry row %d beyond %v", r, et)
					return false
				}
				ks = append(ks, et.f[r*d:(r+1)*d])
				return true
			}
			if st == nil {
				for w := range n {
					if !add(w) {
						return &tensor{}
					}
				}
			} else {
				k := st.shape[1]
				for _, w := range st.i[t*k : (t+1)*k] {
					if w >= 0 && int(w) < n && !add(int(w)) {
						return &tensor{}
					}
				}
			}
		}
		keys[t] = ks
	}
	y := c.newF32(T, H, d)
	groups := (H + 3) / 4
	c.b.parallel(T*groups, 1, func(lo, hi int) {
		var scores [4][]float32
		var out4 [4]float32
		for tg := lo; tg < hi; tg++ {
			t, h0 := tg/groups, 4*(tg%groups)
			nh := min(4, H-h0)
			var qv [4][]float32
			for k := range nh {
				th := t*H + h0 + k
				qv[k] = qt.f[th*d : (th+1)*d]
				scores[k] = scores[k][:0]
			}
			for _, key := range keys[t] {
				if nh == 4 {
					kernel.DotF32x4(key, qv[0], qv[1], qv[2], qv[3], &out4)
					for k := range 4 {
						scores[k] = append(scores[k], out4[k]*spec.Scale)
					}
					continue
				}
				for k := range nh {
					scores[k] = append(scores[k], kernel.DotF32(key, qv[k])*spec.Scale)
				}
			}
			for k := range nh {
				h := h0 + k
				mx := float32(math.Inf(-1))
				if sinks != nil {
					mx = sinks[h]
				}
				for _, sc := range scores[k] {
					mx = max(mx, sc)
				}
				var sum float64
				for j, sc := range scores[k] {
					e := float32(math.Exp(float64(sc - mx)))
					scores[k][j] = e
					sum += float64(e)
				}
				if sinks != nil {
					sum += math.Exp(float64(sinks[h] - mx))
				}
				inv := float32(1 / sum)
				th := t*H + h
				out := y.f[th*d : (th+1)*d]
				for j, e := range scores[k] {
					kernel.AxpyF32(e*inv, keys[t][j], out)
				}
			}
		}
	})
	return y
}

func (c *context) WindowStore(ring, kv engine.Tensor, b *engine.Batch, window int) engine.Tensor {
	rt, ok := c.f32("WindowStore ring", ring)
	kt, ok2 := c.f32("WindowStore kv", kv)
	if !ok || !ok2 {
		return &tensor{}
	}
	T := len(b.Tokens)
	d := rt.shape[1]
	if window <= 0 || len(kt.shape) != 2 || kt.shape[0] != T || kt.shape[1] != d {
		return c.fail("WindowStore: kv %v into ring %v (window %d) for %d tokens", kt, rt, window, T)
	}
	for t := range T {
		s, p := int(b.Seq[t]), int(b.Positions[t])
		r := b.StateRow(s, window) + p%window
		if (r+1)*d > len(rt.f) {
			return c.fail("WindowStore: ring row %d beyond %v", r, rt)
		}
		copy(rt.f[r*d:(r+1)*d], kt.f[t*d:(t+1)*d])
	}
	return rt
}
