package kernel

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestE2M1Decode checks every code against the E2M1 definition (sign,
// two exponent bits of bias 1, one mantissa bit) and the spec §8 known
// answer: byte 0x9A holds −1.0 (low nibble 0xA) then −0.5 (high nibble 9).
func TestE2M1Decode(t *testing.T) {
	t.Parallel()
	for n := range byte(16) {
		e, m := int(n>>1&3), float64(n&1)
		want := m / 2
		if e > 0 {
			want = (1 + m/2) * math.Ldexp(1, e-1)
		}
		if n&8 != 0 {
			want = -want
		}
		require.Equal(t, math.Float64bits(want), math.Float64bits(float64(E2M1ToF32(n))), "code %#x", n)
		require.Equal(t, E2M1ToF32(n), E2M1ToF32(n|0xF0), "high bits are ignored")
		require.Equal(t, 2*E2M1ToF32(n)+0, float32(e2m1Twice[n]), "e2m1Twice[%#x]", n)
	}
	require.True(t, math.Signbit(float64(E2M1ToF32(8))), "code 8 is −0")
	var dst [32]float32
	w := make([]byte, 16)
	w[0] = 0x9A
	DequantE2M1Row(w, []byte{127}, 32, dst[:])
	require.Equal(t, []float32{-1, -0.5}, dst[:2])
}

// TestE8M0Decode checks the spec §8 known answers and the ends of the
// range: 0 is 2⁻¹²⁷ (a float32 subnormal), 254 is 2¹²⁷, 255 is NaN.
func TestE8M0Decode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		e    byte
		want float32
	}{{127, 1}, {128, 2}, {120, 0x1p-7}, {134, 128}, {0, 0x1p-127}, {1, 0x1p-126}, {254, 0x1p127}} {
		require.Equal(t, math.Float32bits(c.want), math.Float32bits(E8M0ToF32(c.e)), "byte %d", c.e)
		if c.e > 0 {
			require.Equal(t, c.want/2, e8m0Half[c.e], "half of byte %d", c.e)
		}
	}
	require.True(t, math.IsNaN(float64(E8M0ToF32(255))))
	require.True(t, math.IsNaN(float64(e8m0Half[255])))
	require.Equal(t, float32(0x1p-128), e8m0Half[0])
}

// e2m1Random returns a packed row of n values with scales between 2⁻²⁰
// and 2⁴ (every nibble code appears) and its exact dequantization.
func e2m1Random(r *rand.Rand, n int) (w, s []byte, deq []float32) {
	w, s = make([]byte, n/2), make([]byte, n/32)
	for i := range w {
		w[i] = byte(r.UintN(256))
	}
	for i := range s {
		s[i] = byte(107 + r.IntN(25))
	}
	deq = make([]float32, n)
	DequantE2M1Row(w, s, n, deq)
	return w, s, deq
}

// e2m1Tol is the allowed distance between a fused and an unfused sum of
// the products of w and x in the kernels' 32 lanes: each lane adds n/32
// products, each rounding at most half an ulp differently, and the
// partial sums carry that along, so (n/32 + 2)·2⁻²³·Σ|wᵢxᵢ| bounds it.
func e2m1Tol(deq, x []float32) float64 {
	var mag float64
	for i := range deq {
		mag += math.Abs(float64(deq[i]) * float64(x[i]))
	}
	return float64(len(deq)/32+2) * 0x1p-23 * mag
}

// TestE2M1DotMatchesGeneric holds the active set's DotE2M1 to the generic
// loop within e2m1Tol, and to an exact float64 dot product of the
// dequantized row, on lengths from 0 to 64 blocks and odd offsets into w,
// the scales and x (alignment), with guard values past x's end. DotE2M1x4
// must give DotE2M1's bits for each vector.
func TestE2M1DotMatchesGeneric(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	for _, n := range []int{0, 32, 64, 96, 128, 160, 224, 256, 512, 1024, 2048, 3584} {
		for _, off := range []int{0, 1, 3} {
			w, s, _ := e2m1Random(r, n+64*off)
			w, s = w[off:off+n/2], s[off:off+n/32]
			deq := make([]float32, n)
			DequantE2M1Row(w, s, n, deq)
			xs := make([][]float32, 4)
			for j := range xs {
				x := make([]float32, n+off+8)
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
				for i := n + off; i < len(x); i++ {
					x[i] = float32(math.NaN()) // read past the end, the sum is NaN
				}
				xs[j] = x[off:]
			}
			var out [4]float32
			DotE2M1x4(w, s, n, xs[0], xs[1], xs[2], xs[3], &out)
			for j, x := range xs {
				got := DotE2M1(w, s, n, x)
				want := dotE2M1Generic(w, s, x[:n])
				var exact float64
				for i := range deq {
					exact += float64(deq[i]) * float64(x[i])
				}
				tol := e2m1Tol(deq, x)
				require.InDelta(t, want, got, tol, "n %d off %d vector %d", n, off, j)
				require.InDelta(t, exact, got, tol, "n %d off %d vector %d: exact", n, off, j)
				require.Equal(t, math.Float32bits(got), math.Float32bits(out[j]), "n %d off %d: x4[%d] is DotE2M1's bits", n, off, j)
			}
		}
	}
}

// TestE2M1Extremes runs the kernels on scale bytes 0, 254 and 255 (2⁻¹²⁷,
// 2¹²⁷, NaN) and activations that overflow: the fast kernel must give the
// generic's Inf and NaN, and 0 for a zero row whatever its scales.
func TestE2M1Extremes(t *testing.T) {
	t.Parallel()
	n := 64
	w := make([]byte, n/2)
	x := make([]float32, n)
	for i := range x {
		x[i] = 1
	}
	for i := range w {
		w[i] = 0x77 // 6, 6
	}
	check := func(s []byte) {
		got, want := DotE2M1(w, s, n, x), dotE2M1Generic(w, s, x)
		require.True(t, sameFloat(want, got), "scales %v: %v, generic %v", s, got, want)
	}
	check([]byte{254, 254}) // 6·2¹²⁷ overflows to +Inf
	check([]byte{255, 127}) // NaN scale
	check([]byte{0, 0})     // subnormal weights, exact
	clear(w)
	check([]byte{254, 0})
	require.Zero(t, DotE2M1(w, []byte{254, 0}, n, x))
}

// TestE2M1Panics checks the argument checks.
func TestE2M1Panics(t *testing.T) {
	t.Parallel()
	w, s, x := make([]byte, 32), make([]byte, 2), make([]float32, 64)
	var out [4]float32
	require.PanicsWithValue(t, "kernel: DotE2M1: cols = 48 is not a non-negative multiple of 32", func() { DotE2M1(w, s, 48, x) })
	require.Panics(t, func() { DotE2M1(w[:31], s, 64, x) })
	require.Panics(t, func() { DotE2M1(w, s[:1], 64, x) })
	require.Panics(t, func() { DotE2M1(w, s, 64, x[:63]) })
	require.Panics(t, func() { DotE2M1x4(w, s, 64, x, x, x[:10], x, &out) })
	require.Panics(t, func() { DequantE2M1Row(w, s, 64, x[:32]) })
}

// FuzzE2M1Dot compares DotE2M1 and DotE2M1x4 with the generic loop on
// fuzzed packed rows, scales and activations.
func FuzzE2M1Dot(f *testing.F) {
	f.Add([]byte{0x9A, 0x77, 0x08, 0xF1}, byte(127), float32(1))
	f.Add(make([]byte, 48), byte(0), float32(-3e38))
	f.Fuzz(func(t *testing.T, w []byte, e byte, xv float32) {
		n := len(w) / 16 * 32
		w = w[:n/2]
		s := make([]byte, n/32)
		for i := range s {
			s[i] = e + byte(i)
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = xv * float32(i%7-3)
		}
		deq := make([]float32, n)
		DequantE2M1Row(w, s, n, deq)
		want, got := dotE2M1Generic(w, s, x), DotE2M1(w, s, n, x)
		tol := e2m1Tol(deq, x)
		if !(sameFloat(want, got) || math.Abs(float64(want)-float64(got)) <= tol) {
			t.Fatalf("n %d: %v, generic %v (tolerance %g)", n, got, want, tol)
		}
		var out [4]float32
		DotE2M1x4(w, s, n, x, x, x, x, &out)
		for j := range out {
			if !sameFloat(out[j], got) {
				t.Fatalf("n %d: x4[%d] %v, x1 %v", n, j, out[j], got)
			}
		}
	})
}

// BenchmarkDotE2M1 streams 256 rows of 2048 FP4 values (a V4-Flash
// expert's w1) against one and four vectors with the active set and the
// generic loop; bytes are weight bytes (packed values and scales).
func BenchmarkDotE2M1(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 256, 2048
	w, s, _ := e2m1Random(r, rows*cols)
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	impls := []struct {
		name string
		set  fp4Impls
	}{{"generic", fp4Generic}, {Impl(), active.fp4}}
	rb, sb := cols/2, cols/32
	for _, im := range impls {
		b.Run(im.name+"/x1", func(b *testing.B) {
			b.SetBytes(int64(len(w) + len(s)))
			for b.Loop() {
				for row := range rows {
					im.set.dotE2M1(w[row*rb:(row+1)*rb], s[row*sb:(row+1)*sb], x)
				}
			}
		})
		b.Run(im.name+"/x4", func(b *testing.B) {
			var out [4]float32
			b.SetBytes(int64(len(w) + len(s)))
			for b.Loop() {
				for row := range rows {
					im.set.dotE2M1x4(w[row*rb:(row+1)*rb], s[row*sb:(row+1)*sb], x, x, x, x, &out)
				}
			}
		})
	}
}
