package testmodel

import (
	"math"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

// fp8Block is the side of the square blocks of an FP8 weight that share one
// scale (weight_block_size [128, 128]).
const fp8Block = 128

// e4m3Values holds the value of every E4M3 code.
var e4m3Values = func() (t [256]float32) {
	for i := range t {
		t[i] = safetensors.E4M3ToFloat32(byte(i))
	}
	return t
}()

// toE4M3 rounds a finite f with |f| ≤ 448·(1+2⁻⁴) to the nearest E4M3 code,
// ties to even, saturating at ±448.
func toE4M3(f float32) byte {
	var sign byte
	if math.Signbit(float64(f)) {
		sign, f = 0x80, -f
	}
	// The positive codes 0x00…0x7E are increasing; find the nearest.
	lo, hi := 0, 0x7E
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if e4m3Values[mid] <= f {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo < 0x7E {
		a, b := f-e4m3Values[lo], e4m3Values[lo+1]-f
		if b < a || (b == a && lo&1 == 1) {
			lo++
		}
	}
	return sign | byte(lo)
}

// quantFP8 quantizes a rows×cols matrix as DeepSeek's FP8 checkpoints store
// it: per 128×128 block, scale = amax/448 (1 for an all-zero block), codes
// E4M3(v/scale); scales is the [⌈rows/128⌉, ⌈cols/128⌉] weight_scale_inv.
func quantFP8(v []float32, rows, cols int) (codes []byte, scales []float32) {
	br, bc := (rows+fp8Block-1)/fp8Block, (cols+fp8Block-1)/fp8Block
	codes, scales = make([]byte, rows*cols), make([]float32, br*bc)
	for i := range br {
		for j := range bc {
			r0, r1 := i*fp8Block, min((i+1)*fp8Block, rows)
			c0, c1 := j*fp8Block, min((j+1)*fp8Block, cols)
			var amax float32
			for r := r0; r < r1; r++ {
				for _, x := range v[r*cols+c0 : r*cols+c1] {
					amax = max(amax, float32(math.Abs(float64(x))))
				}
			}
			s := amax / 448
			if s == 0 {
				s = 1
			}
			scales[i*bc+j] = s
			for r := r0; r < r1; r++ {
				for c := c0; c < c1; c++ {
					codes[r*cols+c] = toE4M3(v[r*cols+c] / s)
				}
			}
		}
	}
	return codes, scales
}

// dequantFP8 decodes quantFP8's output: each value is the code's value
// times its block's scale, one float32 multiply.
func dequantFP8(codes []byte, scales []float32, rows, cols int) []float32 {
	bc := (cols + fp8Block - 1) / fp8Block
	out := make([]float32, rows*cols)
	for r := range rows {
		for c := range cols {
			out[r*cols+c] = e4m3Values[codes[r*cols+c]] * scales[r/fp8Block*bc+c/fp8Block]
		}
	}
	return out
}
