package safetensors

import "math"

// F16ToFloat32 decodes an IEEE 754 half (F16) exactly: every half,
// subnormals, infinities and NaNs included, is a float32 value.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp, mant := uint32(h>>10)&0x1f, uint32(h&0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: mant · 2⁻²⁴
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// BF16ToFloat32 decodes a bfloat16 exactly: its bits are a float32's top
// half.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
