package cpu

import (
	"unsafe"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// matrix is a run of rows of a weight tensor, each `in` values wide, starting
// at row `first`: a whole 2-D weight, one head of a per-head weight, or one
// expert of a stacked expert weight.
type matrix struct {
	t     *tensor
	first int
	in    int
}

// activation is one input row prepared for a weight type: Q8_0 weights take
// activations quantized to Q8_0 (as llama.cpp's vec_dot_type), the float
// types take them as they are.
type activation struct {
	f []float32
	q []byte
}

func (m matrix) prepare(x []float32, buf []byte) activation {
	if m.t.dt != engine.Q8_0 {
		return activation{f: x}
	}
	q := buf[:len(x)/32*34]
	kernel.QuantizeQ8_0(x, q)
	return activation{f: x, q: q}
}

func (m matrix) quantBytes() int {
	if m.t.dt != engine.Q8_0 {
		return 0
	}
	return m.in / 32 * 34
}

// dot multiplies row r of the matrix with a prepared activation.
func (m matrix) dot(r int, a activation) float32 {
	row := m.first + r
	switch m.t.dt {
	case engine.F32:
		return kernel.DotF32(m.t.f[row*m.in:(row+1)*m.in], a.f)
	case engine.F16:
		return kernel.DotF16(u16(m.t.raw, row*m.in, m.in), a.f)
	case engine.BF16:
		return kernel.DotBF16(u16(m.t.raw, row*m.in, m.in), a.f)
	case engine.Q8_0:
		nb := m.in / 32
		return kernel.DotQ8_0(m.t.raw[row*nb*34:(row+1)*nb*34], a.q, nb)
	}
	return 0
}

// dot4 multiplies row r with four prepared activations at once, reading the
// row once.
func (m matrix) dot4(r int, a []activation, out *[4]float32) {
	row := m.first + r
	switch m.t.dt {
	case engine.F32:
		kernel.DotF32x4(m.t.f[row*m.in:(row+1)*m.in], a[0].f, a[1].f, a[2].f, a[3].f, out)
	case engine.F16:
		kernel.DotF16x4(u16(m.t.raw, row*m.in, m.in), a[0].f, a[1].f, a[2].f, a[3].f, out)
	case engine.BF16:
		kernel.DotBF16x4(u16(m.t.raw, row*m.in, m.in), a[0].f, a[1].f, a[2].f, a[3].f, out)
	case engine.Q8_0:
		nb := m.in / 32
		kernel.DotQ8_0x4(m.t.raw[row*nb*34:(row+1)*nb*34], a[0].q, a[1].q, a[2].q, a[3].q, nb, out)
	}
}

// u16 views n uint16 values starting at element off of raw bytes.
func u16(raw []byte, off, n int) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(&raw[2*off])), n)
}

// mul computes y[t][r] = row r · x[t] for rows [0, rows) and every input row,
// reading each weight row once for all inputs (batched decode and prefill are
// bound by weight reads, not by arithmetic).
func (b *Backend) mul(m matrix, rows int, xs [][]float32, ys [][]float32) {
	qb := m.quantBytes()
	acts := make([]activation, len(xs))
	buf := make([]byte, qb*len(xs))
	for t, x := range xs {
		acts[t] = m.prepare(x, buf[t*qb:])
	}
	b.parallel(rows, 16, func(lo, hi int) {
		var out [4]float32
		// Tiles of tokens keep their activations in L2 while the rows of
		// this goroutine's range stream past them.
		for t0 := 0; t0 < len(acts); t0 += tokenTile {
			tile := acts[t0:min(t0+tokenTile, len(acts))]
			for r := lo; r < hi; r++ {
				t := 0
				for ; t+4 <= len(tile); t += 4 {
					m.dot4(r, tile[t:t+4], &out)
					ys[t0+t][r], ys[t0+t+1][r], ys[t0+t+2][r], ys[t0+t+3][r] = out[0], out[1], out[2], out[3]
				}
				for ; t < len(tile); t++ {
					ys[t0+t][r] = m.dot(r, tile[t])
				}
			}
		}
	})
}

// tokenTile is how many input rows mul multiplies against a weight row
// before moving to the next row.
const tokenTile = 32

// dequantRow writes row r of a weight tensor (rows of n values) as f32.
func dequantRow(t *tensor, r, n int, dst []float32) {
	switch t.dt {
	case engine.F32:
		copy(dst, t.f[r*n:(r+1)*n])
	case engine.F16:
		kernel.F16ToF32s(dst, u16(t.raw, r*n, n))
	case engine.BF16:
		kernel.BF16ToF32s(dst, u16(t.raw, r*n, n))
	case engine.Q8_0:
		nb := n / 32
		blocks := t.raw[r*nb*34 : (r+1)*nb*34]
		for bi := range nb {
			blk := blocks[bi*34:]
			d := kernel.F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
			for j := range 32 {
				dst[bi*32+j] = d * float32(int8(blk[2+j]))
			}
		}
	}
}
