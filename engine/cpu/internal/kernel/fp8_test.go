package kernel

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestE4M3Decode checks known codes against the OCP E4M3 definition.
func TestE4M3Decode(t *testing.T) {
	cases := []struct {
		b    byte
		want float32
	}{
		{0x00, 0},
		{0x01, 0x1p-9},         // smallest subnormal
		{0x02, 0x1p-8},         // 2/8 · 2⁻⁶
		{0x07, 7 * 0x1p-9},     // largest subnormal
		{0x08, 0x1p-6},         // smallest normal
		{0x09, 1.125 * 0x1p-6}, // (1 + 1/8) · 2⁻⁶
		{0x30, 0.5},            // e = 6
		{0x38, 1},              // e = 7
		{0x39, 1.125},
		{0x3C, 1.5},
		{0x40, 2},
		{0x48, 4},
		{0x56, 14},  // e = 10, m = 6: 1.75 · 8
		{0x70, 128}, // e = 14, m = 0
		{0x78, 256}, // e = 15, m = 0
		{0x7D, 416},
		{0x7E, 448}, // largest finite
		{0x81, -0x1p-9},
		{0xB8, -1},
		{0xC0, -2},
		{0xFE, -448},
		{0x88, -0x1p-6},
		{0xF0, -128},
		{0x87, -7 * 0x1p-9},
		{0x3F, 1.875},
		{0x47, 3.75},
		{0x50, 8},
		{0x5F, 30},  // 1.875 · 16
		{0x67, 60},  // 1.875 · 32
		{0x6F, 120}, // 1.875 · 64
		{0x77, 240}, // 1.875 · 128
	}
	for _, c := range cases {
		require.Equal(t, math.Float32bits(c.want), math.Float32bits(E4M3ToF32(c.b)), "code %#02x: got %v, want %v", c.b, E4M3ToF32(c.b), c.want)
	}
	negZero := E4M3ToF32(0x80)
	require.Equal(t, uint32(0x80000000), math.Float32bits(negZero), "0x80 is −0")
	for _, b := range []byte{0x7F, 0xFF} {
		require.True(t, math.IsNaN(float64(E4M3ToF32(b))), "code %#02x is NaN", b)
	}
	require.Zero(t, math.Float32bits(E4M3ToF32(0x7F))>>31, "0x7F is a positive NaN")
	require.Equal(t, uint32(1), math.Float32bits(E4M3ToF32(0xFF))>>31, "0xFF is a negative NaN")

	// Only 0x7F and 0xFF are NaN; the 127 positive finite codes increase
	// strictly, each negative code is its positive code negated.
	for b := range 256 {
		v := E4M3ToF32(byte(b))
		require.Equal(t, b&0x7F == 0x7F, math.IsNaN(float64(v)), "code %#02x", b)
		require.False(t, math.IsInf(float64(v), 0), "code %#02x", b)
		if b < 0x80 && b&0x7F != 0x7F {
			require.Equal(t, math.Float32bits(v)|1<<31, math.Float32bits(E4M3ToF32(byte(b|0x80))), "code %#02x", b)
			if b > 0 {
				require.Less(t, E4M3ToF32(byte(b-1)), v, "code %#02x", b)
			}
		}
	}
}

// TestE4M3RoundTrip checks that every code but the NaNs survives decoding
// and re-encoding, −0 included, and that the NaNs re-encode as themselves.
func TestE4M3RoundTrip(t *testing.T) {
	for b := range 256 {
		require.Equal(t, byte(b), F32ToE4M3(E4M3ToF32(byte(b))), "code %#02x", b)
	}
}

// e4m3RefEncode is an independent encoder: the nearest of the 254 finite
// codes in float64, ties to the code with an even mantissa (bit 0 clear),
// magnitudes above 448 saturated, ±Inf and NaN to NaN with their sign.
func e4m3RefEncode(f float32) byte {
	var sign byte
	if math.Signbit(float64(f)) {
		sign = 0x80
	}
	a := math.Abs(float64(f))
	if math.IsNaN(a) || math.IsInf(a, 0) {
		return sign | 0x7F
	}
	if a >= 448 {
		return sign | 0x7E
	}
	// Codes 0x00…0x7E are increasing; find the first ≥ a.
	hi := sort.Search(0x7F, func(i int) bool { return float64(E4M3ToF32(byte(i))) >= a })
	if float64(E4M3ToF32(byte(hi))) == a || hi == 0 {
		return sign | byte(hi)
	}
	lo := hi - 1
	dl := a - float64(E4M3ToF32(byte(lo)))
	dh := float64(E4M3ToF32(byte(hi))) - a
	switch {
	case dl < dh:
		return sign | byte(lo)
	case dh < dl:
		return sign | byte(hi)
	case lo&1 == 0:
		return sign | byte(lo)
	}
	return sign | byte(hi)
}

// TestE4M3Encode checks rounding to nearest even at every midpoint between
// neighbouring codes and next to it, saturation, NaN and Inf, tiny values,
// and agreement with e4m3RefEncode on random float32 bit patterns.
func TestE4M3Encode(t *testing.T) {
	// The examples of the brief: midpoints around 1.125.
	require.Equal(t, byte(0x38), F32ToE4M3(1.0625), "1.0625 ties to even 1.0")
	require.Equal(t, byte(0x3A), F32ToE4M3(1.1875), "1.1875 ties to even 1.25")
	require.Equal(t, byte(0xB8), F32ToE4M3(-1.0625))

	// Every midpoint between neighbouring positive codes (exact in
	// float32: the codes have 4 significant bits), and its float32
	// neighbours on either side.
	for lo := range 0x7E {
		a, b := float64(E4M3ToF32(byte(lo))), float64(E4M3ToF32(byte(lo+1)))
		mid := float32((a + b) / 2)
		require.Equal(t, (a+b)/2, float64(mid))
		even := byte(lo)
		if lo&1 == 1 {
			even = byte(lo + 1)
		}
		require.Equal(t, even, F32ToE4M3(mid), "midpoint %v between codes %#02x and %#02x", mid, lo, lo+1)
		require.Equal(t, even|0x80, F32ToE4M3(-mid), "midpoint %v", -mid)
		require.Equal(t, byte(lo), F32ToE4M3(math.Nextafter32(mid, 0)), "just below %v", mid)
		require.Equal(t, byte(lo+1), F32ToE4M3(math.Nextafter32(mid, 1000)), "just above %v", mid)
	}

	// Saturation, specials, tiny values (documented in F32ToE4M3).
	for _, c := range []struct {
		f    float32
		want byte
	}{
		{448, 0x7E}, {-448, 0xFE},
		{449, 0x7E}, {464, 0x7E}, {465, 0x7E}, {479, 0x7E}, {480, 0x7E}, {1e6, 0x7E}, {math.MaxFloat32, 0x7E},
		{-464, 0xFE}, {-1000, 0xFE}, {-math.MaxFloat32, 0xFE},
		{float32(math.Inf(1)), 0x7F}, {float32(math.Inf(-1)), 0xFF},
		{float32(math.NaN()), 0x7F}, {math.Float32frombits(0xFFC00000), 0xFF}, {math.Float32frombits(0x7F800001), 0x7F},
		{0x1p-10, 0x00}, {-0x1p-10, 0x80}, // half the smallest subnormal: tie to even 0
		{math.Nextafter32(0x1p-10, 1), 0x01}, {0x1p-11, 0x00}, {1e-30, 0x00}, {-1e-30, 0x80},
		{math.SmallestNonzeroFloat32, 0x00}, {-math.SmallestNonzeroFloat32, 0x80},
		{3 * 0x1p-10, 0x02},                                       // 1.5 units of 2⁻⁹: tie to even 2
		{15 * 0x1p-10, 0x08},                                      // 7.5 units: tie to even 8, the smallest normal
		{0.3, 0x2A}, {-0.3, 0xAA}, {3.1415927, 0x45}, {100, 0x6C}, // 100 = 1.5625·64 ties to even 96
	} {
		require.Equal(t, c.want, F32ToE4M3(c.f), "F32ToE4M3(%v)", c.f)
		require.Equal(t, c.want, e4m3RefEncode(c.f), "e4m3RefEncode(%v)", c.f)
	}

	// Random bit patterns, and random values in the format's range.
	r := rand.New(rand.NewPCG(8, 1))
	for range 1 << 18 {
		f := math.Float32frombits(r.Uint32())
		require.Equal(t, e4m3RefEncode(f), F32ToE4M3(f), "F32ToE4M3(%v) bits %#08x", f, math.Float32bits(f))
		g := float32(math.Ldexp(r.Float64()*2-1, r.IntN(22)-12))
		require.Equal(t, e4m3RefEncode(g), F32ToE4M3(g), "F32ToE4M3(%v)", g)
	}
}

// e4m3TestMatrix returns a random rows×cols FP8 matrix without NaN codes,
// its [⌈rows/128⌉, ⌈cols/128⌉] block scales (positive, spread over 2⁻¹²…2⁰
// like real weight_scale_inv values) and a Gaussian activation row.
func e4m3TestMatrix(r *rand.Rand, rows, cols int) (w []byte, scales, x []float32) {
	w = make([]byte, rows*cols)
	for i := range w {
		b := byte(r.UintN(256))
		for b&0x7F == 0x7F {
			b = byte(r.UintN(256))
		}
		w[i] = b
	}
	nr, nc := (rows+127)/128, (cols+127)/128
	scales = make([]float32, nr*nc)
	for i := range scales {
		scales[i] = float32(math.Ldexp(1+r.Float64(), -r.IntN(13)))
	}
	x = make([]float32, cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return w, scales, x
}

// TestE4M3DequantDot checks DequantE4M3Row and DotE4M3 on a 257×300 matrix
// (a partial last block row of 1 and a partial last block column of 44)
// and a few other shapes against float64 references.
//
// Dequantization must be exact: a code has at most 4 significant bits and
// a scale 24, so their product is exact in float64 and its rounding to
// float32 is the one float32 multiply.
//
// The dot product is compared two ways. Bit for bit with the documented
// order (16 lanes per block, reduced as the AVX2 kernel does) written out
// here, and with the float64 sum Σ v_c·s_b·x_c within
// (128 + nb + 1)·2⁻²⁴·Σ|v_c·s_b·x_c|: each product v·x is rounded once
// (relative error ≤ 2⁻²⁴), a block's at most 128 terms are summed with at
// most 127 roundings, the block scale multiply rounds once, and the nb
// block terms are summed with nb−1 roundings; to first order every term
// carries at most 128 + 1 + nb relative errors of 2⁻²⁴ (the second-order
// terms are far below the slack of a sum of |terms|).
func TestE4M3DequantDot(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 2))
	for _, shape := range [][2]int{{257, 300}, {1, 1}, {3, 128}, {130, 129}, {128, 256}, {5, 0}} {
		rows, cols := shape[0], shape[1]
		w, scales, x := e4m3TestMatrix(r, rows, cols)
		nb := (cols + 127) / 128
		dst := make([]float32, cols+3)
		for i := range dst {
			dst[i] = 12345
		}
		for row := range rows {
			wr := w[row*cols : (row+1)*cols]
			s := scales[row/128*nb : (row/128+1)*nb]

			DequantE4M3Row(wr, scales, row, cols, dst)
			for c := range cols {
				want := float32(float64(E4M3ToF32(wr[c])) * float64(s[c/128]))
				require.Equal(t, math.Float32bits(want), math.Float32bits(dst[c]), "%dx%d row %d col %d", rows, cols, row, c)
			}
			require.Equal(t, []float32{12345, 12345, 12345}, dst[cols:], "DequantE4M3Row wrote past cols")

			got := DotE4M3(wr, scales, row, cols, x)
			require.Equal(t, math.Float32bits(dotE4M3Generic(wr, s, 128, x)), math.Float32bits(got))

			var acc float32
			var ref, mag float64
			for b := range nb {
				var lane [16]float32
				for c := b * 128; c < min(b*128+128, cols); c++ {
					p := float32(E4M3ToF32(wr[c]) * x[c])
					lane[c%16] = float32(lane[c%16] + p)
					term := float64(E4M3ToF32(wr[c])) * float64(s[b]) * float64(x[c])
					ref += term
					mag += math.Abs(term)
				}
				var m [8]float32
				for i := range m {
					m[i] = lane[i] + lane[i+8]
				}
				sum := float32(float32(m[0]+m[4])+float32(m[1]+m[5])) + float32(float32(m[2]+m[6])+float32(m[3]+m[7]))
				acc = float32(acc + float32(sum*s[b]))
			}
			require.Equal(t, math.Float32bits(acc), math.Float32bits(got), "%dx%d row %d: documented order", rows, cols, row)
			tol := float64(128+nb+1) * 0x1p-24 * mag
			require.InDelta(t, ref, float64(got), tol, "%dx%d row %d: float64 reference", rows, cols, row)
		}
	}
}

// TestE4M3Panics checks the argument checks and their messages.
func TestE4M3Panics(t *testing.T) {
	w := make([]byte, 300)
	scales := make([]float32, 3*3) // a 257×300 matrix: [3, 3]
	v := make([]float32, 300)

	require.PanicsWithValue(t, "kernel: DequantE4M3Row: cols = 300 needs 300 bytes of w, have 299", func() {
		DequantE4M3Row(w[:299], scales, 0, 300, v)
	})
	require.PanicsWithValue(t, "kernel: DequantE4M3Row: cols = 300 needs len(dst) ≥ 300, have 299", func() {
		DequantE4M3Row(w, scales, 0, 300, v[:299])
	})
	require.PanicsWithValue(t, "kernel: DotE4M3: cols = 300 needs len(x) ≥ 300, have 100", func() {
		DotE4M3(w, scales, 0, 300, v[:100])
	})
	require.PanicsWithValue(t, "kernel: DotE4M3: len(scales) = 8 is not a multiple of ⌈cols/128⌉ = 3 (cols = 300)", func() {
		DotE4M3(w, scales[:8], 0, 300, v)
	})
	require.PanicsWithValue(t, "kernel: DequantE4M3Row: row = 256 needs 3 block rows of 3 scales, len(scales) = 6 holds 2", func() {
		DequantE4M3Row(w, scales[:6], 256, 300, v)
	})
	require.PanicsWithValue(t, "kernel: DotE4M3: row = 384 needs 4 block rows of 3 scales, len(scales) = 9 holds 3", func() {
		DotE4M3(w, scales, 384, 300, v)
	})
	require.PanicsWithValue(t, "kernel: DotE4M3: row = -1, cols = 300: negative", func() {
		DotE4M3(w, scales, -1, 300, v)
	})
	require.PanicsWithValue(t, "kernel: DequantE4M3Row: row = 0, cols = -1: negative", func() {
		DequantE4M3Row(w, scales, 0, -1, v)
	})
	// The last row of the last block row is fine.
	require.NotPanics(t, func() { DotE4M3(w, scales, 383, 300, v) })
}
