package cpu

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// quantFormat is a block weight format other than Q8_0 (which has its own
// batched kernels, mulRangeQ8_0): its block, its dot product with
// activations quantized to its vec_dot type (as ggml pairs them: Q8_0 for
// Q4_0 and Q5_0, Q8_1 for Q4_1 and Q5_1, Q8_K for the k-quants), and its
// dequantisation.
type quantFormat struct {
	block, bytes int // values and bytes per block
	act          *actFormat
	dot          func(w, x []byte, nBlocks int) float32
	// dotx4, when set, is dot for four rows of activations xStride bytes
	// apart, with each row's bits, in less time than four dots.
	dotx4    func(w, x []byte, xStride, nBlocks int, out *[4]float32)
	dequant  func(blocks []byte, dst []float32)
	quantize func(x []float32, dst []byte) // weights, as ggml's quantize_row_*_ref
}

// actFormat is how activations are quantized for a format's dot product.
type actFormat struct {
	block, bytes int
	quantize     func(x []float32, dst []byte)
}

var (
	actQ8_0 = &actFormat{kernel.Q8_0BlockLen, kernel.Q8_0BlockSize, kernel.QuantizeQ8_0}
	actQ8_1 = &actFormat{kernel.Q8_1BlockLen, kernel.Q8_1BlockSize, kernel.QuantizeQ8_1}
	actQ8_K = &actFormat{kernel.Q8_KBlockLen, kernel.Q8_KBlockSize, kernel.QuantizeQ8_K}
)

// quantFormats holds the formats by engine type.
var quantFormats = map[engine.DType]*quantFormat{
	engine.Q4_0: {kernel.Q4_0BlockLen, kernel.Q4_0BlockSize, actQ8_0, kernel.DotQ4_0, nil, kernel.DequantQ4_0, kernel.QuantizeQ4_0},
	engine.Q4_1: {kernel.Q4_1BlockLen, kernel.Q4_1BlockSize, actQ8_1, kernel.DotQ4_1, nil, kernel.DequantQ4_1, kernel.QuantizeQ4_1},
	engine.Q5_0: {kernel.Q5_0BlockLen, kernel.Q5_0BlockSize, actQ8_0, kernel.DotQ5_0, nil, kernel.DequantQ5_0, kernel.QuantizeQ5_0},
	engine.Q5_1: {kernel.Q5_1BlockLen, kernel.Q5_1BlockSize, actQ8_1, kernel.DotQ5_1, nil, kernel.DequantQ5_1, kernel.QuantizeQ5_1},
	engine.Q4_K: {kernel.Q4_KBlockLen, kernel.Q4_KBlockSize, actQ8_K, kernel.DotQ4_K, kernel.DotQ4_Kx4, kernel.DequantQ4_K, kernel.QuantizeQ4_K},
	engine.Q5_K: {kernel.Q5_KBlockLen, kernel.Q5_KBlockSize, actQ8_K, kernel.DotQ5_K, kernel.DotQ5_Kx4, kernel.DequantQ5_K, kernel.QuantizeQ5_K},
	engine.Q6_K: {kernel.Q6_KBlockLen, kernel.Q6_KBlockSize, actQ8_K, kernel.DotQ6_K, kernel.DotQ6_Kx4, kernel.DequantQ6_K, kernel.QuantizeQ6_K},
}

// mulRangeQuant is mulRange for the formats of quantFormats: each weight row,
// small enough to stay in L1 while it is used, is multiplied with every
// prepared input in turn, four at a time where the format has a four-row
// dot.
func (m matrix) mulRangeQuant(f *quantFormat, p *prepared, lo, hi int, ys [][]float32) {
	nb := m.in / f.block
	wRow := nb * f.bytes
	xRow := m.in / f.act.block * f.act.bytes
	var o [4]float32
	for r := lo; r < hi; r++ {
		w := m.t.raw[(m.first+r)*wRow : (m.first+r+1)*wRow]
		t := 0
		if f.dotx4 != nil {
			for ; t+4 <= len(ys); t += 4 {
				f.dotx4(w, p.q[t*xRow:(t+4)*xRow], xRow, nb, &o)
				ys[t][r], ys[t+1][r], ys[t+2][r], ys[t+3][r] = o[0], o[1], o[2], o[3]
			}
		}
		for ; t < len(ys); t++ {
			ys[t][r] = f.dot(w, p.q[t*xRow:(t+1)*xRow], nb)
		}
	}
}

// Dequantize writes the values of src, whole rows of a weight stored in type
// dt (F32, F16, BF16, Q8_0 or a format of quantFormats), into dst, which
// must hold exactly as many values: the inverse of [Quantize] up to its
// rounding, as ggml's dequantize_row_* compute it.
func Dequantize(dt engine.DType, src []byte, dst []float32) error {
	if want := rowBytes(dt, len(dst)); want == 0 && len(dst) > 0 || len(src) != want {
		return fmt.Errorf("cpu: dequantize %d bytes of %v to %d values: want %d bytes", len(src), dt, len(dst), want)
	}
	switch dt {
	case engine.F32, engine.F16, engine.BF16:
	case engine.Q8_0:
		if len(dst)%kernel.Q8_0BlockLen != 0 {
			return fmt.Errorf("cpu: dequantize %d values of q8_0: not whole blocks", len(dst))
		}
	default:
		f := quantFormats[dt]
		if f == nil {
			return fmt.Errorf("cpu: dequantize %v: not a weight type", dt)
		}
		if len(dst)%f.block != 0 {
			return fmt.Errorf("cpu: dequantize %d values of %v: not whole %d-value blocks", len(dst), dt, f.block)
		}
	}
	dequantize(dt, src, dst)
	return nil
}

// dequantize is Dequantize on arguments known to fit, for dequantRow too.
func dequantize(dt engine.DType, src []byte, dst []float32) {
	switch dt {
	case engine.F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case engine.F16:
		kernel.F16ToF32s(dst, u16(src, 0, len(dst)))
	case engine.BF16:
		kernel.BF16ToF32s(dst, u16(src, 0, len(dst)))
	case engine.Q8_0:
		for bi := range len(dst) / 32 {
			blk := src[bi*34:]
			d := kernel.F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
			for j := range 32 {
				dst[bi*32+j] = d * float32(int8(blk[2+j]))
			}
		}
	default:
		if f := quantFormats[dt]; f != nil {
			f.dequant(src, dst)
		}
	}
}

// Quantize writes the values x, whole rows of a weight of type dt, into dst in
// that type: the block formats as llama.cpp's quantizer writes them when it
// has no importance matrix (ggml's quantize_row_*_ref, bit for bit), F16 and
// BF16 rounded to nearest even, F32 as is. dst must be exactly the size x
// takes in dt.
func Quantize(dt engine.DType, x []float32, dst []byte) error {
	if want := rowBytes(dt, len(x)); want == 0 && len(x) > 0 || len(dst) != want {
		return fmt.Errorf("cpu: quantize %d values to %v: %d bytes, want %d", len(x), dt, len(dst), want)
	}
	switch dt {
	case engine.F32:
		for i, v := range x {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case engine.F16:
		kernel.F32ToF16s(u16(dst, 0, len(x)), x)
	case engine.BF16:
		kernel.F32ToBF16s(u16(dst, 0, len(x)), x)
	case engine.Q8_0:
		if len(x)%kernel.Q8_0BlockLen != 0 {
			return fmt.Errorf("cpu: quantize %d values to q8_0: not whole blocks", len(x))
		}
		kernel.QuantizeQ8_0(x, dst)
	default:
		f := quantFormats[dt]
		if f == nil {
			return fmt.Errorf("cpu: quantize to %v: not a weight type", dt)
		}
		if len(x)%f.block != 0 {
			return fmt.Errorf("cpu: quantize %d values to %v: not whole %d-value blocks", len(x), dt, f.block)
		}
		f.quantize(x, dst)
	}
	return nil
}
