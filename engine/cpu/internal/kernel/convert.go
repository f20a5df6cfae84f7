package kernel

import "math"

// F16ToF32 widens an IEEE 754 half (binary16) to float32. Every half is
// exactly representable, so the result is exact: subnormal halves become
// normal floats, ±Inf stays ±Inf, and a NaN keeps its sign and payload with
// the quiet bit set, as F16C's VCVTPH2PS does.
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf or NaN
		if mant != 0 {
			mant |= 0x200 // quiet
		}
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias 15 → 127
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	default: // subnormal: mant·2⁻²⁴ is exact in float32
		f := float32(mant) * 0x1p-24
		return math.Float32frombits(sign | math.Float32bits(f))
	}
}

// F32ToF16 narrows a float32 to an IEEE 754 half, rounding to nearest with
// ties to even, as F16C's VCVTPS2PH with immediate 0 and ggml's
// GGML_FP32_TO_FP16 do. Values of magnitude 65520 and above become ±Inf,
// values below 2⁻²⁵ become ±0 (2⁻²⁵ itself is a tie and goes to even, 0),
// halves' subnormal range is rounded correctly, and a NaN keeps its sign and
// the top ten payload bits with the quiet bit set, as VCVTPS2PH does.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 127 + 15 // half's biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 { // below 2⁻²⁵ (float32 subnormals too): rounds to ±0
			return sign
		}
		// The half subnormal is (mant|1<<23)·2^(exp-126) units of 2⁻²⁴,
		// a right shift by 14-e ≤ 24.
		return sign | uint16(shiftRNE(mant|0x800000, uint32(14-e)))
	}
	// Normal: keep 10 of 23 mantissa bits. A carry out of the mantissa
	// correctly bumps the exponent, up to Inf (0x7c00).
	return sign | uint16(shiftRNE(uint32(e)<<23|mant, 13))
}

// shiftRNE returns v>>s rounded to nearest, ties to even, for 1 ≤ s ≤ 31.
func shiftRNE(v, s uint32) uint32 {
	q := v >> s
	rem := v & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || rem == half && q&1 == 1 {
		q++
	}
	return q
}

// BF16ToF32 widens a bfloat16 (the upper half of a float32) to float32.
// It is exact and keeps NaN payloads bit for bit.
func BF16ToF32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// F32ToBF16 narrows a float32 to bfloat16, rounding to nearest with ties to
// even, exactly as ggml's GGML_FP32_TO_BF16: subnormals are kept (not
// flushed), overflow rounds to ±Inf, and a NaN keeps its top bits with the
// quiet bit forced on.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// F16ToF32s widens src into dst with [F16ToF32]. It panics if dst is
// shorter than src.
func F16ToF32s(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	active.f16ToF32s(dst, src)
}

// F32ToF16s narrows src into dst with [F32ToF16]. It panics if dst is
// shorter than src.
func F32ToF16s(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	active.f32ToF16s(dst, src)
}

// BF16ToF32s widens src into dst with [BF16ToF32]. It panics if dst is
// shorter than src. The compiler vectorises nothing here, but a shift per
// element runs far above memory bandwidth, so it has no assembly.
func BF16ToF32s(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = BF16ToF32(h)
	}
}

// F32ToBF16s narrows src into dst with [F32ToBF16]. It panics if dst is
// shorter than src.
func F32ToBF16s(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = F32ToBF16(f)
	}
}

// f16ToF32sGeneric is the reference loop of [F16ToF32s]:
//
//	for i, h := range src {
//		dst[i] = F16ToF32(h)
//	}
func f16ToF32sGeneric(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = F16ToF32(h)
	}
}

// f32ToF16sGeneric is the reference loop of [F32ToF16s]:
//
//	for i, f := range src {
//		dst[i] = F32ToF16(f)
//	}
func f32ToF16sGeneric(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = F32ToF16(f)
	}
}
