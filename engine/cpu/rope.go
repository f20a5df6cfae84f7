package cpu

import (
	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// ropeKey names the rotation of one rope, direction included, at one
// batch's positions.
type ropeKey struct {
	spec engine.RopeSpec
	pos  *int32 // &Positions[0]
	n    int
}

// ropeAngles returns the rotation of every rotated channel at every
// position of b, in kernel.RotatePairsF32's form (position t's at
// [t·Dims, (t+1)·Dims) of each): cc repeats each pair's cosine, ss holds
// (−sin, sin) per pair, (sin, −sin) for the inverse. Once per context and
// direction: a V4 layer rotates its queries, its keys and its outputs
// (and the indexer's) at the same positions, and each angle costs a
// float64 cosine and sine (the inverse only negates the forward sines,
// exactly).
func (c *context) ropeAngles(spec engine.RopeSpec, b *engine.Batch) (cc, ss []float32) {
	T, dims := len(b.Positions), spec.Dims
	key := ropeKey{spec: spec, pos: &b.Positions[0], n: T}
	if v, ok := c.ropes[key]; ok {
		return v[:T*dims], v[T*dims:]
	}
	v := c.output(2 * T * dims)
	cc, ss = v[:T*dims], v[T*dims:]
	if spec.Inverse {
		fwd := spec
		fwd.Inverse = false
		fc, fs := c.ropeAngles(fwd, b)
		copy(cc, fc)
		for i, s := range fs {
			ss[i] = -s
		}
	} else {
		// A position's angles are dims/2 float64 cosines and sines, about
		// a microsecond at 64 channels: a batch's share the team.
		half := dims / 2
		c.b.parallel(T, rowGrain(32*dims), func(lo, hi int) {
			cos, sin := make([]float32, half), make([]float32, half)
			for t := lo; t < hi; t++ {
				engine.RopeAngles(spec, int(b.Positions[t]), cos, sin)
				tc, ts := cc[t*dims:(t+1)*dims], ss[t*dims:(t+1)*dims]
				for i := range half {
					tc[2*i], tc[2*i+1] = cos[i], cos[i]
					ts[2*i], ts[2*i+1] = -sin[i], sin[i]
				}
			}
		})
	}
	if c.ropes == nil {
		c.ropes = make(map[ropeKey][]float32)
	}
	c.ropes[key] = v
	return cc, ss
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
	perTok, dims := len(xt.f)/T, spec.Dims
	// Every element is written: the output need not be cleared.
	y := &tensor{shape: append([]int(nil), xt.shape...), dt: engine.F32, f: c.output(len(xt.f))}
	cc, ss := c.ropeAngles(spec, b)
	off := n - dims
	c.b.parallel(T, rowGrain(perTok), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			tc, ts := cc[t*dims:(t+1)*dims], ss[t*dims:(t+1)*dims]
			for v := t * perTok; v < (t+1)*perTok; v += n {
				copy(y.f[v:v+off], xt.f[v:v+off])
				kernel.RotatePairsF32(y.f[v+off:v+n], xt.f[v+off:v+n], tc, ts)
			}
		}
	})
	return y
}
