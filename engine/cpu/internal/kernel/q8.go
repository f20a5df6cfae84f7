package kernel

import (
	"encoding/binary"
	"math"
	"slices"
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
// Every int8 quant is allowed, -128 included. It panics if nBlocks < 0 or
// w or x is shorter than nBlocks·34 bytes.
func DotQ8_0(w, x []byte, nBlocks int) float32 {
	n := nBlocks * Q8_0BlockSize
	return active.dotQ8_0(w[:n], x[:n], nBlocks)
}

// Q8_0x4 holds four quantized activation vectors packed for [MulQ8_0x4]:
// per block, the four vectors' 32 quants widened to int16, and their four
// scales converted to float32. Packing does once per matrix product what
// a row-at-a-time kernel redoes for every weight row (ggml's vec_dot_type
// conversion), and lays the four vectors side by side so that one pointer
// walks them. The zero value is empty; Pack reuses its storage.
type Q8_0x4 struct {
	nBlocks int
	q       []int16   // q[(b·4+j)·32+i]: quant i of block b of vector j
	d       []float32 // d[b·4+j]: scale of block b of vector j

	// The VNNI form (see packVNNI), filled when the active set uses it.
	vnni bool
	v    []byte // v[(b·4+j)·32+k]: lane k/4's quant k%4 of block b of vector j, plus 128
}

// Pack sets p to the four vectors x0…x3 of nBlocks Q8_0 blocks each. It
// panics if nBlocks < 0 or any xj is shorter than nBlocks·34 bytes.
func (p *Q8_0x4) Pack(x0, x1, x2, x3 []byte, nBlocks int) {
	p.nBlocks = nBlocks
	xs := [4][]byte{x0, x1, x2, x3}
	p.q, p.d = packQ8(p.q, p.d, xs[:], nBlocks)
	p.vnni = active.packVNNI
	if p.vnni {
		p.v = packVNNI(p.v, xs[:], nBlocks)
	}
}

// packVNNI packs the vectors xs of nBlocks Q8_0 blocks for dotQ8_0x4R2VNNI
// (see _gen): per block and vector, the AVX2 tile's eight lanes of four
// quants (quants 2l, 2l+1, 16+2l, 17+2l make lane l), each quant made
// unsigned by adding 128 (flipping its sign bit), which the kernel cancels
// with −128·Σw per lane.
func packVNNI(v []byte, xs [][]byte, nBlocks int) []byte {
	n := len(xs)
	v = slices.Grow(v[:0], nBlocks*n*32)[:nBlocks*n*32]
	for b := range nBlocks {
		for j, x := range xs {
			q := (*[Q8_0BlockLen]byte)(x[b*Q8_0BlockSize+2:])
			dst := (*[32]byte)(v[(b*n+j)*32:])
			for l := range 8 {
				dst[4*l] = q[2*l] ^ 0x80
				dst[4*l+1] = q[2*l+1] ^ 0x80
				dst[4*l+2] = q[16+2*l] ^ 0x80
				dst[4*l+3] = q[17+2*l] ^ 0x80
			}
		}
	}
	return v
}

// MulQ8_0x4 multiplies rows consecutive Q8_0 weight rows of x.nBlocks
// blocks each, stored one after another in w, by the four packed
// activation vectors of x, reading each weight row once:
//
//	out[4·r+j] = DotQ8_0(w[r·nBlocks·34:], xj, nBlocks)   for r < rows, j < 4
//
// bit for bit, so a token's result does not depend on which tokens share
// its call (RATIONALE.md, "Why must a batched kernel give exactly the
// single-vector result?"). Prefill and batched decode spend their time
// here. It panics if rows < 0, w is shorter than rows·nBlocks·34 bytes or
// out is shorter than 4·rows.
func MulQ8_0x4(w []byte, rows int, x *Q8_0x4, out []float32) {
	n := rows * x.nBlocks * Q8_0BlockSize
	if rows < 0 || len(w) < n || len(out) < 4*rows {
		panic("kernel: MulQ8_0x4: rows = " + strconv.Itoa(rows) + " needs " + strconv.Itoa(n) +
			" bytes of w and " + strconv.Itoa(4*rows) + " of out, have " + strconv.Itoa(len(w)) + " and " + strconv.Itoa(len(out)))
	}
	active.mulQ8_0x4(w[:n], rows, x, out[:4*rows])
}

// MulQ8_0x8 multiplies rows Q8_0 weight rows, as [MulQ8_0x4] does, by the
// eight vectors of two packs x and y of the same block count, reading each
// row once for all eight:
//
//	out[8·r+j] = DotQ8_0(row r, xj), out[8·r+4+j] = DotQ8_0(row r, yj)   for j < 4
//
// bit for bit. Batched decode and prefill, which multiply each row by eight
// or more inputs, run here. It panics if the packs' block counts differ,
// rows < 0, w is shorter than rows·nBlocks·34 bytes or out is shorter than
// 8·rows.
func MulQ8_0x8(w []byte, rows int, x, y *Q8_0x4, out []float32) {
	n := rows * x.nBlocks * Q8_0BlockSize
	if x.nBlocks != y.nBlocks || rows < 0 || len(w) < n || len(out) < 8*rows {
		panic("kernel: MulQ8_0x8: packs of " + strconv.Itoa(x.nBlocks) + " and " + strconv.Itoa(y.nBlocks) +
			" blocks, rows = " + strconv.Itoa(rows) + " needs " + strconv.Itoa(n) + " bytes of w and " +
			strconv.Itoa(8*rows) + " of out, have " + strconv.Itoa(len(w)) + " and " + strconv.Itoa(len(out)))
	}
	active.mulQ8_0x8(w[:n], rows, x, y, out[:8*rows])
}

// mulQ8_0x8Halves is MulQ8_0x8 as two passes of the set's mulQ8_0x4, one
// per pack, through a scratch buffer: the generic and AVX2 forms.
func mulQ8_0x8Halves(mul func(w []byte, rows int, x *Q8_0x4, out []float32)) func(w []byte, rows int, x, y *Q8_0x4, out []float32) {
	return func(w []byte, rows int, x, y *Q8_0x4, out []float32) {
		var buf [2 * 4 * 16]float32
		rb := x.nBlocks * Q8_0BlockSize
		for r0 := 0; r0 < rows; r0 += 16 {
			n := min(16, rows-r0)
			mul(w[r0*rb:], n, x, buf[:4*n])
			mul(w[r0*rb:], n, y, buf[4*16:4*16+4*n])
			for r := range n {
				copy(out[8*(r0+r):], buf[4*r:4*r+4])
				copy(out[8*(r0+r)+4:], buf[4*16+4*r:4*16+4*r+4])
			}
		}
	}
}

// Q8_0x2 holds two quantized activation vectors packed for [MulQ8_0x2],
// laid out as [Q8_0x4] with two vectors per block instead of four. It
// serves groups of two inputs, which a Q8_0x4 would pad to four. The zero
// value is empty; Pack reuses its storage.
type Q8_0x2 struct {
	nBlocks int
	q       []int16   // q[(b·2+j)·32+i]: quant i of block b of vector j
	d       []float32 // d[b·2+j]: scale of block b of vector j
}

// Pack sets p to the two vectors x0 and x1 of nBlocks Q8_0 blocks each. It
// panics if nBlocks < 0 or either is shorter than nBlocks·34 bytes.
func (p *Q8_0x2) Pack(x0, x1 []byte, nBlocks int) {
	p.nBlocks = nBlocks
	p.q, p.d = packQ8(p.q, p.d, [][]byte{x0, x1}, nBlocks)
}

// MulQ8_0x2 is [MulQ8_0x4] for two packed vectors:
//
//	out[2·r+j] = DotQ8_0(w[r·nBlocks·34:], xj, nBlocks)   for r < rows, j < 2
//
// bit for bit. It panics if rows < 0, w is shorter than rows·nBlocks·34
// bytes or out is shorter than 2·rows.
func MulQ8_0x2(w []byte, rows int, x *Q8_0x2, out []float32) {
	n := rows * x.nBlocks * Q8_0BlockSize
	if rows < 0 || len(w) < n || len(out) < 2*rows {
		panic("kernel: MulQ8_0x2: rows = " + strconv.Itoa(rows) + " needs " + strconv.Itoa(n) +
			" bytes of w and " + strconv.Itoa(2*rows) + " of out, have " + strconv.Itoa(len(w)) + " and " + strconv.Itoa(len(out)))
	}
	active.mulQ8_0x2(w[:n], rows, x, out[:2*rows])
}

// Q8_0x1 holds one quantized activation vector packed for [MulQ8_0x1]:
// its quants widened to int16 and its scales converted to float32, as in
// [Q8_0x2] with one vector. The zero value is empty; Pack reuses its
// storage.
type Q8_0x1 struct {
	nBlocks int
	q       []int16   // q[b·32+i]: quant i of block b
	d       []float32 // d[b]: scale of block b
}

// Pack sets p to the vector x of nBlocks Q8_0 blocks. It panics if
// nBlocks < 0 or x is shorter than nBlocks·34 bytes.
func (p *Q8_0x1) Pack(x []byte, nBlocks int) {
	p.nBlocks = nBlocks
	p.q, p.d = packQ8(p.q, p.d, [][]byte{x}, nBlocks)
}

// MulQ8_0x1 multiplies rows consecutive Q8_0 weight rows by one packed
// vector:
//
//	out[r] = DotQ8_0(w[r·nBlocks·34:], x, nBlocks)   for r < rows
//
// bit for bit. It is the matrix-vector product of decode: a tile of rows
// at a time instead of a call per row. It panics if rows < 0, w is
// shorter than rows·nBlocks·34 bytes or out is shorter than rows.
func MulQ8_0x1(w []byte, rows int, x *Q8_0x1, out []float32) {
	n := rows * x.nBlocks * Q8_0BlockSize
	if rows < 0 || len(w) < n || len(out) < rows {
		panic("kernel: MulQ8_0x1: rows = " + strconv.Itoa(rows) + " needs " + strconv.Itoa(n) +
			" bytes of w and " + strconv.Itoa(rows) + " of out, have " + strconv.Itoa(len(w)) + " and " + strconv.Itoa(len(out)))
	}
	active.mulQ8_0x1(w[:n], rows, x, out[:rows])
}

// mulQ8_0x1Generic is the reference loop of [MulQ8_0x1].
func mulQ8_0x1Generic(w []byte, rows int, x *Q8_0x1, out []float32) {
	mulPackedGeneric(w, rows, x.nBlocks, 1, x.q, x.d, out)
}

// packQ8 packs the vectors xs of nBlocks Q8_0 blocks side by side per
// block into q (int16 quants) and d (float32 scales), reusing their
// storage, and returns them.
func packQ8(q []int16, d []float32, xs [][]byte, nBlocks int) ([]int16, []float32) {
	n := nBlocks * Q8_0BlockSize
	v := len(xs)
	for j := range xs {
		xs[j] = xs[j][:n]
	}
	q = slices.Grow(q[:0], nBlocks*v*Q8_0BlockLen)[:nBlocks*v*Q8_0BlockLen]
	d = slices.Grow(d[:0], v*nBlocks)[:nBlocks*v]
	for b := range nBlocks {
		for j, x := range xs {
			blk := (*[Q8_0BlockSize]byte)(x[b*Q8_0BlockSize:])
			d[b*v+j] = F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
			qb := (*[Q8_0BlockLen]int16)(q[(b*v+j)*Q8_0BlockLen:])
			for i := range qb {
				qb[i] = int16(int8(blk[2+i]))
			}
		}
	}
	return q, d
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

// mulQ8_0x4Generic is the reference loop of [MulQ8_0x4]: that of
// [dotQ8_0Generic] for each row and packed vector, which holds the same
// quants and the same scales as float32, so the results are its bits.
func mulQ8_0x4Generic(w []byte, rows int, x *Q8_0x4, out []float32) {
	mulPackedGeneric(w, rows, x.nBlocks, 4, x.q, x.d, out)
}

// mulQ8_0x2Generic is the reference loop of [MulQ8_0x2], that of
// [mulQ8_0x4Generic] for two vectors.
func mulQ8_0x2Generic(w []byte, rows int, x *Q8_0x2, out []float32) {
	mulPackedGeneric(w, rows, x.nBlocks, 2, x.q, x.d, out)
}

// mulPackedGeneric sets out[vecs·r+j] to the dot product of weight row r
// with packed vector j, vecs vectors of nb blocks packed side by side per
// block in q and d, as [dotQ8_0Generic] computes it.
func mulPackedGeneric(w []byte, rows, nb, vecs int, xq []int16, xd []float32, out []float32) {
	for r := range rows {
		row := w[r*nb*Q8_0BlockSize:]
		for j := range vecs {
			var s float32
			for b := range nb {
				wb := (*[Q8_0BlockSize]byte)(row[b*Q8_0BlockSize:])
				q := (*[Q8_0BlockLen]int16)(xq[(b*vecs+j)*Q8_0BlockLen:])
				var sumi int32
				for i, v := range q {
					sumi += int32(int8(wb[2+i])) * int32(v)
				}
				s += float32(sumi) * (F16ToF32(uint16(wb[0])|uint16(wb[1])<<8) * xd[b*vecs+j])
			}
			out[vecs*r+j] = s
		}
	}
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
