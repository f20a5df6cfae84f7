package kernel

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestF16Known(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		h    uint16
		f    float32
	}{
		{"one", 0x3C00, 1},
		{"minus two", 0xC000, -2},
		{"max", 0x7BFF, 65504},
		{"min subnormal", 0x0001, 0x1p-24},
		{"max subnormal", 0x03FF, 1023 * 0x1p-24},
		{"min normal", 0x0400, 0x1p-14},
		{"one third", 0x3555, 0x1.554p-2},
		{"below one", 0x3BFF, 1 - 0x1p-11},
		{"+inf", 0x7C00, float32(math.Inf(1))},
		{"-inf", 0xFC00, float32(math.Inf(-1))},
		{"+0", 0x0000, 0},
		{"-0", 0x8000, float32(math.Copysign(0, -1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, math.Float32bits(tt.f), math.Float32bits(F16ToF32(tt.h)))
			require.Equal(t, tt.h, F32ToF16(tt.f))
		})
	}
}

func TestF32ToF16Rounding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		f    uint32 // float32 bits
		h    uint16
	}{
		{"65519 to max", math.Float32bits(65519), 0x7BFF},
		{"65520 ties to even, inf", math.Float32bits(65520), 0x7C00},
		{"-65520", math.Float32bits(-65520), 0xFC00},
		{"max float32", 0x7F7FFFFF, 0x7C00},
		{"2^-25 ties to even, 0", math.Float32bits(0x1p-25), 0x0000},
		{"above 2^-25", math.Float32bits(0x1p-25) + 1, 0x0001},
		{"3·2^-25 ties to even, 2", math.Float32bits(3 * 0x1p-25), 0x0002},
		{"5·2^-25 ties to even, 2", math.Float32bits(5 * 0x1p-25), 0x0002},
		{"max subnormal up to min normal", math.Float32bits(0x1p-14 - 0x1p-26), 0x0400},
		{"1+2^-11 ties to even, 1", math.Float32bits(1 + 0x1p-11), 0x3C00},
		{"1+3·2^-11 ties to even, 1+2^-9", math.Float32bits(1 + 3*0x1p-11), 0x3C02},
		{"1+2^-11+ulp rounds up", math.Float32bits(1+0x1p-11) + 1, 0x3C01},
		{"float32 subnormal to +0", 0x00000001, 0x0000},
		{"negative float32 subnormal to -0", 0x80000001, 0x8000},
		{"quiet NaN", 0x7FC00000, 0x7E00},
		{"negative quiet NaN", 0xFFC00000, 0xFE00},
		{"signalling NaN is quieted", 0x7F800001, 0x7E00},
		{"NaN keeps top payload", 0x7FAAAAAA, 0x7F55},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := math.Float32frombits(tt.f)
			require.Equal(t, tt.h, F32ToF16(f), "scalar")
			dst := make([]uint16, 1)
			F32ToF16s(dst, []float32{f})
			require.Equal(t, tt.h, dst[0], "slice (%s)", Impl())
		})
	}
}

// TestF16ToF32All compares every half with its value from the definition,
// (-1)^s·2^(e-15)·1.m (or 2⁻¹⁴·0.m), and checks that narrowing it back
// gives the same half (NaNs come back quieted).
func TestF16ToF32All(t *testing.T) {
	t.Parallel()
	for i := range 1 << 16 {
		h := uint16(i)
		sign, exp, mant := h>>15, int(h>>10)&0x1f, int(h&0x3ff)
		got := math.Float32bits(F16ToF32(h))
		var want uint32
		switch {
		case exp == 0x1f && mant != 0:
			want = uint32(sign)<<31 | 0x7fc00000 | uint32(mant)<<13
		case exp == 0x1f:
			want = uint32(sign)<<31 | 0x7f800000
		default:
			v := math.Ldexp(float64(mant), -24)
			if exp != 0 {
				v = math.Ldexp(float64(1024+mant), exp-25)
			}
			if sign == 1 {
				v = -v
			}
			want = math.Float32bits(float32(v))
		}
		require.Equal(t, want, got, "half %#04x", h)

		back := h
		if exp == 0x1f && mant != 0 {
			back |= 0x200
		}
		require.Equal(t, back, F32ToF16(F16ToF32(h)), "round trip of %#04x", h)
	}
}

// sweepF32 calls f for float32 bit patterns covering every sign, exponent
// and top mantissa bits, with low bits chosen to sit on, just off and
// between the half and bfloat16 rounding points (2¹³ and 2¹⁶ apart).
func sweepF32(f func(bits uint32)) {
	lows := []uint32{0, 1, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fff, 0x8000, 0x8001, 0xffff, 0x5a5a}
	for hi := uint32(0); hi < 1<<16; hi++ {
		for _, lo := range lows {
			f(hi<<16 | lo)
		}
	}
}

// refF32ToF16 rounds a non-NaN float32 to a half from first principles:
// the distance in float64 to the two neighbouring halves.
func refF32ToF16(f float32) uint16 {
	v := math.Abs(float64(f))
	var sign uint16
	if math.Signbit(float64(f)) {
		sign = 0x8000
	}
	if v >= 65520 { // max + half an ulp (2⁵) and above
		return sign | 0x7c00
	}
	ulp := 0x1p-24
	if v >= 0x1p-14 {
		_, e := math.Frexp(v) // v = m·2^e, m in [0.5, 1)
		ulp = math.Ldexp(1, e-11)
	}
	q := math.RoundToEven(v / ulp) // exact: v/ulp has at most 24 significant bits
	r := q * ulp
	if r < 0x1p-14 {
		return sign | uint16(q)
	}
	m, e := math.Frexp(r)
	return sign | uint16(e+14)<<10 | uint16(math.Ldexp(m, 11))&0x3ff
}

// ggmlFP32ToFP16 is ggml's software float32 → half conversion
// (ggml_compute_fp32_to_fp16 in ggml-impl.h, from Maratyszcza's FP16
// library), which quantize_row_q8_0_ref uses for the scale. Restated here
// as a second, independent reference for F32ToF16.
func ggmlFP32ToFP16(f float32) uint16 {
	scaleToInf := math.Float32frombits(0x77800000)
	scaleToZero := math.Float32frombits(0x08800000)
	base := (math.Float32frombits(math.Float32bits(f)&^(1<<31)) * scaleToInf) * scaleToZero
	w := math.Float32bits(f)
	shl1w := w + w
	sign := w & 0x80000000
	bias := shl1w & 0xff000000
	if bias < 0x71000000 {
		bias = 0x71000000
	}
	base = math.Float32frombits(bias>>1+0x07800000) + base
	bits := math.Float32bits(base)
	expBits := (bits >> 13) & 0x00007c00
	mantBits := bits & 0x00000fff
	if shl1w > 0xff000000 {
		return uint16(sign>>16) | 0x7e00
	}
	return uint16(sign>>16) | uint16(expBits+mantBits)
}

func TestF32ToF16Sweep(t *testing.T) {
	t.Parallel()
	sweepF32(func(bits uint32) {
		f := math.Float32frombits(bits)
		got := F32ToF16(f)
		if f != f {
			require.Equal(t, uint16(bits>>16)&0x8000|0x7e00|uint16(bits>>13)&0x3ff, got, "NaN %#08x", bits)
			return
		}
		if want := refF32ToF16(f); got != want {
			require.Equal(t, want, got, "float32 %#08x (%g) vs first principles", bits, f)
		}
		if want := ggmlFP32ToFP16(f); got != want {
			require.Equal(t, want, got, "float32 %#08x (%g) vs ggml", bits, f)
		}
	})
}

// TestF16SlicesMatchScalar checks the dispatched slice converters (F16C on
// AVX2 machines) against the scalar ones, exactly, over every half and the
// float32 sweep, at several lengths and alignments with guards after dst.
func TestF16SlicesMatchScalar(t *testing.T) {
	t.Parallel()
	halves := make([]uint16, 1<<16)
	for i := range halves {
		halves[i] = uint16(i)
	}
	var floats []float32
	sweepF32(func(bits uint32) { floats = append(floats, math.Float32frombits(bits)) })

	lens := append(append([]int{}, smallLens...), 1<<16)
	for _, n := range lens {
		for _, off := range offsets {
			t.Run(fmt.Sprintf("n=%d/off=%d", n, off), func(t *testing.T) {
				src := halves[(n*7919)%len(halves):]
				src = append(src[:min(n, len(src))], halves[:n-min(n, len(src))]...)
				dst, check := guarded(n, off, float32(-1234.5))
				F16ToF32s(dst, src)
				check(t)
				for i, h := range src {
					require.Equal(t, math.Float32bits(F16ToF32(h)), math.Float32bits(dst[i]), "half %#04x", h)
				}

				fs := floats[(n*104729)%(len(floats)-n):][:n]
				hs, check := guarded(n, off, uint16(0xdead))
				F32ToF16s(hs, fs)
				check(t)
				for i, f := range fs {
					require.Equal(t, F32ToF16(f), hs[i], "float32 %#08x", math.Float32bits(f))
				}
			})
		}
	}

	// The whole sweep in one call, through the long loops.
	hs := make([]uint16, len(floats))
	F32ToF16s(hs, floats)
	for i, f := range floats {
		if want := F32ToF16(f); hs[i] != want {
			require.Equal(t, want, hs[i], "float32 %#08x", math.Float32bits(f))
		}
	}
}

func TestBF16Known(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		f    uint32 // float32 bits
		h    uint16
	}{
		{"one", 0x3F800000, 0x3F80},
		{"minus two", 0xC0000000, 0xC000},
		{"tie to even, down", 0x3F808000, 0x3F80},
		{"tie to even, up", 0x3F818000, 0x3F82},
		{"above tie", 0x3F808001, 0x3F81},
		{"below tie", 0x3F807FFF, 0x3F80},
		{"max float32 to inf", 0x7F7FFFFF, 0x7F80},
		{"inf", 0x7F800000, 0x7F80},
		{"-inf", 0xFF800000, 0xFF80},
		{"subnormal kept, tie up to even", 0x00018000, 0x0002},
		{"min subnormal", 0x00010000, 0x0001},
		{"quiet NaN", 0x7FC00000, 0x7FC0},
		{"signalling NaN quieted", 0x7F800001, 0x7FC0},
		{"negative NaN", 0xFFC00001, 0xFFC0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.h, F32ToBF16(math.Float32frombits(tt.f)))
		})
	}
	require.Equal(t, float32(1), BF16ToF32(0x3F80))
	require.Equal(t, float32(0x1p-133), BF16ToF32(0x0001))
	require.True(t, math.IsInf(float64(BF16ToF32(0xFF80)), -1))
}

// TestF32ToBF16Sweep checks rounding against first principles: the nearer
// of the two bfloat16 neighbours, ties to the even one, with the neighbour
// past the largest finite value standing for 2¹²⁸ (where IEEE overflows).
func TestF32ToBF16Sweep(t *testing.T) {
	t.Parallel()
	sweepF32(func(bits uint32) {
		f := math.Float32frombits(bits)
		got := F32ToBF16(f)
		if f != f {
			require.Equal(t, uint16(bits>>16)|0x40, got)
			return
		}
		value := func(h uint16) float64 {
			if h&0x7fff == 0x7f80 {
				return math.Copysign(0x1p128, float64(f))
			}
			return float64(BF16ToF32(h))
		}
		lo := uint16(bits >> 16)
		want := lo
		if bits&0xffff != 0 {
			hi := lo + 1
			dlo := math.Abs(float64(f) - value(lo))
			dhi := math.Abs(float64(f) - value(hi))
			if dhi < dlo || dhi == dlo && hi&1 == 0 {
				want = hi
			}
		}
		if got != want {
			require.Equal(t, want, got, "float32 %#08x", bits)
		}
	})

	src := []float32{1, -2.5, 0x1p-133, float32(math.Inf(1))}
	hs := make([]uint16, len(src))
	F32ToBF16s(hs, src)
	back := make([]float32, len(src))
	BF16ToF32s(back, hs)
	require.Equal(t, src, back)
}
