package cpu

import (
	"math"
	"sync"
	"unsafe"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

func (c *context) CacheStore(cache, x engine.Tensor, b *engine.Batch) engine.Tensor {
	ct, ok := c.f32("CacheStore", cache)
	xt, ok2 := c.f32("CacheStore", x)
	if !ok || !ok2 {
		return &tensor{}
	}
	rows, w := ct.shape[0], ct.shape[1]
	if len(xt.shape) != 2 || xt.shape[1] != w || xt.shape[0] != len(b.Slots) {
		return c.fail("CacheStore: %v into cache rows of %d for %d tokens", xt, w, len(b.Slots))
	}
	for t, s := range b.Slots {
		if s < 0 || int(s) >= rows {
			return c.fail("CacheStore: slot %d of %d", s, rows)
		}
		copy(ct.f[int(s)*w:(int(s)+1)*w], xt.f[t*w:(t+1)*w])
	}
	return ct
}

// attnScratch holds Attention's per-item scores between calls, rowPtrs
// its value rows.
var (
	attnScratch = sync.Pool{New: func() any { return new([]float32) }}
	rowPtrs     = sync.Pool{New: func() any { return new([]*float32) }}
)

// accumBlock is how many cache rows Attention's value pass gives every head
// before the next rows: 64 rows of 512 values are 128 KB, which stay in L2.
const accumBlock = 64

func (c *context) Attention(q, cache engine.Tensor, b *engine.Batch, spec engine.AttentionSpec) engine.Tensor {
	qt, ok := c.f32("Attention", q)
	ct, ok2 := c.f32("Attention", cache)
	if !ok || !ok2 {
		return &tensor{}
	}
	if len(qt.shape) != 3 || qt.shape[0] != len(b.Tokens) {
		return c.fail("Attention: q %v for %d tokens", qt, len(b.Tokens))
	}
	T, H, dk := qt.shape[0], qt.shape[1], qt.shape[2]
	w, dv := ct.shape[1], spec.ValueDim
	if dk > w || dv > w || dv <= 0 {
		return c.fail("Attention: keys of %d and values of %d from cache rows of %d", dk, dv, w)
	}
	var sinks []float32
	if spec.Sinks != nil {
		st, ok := c.f32("Attention sinks", spec.Sinks)
		if !ok {
			return &tensor{}
		}
		if len(st.f) != H {
			return c.fail("Attention: sinks %v for %d heads", st, H)
		}
		sinks = st.f
	}
	y := c.newF32(T, H, dv)
	// In the absorbed MLA form (and V4's shared-KV form) every head of a
	// token reads the same cache rows, so a work item is one token and a
	// run of its heads, and each row is read from memory twice per item
	// (scores, then values) for all of its heads, not once or twice per
	// head: at a long context the rows do not stay in cache between
	// heads; both passes walk the rows in blocks that stay in cache while
	// every quad of heads passes. kernel.DotRowsF32x4 scores four heads per
	// key with the bits DotF32 would give each, and each head's output
	// still adds the values key by key in order, so the results do not
	// depend on how heads are grouped. With fewer tokens than threads (decode) the heads
	// of a token are split so that every thread has work.
	per := H
	if split := (c.b.threads + T - 1) / T; split > 1 {
		per = min(H, ((H+split-1)/split+3)/4*4)
	}
	chunks := (H + per - 1) / per
	c.b.parallel(T*chunks, 1, func(lo, hi int) {
		for item := lo; item < hi; item++ {
			t, h0 := item/chunks, (item%chunks)*per
			nh := min(per, H-h0)
			s, p := int(b.Seq[t]), int(b.Positions[t])
			first := 0
			if spec.Window > 0 {
				first = max(0, p-spec.Window+1)
			}
			n := p + 1 - first
			buf := attnScratch.Get().(*[]float32)
			if cap(*buf) < nh*n {
				*buf = make([]float32, nh*n)
			}
			scores := (*buf)[:nh*n] // scores[k*n+j]: head h0+k, key first+j
			q := qt.f[(t*H+h0)*dk : (t*H+h0+nh)*dk]
			rp := rowPtrs.Get().(*[]*float32)
			rows := (*rp)[:0]
			for j := range n {
				rows = append(rows, &ct.f[b.Slot(s, first+j)*w])
			}
			quads := nh / 4 * 4 // heads scored (and, where dv allows, valued) four at a time
			// Blocks of rows stay in cache while every quad of heads
			// scores them.
			for j0 := 0; j0 < n; j0 += accumBlock {
				blk := rows[j0:min(j0+accumBlock, n)]
				for k := 0; k < quads; k += 4 {
					kernel.DotRowsF32x4(blk, q[k*dk:(k+4)*dk], spec.Scale, scores[k*n+j0:], n)
				}
			}
			for k := quads; k < nh; k++ {
				for j, row := range rows {
					key := unsafe.Slice(row, dk)
					scores[k*n+j] = kernel.DotF32(key, q[k*dk:(k+1)*dk]) * spec.Scale
				}
			}
			for k := range nh {
				h := h0 + k
				sc := scores[k*n : (k+1)*n]
				mx := kernel.MaxF32(sc)
				if sinks != nil {
					mx = max(mx, sinks[h])
				}
				// ggml's soft_max sums in double precision.
				sum := kernel.ExpShift(sc, mx)
				if sinks != nil {
					sum += math.Exp(float64(sinks[h] - mx))
				}
				inv := float32(1 / sum)
				for j := range sc {
					sc[j] *= inv
				}
			}
			out := y.f[(t*H+h0)*dv : (t*H+h0+nh)*dv]
			if dv%kernel.AccumRowsWidth != 0 {
				quads = 0 // values one head at a time
			}
			if quads > 0 {
				// Blocks of rows stay in cache while every head of the
				// item passes over them.
				for j0 := 0; j0 < n; j0 += accumBlock {
					blk := rows[j0:min(j0+accumBlock, n)]
					for k := 0; k < quads; k += 4 {
						kernel.AccumRowsF32x4(scores[k*n+j0:], n, blk, out[k*dv:(k+4)*dv])
					}
				}
			}
			for j := 0; quads < nh && j < n; j++ {
				val := unsafe.Slice(rows[j], dv)
				for k := quads; k < nh; k++ {
					kernel.AxpyF32(scores[k*n+j], val, out[k*dv:(k+1)*dv])
				}
			}
			*rp = rows
			rowPtrs.Put(rp)
			attnScratch.Put(buf)
		}
	})
	return y
}
