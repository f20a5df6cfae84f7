package kernel

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Q8_0 is ggml's 8-bit block format (block_q8_0 in ggml-common.h): each
// block of Q8_0BlockLen values is stored in Q8_0BlockSize bytes, a
// little-endian IEEE half scale d followed by 32 int8 quants q, and holds the
// values d·q[i]. A row of n values is n/32 blocks; n must divide by 32.
const (
	Q8_0BlockLen  = 32 // values per block (ggml's QK8_0)
	Q8_0BlockSize = 34 // bytes per block: 2 for d, 32 for q
)

// QuantizeQ8_0 quantizes the activations x into len(x)/32 Q8_0 blocks at
// the start of dst, bit for bit as ggml's quantize_row_q8_0_ref
// (ggml/src/ggml-quants.c), so that a dot product against Q8_0 weights
// matches llama.cpp's. Per block:
//
//	amax := max over the block of |x[i]|   // C's MAX(amax, fabsf(v)), in order
//	d := amax / 127
//	id := 1/d, or 0 if d == 0
//	dst: F32ToF16(d), then q[i] = (int8_t)roundf(x[i]·id)
//
// roundf rounds halves away from zero. For finite input every q lies in
// [-127, 127]. Non-finite input gives what the reference gives when built
// for amd64 (a NaN scale stores as 0x7E00; a quant whose x[i]·id is NaN,
// infinite or out of int32 range stores as 0, which is CVTTSS2SI's
// 0x80000000 truncated to a byte).
//
// The AVX2 path quantizes a block in registers unless it holds a NaN or an
// infinity or its 1/d overflows; such blocks go through the Go code. Both
// paths were checked against the reference compiled with gcc 12 -O2 (200,000
// blocks of normal, wide-range, tied, tiny, random-bit and non-finite
// values, bit for bit); the tests restate the reference in Go.
//
// It panics if len(x) is not a multiple of 32 or dst is shorter than
// len(x)/32·34 bytes. It allocates nothing.
func QuantizeQ8_0(x []float32, dst []byte) {
	if len(x)%Q8_0BlockLen != 0 {
		panic("kernel: QuantizeQ8_0: len(x) = " + strconv.Itoa(len(x)) + " is not a multiple of 32")
	}
	active.quantizeQ8_0(x, dst[:len(x)/Q8_0BlockLen*Q8_0BlockSize])
}

// quantizeQ8_0Generic is the reference loop of [QuantizeQ8_0], per block:
//
//	var amax float32
//	for _, v := range xb {
//		if a := abs(v); !(amax > a) { // C's MAX, NaN included
//			amax = a
//		}
//	}
//	d := amax / 127
//	id := 0 if d == 0, else 1 / d
//	dst = F32ToF16(d) (0x7E00 if d is NaN), then roundfInt8(xb[i] * id)
func quantizeQ8_0Generic(x []float32, dst []byte) {
	nb := len(x) / Q8_0BlockLen
	dst = dst[:nb*Q8_0BlockSize]
	for b := 0; b < nb; b++ {
		xb := (*[Q8_0BlockLen]float32)(x[b*Q8_0BlockLen:])
		out := (*[Q8_0BlockSize]byte)(dst[b*Q8_0BlockSize:])

		// For non-negative floats the order of the bit patterns is the
		// order of the values, so an integer max (a CMOV, no branch to
		// mispredict) finds amax; a NaN (bits above 0x7f800000) makes C's
		// MAX depend on the order, so that block takes the literal loop.
		var bits uint32
		for _, v := range xb {
			bits = max(bits, math.Float32bits(v)&^(1<<31))
		}
		amax := math.Float32frombits(bits)
		if bits > 0x7f800000 {
			amax = 0
			for _, v := range xb {
				a := math.Float32frombits(math.Float32bits(v) &^ (1 << 31))
				if !(amax > a) { // MAX(amax, a) = amax > a ? amax : a
					amax = a
				}
			}
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		h := F32ToF16(d)
		if d != d {
			h = 0x7e00 // ggml_compute_fp32_to_fp16's canonical NaN; d ≥ 0 here
		}
		binary.LittleEndian.PutUint16(out[:2], h)
		for i, v := range xb {
			out[2+i] = byte(roundfInt8(v * id))
		}
	}
}

// roundfInt8 is (int8_t)roundf(v) as gcc and clang compile it for amd64:
// round half away from zero, convert with CVTTSS2SI to int32 (0x80000000 for
// NaN and out-of-range values), keep the low byte. Adding ±0.5 in float64 is
// exact for |v| < 2³¹, so truncating the sum rounds as roundf does, without
// a data-dependent branch.
func roundfInt8(v float32) int8 {
	if !(v > -0x1p31 && v < 0x1p31) {
		return 0
	}
	return int8(int32(float64(v) + math.Copysign(0.5, float64(v))))
}

// DotQ8_0 returns the dot product of nBlocks Q8_0 blocks of weights w with
// nBlocks Q8_0 blocks of activations x (from [QuantizeQ8_0]), as ggml's
// ggml_vec_dot_q8_0_q8_0: per block an exact int32 sum of int8 products,
// scaled by the product of the two scales and accumulated in float32.
//
// Quants must lie in [-127, 127], as every ggml Q8_0 quantizer writes them:
// the AVX2 path multiplies |w|·sign(x, w) with VPMADDUBSW, which, like
// ggml's, gets -128 wrong. It panics if nBlocks < 0 or w or x is shorter than
// nBlocks·34 bytes.
func DotQ8_0(w, x []byte, nBlocks int) float32 {
	n := nBlocks * Q8_0BlockSize
	return active.dotQ8_0(w[:n], x[:n], nBlocks)
}

// DotQ8_0x4 sets out[j] = DotQ8_0(w, xj, nBlocks), bit for bit, for the
// four quantized activation vectors x0…x3, reading the weight row w once.
// It panics if nBlocks < 0 or any slice is shorter than nBlocks·34 bytes.
func DotQ8_0x4(w, x0, x1, x2, x3 []byte, nBlocks int, out *[4]float32) {
	n := nBlocks * Q8_0BlockSize
	active.dotQ8_0x4(w[:n], x0[:n], x1[:n], x2[:n], x3[:n], nBlocks, out)
}

// dotQ8_0Generic is the reference loop of [DotQ8_0], that of ggml's generic
// ggml_vec_dot_q8_0_q8_0:
//
//	var s float32
//	for each block b {
//		var sumi int32
//		for i := 0; i < 32; i++ {
//			sumi += int32(int8(w.q[i])) * int32(int8(x.q[i]))
//		}
//		s += float32(sumi) * (F16ToF32(w.d) * F16ToF32(x.d))
//	}
//	return s
func dotQ8_0Generic(w, x []byte, nBlocks int) float32 {
	var s float32
	for b := 0; b < nBlocks; b++ {
		wb := (*[Q8_0BlockSize]byte)(w[b*Q8_0BlockSize:])
		xb := (*[Q8_0BlockSize]byte)(x[b*Q8_0BlockSize:])
		s += float32(sumQ8(wb, xb)) * scaleQ8(wb, xb)
	}
	return s
}

// dotQ8_0x4Generic is the reference loop of [DotQ8_0x4]: that of
// [dotQ8_0Generic] for each xj, block by block.
func dotQ8_0x4Generic(w, x0, x1, x2, x3 []byte, nBlocks int, out *[4]float32) {
	var s0, s1, s2, s3 float32
	for b := 0; b < nBlocks; b++ {
		off := b * Q8_0BlockSize
		wb := (*[Q8_0BlockSize]byte)(w[off:])
		xb0 := (*[Q8_0BlockSize]byte)(x0[off:])
		xb1 := (*[Q8_0BlockSize]byte)(x1[off:])
		xb2 := (*[Q8_0BlockSize]byte)(x2[off:])
		xb3 := (*[Q8_0BlockSize]byte)(x3[off:])
		s0 += float32(sumQ8(wb, xb0)) * scaleQ8(wb, xb0)
		s1 += float32(sumQ8(wb, xb1)) * scaleQ8(wb, xb1)
		s2 += float32(sumQ8(wb, xb2)) * scaleQ8(wb, xb2)
		s3 += float32(sumQ8(wb, xb3)) * scaleQ8(wb, xb3)
	}
	*out = [4]float32{s0, s1, s2, s3}
}

// sumQ8 is the exact int32 dot product of two blocks' quants (at most
// 32·128² = 2¹⁹ in magnitude).
func sumQ8(w, x *[Q8_0BlockSize]byte) int32 {
	var s int32
	for i := 2; i < Q8_0BlockSize; i++ {
		s += int32(int8(w[i])) * int32(int8(x[i]))
	}
	return s
}

// scaleQ8 is the product of two blocks' scales, d_w·d_x, rounded to float32.
func scaleQ8(w, x *[Q8_0BlockSize]byte) float32 {
	return F16ToF32(uint16(w[0])|uint16(w[1])<<8) * F16ToF32(uint16(x[0])|uint16(x[1])<<8)
}
