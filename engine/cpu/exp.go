package cpu

import "github.com/ulan-ai/ulan/engine/cpu/internal/kernel"

// exp32 returns float32(math.Exp(float64(x))) bit for bit, in about half
// the time of that expression (BenchmarkExp32): see kernel.Exp32. The
// softmaxes, SiLUs and sigmoids of a decode step call it tens of thousands
// of times.
func exp32(x float32) float32 { return kernel.Exp32(x) }

// swigluRows sets g[i] = swiglu(g[i], u[i], clamp) for every i, with the
// same bits: kernel.SwiGLUF32, whose exponential is exp32's
// float32(math.Exp(float64(x))), eight values at a time in AVX2.
func swigluRows(g, u []float32, clamp float32) {
	kernel.SwiGLUF32(g, u, clamp)
}
