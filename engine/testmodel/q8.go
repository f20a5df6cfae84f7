package testmodel

import (
	"encoding/binary"
	"math"
)

// quantizeQ8_0 rounds values to ggml's Q8_0 into out (len(v)/32·34 bytes)
// exactly as ggml's reference quantize_row_q8_0_ref does: d = amax/127
// stored as f16, q = round(x/d) half away from zero.
func quantizeQ8_0(out []byte, v []float32) {
	for b := range len(v) / 32 {
		blk := v[b*32 : (b+1)*32]
		var amax float32
		for _, x := range blk {
			amax = max(amax, float32(math.Abs(float64(x))))
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		o := out[b*34:]
		binary.LittleEndian.PutUint16(o, f32ToF16(d))
		for j, x := range blk {
			o[2+j] = byte(int8(math.Round(float64(x * id))))
		}
	}
}

// f32ToF16 converts with round-to-nearest-even (values here are normal and
// in range: scales of weights).
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint(14 - exp)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		if rem := mant & (1<<shift - 1); rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	case exp >= 31:
		return sign | 0x7c00
	}
	r := uint32(exp)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}

// halves stores values into out (2·len(v) bytes) as f16 or bf16, rounding
// to nearest even (the values are finite).
func halves(out []byte, v []float32, bf16 bool) {
	for i, x := range v {
		h := f32ToF16(x)
		if bf16 {
			b := math.Float32bits(x)
			h = uint16((b + 0x7fff + (b>>16)&1) >> 16)
		}
		binary.LittleEndian.PutUint16(out[2*i:], h)
	}
}
