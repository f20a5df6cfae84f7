package cpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// FP8 E4M3 weights (DeepSeek-V3/R1's and V4's block-scaled projections)
// are multiplied as stored: kernel.DotE4M3Blocks decodes each row against
// float32 inputs and applies the row's block scales once per block of
// columns. V3's F32 scales and V4's E8M0 scales are both kept as float32
// (E8M0 widened exactly), in blocks of 128×128 or a checkpoint's own
// weight_block_size. The scale grid of a part covers its rows flattened
// ([n, rows, cols] as [n·rows, cols]), as V4 stores wo_a [8192, 4096] with
// scales [64, 32] and multiplies it as 8 groups of 1024 rows
// (MatMulHeads): row m.first+r indexes the grid directly.

// fp8Part makes an F8E4M3 weight of shape [rows, cols] or [n, rows, cols]
// from one part: its codes viewed in place and its [⌈n·rows/bh⌉,
// ⌈cols/bw⌉] scales, F32 or E8M0, copied into float32.
func fp8Part(name string, shape []int, p engine.WeightPart) (engine.Tensor, error) {
	if len(shape) < 2 || slices.ContainsFunc(shape, func(d int) bool { return d < 0 }) {
		return nil, fmt.Errorf("cpu: weight %q: f8_e4m3 %v: want a matrix [rows, cols] or a stack of them", name, shape)
	}
	cols := shape[len(shape)-1]
	rows := numel(shape) / max(cols, 1)
	if len(p.Data) != rows*cols {
		return nil, fmt.Errorf("cpu: weight %q: %d bytes for f8_e4m3 %v, want %d", name, len(p.Data), shape, rows*cols)
	}
	bh, bw := p.Block[0], p.Block[1]
	if p.Block == [2]int{} {
		bh, bw = kernel.E4M3BlockLen, kernel.E4M3BlockLen
	}
	if bh <= 0 || bw <= 0 {
		return nil, fmt.Errorf("cpu: weight %q: f8_e4m3 scale blocks of %d×%d values", name, bh, bw)
	}
	gr, gc := (rows+bh-1)/bh, (cols+bw-1)/bw
	size, enc := 4, "f32"
	if p.E8M0Scales {
		size, enc = 1, "e8m0"
	}
	if len(p.Scales) != size*gr*gc {
		return nil, fmt.Errorf("cpu: weight %q: %d bytes of block scales for %v in %d×%d blocks, want %d (%s [%d, %d])",
			name, len(p.Scales), shape, bh, bw, size*gr*gc, enc, gr, gc)
	}
	scales := make([]float32, gr*gc)
	for i := range scales {
		if p.E8M0Scales {
			scales[i] = kernel.E8M0ToF32(p.Scales[i])
		} else {
			scales[i] = math.Float32frombits(binary.LittleEndian.Uint32(p.Scales[4*i:]))
		}
	}
	return &tensor{shape: slices.Clone(shape), dt: engine.F8E4M3, name: name, raw: p.Data, scales: scales, bh: bh, bw: bw}, nil
}

// dotF8 multiplies row row of an F8E4M3 matrix with x.
func (m matrix) dotF8(row int, x []float32) float32 {
	return kernel.DotE4M3Blocks(m.t.raw[row*m.in:(row+1)*m.in], m.t.scales, row, m.in, m.t.bh, m.t.bw, x)
}

// dot4F8 multiplies row row with four inputs; each output is dotF8's.
func (m matrix) dot4F8(row int, x [][]float32, out *[4]float32) {
	kernel.DotE4M3x4Blocks(m.t.raw[row*m.in:(row+1)*m.in], m.t.scales, row, m.in, m.t.bh, m.t.bw, x[0], x[1], x[2], x[3], out)
}
