package cpu

import (
	"fmt"
	"slices"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// FP4 E2M1 weights (DeepSeek-V4's routed experts) stay packed, two values
// a byte, with their E8M0 scales as stored (one byte per 32 values; as
// float32 they would add a quarter to the weight), and
// kernel.DotE2M1 decodes each row against float32 inputs: no activation is
// quantized, so a product is the F32 product of the exactly dequantized
// weights up to the order of the sum. Scales are per row, so a stacked
// weight given as one part works too: row r of expert i is row i·rows+r.

// fp4Part makes an F4E2M1 weight of shape [rows, cols] or [n, rows, cols]
// from one part, viewing its packed values and E8M0 scales in place.
func fp4Part(name string, shape []int, p engine.WeightPart) (engine.Tensor, error) {
	if len(shape) < 2 || slices.ContainsFunc(shape, func(d int) bool { return d < 0 }) {
		return nil, fmt.Errorf("cpu: weight %q: f4_e2m1 %v: want a matrix [rows, cols] or a stack of them", name, shape)
	}
	cols := shape[len(shape)-1]
	if cols%kernel.E2M1BlockLen != 0 {
		return nil, fmt.Errorf("cpu: weight %q: f4_e2m1 rows of %d values are not whole 32-value blocks", name, cols)
	}
	if !p.E8M0Scales {
		return nil, fmt.Errorf("cpu: weight %q: f4_e2m1 scales must be e8m0 (WeightPart.E8M0Scales)", name)
	}
	if p.Block != [2]int{} && p.Block != [2]int{1, kernel.E2M1BlockLen} {
		return nil, fmt.Errorf("cpu: weight %q: f4_e2m1 scale blocks of %d×%d values, want 1×32", name, p.Block[0], p.Block[1])
	}
	n := numel(shape)
	if len(p.Data) != n/2 {
		return nil, fmt.Errorf("cpu: weight %q: %d bytes for f4_e2m1 %v, want %d (two values a byte)", name, len(p.Data), shape, n/2)
	}
	rows := n / max(cols, 1)
	if len(p.Scales) != n/kernel.E2M1BlockLen {
		return nil, fmt.Errorf("cpu: weight %q: %d bytes of block scales for f4_e2m1 %v, want %d (e8m0 [%d, %d])",
			name, len(p.Scales), shape, n/kernel.E2M1BlockLen, rows, cols/kernel.E2M1BlockLen)
	}
	return &tensor{shape: slices.Clone(shape), dt: engine.F4E2M1, name: name, raw: p.Data, e8: p.Scales}, nil
}

// f4Row returns row row's packed values and scales.
func (m matrix) f4Row(row int) (w, s []byte) {
	h, nb := m.in/2, m.in/kernel.E2M1BlockLen
	return m.t.raw[row*h : (row+1)*h], m.t.e8[row*nb : (row+1)*nb]
}

// dotF4 multiplies row row of an F4E2M1 weight with x.
func (m matrix) dotF4(row int, x []float32) float32 {
	w, s := m.f4Row(row)
	return kernel.DotE2M1(w, s, m.in, x)
}

// dot4F4 multiplies row row with four inputs; each output is dotF4's.
func (m matrix) dot4F4(row int, x [][]float32, out *[4]float32) {
	w, s := m.f4Row(row)
	kernel.DotE2M1x4(w, s, m.in, x[0], x[1], x[2], x[3], out)
}
