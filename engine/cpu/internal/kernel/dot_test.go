package kernel

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// floatKernel bundles one weight format's kernels, dispatched and generic,
// for the shared equivalence tests.
type floatKernel[W comparable] struct {
	name     string
	toW      func(float32) W // exact for the small integers of the exact tests
	widen    func(W) float32
	nanW     W   // a NaN weight, the guard after w
	specials []W // NaN, ±Inf, subnormals, ±0 in W's format

	fast, ref     func(w []W, x []float32) float32
	fastX4, refX4 func(w []W, x0, x1, x2, x3 []float32, out *[4]float32)
}

var nan32 = float32(math.NaN())

var f32Kernel = floatKernel[float32]{
	name: "F32", toW: func(f float32) float32 { return f }, widen: func(f float32) float32 { return f },
	nanW: nan32,
	specials: []float32{nan32, float32(math.Inf(1)), float32(math.Inf(-1)), 0x1p-149, -0x1p-140, 0x1p-127,
		float32(math.Copysign(0, -1)), 0},
	fast: DotF32, ref: dotF32Generic, fastX4: DotF32x4, refX4: dotF32x4Generic,
}

var f16Kernel = floatKernel[uint16]{
	name: "F16", toW: F32ToF16, widen: F16ToF32, nanW: 0x7E00,
	specials: []uint16{0x7E00, 0x7D00, 0xFE01, 0x7C00, 0xFC00, 0x0001, 0x83FF, 0x0200, 0x8000, 0x0000, 0x7BFF},
	fast:     DotF16, ref: dotF16Generic, fastX4: DotF16x4, refX4: dotF16x4Generic,
}

var bf16Kernel = floatKernel[uint16]{
	name: "BF16", toW: F32ToBF16, widen: BF16ToF32, nanW: 0x7FC0,
	specials: []uint16{0x7FC0, 0x7F81, 0xFFC1, 0x7F80, 0xFF80, 0x0001, 0x807F, 0x0080, 0x8000, 0x0000, 0x7F7F},
	fast:     DotBF16, ref: dotBF16Generic, fastX4: DotBF16x4, refX4: dotBF16x4Generic,
}

func TestDotFloat(t *testing.T) {
	t.Run("F32", func(t *testing.T) { testFloatKernel(t, f32Kernel) })
	t.Run("F16", func(t *testing.T) { testFloatKernel(t, f16Kernel) })
	t.Run("BF16", func(t *testing.T) { testFloatKernel(t, bf16Kernel) })
}

// floatInputs is one test case's weights and four activation vectors, each
// followed in memory by NaN guards.
type floatInputs[W comparable] struct {
	w []W
	x [4][]float32
}

func newFloatInputs[W comparable](k floatKernel[W], n, off int, gen func(i int) (W, [4]float32)) floatInputs[W] {
	var in floatInputs[W]
	in.w, _ = guarded(n, off, k.nanW)
	for j := range in.x {
		// Each vector at its own offset, so w and x alignments differ.
		in.x[j], _ = guarded(n, (off+j)%8, nan32)
	}
	for i := range n {
		var xs [4]float32
		in.w[i], xs = gen(i)
		for j := range in.x {
			in.x[j][i] = xs[j]
		}
	}
	return in
}

// absDot is Σ|wᵢ·xᵢ| in float64, the scale of the rounding bound.
func absDot[W comparable](k floatKernel[W], w []W, x []float32) float64 {
	var s float64
	for i, wi := range w {
		s += math.Abs(float64(k.widen(wi)) * float64(x[i]))
	}
	return s
}

func testFloatKernel[W comparable](t *testing.T, k floatKernel[W]) {
	lens := append(append([]int{}, smallLens...), largeLens...)

	// Exact: integers in [-16, 16] make every partial sum an integer below
	// 2²⁴ (n·256 ≤ 1.9e6), exact in float32 in any order with or without
	// FMA, so the fast kernels must match the generic ones bit for bit.
	// This is the test that catches a lost or repeated element.
	t.Run("exact", func(t *testing.T) {
		t.Parallel()
		r := newRand(1)
		for _, n := range lens {
			for _, off := range offsets {
				in := newFloatInputs(k, n, off, func(int) (W, [4]float32) {
					var xs [4]float32
					for j := range xs {
						xs[j] = float32(r.IntN(33) - 16)
					}
					return k.toW(float32(r.IntN(33) - 16)), xs
				})
				name := fmt.Sprintf("n=%d off=%d", n, off)
				var want [4]float32
				for j := range in.x {
					want[j] = k.ref(in.w, in.x[j])
					require.Equal(t, want[j], k.fast(in.w, in.x[j]), "%s x%d", name, j)
				}
				var ref [4]float32
				k.refX4(in.w, in.x[0], in.x[1], in.x[2], in.x[3], &ref)
				require.Equal(t, want, ref, "%s generic x4 vs generic", name)
				out, check := guardedOut()
				k.fastX4(in.w, in.x[0], in.x[1], in.x[2], in.x[3], out)
				check(t)
				require.Equal(t, want, *out, "%s x4", name)
			}
		}
	})

	// Random: uniform values in [-1, 1) (weights rounded to W), where FMA
	// and summation order change the rounding; checked with sumTol.
	t.Run("random", func(t *testing.T) {
		t.Parallel()
		r := newRand(2)
		for _, n := range lens {
			for _, off := range offsets {
				in := newFloatInputs(k, n, off, func(int) (W, [4]float32) {
					var xs [4]float32
					for j := range xs {
						xs[j] = 2*r.Float32() - 1
					}
					return k.toW(2*r.Float32() - 1), xs
				})
				checkFloatCase(t, k, in, fmt.Sprintf("n=%d off=%d", n, off))
			}
		}
	})

	// Special: random values with NaN, ±Inf, subnormals and signed zeros
	// dropped in at random places, in the weights and in the activations.
	t.Run("special", func(t *testing.T) {
		t.Parallel()
		r := newRand(3)
		xSpecials := f32Kernel.specials
		for _, n := range lens {
			for trial := range 8 {
				in := newFloatInputs(k, n, trial%len(offsets), func(int) (W, [4]float32) {
					var xs [4]float32
					for j := range xs {
						xs[j] = 2*r.Float32() - 1
						if r.IntN(40) == 0 {
							xs[j] = xSpecials[r.IntN(len(xSpecials))]
						}
					}
					w := k.toW(2*r.Float32() - 1)
					if r.IntN(40) == 0 {
						w = k.specials[r.IntN(len(k.specials))]
					}
					return w, xs
				})
				checkFloatCase(t, k, in, fmt.Sprintf("n=%d trial=%d", n, trial))
			}
		}
	})
}

// checkFloatCase checks the fast single and x4 kernels against the generic
// twin within sumTol, and the x4 results against the single ones exactly:
// the backend batches tokens with the x4 forms and requires a token's
// result not to depend on its batch.
func checkFloatCase[W comparable](t *testing.T, k floatKernel[W], in floatInputs[W], name string) {
	t.Helper()
	n := len(in.w)
	var want [4]float32
	k.refX4(in.w, in.x[0], in.x[1], in.x[2], in.x[3], &want)
	out, check := guardedOut()
	k.fastX4(in.w, in.x[0], in.x[1], in.x[2], in.x[3], out)
	check(t)
	for j := range in.x {
		abs := absDot(k, in.w, in.x[j])
		ref := k.ref(in.w, in.x[j])
		fast := k.fast(in.w, in.x[j])
		requireSumClose(t, fast, ref, n, abs, "%s x%d", name, j)
		requireSameFloat(t, fast, out[j], "%s: x4 out[%d] differs from the single form", name, j)
	}
}

func TestDotPanicsOnShortInput(t *testing.T) {
	t.Parallel()
	w16 := make([]uint16, 8)
	x := make([]float32, 7)
	full := make([]float32, 8)
	var out [4]float32
	require.Panics(t, func() { DotF32(full, x) })
	require.Panics(t, func() { DotF16(w16, x) })
	require.Panics(t, func() { DotBF16(w16, x) })
	require.Panics(t, func() { DotF32x4(full, full, full, full, x, &out) })
	require.Panics(t, func() { DotF16x4(w16, full, x, full, full, &out) })
	require.Panics(t, func() { DotBF16x4(w16, x, full, full, full, &out) })
	// A longer x is fine: only the first len(w) elements are read.
	require.Equal(t, float32(0), DotF32(x, full))
}

// TestAxpyF32 compares AxpyF32 with a float64 reference on awkward lengths
// and offsets (the assembly's 32-, 8- and 1-element paths), within one
// rounding of each element, and checks that nothing past len(x) changes.
func TestAxpyF32(t *testing.T) {
	t.Parallel()
	r := newRand(21)
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 100, 512, 515} {
		for _, off := range []int{0, 1, 3} {
			x := make([]float32, n+off)[off:]
			y := make([]float32, n+off+4)[off:]
			for i := range x {
				x[i] = (r.Float32() - 0.5) * 8
			}
			for i := range y {
				y[i] = (r.Float32() - 0.5) * 8
			}
			a := (r.Float32() - 0.5) * 4
			before := slices.Clone(y)
			gen := slices.Clone(y)
			AxpyF32(a, x, y)
			axpyF32Generic(a, x, gen[:n])
			for i := range n {
				want := float64(before[i]) + float64(a)*float64(x[i])
				tol := (math.Abs(float64(before[i])) + math.Abs(float64(a)*float64(x[i]))) * 0x1p-23
				require.InDelta(t, want, float64(y[i]), tol, "n=%d off=%d i=%d", n, off, i)
				require.InDelta(t, want, float64(gen[i]), 2*tol, "generic n=%d off=%d i=%d", n, off, i)
			}
			require.Equal(t, before[n:], y[n:], "n=%d: past len(x)", n)
		}
	}
}
