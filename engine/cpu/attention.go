package cpu

import (
	"math"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

func (c *context) Rope(x engine.Tensor, b *engine.Batch, spec engine.RopeSpec) engine.Tensor {
	xt, ok := c.f32("Rope", x)
	if !ok {
		return &tensor{}
	}
	n := xt.shape[len(xt.shape)-1]
	T := len(b.Positions)
	if spec.Dims <= 0 || spec.Dims%2 != 0 || spec.Dims > n {
		return c.fail("Rope: %d rotated channels of %d", spec.Dims, n)
	}
	if len(xt.f)%(T*n) != 0 || xt.shape[0] != T {
		return c.fail("Rope: %v for %d tokens", xt, T)
	}
	perTok := len(xt.f) / T
	y := c.newF32(append([]int(nil), xt.shape...)...)
	copy(y.f, xt.f)
	half := spec.Dims / 2
	cos, sin := make([]float32, half), make([]float32, half)
	off := n - spec.Dims
	for t := range T {
		engine.RopeAngles(spec, int(b.Positions[t]), cos, sin)
		for v := t * perTok; v < (t+1)*perTok; v += n {
			seg := y.f[v+off : v+n]
			for i := range half {
				x0, x1 := seg[2*i], seg[2*i+1]
				seg[2*i] = x0*cos[i] - x1*sin[i]
				seg[2*i+1] = x0*sin[i] + x1*cos[i]
			}
		}
	}
	return y
}

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
	// Heads go four at a time: in the absorbed MLA form every head of a
	// token reads the same cache rows, so kernel.DotF32x4 scores four heads
	// per key read, with the bits DotF32 would give each.
	groups := (H + 3) / 4
	c.b.parallel(T*groups, 1, func(lo, hi int) {
		var scores [4][]float32
		var out4 [4]float32
		for tg := lo; tg < hi; tg++ {
			t, h0 := tg/groups, 4*(tg%groups)
			nh := min(4, H-h0)
			s, p := int(b.Seq[t]), int(b.Positions[t])
			first := 0
			if spec.Window > 0 {
				first = max(0, p-spec.Window+1)
			}
			var qv [4][]float32
			for k := range nh {
				th := t*H + h0 + k
				qv[k] = qt.f[th*dk : (th+1)*dk]
				scores[k] = scores[k][:0]
			}
			for j := first; j <= p; j++ {
				row := b.Slot(s, j) * w
				key := ct.f[row : row+dk]
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
				// ggml's soft_max sums in double precision.
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
				out := y.f[th*dv : (th+1)*dv]
				for j, e := range scores[k] {
					row := b.Slot(s, first+j) * w
					kernel.AxpyF32(e*inv, ct.f[row:row+dv], out)
				}
			}
		}
	})
	return y
}
