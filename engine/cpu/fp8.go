package cpu

import "github.com/ulan-ai/ulan/engine/cpu/internal/kernel"

// FP8 E4M3 weights (DeepSeek-V3/R1's block-scaled projections) are
// multiplied as stored: kernel.DotE4M3 decodes each row against float32
// inputs and applies the row's block scales once per 128 columns. An FP8
// matrix is always a whole part (WeightParts), so m.first is 0 and row
// indexes its scale grid directly.

// dotF8 multiplies row row of an F8E4M3 matrix with x.
func (m matrix) dotF8(row int, x []float32) float32 {
	return kernel.DotE4M3(m.t.raw[row*m.in:(row+1)*m.in], m.t.scales, row, m.in, x)
}

// dot4F8 multiplies row row with four inputs; each output is dotF8's.
func (m matrix) dot4F8(row int, x [][]float32, out *[4]float32) {
	kernel.DotE4M3x4(m.t.raw[row*m.in:(row+1)*m.in], m.t.scales, row, m.in, x[0], x[1], x[2], x[3], out)
}
