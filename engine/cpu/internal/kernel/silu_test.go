package kernel

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// swigluRef is one value of [SwiGLUF32] as its doc states it, with
// math.Exp.
func swigluRef(g, u, clamp float32) float32 {
	if clamp > 0 {
		if g > clamp {
			g = clamp
		}
		if u > clamp {
			u = clamp
		} else if u < -clamp {
			u = -clamp
		}
	}
	return g / (1 + float32(math.Exp(float64(-g)))) * u
}

// checkSwiGLU runs SwiGLUF32 (the active set) and swigluGeneric on g and u
// and compares both with swigluRef, value by value.
func checkSwiGLU(t *testing.T, g, u []float32, clamp float32) {
	t.Helper()
	got := append([]float32(nil), g...)
	SwiGLUF32(got, u, clamp)
	gen := append([]float32(nil), g...)
	c := clamp
	if !(c > 0) {
		c = float32(math.Inf(1))
	}
	swigluGeneric(gen, u[:len(g)], c)
	bad := 0
	for i := range g {
		want := swigluRef(g[i], u[i], clamp)
		if (!sameBits(got[i], want) || !sameBits(gen[i], want)) && bad < 5 {
			bad++
			t.Errorf("%s: len %d clamp %g: swiglu(%g, %g)[%d] = %g (generic %g), want %g", Impl(), len(g), clamp, g[i], u[i], i, got[i], gen[i], want)
		}
	}
}

// TestSwiGLUF32 compares the active kernel and the generic code with the
// reference at lengths around the kernel's groups of eight, on random
// values with and without a clamp, on special values mixed into
// otherwise ordinary groups, and on a strided sweep of every float32 bit
// pattern as the gate.
func TestSwiGLUF32(t *testing.T) {
	t.Parallel()
	r := newRand(41)
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 64, 100, 1023} {
		for _, clamp := range []float32{0, 7, 0.5} {
			g, u := make([]float32, n), make([]float32, n+3)
			for i := range g {
				g[i] = (r.Float32() - 0.5) * 40
			}
			for i := range u {
				u[i] = (r.Float32() - 0.5) * 20
			}
			checkSwiGLU(t, g, u, clamp)
		}
	}
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)),
		87, -87, 88, -88, 86.99999, -87.99999, 100, -100, 1e-40, -1e-40, math.MaxFloat32, -math.MaxFloat32}
	for _, s := range special {
		for at := range 9 {
			g, u := make([]float32, 24), make([]float32, 24)
			for i := range g {
				g[i], u[i] = float32(i)-12.5, 1.5
			}
			g[at*2] = s
			u[23-at] = s
			checkSwiGLU(t, g, u, 0)
			checkSwiGLU(t, g, u, 10)
		}
	}
	const stride = 1021
	g, u := make([]float32, 0, 1<<32/stride+1), make([]float32, 0, 1<<32/stride+1)
	for b := uint64(0); b < 1<<32; b += stride {
		g = append(g, math.Float32frombits(uint32(b)))
		u = append(u, 1)
	}
	checkSwiGLU(t, g, u, 0)
}

func FuzzSwiGLUF32(f *testing.F) {
	f.Add(bytesOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18), float32(0))
	f.Add(bytesOf(nan32, -87, 88, 0.5, -3, 40, -40, 1e-30, 2, 2, 2, 2, 2, 2, 2, 2), float32(7))
	f.Fuzz(func(t *testing.T, data []byte, clamp float32) {
		n := len(data) / 8
		g, u := floatsFrom(data[:4*n]), floatsFrom(data[4*n:8*n])
		checkSwiGLU(t, g, u, clamp)
	})
}

// BenchmarkSwiGLUF32 compares the active kernel with the generic code on
// 3072 values (an expert's gate at 8 tokens of the demo model's scale),
// gates in [−8, 8].
func BenchmarkSwiGLUF32(b *testing.B) {
	r := newRand(5)
	const n = 3072
	g0, u := make([]float32, n), make([]float32, n)
	for i := range g0 {
		g0[i], u[i] = (r.Float32()-0.5)*16, r.Float32()-0.5
	}
	g := make([]float32, n)
	inf := float32(math.Inf(1))
	for _, set := range []struct {
		name string
		f    func(g, u []float32, clamp float32)
	}{{"generic", swigluGeneric}, {Impl(), active.swiglu}} {
		b.Run(fmt.Sprintf("impl=%s", set.name), func(b *testing.B) {
			b.SetBytes(n * 4)
			for b.Loop() {
				copy(g, g0)
				set.f(g, u, inf)
			}
		})
	}
}

// TestExp32s checks Exp32s against Exp32 bit for bit, in both sets, over
// random values of the softmax range, the edges of (−87, 88), the
// non-finite values and lengths that leave a tail.
func TestExp32s(t *testing.T) {
	t.Parallel()
	r := newRand(58)
	special := []float32{0, float32(math.Copysign(0, -1)), -87, -86.99999, 88, 87.99999, -87.00001, 88.00001,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-30, -1e-30, -200, 200}
	for _, n := range []int{0, 1, 7, 8, 9, 64, 1000, 100003} {
		x := make([]float32, n)
		for i := range x {
			switch {
			case i < len(special) && n < 100:
				x[i] = special[i]
			case i%3 == 0:
				x[i] = (r.Float32() - 0.9) * 100
			default:
				x[i] = (r.Float32() - 0.5) * 4
			}
		}
		twins(func(generic bool) {
			dst := make([]float32, n+1)
			dst[n] = 42
			if generic {
				exp32sGeneric(dst[:n], x)
			} else {
				Exp32s(dst, x)
			}
			for i, v := range x {
				require.Equal(t, math.Float32bits(Exp32(v)), math.Float32bits(dst[i]), "n %d, x[%d] = %v, generic %v", n, i, v, generic)
			}
			require.Equal(t, float32(42), dst[n], "written past len(x)")
		})
	}
}

func BenchmarkExp32s(b *testing.B) {
	r := newRand(59)
	x, dst := make([]float32, 1024), make([]float32, 1024)
	for i := range x {
		x[i] = -r.Float32() * 10
	}
	b.SetBytes(4 * 1024)
	for b.Loop() {
		Exp32s(dst, x)
	}
}

// FuzzExp32s: Exp32s gives Exp32's bits for any values.
func FuzzExp32s(f *testing.F) {
	f.Add(bytesOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18))
	f.Add(bytesOf(nan32, -87, 88, 0.5, -3, 40, -40, 1e-30, -86.99999, 87.99999, 2, 2, 2, 2, 2, 2))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := floatsFrom(data[:len(data)/4*4])
		dst := make([]float32, len(x))
		Exp32s(dst, x)
		for i, v := range x {
			if math.Float32bits(dst[i]) != math.Float32bits(Exp32(v)) {
				t.Fatalf("x[%d] = %v (%#x): Exp32s %v, Exp32 %v", i, v, math.Float32bits(v), dst[i], Exp32(v))
			}
		}
	})
}
