package cpu

import "github.com/ulan-ai/ulan/engine"

// ropeKey names the rotation angles of one rope (its direction aside) at
// one batch's positions.
type ropeKey struct {
	spec engine.RopeSpec // Inverse false
	pos  *int32          // &Positions[0]
	n    int
}

// ropeAngles returns cos and sin of every rotated pair at every position
// of b (position t's pairs at [t·half, (t+1)·half) of each), forward, once
// per context: a V4 layer rotates its queries, its keys and its outputs
// (and the indexer's) at the same positions, and each angle costs a
// float64 cosine and sine.
func (c *context) ropeAngles(spec engine.RopeSpec, b *engine.Batch) (cos, sin []float32) {
	spec.Inverse = false
	T, half := len(b.Positions), spec.Dims/2
	key := ropeKey{spec: spec, pos: &b.Positions[0], n: T}
	if v, ok := c.ropes[key]; ok {
		return v[:T*half], v[T*half:]
	}
	v := c.output(2 * T * half)
	cos, sin = v[:T*half], v[T*half:]
	for t, p := range b.Positions {
		engine.RopeAngles(spec, int(p), cos[t*half:(t+1)*half], sin[t*half:(t+1)*half])
	}
	if c.ropes == nil {
		c.ropes = make(map[ropeKey][]float32)
	}
	c.ropes[key] = v
	return cos, sin
}

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
	if T == 0 || len(xt.f)%(T*n) != 0 || xt.shape[0] != T {
		return c.fail("Rope: %v for %d tokens", xt, T)
	}
	perTok := len(xt.f) / T
	y := c.newF32(append([]int(nil), xt.shape...)...)
	copy(y.f, xt.f)
	half := spec.Dims / 2
	cos, sin := c.ropeAngles(spec, b)
	off := n - spec.Dims
	for t := range T {
		cs, sn := cos[t*half:(t+1)*half], sin[t*half:(t+1)*half]
		for v := t * perTok; v < (t+1)*perTok; v += n {
			seg := y.f[v+off : v+n]
			if spec.Inverse {
				// The angles negated: sin(−θ) = −sin θ exactly.
				for i := range half {
					x0, x1 := seg[2*i], seg[2*i+1]
					seg[2*i] = x0*cs[i] + x1*sn[i]
					seg[2*i+1] = -(x0 * sn[i]) + x1*cs[i]
				}
				continue
			}
			for i := range half {
				x0, x1 := seg[2*i], seg[2*i+1]
				seg[2*i] = x0*cs[i] - x1*sn[i]
				seg[2*i+1] = x0*sn[i] + x1*cs[i]
			}
		}
	}
	return y
}
