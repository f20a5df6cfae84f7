package safetensors

import (
	"fmt"
	"math"
)

// DeepSeek-V4's release checkpoint (spec §5.1, §5.2) stores its
// projections as F8_E4M3 weights with an F8_E8M0 "<name>.scale" tensor of
// one power-of-two scale per block (128×128 in V4-Flash and V4-Pro; later
// releases declare other sizes, such as 32×32, in
// quantization_config.weight_block_size), and its routed experts as FP4
// E2M1 values packed two to a byte, with an F8_E8M0 scale per 32 values
// along each row.
//
// On disk the packed experts are plain bytes: the header's dtype is "I8"
// with shape [out, in/2] (DeepSeek's inference/convert.py views the tensor
// as uint8 and decodes the low nibble first; third-party loaders record
// the dtype from the release's headers: RobTand/prismaquant#13, "nibble-packed
// I8 experts", and #26 for convert.py's decode; chrishayuk/larql#37,
// "experts.E.w1.weight dtype=I8 … packed FP4 nibbles", ".scale dtype=F8_E8M0
// … per-32-element scales"). CheckFP4 also takes "U8", the same bytes, and
// the format's own "F4" (4 bits an element, shape [out, in]), which a file
// written from PyTorch's float4_e2m1fn_x2 would carry.

// E8M0ToFloat32 decodes an F8_E8M0 scale byte (OCP E8M0, PyTorch's
// float8_e8m0fnu: an exponent with bias 127 and nothing else): 2^(e−127)
// for e < 255, exactly (0 gives the float32 subnormal 2⁻¹²⁷), and NaN for
// 255.
func E8M0ToFloat32(e byte) float32 {
	if e == 255 {
		return float32(math.NaN())
	}
	return float32(math.Ldexp(1, int(e)-127))
}

// e2m1 holds the value of every FP4 E2M1 code.
var e2m1 = [16]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6, float32(math.Copysign(0, -1)), -0.5, -1, -1.5, -2, -3, -4, -6}

// E2M1ToFloat32 decodes the FP4 E2M1 code in the low four bits of n
// exactly (sign, two exponent bits of bias 1, one mantissa bit: 0, 0.5, 1,
// 1.5, 2, 3, 4, 6 and their negatives, code 8 being −0). In a packed byte,
// the low nibble is the even element: byte 0x9A holds −1 then −0.5.
func E2M1ToFloat32(n byte) float32 { return e2m1[n&0xF] }

// FP4BlockLen is how many values of a row share one scale in V4's FP4
// experts.
const FP4BlockLen = 32

// CheckFP4 checks that w and scale are a packed FP4 weight and its block
// scales as V4's release stores routed experts, and returns the weight's
// logical shape: w is I8 or U8 [rows, cols/2] or F4 [rows, cols], cols a
// multiple of 32, and scale is F8_E8M0 [rows, cols/32]. w.Data then holds
// rows·cols/2 bytes, value 2j of a row in the low nibble of byte j. The
// error names the tensor at fault.
func CheckFP4(w, scale Tensor) (rows, cols int, err error) {
	if len(w.Shape) != 2 {
		return 0, 0, fmt.Errorf("safetensors: fp4 weight %q: shape %v, want [rows, cols/2]", w.Name, w.Shape)
	}
	rows = w.Shape[0]
	switch w.DType {
	case I8, U8:
		cols = 2 * w.Shape[1]
	case F4:
		cols = w.Shape[1]
	default:
		return 0, 0, fmt.Errorf("safetensors: fp4 weight %q: dtype %v, want I8 or U8 (two values a byte) or F4", w.Name, w.DType)
	}
	if cols%FP4BlockLen != 0 {
		return 0, 0, fmt.Errorf("safetensors: fp4 weight %q: %v %v holds rows of %d values, not whole %d-value blocks",
			w.Name, w.DType, w.Shape, cols, FP4BlockLen)
	}
	if scale.DType != F8_E8M0 {
		return 0, 0, fmt.Errorf("safetensors: fp4 scale %q: dtype %v, want F8_E8M0", scale.Name, scale.DType)
	}
	if len(scale.Shape) != 2 || scale.Shape[0] != rows || scale.Shape[1] != cols/FP4BlockLen {
		return 0, 0, fmt.Errorf("safetensors: fp4 scale %q: shape %v, want [%d, %d] for %q %v %v",
			scale.Name, scale.Shape, rows, cols/FP4BlockLen, w.Name, w.DType, w.Shape)
	}
	return rows, cols, nil
}

// CheckFP8Blocks checks that w is an F8_E4M3 matrix and scale its block
// scales (F8_E8M0 as V4 stores them, or F32 as V3's weight_scale_inv), and
// returns the block shape [rows, cols]. block is the checkpoint's
// quantization_config.weight_block_size: when given (two elements), the
// scale must be [⌈rows/block[0]⌉, ⌈cols/block[1]⌉]; when empty, the block
// is the square power-of-two side (1 to 2¹⁶) that gives the scale's
// shape, which is unique wherever it matters: two such sides give one
// grid only where a single block spans the dimension. The error names the
// tensor at fault.
func CheckFP8Blocks(w, scale Tensor, block []int) ([2]int, error) {
	if w.DType != F8_E4M3 || len(w.Shape) != 2 {
		return [2]int{}, fmt.Errorf("safetensors: fp8 weight %q: %v %v, want an F8_E4M3 matrix", w.Name, w.DType, w.Shape)
	}
	if scale.DType != F8_E8M0 && scale.DType != F32 {
		return [2]int{}, fmt.Errorf("safetensors: fp8 scale %q: dtype %v, want F8_E8M0 or F32", scale.Name, scale.DType)
	}
	if len(scale.Shape) != 2 {
		return [2]int{}, fmt.Errorf("safetensors: fp8 scale %q: shape %v, want a matrix", scale.Name, scale.Shape)
	}
	rows, cols := w.Shape[0], w.Shape[1]
	fits := func(bh, bw int) bool {
		return scale.Shape[0] == ceilDiv(rows, bh) && scale.Shape[1] == ceilDiv(cols, bw)
	}
	switch {
	case len(block) == 2:
		if block[0] <= 0 || block[1] <= 0 {
			return [2]int{}, fmt.Errorf("safetensors: fp8 weight %q: block %v is not positive", w.Name, block)
		}
		if !fits(block[0], block[1]) {
			return [2]int{}, fmt.Errorf("safetensors: fp8 scale %q: shape %v, want [%d %d] for %q %v in %d×%d blocks",
				scale.Name, scale.Shape, ceilDiv(rows, block[0]), ceilDiv(cols, block[1]), w.Name, w.Shape, block[0], block[1])
		}
		return [2]int{block[0], block[1]}, nil
	case len(block) != 0:
		return [2]int{}, fmt.Errorf("safetensors: fp8 weight %q: block %v, want [rows, cols]", w.Name, block)
	}
	for b := 1; b <= 1<<16; b *= 2 {
		if fits(b, b) {
			return [2]int{b, b}, nil
		}
	}
	return [2]int{}, fmt.Errorf("safetensors: fp8 scale %q: shape %v fits no square power-of-two block of %q %v; give weight_block_size",
		scale.Name, scale.Shape, w.Name, w.Shape)
}

// ceilDiv is ⌈a/b⌉ for a ≥ 0 and b > 0, without overflow.
func ceilDiv(a, b int) int {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}
