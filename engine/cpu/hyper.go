package cpu

import (
	"math"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// V4's manifold-constrained hyper-connections (spec §2.2). The mixes (a
// matrix product) come from MatMul; these ops do the small per-token
// arithmetic around them, in f32 and in the order llama.cpp's graph adds.

// sigmoid32 is 1/(1 + e^−x) in f32, e^−x through exp32 (the bits of
// float32(math.Exp(float64(−x)))).
func sigmoid32(x float32) float32 { return 1 / (1 + exp32(-x)) }

// hyperGrain is the fewest tokens a goroutine takes of HyperPost over hc
// streams of n: at least minPieceWork multiply-adds, so that a
// decode step's few tokens of a small model run on the calling goroutine
// rather than pay a hand-off that costs more than they do.
func hyperGrain(hc, n int) int {
	return max(1, minPieceWork/max(1, hc*hc*n))
}

// hyperArgs unwraps the tensors the hyper-connection ops share.
func (c *context) hyperArgs(op string, x, mix, scale, base engine.Tensor, spec engine.HyperSpec, nmix, nscale int) (xt, mt *tensor, sc, bs []float32, ok bool) {
	xt, ok1 := c.f32(op, x)
	mt, ok2 := c.f32(op+" mix", mix)
	st, ok3 := c.f32(op+" scale", scale)
	bt, ok4 := c.f32(op+" base", base)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, nil, nil, nil, false
	}
	hc := spec.Streams
	if hc <= 0 || len(xt.shape) != 3 || xt.shape[1] != hc {
		c.fail("%s: streams %v, want [T, %d, n]", op, xt, hc)
		return nil, nil, nil, nil, false
	}
	T := xt.shape[0]
	if len(mt.shape) != 2 || mt.shape[0] != T || mt.shape[1] != nmix || len(st.f) != nscale || len(bt.f) != nmix {
		c.fail("%s: mix %v, scale %v, base %v for %d tokens of %d streams", op, mt, st, bt, T, hc)
		return nil, nil, nil, nil, false
	}
	return xt, mt, st.f, bt.f, true
}

func (c *context) HyperPre(x, mix, scale, base engine.Tensor, spec engine.HyperSpec) (engine.Tensor, engine.Tensor, engine.Tensor) {
	hc := spec.Streams
	xt, mt, sc, bs, ok := c.hyperArgs("HyperPre", x, mix, scale, base, spec, (2+hc)*hc, 3)
	if !ok {
		return &tensor{}, &tensor{}, &tensor{}
	}
	T, n, nmix := xt.shape[0], xt.shape[2], (2+hc)*hc
	// Every element of the three is written: none need be cleared.
	in := &tensor{shape: []int{T, n}, dt: engine.F32, f: c.output(T * n)}
	post := &tensor{shape: []int{T, hc}, dt: engine.F32, f: c.output(T * hc)}
	comb := &tensor{shape: []int{T, hc, hc}, dt: engine.F32, f: c.output(T * hc * hc)}
	// Sinkhorn's iterations (Iters·2·hc² scalar divisions a token, about
	// 1.3 µs at hc 4 and 20 iterations) outweigh a hand-off: a token per
	// piece, or at hc 4, where kernel.Sinkhorn4 normalises eight tokens'
	// combs at once (0.5 µs), a group of eight.
	grain := 1
	if hc == 4 {
		grain = kernel.SinkhornLanes
	}
	c.b.parallel(T, grain, func(lo, hi int) {
		pre := make([]float32, hc)
		for t := lo; t < hi; t++ {
			m := mt.f[t*nmix : (t+1)*nmix]
			for k := range hc {
				pre[k] = sigmoid32(m[k]*sc[0]+bs[k]) + spec.Eps
				post.f[t*hc+k] = 2 * sigmoid32(m[hc+k]*sc[1]+bs[hc+k])
			}
			cm := comb.f[t*hc*hc : (t+1)*hc*hc]
			for i := range cm {
				cm[i] = m[2*hc+i]*sc[2] + bs[2*hc+i]
			}
			sinkhornSoftmax(cm, hc, spec.Eps)
			if hc != 4 {
				sinkhornNormalise(cm, hc, spec.Iters, spec.Eps)
			}
			dst := in.f[t*n : (t+1)*n]
			xs := xt.f[t*hc*n : (t+1)*hc*n]
			kernel.ScaleF32(dst, xs[:n], pre[0], nil)
			for k := 1; k < hc; k++ {
				kernel.MulAddF32(dst, xs[k*n:(k+1)*n], pre[k])
			}
		}
		if hc == 4 {
			sinkhornNormalise4(comb.f[lo*16:hi*16], spec.Iters, spec.Eps)
		}
	})
	return in, post, comb
}

// sinkhornSoftmax is the first part of the Sinkhorn step that makes a
// token's hc×hc comb doubly stochastic as spec §2.2 orders it (trap 6):
// softmax within each row of m, + eps. The rest, one column
// normalisation, then iters−1 times a row and a column normalisation,
// each dividing by the sum + eps, is sinkhornNormalise (or
// sinkhornNormalise4, eight tokens at a time).
func sinkhornSoftmax(m []float32, hc int, eps float32) {
	for j := range hc {
		row := m[j*hc : (j+1)*hc]
		mx := float32(math.Inf(-1))
		for _, v := range row {
			mx = max(mx, v)
		}
		var sum float64
		for k, v := range row {
			row[k] = exp32(v - mx)
			sum += float64(row[k])
		}
		inv := float32(1 / sum)
		for k := range row {
			row[k] = row[k]*inv + eps
		}
	}
}

// sinkhornNormalise is the rest of the Sinkhorn step: one column normalisation,
// then iters−1 times a row and a column normalisation.
func sinkhornNormalise(m []float32, hc, iters int, eps float32) {
	cols := func() {
		for k := range hc {
			var s float32
			for j := range hc {
				s += m[j*hc+k]
			}
			s += eps
			for j := range hc {
				m[j*hc+k] /= s
			}
		}
	}
	rows := func() {
		for j := range hc {
			var s float32
			for k := range hc {
				s += m[j*hc+k]
			}
			s += eps
			for k := range hc {
				m[j*hc+k] /= s
			}
		}
	}
	cols()
	for i := 1; i < iters; i++ {
		rows()
		cols()
	}
}

// sinkhornNormalise4 is sinkhornNormalise for consecutive 4×4 matrices,
// eight at a time through kernel.Sinkhorn4, with its bits: each group's
// matrices are laid out lane by lane, normalised and copied back (a short
// last group's empty lanes hold ones).
func sinkhornNormalise4(combs []float32, iters int, eps float32) {
	const lanes = kernel.SinkhornLanes
	var m [16 * lanes]float32
	for g := 0; g < len(combs); g += 16 * lanes {
		group := combs[g:min(g+16*lanes, len(combs))]
		count := len(group) / 16
		for i := range 16 {
			for t := range lanes {
				v := float32(1)
				if t < count {
					v = group[16*t+i]
				}
				m[lanes*i+t] = v
			}
		}
		kernel.Sinkhorn4(&m, iters-1, eps)
		for i := range 16 {
			for t := range count {
				group[16*t+i] = m[lanes*i+t]
			}
		}
	}
}

func (c *context) HyperPost(y, x, post, comb engine.Tensor) engine.Tensor {
	yt, ok := c.f32("HyperPost", y)
	xt, ok2 := c.f32("HyperPost streams", x)
	pt, ok3 := c.f32("HyperPost post", post)
	ct, ok4 := c.f32("HyperPost comb", comb)
	if !ok || !ok2 || !ok3 || !ok4 {
		return &tensor{}
	}
	if len(xt.shape) != 3 || len(yt.shape) != 2 {
		return c.fail("HyperPost: y %v, streams %v", yt, xt)
	}
	T, hc, n := xt.shape[0], xt.shape[1], xt.shape[2]
	if yt.shape[0] != T || yt.shape[1] != n || len(pt.f) != T*hc || len(ct.f) != T*hc*hc {
		return c.fail("HyperPost: y %v, streams %v, post %v, comb %v", yt, xt, pt, ct)
	}
	out := &tensor{shape: []int{T, hc, n}, dt: engine.F32, f: c.output(T * hc * n)} // every element written
	c.b.parallel(T, hyperGrain(hc, n), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			ys := yt.f[t*n : (t+1)*n]
			xs := xt.f[t*hc*n : (t+1)*hc*n]
			cm := ct.f[t*hc*hc : (t+1)*hc*hc]
			for k := range hc {
				dst := out.f[(t*hc+k)*n : (t*hc+k+1)*n]
				kernel.ScaleF32(dst, ys, pt.f[t*hc+k], nil)
				for j := range hc {
					kernel.MulAddF32(dst, xs[j*n:(j+1)*n], cm[j*hc+k])
				}
			}
		}
	})
	return out
}

func (c *context) HyperHead(x, mix, scale, base engine.Tensor, spec engine.HyperSpec) engine.Tensor {
	hc := spec.Streams
	xt, mt, sc, bs, ok := c.hyperArgs("HyperHead", x, mix, scale, base, spec, hc, 1)
	if !ok {
		return &tensor{}
	}
	T, n := xt.shape[0], xt.shape[2]
	out := &tensor{shape: []int{T, n}, dt: engine.F32, f: c.output(T * n)} // every element written
	for t := range T {
		dst := out.f[t*n : (t+1)*n]
		xs := xt.f[t*hc*n : (t+1)*hc*n]
		for k := range hc {
			w := sigmoid32(mt.f[t*hc+k]*sc[0]+bs[k]) + spec.Eps
			row := xs[k*n : (k+1)*n]
			if k == 0 {
				kernel.ScaleF32(dst, row, w, nil)
				continue
			}
			kernel.MulAddF32(dst, row, w)
		}
	}
	return out
}
