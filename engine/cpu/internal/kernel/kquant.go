package kernel

import (
	"encoding/binary"
	"math"
	"strconv"
)

// This file holds the storage formats of llama.cpp's Q4_0/Q4_1/Q5_0/Q5_1
// and K-quant (Q4_K, Q5_K, Q6_K) weights, the activation formats ggml
// pairs them with (Q8_0 from q8.go, Q8_1, Q8_K), and for each weight
// format its dequantizer and its dot product with a quantized activation
// row. Every kernel here restates ggml's scalar C: at llama.cpp commit
// 01243c587feceaa5d6a6c2305535ef2f549c48b8, ggml/src/ggml-common.h for the
// block layouts and ggml/src/ggml-quants.c for the dequantizers and the
// _ref quantizers; the generic dot products of ggml/src/ggml-cpu/quants.c
// as read at aec5bf175db60a30224cb8575bb2c4c604b0a33d (the 32-value ones
// also at 01c20eae67d10d23e4f0b8b74993a88eb9d77635, identical); the pairing of
// weights with activations from type_traits_cpu's vec_dot_type in
// ggml/src/ggml-cpu/ggml-cpu.c at 005913fdaccf4efd0ef8f3b4be43e9540e8b06c7.
//
// "Restates" means: the same integer results, and the same float32
// operations in the same order, each rounded as C's evaluation rules round
// it when no multiply-add is contracted into a fused one (gcc's default
// -ffp-contract=fast with FMA enabled may fuse some; the Go here forbids
// fusion with explicit float32 conversions, which the Go spec defines to
// round). On finite input the results are then ggml's scalar results bit
// for bit. The quantizers (these and kquant_weights.go's), dequantizers and
// dot products were compared with the C functions compiled by gcc 12 -O2
// -ffp-contract=off, on 96 rows of 1024 values (Gaussian at three scales,
// outliers, uniform, shifted, ties, constant and near-zero groups), with
// no differing bit, and TestKQuantGolden keeps digests of that C's output.
// (The same C built with -march=native, which lets gcc fuse, differs from
// itself unfused in about 0.7% of the output bytes.) Halves are read with
// [F16ToF32] (exact) and written with [F32ToF16] (round to nearest even),
// a NaN as ggml's software conversion writes it: its sign and 0x7E00.
//
// All multi-byte fields are little-endian, as ggml lays the C structs out
// in memory on every machine llama.cpp supports.

// Block geometry of the 32-value formats (QK4_0, QK4_1, QK5_0, QK5_1,
// QK8_1 in ggml-common.h). Each block holds BlockLen values in BlockSize
// bytes:
//
//	Q4_0 (block_q4_0): d f16 @0, qs[16] @2.
//	  value j      = (qs[j]&0xF − 8)·d
//	  value j+16   = (qs[j]>>4  − 8)·d                      (j < 16)
//	Q4_1 (block_q4_1): d f16 @0, m f16 @2, qs[16] @4.
//	  value j      = (qs[j]&0xF)·d + m, value j+16 = (qs[j]>>4)·d + m
//	Q5_0 (block_q5_0): d f16 @0, qh u32 @2, qs[16] @6. Value i's fifth
//	  bit is bit i of qh: value = ((nibble | bit<<4) − 16)·d.
//	Q5_1 (block_q5_1): d f16 @0, m f16 @2, qh u32 @4, qs[16] @8.
//	  value = (nibble | bit<<4)·d + m.
//	Q8_1 (block_q8_1): d f16 @0, s f16 @2, qs[32] int8 @4, with
//	  s = d·Σqs (rounded to a half), values d·qs[i].
const (
	Q4_0BlockLen  = 32
	Q4_0BlockSize = 2 + 16 // 18
	Q4_1BlockLen  = 32
	Q4_1BlockSize = 2 + 2 + 16 // 20
	Q5_0BlockLen  = 32
	Q5_0BlockSize = 2 + 4 + 16 // 22
	Q5_1BlockLen  = 32
	Q5_1BlockSize = 2 + 2 + 4 + 16 // 24
	Q8_1BlockLen  = 32
	Q8_1BlockSize = 2 + 2 + 32 // 36
)

// Block geometry of the K-quants: super-blocks of QK_K = 256 values
// (ggml-common.h). Q4_K and Q5_K split a super-block into 8 sub-blocks of
// 32 values, each with a 6-bit scale sc and a 6-bit min m packed into 12
// bytes (see get_scale_min_k4: for j < 4, sc = scales[j]&63 and
// m = scales[j+4]&63; for j ≥ 4, sc = scales[j+4]&0xF | (scales[j−4]>>6)<<4
// and m = scales[j+4]>>4 | (scales[j]>>6)<<4):
//
//	Q4_K (block_q4_K): d f16 @0, dmin f16 @2, scales[12] @4, qs[128] @16.
//	  Value 64c+l (l < 32) is qs[32c+l]&0xF in sub-block 2c, value
//	  64c+32+l is qs[32c+l]>>4 in sub-block 2c+1; value = d·sc·q − dmin·m.
//	Q5_K (block_q5_K): d @0, dmin @2, scales[12] @4, qh[32] @16,
//	  qs[128] @48. As Q4_K, with a fifth bit: bit s of qh[i%32] for value
//	  i in sub-block s = i/32 (adds 16 to q).
//	Q6_K (block_q6_K): ql[128] @0, qh[64] @128, int8 scales[16] @192,
//	  d f16 @208. Sixteen sub-blocks of 16 values. In 128-value half n,
//	  value 128n+32g+l (g < 4, l < 32) has low bits ql[64n+32(g%2)+l] >>
//	  4(g/2) & 0xF and high bits qh[32n+l] >> 2g & 3; value =
//	  d·scales[i/16]·(q − 32).
//	Q8_K (block_q8_K): d f32 @0, qs[256] int8 @4, bsums[16] int16 @260,
//	  bsums[j] = Σ qs[16j…16j+15]; values d·qs[i]. Only activations use it.
const (
	Q4_KBlockLen  = 256
	Q4_KBlockSize = 2 + 2 + 12 + 128 // 144
	Q5_KBlockLen  = 256
	Q5_KBlockSize = 2 + 2 + 12 + 32 + 128 // 176
	Q6_KBlockLen  = 256
	Q6_KBlockSize = 128 + 64 + 16 + 2 // 210
	Q8_KBlockLen  = 256
	Q8_KBlockSize = 4 + 256 + 2*16 // 292
)

// kquantImpls is the set of this file's kernels, a part of impls (its kq)
// so that bestImpls, Impl and ForceGeneric cover them. Exported functions
// check their arguments and call through active.kq, so an implementation
// may assume its slices are long enough.
type kquantImpls struct {
	dequantQ4_0, dequantQ4_1, dequantQ5_0, dequantQ5_1 func(blocks []byte, dst []float32)
	dequantQ4_K, dequantQ5_K, dequantQ6_K, dequantQ8_K func(blocks []byte, dst []float32)

	quantizeQ8_1, quantizeQ8_K func(x []float32, dst []byte)

	dotQ4_0, dotQ4_1, dotQ5_0, dotQ5_1 func(w, x []byte, nBlocks int) float32
	dotQ4_K, dotQ5_K, dotQ6_K          func(w, x []byte, nBlocks int) float32

	// dotQ4_Kx4, dotQ5_Kx4 and dotQ6_Kx4 are the dots of one row with four
	// rows of activations, xStride bytes apart, each exactly dotQ4_K's
	// (dotQ5_K's, dotQ6_K's).
	dotQ4_Kx4, dotQ5_Kx4, dotQ6_Kx4 func(w, x []byte, xStride, nBlocks int, out *[4]float32)
}

// kquantGeneric is the reference set.
var kquantGeneric = kquantImpls{
	dequantQ4_0: dequantQ4_0Generic,
	dequantQ4_1: dequantQ4_1Generic,
	dequantQ5_0: dequantQ5_0Generic,
	dequantQ5_1: dequantQ5_1Generic,
	dequantQ4_K: dequantQ4_KGeneric,
	dequantQ5_K: dequantQ5_KGeneric,
	dequantQ6_K: dequantQ6_KGeneric,
	dequantQ8_K: dequantQ8_KGeneric,

	quantizeQ8_1: quantizeQ8_1Generic,
	quantizeQ8_K: quantizeQ8_KGeneric,

	dotQ4_0: dotQ4_0Generic,
	dotQ4_1: dotQ4_1Generic,
	dotQ5_0: dotQ5_0Generic,
	dotQ5_1: dotQ5_1Generic,
	dotQ4_K: dotQ4_KGeneric,
	dotQ5_K: dotQ5_KGeneric,
	dotQ6_K: dotQ6_KGeneric,

	dotQ4_Kx4: func(w, x []byte, xStride, nBlocks int, out *[4]float32) {
		dotRowsx4(dotQ4_KGeneric, w, x, xStride, nBlocks, out)
	},
	dotQ5_Kx4: func(w, x []byte, xStride, nBlocks int, out *[4]float32) {
		dotRowsx4(dotQ5_KGeneric, w, x, xStride, nBlocks, out)
	},
	dotQ6_Kx4: func(w, x []byte, xStride, nBlocks int, out *[4]float32) {
		dotRowsx4(dotQ6_KGeneric, w, x, xStride, nBlocks, out)
	},
}

// dotRowsx4 is a four-row dot done one row at a time with dot.
func dotRowsx4(dot func(w, x []byte, nBlocks int) float32, w, x []byte, xStride, nBlocks int, out *[4]float32) {
	for t := range out {
		out[t] = dot(w, x[t*xStride:], nBlocks)
	}
}

// ---------------------------------------------------------------------------
// Argument checks

// kqRowBytes checks that a row of n values (len(dst) or len(x) of the
// function fn, named row) is whole blocks of blockLen values and that the
// byte buffer named buf holds its blocks of blockSize bytes; it returns
// that byte count.
func kqRowBytes(fn, row string, n, blockLen, blockSize int, buf string, have int) int {
	if n%blockLen != 0 {
		panic("kernel: " + fn + ": len(" + row + ") = " + strconv.Itoa(n) + " is not a multiple of " + strconv.Itoa(blockLen))
	}
	need := n / blockLen * blockSize
	if have < need {
		panic("kernel: " + fn + ": len(" + row + ") = " + strconv.Itoa(n) + " needs " + strconv.Itoa(need) +
			" bytes of " + buf + ", have " + strconv.Itoa(have))
	}
	return need
}

// kqDotBytes checks a dot product's arguments: nBlocks ≥ 0 and w and x at
// least nBlocks blocks of wSize and xSize bytes.
func kqDotBytes(fn string, w, x []byte, nBlocks, wSize, xSize int) {
	if nBlocks < 0 {
		panic("kernel: " + fn + ": nBlocks = " + strconv.Itoa(nBlocks) + " is negative")
	}
	if len(w) < nBlocks*wSize || len(x) < nBlocks*xSize {
		panic("kernel: " + fn + ": nBlocks = " + strconv.Itoa(nBlocks) + " needs " + strconv.Itoa(nBlocks*wSize) +
			" bytes of w and " + strconv.Itoa(nBlocks*xSize) + " of x, have " + strconv.Itoa(len(w)) + " and " + strconv.Itoa(len(x)))
	}
}

// ---------------------------------------------------------------------------
// Helpers shared with kquant_weights.go

// kqF16 reads the little-endian half at b[0:2] as float32 (GGML_FP16_TO_FP32).
func kqF16(b []byte) float32 {
	return F16ToF32(binary.LittleEndian.Uint16(b))
}

// kqPutF16 writes f as a little-endian half (GGML_FP32_TO_FP16): rounded
// to nearest even, a NaN as its sign and 0x7E00 (ggml_compute_fp32_to_fp16).
func kqPutF16(b []byte, f float32) {
	h := F32ToF16(f)
	if f != f {
		h = uint16(math.Float32bits(f)>>16)&0x8000 | 0x7e00
	}
	binary.LittleEndian.PutUint16(b, h)
}

// kqF32 reads the little-endian float32 at b[0:4].
func kqF32(b []byte) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(b))
}

// kqAbs is fabsf.
func kqAbs(f float32) float32 {
	return math.Float32frombits(math.Float32bits(f) &^ (1 << 31))
}

// kqNearestInt is ggml's nearest_int (ggml-quants.c): add 1.5·2²³, so that
// a float32 of magnitude below 2²² lands where the ulp is 1 and the add
// rounds it to nearest even, and read the integer from the mantissa bits.
// Outside that range (which ggml asserts against) it gives what the C gives
// for the same float32 sum: ±Inf yields −2²², a default NaN 0. The
// conversion of f stops a caller's product from fusing with the add.
func kqNearestInt(f float32) int32 {
	v := float32(f) + 12582912
	i := int32(math.Float32bits(v))
	return (i & 0x007fffff) - 0x00400000
}

// kqScaleMinK4 is ggml's get_scale_min_k4: the 6-bit scale and min of
// sub-block j (< 8) of a Q4_K or Q5_K super-block's 12 scale bytes q.
func kqScaleMinK4(j int, q *[12]byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xF | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// ---------------------------------------------------------------------------
// Dequantization

// DequantQ4_0 expands the len(dst)/32 Q4_0 blocks at the start of blocks
// into dst, as ggml's dequantize_row_q4_0: dst = float32(q−8)·d, exact. It
// panics if len(dst) is not a multiple of 32 or blocks is shorter than
// len(dst)/32·18 bytes.
func DequantQ4_0(blocks []byte, dst []float32) {
	n := kqRowBytes("DequantQ4_0", "dst", len(dst), Q4_0BlockLen, Q4_0BlockSize, "blocks", len(blocks))
	active.kq.dequantQ4_0(blocks[:n], dst)
}

// dequantQ4_0Generic is the reference loop of [DequantQ4_0].
func dequantQ4_0Generic(blocks []byte, dst []float32) {
	for i := range len(dst) / Q4_0BlockLen {
		b := (*[Q4_0BlockSize]byte)(blocks[i*Q4_0BlockSize:])
		y := (*[Q4_0BlockLen]float32)(dst[i*Q4_0BlockLen:])
		d := kqF16(b[0:])
		for j := range 16 {
			x0 := int32(b[2+j]&0x0F) - 8
			x1 := int32(b[2+j]>>4) - 8
			y[j] = float32(x0) * d
			y[j+16] = float32(x1) * d
		}
	}
}

// DequantQ4_1 expands the len(dst)/32 Q4_1 blocks at the start of blocks
// into dst, as ggml's dequantize_row_q4_1: dst = float32(q)·d + m, the
// product rounded before the sum. It panics if len(dst) is not a multiple
// of 32 or blocks is shorter than len(dst)/32·20 bytes.
func DequantQ4_1(blocks []byte, dst []float32) {
	n := kqRowBytes("DequantQ4_1", "dst", len(dst), Q4_1BlockLen, Q4_1BlockSize, "blocks", len(blocks))
	active.kq.dequantQ4_1(blocks[:n], dst)
}

// dequantQ4_1Generic is the reference loop of [DequantQ4_1].
func dequantQ4_1Generic(blocks []byte, dst []float32) {
	for i := range len(dst) / Q4_1BlockLen {
		b := (*[Q4_1BlockSize]byte)(blocks[i*Q4_1BlockSize:])
		y := (*[Q4_1BlockLen]float32)(dst[i*Q4_1BlockLen:])
		d, m := kqF16(b[0:]), kqF16(b[2:])
		for j := range 16 {
			x0 := int32(b[4+j] & 0x0F)
			x1 := int32(b[4+j] >> 4)
			y[j] = float32(float32(x0)*d) + m
			y[j+16] = float32(float32(x1)*d) + m
		}
	}
}

// DequantQ5_0 expands the len(dst)/32 Q5_0 blocks at the start of blocks
// into dst, as ggml's dequantize_row_q5_0: dst = float32(q−16)·d. It
// panics if len(dst) is not a multiple of 32 or blocks is shorter than
// len(dst)/32·22 bytes.
func DequantQ5_0(blocks []byte, dst []float32) {
	n := kqRowBytes("DequantQ5_0", "dst", len(dst), Q5_0BlockLen, Q5_0BlockSize, "blocks", len(blocks))
	active.kq.dequantQ5_0(blocks[:n], dst)
}

// dequantQ5_0Generic is the reference loop of [DequantQ5_0].
func dequantQ5_0Generic(blocks []byte, dst []float32) {
	for i := range len(dst) / Q5_0BlockLen {
		b := (*[Q5_0BlockSize]byte)(blocks[i*Q5_0BlockSize:])
		y := (*[Q5_0BlockLen]float32)(dst[i*Q5_0BlockLen:])
		d := kqF16(b[0:])
		qh := binary.LittleEndian.Uint32(b[2:])
		for j := range 16 {
			xh0 := uint8(qh>>j<<4) & 0x10
			xh1 := uint8(qh>>(j+12)) & 0x10
			x0 := int32(b[6+j]&0x0F|xh0) - 16
			x1 := int32(b[6+j]>>4|xh1) - 16
			y[j] = float32(x0) * d
			y[j+16] = float32(x1) * d
		}
	}
}

// DequantQ5_1 expands the len(dst)/32 Q5_1 blocks at the start of blocks
// into dst, as ggml's dequantize_row_q5_1: dst = float32(q)·d + m, the
// product rounded before the sum. It panics if len(dst) is not a multiple
// of 32 or blocks is shorter than len(dst)/32·24 bytes.
func DequantQ5_1(blocks []byte, dst []float32) {
	n := kqRowBytes("DequantQ5_1", "dst", len(dst), Q5_1BlockLen, Q5_1BlockSize, "blocks", len(blocks))
	active.kq.dequantQ5_1(blocks[:n], dst)
}

// dequantQ5_1Generic is the reference loop of [DequantQ5_1].
func dequantQ5_1Generic(blocks []byte, dst []float32) {
	for i := range len(dst) / Q5_1BlockLen {
		b := (*[Q5_1BlockSize]byte)(blocks[i*Q5_1BlockSize:])
		y := (*[Q5_1BlockLen]float32)(dst[i*Q5_1BlockLen:])
		d, m := kqF16(b[0:]), kqF16(b[2:])
		qh := binary.LittleEndian.Uint32(b[4:])
		for j := range 16 {
			xh0 := uint8(qh>>j<<4) & 0x10
			xh1 := uint8(qh>>(j+12)) & 0x10
			x0 := int32(b[8+j]&0x0F | xh0)
			x1 := int32(b[8+j]>>4 | xh1)
			y[j] = float32(float32(x0)*d) + m
			y[j+16] = float32(float32(x1)*d) + m
		}
	}
}

// DequantQ4_K expands the len(dst)/256 Q4_K super-blocks at the start of
// blocks into dst, as ggml's dequantize_row_q4_K: per sub-block,
// d1 = d·sc and m1 = dmin·m, then dst = d1·q − m1, each operation rounded
// in turn. It panics if len(dst) is not a multiple of 256 or blocks is
// shorter than len(dst)/256·144 bytes.
func DequantQ4_K(blocks []byte, dst []float32) {
	n := kqRowBytes("DequantQ4_K", "dst", len(dst), Q4_KBlockLen, Q4_KBlockSize, "blocks", len(blocks))
	active.kq.dequantQ4_K(blocks[:n], dst)
}

// dequantQ4_KGeneric is the reference loop of [DequantQ4_K].
func dequantQ4_KGeneric(blocks []byte, dst []float32) {
	for i := range len(dst) / Q4_KBlockLen {
		b := (*[Q4_KBlockSize]byte)(blocks[i*Q4_KBlockSize:])
		y := (*[Q4_KBlockLen]float32)(dst[i*Q4_KBlockLen:])
		d, dmin := kqF16(b[0:]), kqF16(b[2:])
		scales := (*[12]byte)(b[4:])
		for c := range 4 {
			sc, m := kqScaleMinK4(2*c, scales)
			d1, m1 := float32(d*float32(sc)), float32(dmin*float32(m))
			sc, m = kqScaleMinK4(2*c+1, scales)
			d2, m2 := float32(d*float32(sc)), float32(dmin*float32(m))
			q := (*[32]byte)(b[16+32*c:])
			for l, v := range q {
				y[64*c+l] = float32(d1*float32(v&0xF)) - m1
				y[64*c+32+l] = float32(d2*float32(v>>4)) - m2
			}
		}
	}
}

// DequantQ5_K expands the len(dst)/256 Q5_K super-blocks at the start of
// blocks into dst, as ggml's dequantize_row_q5_K: as [DequantQ4_K] with the
// fifth bit added to q. It panics if len(dst) is not a multiple of 256 or
// blocks is shorter than len(dst)/256·176 bytes.
func DequantQ5_K(blocks []byte, dst []float32) {
	n := kqRowBytes("DequantQ5_K", "dst", len(dst), Q5_KBlockLen, Q5_KBlockSize, "blocks", len(blocks))
	active.kq.dequantQ5_K(blocks[:n], dst)
}

// dequantQ5_KGeneric is the reference loop of [DequantQ5_K].
func dequantQ5_KGeneric(blocks []byte, dst []float32) {
	for i := range len(dst) / Q5_KBlockLen {
		b := (*[Q5_KBlockSize]byte)(blocks[i*Q5_KBlockSize:])
		y := (*[Q5_KBlockLen]float32)(dst[i*Q5_KBlockLen:])
		d, dmin := kqF16(b[0:]), kqF16(b[2:])
		scales := (*[12]byte)(b[4:])
		qh := (*[32]byte)(b[16:])
		for c := range 4 {
			sc, m := kqScaleMinK4(2*c, scales)
			d1, m1 := float32(d*float32(sc)), float32(dmin*float32(m))
			sc, m = kqScaleMinK4(2*c+1, scales)
			d2, m2 := float32(d*float32(sc)), float32(dmin*float32(m))
			u1, u2 := byte(1)<<(2*c), byte(2)<<(2*c)
			ql := (*[32]byte)(b[48+32*c:])
			for l, v := range ql {
				h1, h2 := int32(0), int32(0)
				if qh[l]&u1 != 0 {
					h1 = 16
				}
				if qh[l]&u2 != 0 {
					h2 = 16
				}
				y[64*c+l] = float32(d1*float32(int32(v&0xF)+h1)) - m1
				y[64*c+32+l] = float32(d2*float32(int32(v>>4)+h2)) - m2
			}
		}
	}
}

// DequantQ6_K expands the len(dst)/256 Q6_K super-blocks at the start of
// blocks into dst, as ggml's dequantize_row_q6_K: dst = (d·sc)·(q−32). It
// panics if len(dst) is not a multiple of 256 or blocks is shorter than
// len(dst)/256·210 bytes.
func DequantQ6_K(blocks []byte, dst []float32) {
	n := kqRowBytes("DequantQ6_K", "dst", len(dst), Q6_KBlockLen, Q6_KBlockSize, "blocks", len(blocks))
	active.kq.dequantQ6_K(blocks[:n], dst)
}

// dequantQ6_KGeneric is the reference loop of [DequantQ6_K].
func dequantQ6_KGeneric(blocks []byte, dst []float32) {
	for i := range len(dst) / Q6_KBlockLen {
		b := (*[Q6_KBlockSize]byte)(blocks[i*Q6_KBlockSize:])
		y := (*[Q6_KBlockLen]float32)(dst[i*Q6_KBlockLen:])
		d := kqF16(b[208:])
		for n := range 2 {
			ql := (*[64]byte)(b[64*n:])
			qh := (*[32]byte)(b[128+32*n:])
			sc := (*[8]byte)(b[192+8*n:])
			yn := (*[128]float32)(y[128*n:])
			for l := range 32 {
				is := l / 16
				q1 := int32(ql[l]&0xF|(qh[l]>>0&3)<<4) - 32
				q2 := int32(ql[l+32]&0xF|(qh[l]>>2&3)<<4) - 32
				q3 := int32(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				q4 := int32(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
				yn[l] = float32(d*float32(int8(sc[is]))) * float32(q1)
				yn[l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
				yn[l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
				yn[l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
			}
		}
	}
}

// DequantQ8_K expands the len(dst)/256 Q8_K blocks at the start of blocks
// into dst, as ggml's dequantize_row_q8_K: dst = d·float32(q). It exists
// for tests and tools; Q8_K only ever holds activations. It panics if
// len(dst) is not a multiple of 256 or blocks is shorter than
// len(dst)/256·292 bytes.
func DequantQ8_K(blocks []byte, dst []float32) {
	n := kqRowBytes("DequantQ8_K", "dst", len(dst), Q8_KBlockLen, Q8_KBlockSize, "blocks", len(blocks))
	active.kq.dequantQ8_K(blocks[:n], dst)
}

// dequantQ8_KGeneric is the reference loop of [DequantQ8_K].
func dequantQ8_KGeneric(blocks []byte, dst []float32) {
	for i := range len(dst) / Q8_KBlockLen {
		b := (*[Q8_KBlockSize]byte)(blocks[i*Q8_KBlockSize:])
		y := (*[Q8_KBlockLen]float32)(dst[i*Q8_KBlockLen:])
		d := kqF32(b[0:])
		for j := range y {
			y[j] = d * float32(int8(b[4+j]))
		}
	}
}

// ---------------------------------------------------------------------------
// Activation quantizers

// QuantizeQ8_1 quantizes the activations x into len(x)/32 Q8_1 blocks at
// the start of dst, the form ggml's Q4_1 and Q5_1 dot products take (their
// vec_dot_type), bit for bit as quantize_row_q8_1_ref (ggml-quants.c),
// which is ggml's generic quantize_row_q8_1. Per block:
//
//	amax := max over the block of |x[i]|   // C's MAX(amax, fabsf(v)), in order
//	d := amax / 127
//	id := 1/d, or 0 if d == 0
//	q[i] = (int8_t)roundf(x[i]·id)         // as [QuantizeQ8_0]
//	dst: F32ToF16(d), F32ToF16(float32(Σq)·d), then the 32 quants
//
// It is [QuantizeQ8_0]'s quantization plus the sum s. (ggml's AVX2
// quantize_row_q8_1 rounds ties to even instead; this is the reference.)
// It panics if len(x) is not a multiple of 32 or dst is shorter than
// len(x)/32·36 bytes. It allocates nothing.
func QuantizeQ8_1(x []float32, dst []byte) {
	n := kqRowBytes("QuantizeQ8_1", "x", len(x), Q8_1BlockLen, Q8_1BlockSize, "dst", len(dst))
	active.kq.quantizeQ8_1(x, dst[:n])
}

// quantizeQ8_1Generic is the reference loop of [QuantizeQ8_1].
func quantizeQ8_1Generic(x []float32, dst []byte) {
	for b := range len(x) / Q8_1BlockLen {
		xb := (*[Q8_1BlockLen]float32)(x[b*Q8_1BlockLen:])
		out := (*[Q8_1BlockSize]byte)(dst[b*Q8_1BlockSize:])
		var amax float32
		for _, v := range xb {
			if a := kqAbs(v); !(amax > a) { // MAX(amax, a) = amax > a ? amax : a
				amax = a
			}
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		kqPutF16(out[0:], d)
		var sum int32
		for j := range 16 {
			q0 := roundfInt8(xb[j] * id)
			q1 := roundfInt8(xb[16+j] * id)
			out[4+j] = byte(q0)
			out[4+16+j] = byte(q1)
			sum += int32(q0) + int32(q1)
		}
		kqPutF16(out[2:], float32(sum)*d)
	}
}

// QuantizeQ8_K quantizes the activations x into len(x)/256 Q8_K blocks at
// the start of dst, the form every K-quant dot product takes (their
// vec_dot_type), bit for bit as quantize_row_q8_K_ref (ggml-quants.c),
// which ggml's CPU backend uses on x86 and as the generic. Per block:
//
//	max := the first x[i] of largest |x[i]|  // "if (ax > amax)", NaNs skipped
//	if max is 0: d = 0, every q and bsum 0
//	iscale := -127 / max
//	q[i] = int8(min(127, nearest_int(iscale·x[i])))
//	bsums[j] = Σ q[16j…16j+15]
//	d = 1 / iscale                           // float32, so d = −max/127 up to rounding
//
// nearest_int rounds halves to even (see kqNearestInt). The scale's sign is
// the opposite of max's, so the value of largest magnitude becomes −127.
// (ggml leaves bsums unwritten for an all-zero block; they are zeroed here,
// which no dot product can tell apart, d being 0.) It panics if len(x) is
// not a multiple of 256 or dst is shorter than len(x)/256·292 bytes. It
// allocates nothing.
func QuantizeQ8_K(x []float32, dst []byte) {
	n := kqRowBytes("QuantizeQ8_K", "x", len(x), Q8_KBlockLen, Q8_KBlockSize, "dst", len(dst))
	active.kq.quantizeQ8_K(x, dst[:n])
}

// quantizeQ8_KGeneric is the reference loop of [QuantizeQ8_K].
func quantizeQ8_KGeneric(x []float32, dst []byte) {
	for b := range len(x) / Q8_KBlockLen {
		xb := (*[Q8_KBlockLen]float32)(x[b*Q8_KBlockLen:])
		out := (*[Q8_KBlockSize]byte)(dst[b*Q8_KBlockSize:])
		var mx, amax float32
		for _, v := range xb {
			if ax := kqAbs(v); ax > amax {
				amax, mx = ax, v
			}
		}
		if amax == 0 {
			clear(out[:])
			continue
		}
		iscale := -127 / mx
		for j, v := range xb {
			out[4+j] = byte(min(127, kqNearestInt(iscale*v)))
		}
		for j := range 16 {
			var sum int32
			for _, q := range out[4+16*j : 4+16*j+16] {
				sum += int32(int8(q))
			}
			binary.LittleEndian.PutUint16(out[260+2*j:], uint16(int16(sum)))
		}
		binary.LittleEndian.PutUint32(out[0:], math.Float32bits(1/iscale))
	}
}

// ---------------------------------------------------------------------------
// Dot products, 32-value blocks

// DotQ4_0 returns the dot product of nBlocks Q4_0 blocks of weights w with
// nBlocks Q8_0 blocks of activations x (from [QuantizeQ8_0]), as ggml's
// ggml_vec_dot_q4_0_q8_0_generic:
//
//	var s float32
//	for each block {
//		sumi := Σ (int(w.q[i]) − 8)·int(x.q[i])      // exact
//		s += (float32(sumi)·w.d)·x.d
//	}
//
// It panics if nBlocks < 0 or w or x is shorter than nBlocks·18 or
// nBlocks·34 bytes.
func DotQ4_0(w, x []byte, nBlocks int) float32 {
	kqDotBytes("DotQ4_0", w, x, nBlocks, Q4_0BlockSize, Q8_0BlockSize)
	return active.kq.dotQ4_0(w[:nBlocks*Q4_0BlockSize], x[:nBlocks*Q8_0BlockSize], nBlocks)
}

// dotQ4_0Generic is the reference loop of [DotQ4_0].
func dotQ4_0Generic(w, x []byte, nBlocks int) float32 {
	var sumf float32
	for ib := range nBlocks {
		wb := (*[Q4_0BlockSize]byte)(w[ib*Q4_0BlockSize:])
		xb := (*[Q8_0BlockSize]byte)(x[ib*Q8_0BlockSize:])
		sumi := sumQ4_0(wb, xb)
		sumf += float32(float32(float32(sumi)*kqF16(wb[0:])) * kqF16(xb[0:]))
	}
	return sumf
}

// sumQ4_0 is the exact integer part of one Q4_0 × Q8_0 block product:
// Σ (nibble−8)·q8, at most 32·8·128 = 2¹⁵ in magnitude.
func sumQ4_0(w *[Q4_0BlockSize]byte, x *[Q8_0BlockSize]byte) int32 {
	var s0, s1 int32
	for j := range 16 {
		v0 := int32(w[2+j]&0x0F) - 8
		v1 := int32(w[2+j]>>4) - 8
		s0 += v0 * int32(int8(x[2+j]))
		s1 += v1 * int32(int8(x[2+16+j]))
	}
	return s0 + s1
}

// DotQ4_1 returns the dot product of nBlocks Q4_1 blocks of weights w with
// nBlocks Q8_1 blocks of activations x (from [QuantizeQ8_1]), as ggml's
// ggml_vec_dot_q4_1_q8_1_generic:
//
//	var s float32
//	for each block {
//		sumi := Σ int(w.q[i])·int(x.q[i])             // exact
//		s += (w.d·x.d)·float32(sumi) + w.m·x.s
//	}
//
// The min enters through x's s = x.d·Σx.q, which Q8_1 stores as a half. It
// panics if nBlocks < 0 or w or x is shorter than nBlocks·20 or
// nBlocks·36 bytes.
func DotQ4_1(w, x []byte, nBlocks int) float32 {
	kqDotBytes("DotQ4_1", w, x, nBlocks, Q4_1BlockSize, Q8_1BlockSize)
	return active.kq.dotQ4_1(w[:nBlocks*Q4_1BlockSize], x[:nBlocks*Q8_1BlockSize], nBlocks)
}

// dotQ4_1Generic is the reference loop of [DotQ4_1].
func dotQ4_1Generic(w, x []byte, nBlocks int) float32 {
	var sumf float32
	for ib := range nBlocks {
		wb := (*[Q4_1BlockSize]byte)(w[ib*Q4_1BlockSize:])
		xb := (*[Q8_1BlockSize]byte)(x[ib*Q8_1BlockSize:])
		sumi := sumQ4_1(wb, xb)
		dd := float32(kqF16(wb[0:]) * kqF16(xb[0:]))
		sumf += float32(dd*float32(sumi)) + float32(kqF16(wb[2:])*kqF16(xb[2:]))
	}
	return sumf
}

// sumQ4_1 is the exact integer part of one Q4_1 × Q8_1 block product:
// Σ nibble·q8, at most 32·15·128 < 2¹⁶ in magnitude.
func sumQ4_1(w *[Q4_1BlockSize]byte, x *[Q8_1BlockSize]byte) int32 {
	var s0, s1 int32
	for j := range 16 {
		s0 += int32(w[4+j]&0x0F) * int32(int8(x[4+j]))
		s1 += int32(w[4+j]>>4) * int32(int8(x[4+16+j]))
	}
	return s0 + s1
}

// DotQ5_0 returns the dot product of nBlocks Q5_0 blocks of weights w with
// nBlocks Q8_0 blocks of activations x (from [QuantizeQ8_0]), as ggml's
// ggml_vec_dot_q5_0_q8_0_generic:
//
//	var s float32
//	for each block {
//		sumi := Σ (int(w.q[i]) − 16)·int(x.q[i])     // exact
//		s += (w.d·x.d)·float32(sumi)
//	}
//
// It panics if nBlocks < 0 or w or x is shorter than nBlocks·22 or
// nBlocks·34 bytes.
func DotQ5_0(w, x []byte, nBlocks int) float32 {
	kqDotBytes("DotQ5_0", w, x, nBlocks, Q5_0BlockSize, Q8_0BlockSize)
	return active.kq.dotQ5_0(w[:nBlocks*Q5_0BlockSize], x[:nBlocks*Q8_0BlockSize], nBlocks)
}

// dotQ5_0Generic is the reference loop of [DotQ5_0].
func dotQ5_0Generic(w, x []byte, nBlocks int) float32 {
	var sumf float32
	for ib := range nBlocks {
		wb := (*[Q5_0BlockSize]byte)(w[ib*Q5_0BlockSize:])
		xb := (*[Q8_0BlockSize]byte)(x[ib*Q8_0BlockSize:])
		sumi := sumQ5_0(wb, xb)
		dd := float32(kqF16(wb[0:]) * kqF16(xb[0:]))
		sumf += float32(dd * float32(sumi))
	}
	return sumf
}

// sumQ5_0 is the exact integer part of one Q5_0 × Q8_0 block product:
// Σ (q5−16)·q8, at most 32·16·128 = 2¹⁶ in magnitude.
func sumQ5_0(w *[Q5_0BlockSize]byte, x *[Q8_0BlockSize]byte) int32 {
	qh := binary.LittleEndian.Uint32(w[2:])
	var s0, s1 int32
	for j := range 16 {
		xh0 := uint8((qh & (1 << j)) >> j << 4)
		xh1 := uint8((qh & (1 << (j + 16))) >> (j + 12))
		x0 := int32(int8((w[6+j] & 0x0F) | xh0 - 16))
		x1 := int32(int8((w[6+j] >> 4) | xh1 - 16))
		s0 += x0 * int32(int8(x[2+j]))
		s1 += x1 * int32(int8(x[2+16+j]))
	}
	return s0 + s1
}

// DotQ5_1 returns the dot product of nBlocks Q5_1 blocks of weights w with
// nBlocks Q8_1 blocks of activations x (from [QuantizeQ8_1]), as ggml's
// ggml_vec_dot_q5_1_q8_1_generic:
//
//	var s float32
//	for each block {
//		sumi := Σ int(w.q[i])·int(x.q[i])             // exact
//		s += (w.d·x.d)·float32(sumi) + w.m·x.s
//	}
//
// It panics if nBlocks < 0 or w or x is shorter than nBlocks·24 or
// nBlocks·36 bytes.
func DotQ5_1(w, x []byte, nBlocks int) float32 {
	kqDotBytes("DotQ5_1", w, x, nBlocks, Q5_1BlockSize, Q8_1BlockSize)
	return active.kq.dotQ5_1(w[:nBlocks*Q5_1BlockSize], x[:nBlocks*Q8_1BlockSize], nBlocks)
}

// dotQ5_1Generic is the reference loop of [DotQ5_1].
func dotQ5_1Generic(w, x []byte, nBlocks int) float32 {
	var sumf float32
	for ib := range nBlocks {
		wb := (*[Q5_1BlockSize]byte)(w[ib*Q5_1BlockSize:])
		xb := (*[Q8_1BlockSize]byte)(x[ib*Q8_1BlockSize:])
		sumi := sumQ5_1(wb, xb)
		dd := float32(kqF16(wb[0:]) * kqF16(xb[0:]))
		sumf += float32(dd*float32(sumi)) + float32(kqF16(wb[2:])*kqF16(xb[2:]))
	}
	return sumf
}

// sumQ5_1 is the exact integer part of one Q5_1 × Q8_1 block product:
// Σ q5·q8, at most 32·31·128 < 2¹⁷ in magnitude.
func sumQ5_1(w *[Q5_1BlockSize]byte, x *[Q8_1BlockSize]byte) int32 {
	qh := binary.LittleEndian.Uint32(w[4:])
	var s0, s1 int32
	for j := range 16 {
		xh0 := uint8(qh>>j<<4) & 0x10
		xh1 := uint8(qh>>(j+12)) & 0x10
		s0 += int32(w[8+j]&0x0F|xh0) * int32(int8(x[4+j]))
		s1 += int32(w[8+j]>>4|xh1) * int32(int8(x[4+16+j]))
	}
	return s0 + s1
}

// ---------------------------------------------------------------------------
// Dot products, K-quants
//
// ggml's generic K-quant dot products sum each super-block's integer
// products in eight lanes (lane l takes the values whose index is l mod 8),
// scale each lane by d = w.d·x.d and accumulate it in its own float32 sum
// across super-blocks; the mins go straight into the running total; the
// eight lane sums join the total, in lane order, at the end. The order
// matters for the float32 result, so the generic twins keep it.

// DotQ4_K returns the dot product of nBlocks Q4_K super-blocks of weights
// w with nBlocks Q8_K blocks of activations x (from [QuantizeQ8_K]), as
// ggml's ggml_vec_dot_q4_K_q8_K_generic:
//
//	var sums [8]float32
//	var s float32
//	for each super-block {
//		lane[l] := Σ_{i%8 == l} sc(i/32)·q[i]·x.q[i]        // exact int32
//		summ := Σ_{j<16} x.bsums[j]·m(j/2)                  // exact int32
//		d := w.d·x.d
//		sums[l] += d·float32(lane[l])   for l = 0…7
//		s -= (w.dmin·x.d)·float32(summ)
//	}
//	s += sums[0]; …; s += sums[7]
//
// It panics if nBlocks < 0 or w or x is shorter than nBlocks·144 or
// nBlocks·292 bytes.
func DotQ4_K(w, x []byte, nBlocks int) float32 {
	kqDotBytes("DotQ4_K", w, x, nBlocks, Q4_KBlockSize, Q8_KBlockSize)
	return active.kq.dotQ4_K(w[:nBlocks*Q4_KBlockSize], x[:nBlocks*Q8_KBlockSize], nBlocks)
}

// DotQ4_Kx4 sets out[t] to DotQ4_K(w, x[t·xStride:], nBlocks) for the four
// rows of activations t = 0…3, with the same bits, faster than four calls:
// each super-block of weights is unpacked once for the four rows. It panics
// if nBlocks < 0, xStride is shorter than a row, or w or x is too short.
func DotQ4_Kx4(w, x []byte, xStride, nBlocks int, out *[4]float32) {
	kqDotx4Bytes("DotQ4_Kx4", w, x, xStride, nBlocks, Q4_KBlockSize)
	active.kq.dotQ4_Kx4(w[:nBlocks*Q4_KBlockSize], x[:3*xStride+nBlocks*Q8_KBlockSize], xStride, nBlocks, out)
}

// DotQ5_Kx4 is [DotQ4_Kx4] for Q5_K weights: four [DotQ5_K]s.
func DotQ5_Kx4(w, x []byte, xStride, nBlocks int, out *[4]float32) {
	kqDotx4Bytes("DotQ5_Kx4", w, x, xStride, nBlocks, Q5_KBlockSize)
	active.kq.dotQ5_Kx4(w[:nBlocks*Q5_KBlockSize], x[:3*xStride+nBlocks*Q8_KBlockSize], xStride, nBlocks, out)
}

// DotQ6_Kx4 is [DotQ4_Kx4] for Q6_K weights: four [DotQ6_K]s.
func DotQ6_Kx4(w, x []byte, xStride, nBlocks int, out *[4]float32) {
	kqDotx4Bytes("DotQ6_Kx4", w, x, xStride, nBlocks, Q6_KBlockSize)
	active.kq.dotQ6_Kx4(w[:nBlocks*Q6_KBlockSize], x[:3*xStride+nBlocks*Q8_KBlockSize], xStride, nBlocks, out)
}

// kqDotx4Bytes checks the arguments of a four-row dot against Q8_K rows.
func kqDotx4Bytes(fn string, w, x []byte, xStride, nBlocks, wSize int) {
	kqDotBytes(fn, w, x, nBlocks, wSize, Q8_KBlockSize)
	if nBlocks > 0 && (xStride < nBlocks*Q8_KBlockSize || len(x) < 3*xStride+nBlocks*Q8_KBlockSize) {
		panic("kernel: " + fn + ": xStride " + strconv.Itoa(xStride) + " and " + strconv.Itoa(len(x)) +
			" bytes of activations do not hold four rows of " + strconv.Itoa(nBlocks) + " Q8_K blocks")
	}
}

// dotQ4_KGeneric is the reference loop of [DotQ4_K].
func dotQ4_KGeneric(w, x []byte, nBlocks int) float32 {
	var sums [8]float32
	var sumf float32
	for i := range nBlocks {
		wb := (*[Q4_KBlockSize]byte)(w[i*Q4_KBlockSize:])
		xb := (*[Q8_KBlockSize]byte)(x[i*Q8_KBlockSize:])
		lanes, summ := lanesQ4_K(wb, xb)
		dy := kqF32(xb[0:])
		d := float32(kqF16(wb[0:]) * dy)
		for l := range sums {
			sums[l] += float32(d * float32(lanes[l]))
		}
		dmin := float32(kqF16(wb[2:]) * dy)
		sumf -= float32(dmin * float32(summ))
	}
	for _, v := range sums {
		sumf += v
	}
	return sumf
}

// lanesQ4_K is the exact integer part of one Q4_K × Q8_K super-block
// product: the eight lane sums of sc·q·q8 (each at most 32·63·15·128 < 2²²
// in magnitude) and the min term Σ bsums[j]·m(j/2) (at most
// 256·128·63 < 2²¹).
func lanesQ4_K(w *[Q4_KBlockSize]byte, x *[Q8_KBlockSize]byte) (lanes [8]int32, summ int32) {
	scales := (*[12]byte)(w[4:])
	var sc, mn [8]int32
	for j := range 8 {
		s, m := kqScaleMinK4(j, scales)
		sc[j], mn[j] = int32(s), int32(m)
	}
	for j := range 16 {
		summ += int32(int16(binary.LittleEndian.Uint16(x[260+2*j:]))) * mn[j/2]
	}
	for c := range 4 {
		q := (*[32]byte)(w[16+32*c:])
		q8lo := (*[32]byte)(x[4+64*c:])
		q8hi := (*[32]byte)(x[4+64*c+32:])
		slo, shi := sc[2*c], sc[2*c+1]
		for l, v := range q {
			lanes[l%8] += slo * (int32(int8(q8lo[l])) * int32(v&0xF))
			lanes[l%8] += shi * (int32(int8(q8hi[l])) * int32(v>>4))
		}
	}
	return lanes, summ
}

// DotQ5_K returns the dot product of nBlocks Q5_K super-blocks of weights
// w with nBlocks Q8_K blocks of activations x (from [QuantizeQ8_K]), as
// ggml's ggml_vec_dot_q5_K_q8_K_generic: the loop of [DotQ4_K] with 5-bit
// quants. It panics if nBlocks < 0 or w or x is shorter than nBlocks·176
// or nBlocks·292 bytes.
func DotQ5_K(w, x []byte, nBlocks int) float32 {
	kqDotBytes("DotQ5_K", w, x, nBlocks, Q5_KBlockSize, Q8_KBlockSize)
	return active.kq.dotQ5_K(w[:nBlocks*Q5_KBlockSize], x[:nBlocks*Q8_KBlockSize], nBlocks)
}

// dotQ5_KGeneric is the reference loop of [DotQ5_K].
func dotQ5_KGeneric(w, x []byte, nBlocks int) float32 {
	var sums [8]float32
	var sumf float32
	for i := range nBlocks {
		wb := (*[Q5_KBlockSize]byte)(w[i*Q5_KBlockSize:])
		xb := (*[Q8_KBlockSize]byte)(x[i*Q8_KBlockSize:])
		lanes, summ := lanesQ5_K(wb, xb)
		dy := kqF32(xb[0:])
		d := float32(kqF16(wb[0:]) * dy)
		for l := range sums {
			sums[l] += float32(d * float32(lanes[l]))
		}
		dmin := float32(kqF16(wb[2:]) * dy)
		sumf -= float32(dmin * float32(summ))
	}
	for _, v := range sums {
		sumf += v
	}
	return sumf
}

// lanesQ5_K is the exact integer part of one Q5_K × Q8_K super-block
// product, as [lanesQ4_K] with 5-bit quants (lanes below 2²³ in magnitude).
func lanesQ5_K(w *[Q5_KBlockSize]byte, x *[Q8_KBlockSize]byte) (lanes [8]int32, summ int32) {
	scales := (*[12]byte)(w[4:])
	var sc, mn [8]int32
	for j := range 8 {
		s, m := kqScaleMinK4(j, scales)
		sc[j], mn[j] = int32(s), int32(m)
	}
	for j := range 16 {
		summ += int32(int16(binary.LittleEndian.Uint16(x[260+2*j:]))) * mn[j/2]
	}
	qh := (*[32]byte)(w[16:])
	for c := range 4 {
		q := (*[32]byte)(w[48+32*c:])
		q8lo := (*[32]byte)(x[4+64*c:])
		q8hi := (*[32]byte)(x[4+64*c+32:])
		slo, shi := sc[2*c], sc[2*c+1]
		for l, v := range q {
			alo := int32(v&0xF) | int32(qh[l]>>(2*c)&1)<<4
			ahi := int32(v>>4) | int32(qh[l]>>(2*c+1)&1)<<4
			lanes[l%8] += slo * (int32(int8(q8lo[l])) * alo)
			lanes[l%8] += shi * (int32(int8(q8hi[l])) * ahi)
		}
	}
	return lanes, summ
}

// DotQ6_K returns the dot product of nBlocks Q6_K super-blocks of weights
// w with nBlocks Q8_K blocks of activations x (from [QuantizeQ8_K]), as
// ggml's ggml_vec_dot_q6_K_q8_K_generic:
//
//	var sums [8]float32
//	for each super-block {
//		lane[l] := Σ_{i%8 == l} sc[i/16]·(q[i]−32)·x.q[i]   // exact int32
//		d := w.d·x.d
//		sums[l] += d·float32(lane[l])   for l = 0…7
//	}
//	s := 0; s += sums[0]; …; s += sums[7]
//
// It panics if nBlocks < 0 or w or x is shorter than nBlocks·210 or
// nBlocks·292 bytes.
func DotQ6_K(w, x []byte, nBlocks int) float32 {
	kqDotBytes("DotQ6_K", w, x, nBlocks, Q6_KBlockSize, Q8_KBlockSize)
	return active.kq.dotQ6_K(w[:nBlocks*Q6_KBlockSize], x[:nBlocks*Q8_KBlockSize], nBlocks)
}

// dotQ6_KGeneric is the reference loop of [DotQ6_K].
func dotQ6_KGeneric(w, x []byte, nBlocks int) float32 {
	var sums [8]float32
	for i := range nBlocks {
		wb := (*[Q6_KBlockSize]byte)(w[i*Q6_KBlockSize:])
		xb := (*[Q8_KBlockSize]byte)(x[i*Q8_KBlockSize:])
		lanes := lanesQ6_K(wb, xb)
		d := float32(kqF16(wb[208:]) * kqF32(xb[0:]))
		for l := range sums {
			sums[l] += float32(d * float32(lanes[l]))
		}
	}
	var sumf float32
	for _, v := range sums {
		sumf += v
	}
	return sumf
}

// lanesQ6_K is the exact integer part of one Q6_K × Q8_K super-block
// product: the eight lane sums of sc·(q−32)·q8, each at most
// 32·128·32·128 = 2²⁴ in magnitude.
func lanesQ6_K(w *[Q6_KBlockSize]byte, x *[Q8_KBlockSize]byte) (lanes [8]int32) {
	for n := range 2 {
		ql := (*[64]byte)(w[64*n:])
		qh := (*[32]byte)(w[128+32*n:])
		q8 := (*[128]byte)(x[4+128*n:])
		sc := (*[8]byte)(w[192+8*n:])
		for l := range 32 {
			h := qh[l]
			a0 := int32(ql[l]&0xF|(h>>0&3)<<4) - 32
			a1 := int32(ql[l+32]&0xF|(h>>2&3)<<4) - 32
			a2 := int32(ql[l]>>4|(h>>4&3)<<4) - 32
			a3 := int32(ql[l+32]>>4|(h>>6&3)<<4) - 32
			is := l / 16
			lanes[l%8] += int32(int8(sc[is])) * (int32(int8(q8[l])) * a0)
			lanes[l%8] += int32(int8(sc[is+2])) * (int32(int8(q8[l+32])) * a1)
			lanes[l%8] += int32(int8(sc[is+4])) * (int32(int8(q8[l+64])) * a2)
			lanes[l%8] += int32(int8(sc[is+6])) * (int32(int8(q8[l+96])) * a3)
		}
	}
	return lanes
}
