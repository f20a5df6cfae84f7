package testmodel

import (
	"fmt"
	"math"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

// DeepSeek-V4's checkpoint formats (spec §5.2), for writing test models:
// FP8 E4M3 projections with E8M0 (power-of-two) block scales, and FP4 E2M1
// routed experts, two values a byte (low nibble first), with one E8M0
// scale per 32 values of a row. Each quantizer has an exact dequantizer:
// a test writes the quantized tensors into a Hugging Face directory and the
// dequantized values into an F32 GGUF, and the two models must then agree
// to rounding.

// e8m0For returns the E8M0 byte of the smallest power of two s with
// amax/s ≤ limit, clamped to the format's 2⁻¹²⁷…2¹²⁷ (byte 127, s = 1, for
// an all-zero block), as DeepSeek's ue8m0 scales round up.
func e8m0For(amax, limit float32) byte {
	if amax == 0 || math.IsNaN(float64(amax)) || math.IsInf(float64(amax), 0) {
		return 127
	}
	e := int(math.Ceil(math.Log2(float64(amax) / float64(limit))))
	for e > -127 && float64(amax)/math.Ldexp(1, e-1) <= float64(limit) {
		e-- // Log2 rounded a power of two up
	}
	for float64(amax)/math.Ldexp(1, e) > float64(limit) {
		e++
	}
	return byte(max(-127, min(127, e)) + 127)
}

// QuantFP8E8M0 quantizes a rows×cols matrix (finite values) as V4 stores
// its projections: per block of bh×bw values (partial at the edges), an
// E8M0 scale s, the smallest power of two with amax/s ≤ 448, and codes
// E4M3(v/s) rounded to nearest even; scales is row-major [⌈rows/bh⌉,
// ⌈cols/bw⌉]. It fails on a bad shape or length.
func QuantFP8E8M0(v []float32, rows, cols, bh, bw int) (codes, scales []byte, err error) {
	if rows < 0 || cols < 0 || bh <= 0 || bw <= 0 || len(v) != rows*cols {
		return nil, nil, fmt.Errorf("testmodel: fp8 %d values as [%d, %d] in %d×%d blocks", len(v), rows, cols, bh, bw)
	}
	br, bc := (rows+bh-1)/bh, (cols+bw-1)/bw
	codes, scales = make([]byte, rows*cols), make([]byte, br*bc)
	for i := range br {
		for j := range bc {
			r0, r1 := i*bh, min((i+1)*bh, rows)
			c0, c1 := j*bw, min((j+1)*bw, cols)
			var amax float32
			for r := r0; r < r1; r++ {
				for _, x := range v[r*cols+c0 : r*cols+c1] {
					amax = max(amax, float32(math.Abs(float64(x))))
				}
			}
			e := e8m0For(amax, 448)
			scales[i*bc+j] = e
			s := safetensors.E8M0ToFloat32(e)
			for r := r0; r < r1; r++ {
				for c := c0; c < c1; c++ {
					codes[r*cols+c] = toE4M3(v[r*cols+c] / s)
				}
			}
		}
	}
	return codes, scales, nil
}

// DequantFP8E8M0 decodes QuantFP8E8M0's output (or a checkpoint's):
// value = E4M3(code) · 2^(scale − 127), one float32 multiply, exact.
func DequantFP8E8M0(codes, scales []byte, rows, cols, bh, bw int) ([]float32, error) {
	if rows < 0 || cols < 0 || bh <= 0 || bw <= 0 || len(codes) != rows*cols ||
		len(scales) != ((rows+bh-1)/bh)*((cols+bw-1)/bw) {
		return nil, fmt.Errorf("testmodel: fp8 %d codes and %d scales as [%d, %d] in %d×%d blocks", len(codes), len(scales), rows, cols, bh, bw)
	}
	bc := (cols + bw - 1) / bw
	out := make([]float32, rows*cols)
	for r := range rows {
		for c := range cols {
			out[r*cols+c] = e4m3Values[codes[r*cols+c]] * safetensors.E8M0ToFloat32(scales[r/bh*bc+c/bw])
		}
	}
	return out, nil
}

// toE2M1 rounds a finite f to the nearest FP4 E2M1 code, ties to the even
// code (mantissa bit 0), saturating at ±6.
func toE2M1(f float32) byte {
	var sign byte
	if math.Signbit(float64(f)) {
		sign, f = 8, -f
	}
	best := byte(0)
	for n := byte(1); n < 8; n++ {
		d, db := math.Abs(float64(f-safetensors.E2M1ToFloat32(n))), math.Abs(float64(f-safetensors.E2M1ToFloat32(best)))
		if d < db || d == db && n&1 == 0 {
			best = n
		}
	}
	return sign | best
}

// QuantFP4 quantizes a rows×cols matrix (finite values, cols a multiple of
// 32) as V4 stores its routed experts: per 32 values of a row, an E8M0
// scale s, the smallest power of two with amax/s ≤ 6, and codes E2M1(v/s)
// rounded to nearest even, packed two a byte with the even value in the
// low nibble ([rows, cols/2] bytes); scales is [rows, cols/32]. It fails
// on a bad shape or length.
func QuantFP4(v []float32, rows, cols int) (packed, scales []byte, err error) {
	if rows < 0 || cols < 0 || cols%safetensors.FP4BlockLen != 0 || len(v) != rows*cols {
		return nil, nil, fmt.Errorf("testmodel: fp4 %d values as [%d, %d]: want rows of whole 32-value blocks", len(v), rows, cols)
	}
	const bl = safetensors.FP4BlockLen
	packed, scales = make([]byte, rows*cols/2), make([]byte, rows*cols/bl)
	for b := range scales {
		blk := v[b*bl : (b+1)*bl]
		var amax float32
		for _, x := range blk {
			amax = max(amax, float32(math.Abs(float64(x))))
		}
		scales[b] = e8m0For(amax, 6)
		s := safetensors.E8M0ToFloat32(scales[b])
		for i := 0; i < bl; i += 2 {
			packed[b*bl/2+i/2] = toE2M1(blk[i]/s) | toE2M1(blk[i+1]/s)<<4
		}
	}
	return packed, scales, nil
}

// DequantFP4 decodes QuantFP4's output (or a checkpoint's expert):
// value c of a row = E2M1(nibble c) · 2^(scale[c/32] − 127), one float32
// multiply, exact.
func DequantFP4(packed, scales []byte, rows, cols int) ([]float32, error) {
	if rows < 0 || cols < 0 || cols%safetensors.FP4BlockLen != 0 || len(packed) != rows*cols/2 || len(scales) != rows*cols/safetensors.FP4BlockLen {
		return nil, fmt.Errorf("testmodel: fp4 %d bytes and %d scales as [%d, %d]", len(packed), len(scales), rows, cols)
	}
	out := make([]float32, rows*cols)
	for i := range out {
		out[i] = safetensors.E2M1ToFloat32(packed[i/2]>>(4*(i&1))) * safetensors.E8M0ToFloat32(scales[i/safetensors.FP4BlockLen])
	}
	return out, nil
}
