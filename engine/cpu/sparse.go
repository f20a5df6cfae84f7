package cpu

import (
	"fmt"
	"math"
	"sync"
	"unsafe"

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
	g := sparseKeysPool.Get().(*sparseKeys)
	defer func() {
		clear(g.rows) // keep no tensor alive from the pool
		sparseKeysPool.Put(g)
	}()
	g.rows, g.at = g.rows[:0], append(g.at[:0], 0)
	for t := range T {
		s, p := int(b.Seq[t]), int(b.Positions[t])
		ringRow := b.StateRow(s, W)
		if (ringRow+W)*d > len(rt.f) {
			return c.fail("SparseAttention: state slot %d beyond ring %v", b.Seqs[s].State, rt)
		}
		// The window: positions before the sequence's first in this step
		// from the ring (position j at ring row j mod W), the rest from
		// this step's kv.
		lo := max(0, p-W+1)
		split := max(lo, sp.first[s])
		jm := lo % W
		for range split - lo {
			g.rows = append(g.rows, &rt.f[(ringRow+jm)*d])
			if jm++; jm == W {
				jm = 0
			}
		}
		for i := sp.index[s] + split - sp.first[s]; i <= t; i++ {
			g.rows = append(g.rows, &kt.f[i*d])
		}
		if spec.Ratio > 0 {
			n := (p + 1) / spec.Ratio
			add := func(w int) bool {
				r := b.PagedRow(s, w*spec.Ratio, spec.Ratio)
				if r < 0 || (r+1)*d > len(et.f) {
					c.fail("SparseAttention: entry row %d beyond %v", r, et)
					return false
				}
				g.rows = append(g.rows, &et.f[r*d])
				return true
			}
			if per := b.BlockSize / spec.Ratio; st == nil && per*spec.Ratio == b.BlockSize {
				// Every entry in order: a block's entries are
				// consecutive rows (PagedRow without a division each).
				for w0 := 0; w0 < n; w0 += per {
					r := int(b.Seqs[s].Blocks[w0/per]) * per
					if r < 0 || (r+min(per, n-w0))*d > len(et.f) {
						return c.fail("SparseAttention: entry rows from %d beyond %v", r, et)
					}
					for k := range min(per, n-w0) {
						g.rows = append(g.rows, &et.f[(r+k)*d])
					}
				}
			} else if st == nil {
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
		g.at = append(g.at, len(g.rows))
	}
	y := c.newF32(T, H, d)
	// A work item is one token and a span of groups of four heads: the
	// heads share the key rows (which are also the values), so
	// kernel.DotRowsF32x4 scores four heads per row and
	// kernel.AccumRowsF32x4 adds a row's values to four heads in one pass,
	// each with the bits of DotF32 and AxpyF32 per head, so the results do
	// not depend on the grouping. An item takes its rows in blocks of
	// sparseRowBlock, every group of the span over one block before the
	// next, so that a token's rows (a window and a few hundred entries,
	// more than the L1 cache holds) come from L2 once per pass rather than
	// once per group; the value pass adds each block in row order, which
	// gives the bits of one call over all the rows. The span is all of a
	// token's groups when there are tokens enough to keep the threads
	// busy, and fewer at one or two tokens, down to one group per item.
	groups := (H + 3) / 4
	span := min(groups, max(1, groups*T/(2*c.b.threads)))
	per := (groups + span - 1) / span
	accum := d%kernel.AccumRowsWidth == 0
	c.b.parallel(T*per, 1, func(lo, hi int) {
		buf := attnScratch.Get().(*[]float32)
		defer attnScratch.Put(buf)
		for it := lo; it < hi; it++ {
			t, h0 := it/per, 4*span*(it%per)
			h1 := min(h0+4*span, H)
			rows := g.rows[g.at[t]:g.at[t+1]]
			n := len(rows)
			if cap(*buf) < (h1-h0)*n {
				*buf = make([]float32, (h1-h0)*n)
			}
			scores := (*buf)[:(h1-h0)*n] // scores[k*n+j]: head h0+k, row j
			q := qt.f[(t*H+h0)*d : (t*H+h1)*d]
			out := y.f[(t*H+h0)*d : (t*H+h1)*d]
			for j0 := 0; j0 < n; j0 += sparseRowBlock {
				block := rows[j0:min(j0+sparseRowBlock, n)]
				for k0 := 0; k0 < h1-h0; k0 += 4 {
					if nh := min(4, h1-h0-k0); nh == 4 {
						kernel.DotRowsF32x4(block, q[k0*d:(k0+4)*d], spec.Scale, scores[k0*n+j0:], n)
					} else {
						for j, r := range block {
							key := unsafe.Slice(r, d)
							for k := k0; k < k0+nh; k++ {
								scores[k*n+j0+j] = kernel.DotF32(key, q[k*d:(k+1)*d]) * spec.Scale
							}
						}
					}
				}
			}
			for h := h0; h < h1; h++ {
				sc := scores[(h-h0)*n : (h-h0+1)*n]
				mx := kernel.MaxF32(sc)
				if sinks != nil {
					mx = max(mx, sinks[h])
				}
				sum := kernel.ExpShift(sc, mx)
				if sinks != nil {
					sum += math.Exp(float64(sinks[h] - mx))
				}
				inv := float32(1 / sum)
				for j := range sc {
					sc[j] *= inv
				}
			}
			for j0 := 0; j0 < n; j0 += sparseRowBlock {
				block := rows[j0:min(j0+sparseRowBlock, n)]
				for k0 := 0; k0 < h1-h0; k0 += 4 {
					if nh := min(4, h1-h0-k0); nh == 4 && accum {
						kernel.AccumRowsF32x4(scores[k0*n+j0:], n, block, out[k0*d:(k0+4)*d])
					} else {
						for j, r := range block {
							val := unsafe.Slice(r, d)
							for k := k0; k < k0+nh; k++ {
								kernel.AxpyF32(scores[k*n+j0+j], val, out[k*d:(k+1)*d])
							}
						}
					}
				}
			}
		}
	})
	return y
}

// sparseRowBlock is how many key rows SparseAttention's passes take at a
// time: 32 rows of 128 values are 16 KiB, which stay in a 32 KiB L1 cache
// while the groups of a span pass over them.
const sparseRowBlock = 32

// sparseKeys holds SparseAttention's gathered key rows between calls:
// token t's rows start at rows[at[t]] and end before rows[at[t+1]].
type sparseKeys struct {
	rows []*float32
	at   []int
}

var sparseKeysPool = sync.Pool{New: func() any { return new(sparseKeys) }}

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
