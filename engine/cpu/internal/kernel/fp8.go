package kernel

import (
	"math"
	"strconv"
)

// This file holds the FP8 weight format of the official DeepSeek-V3/R1
// checkpoints: OCP 8-bit floating point E4M3 (PyTorch's float8_e4m3fn,
// "FN" for finite: no infinities) with one float32 scale per 128×128
// block of the matrix. A weight matrix of rows×cols values is rows·cols
// bytes, row-major, and its scales (the checkpoint's weight_scale_inv) are
// a row-major float32 array of shape [⌈rows/128⌉, ⌈cols/128⌉]. The real
// weight at (r, c) is E4M3ToF32(w[r][c]) × scales[r/128][c/128]: the
// checkpoint stores the inverse of the quantizer's scale, and DeepSeek's
// own weight_dequant (inference/kernel.py) multiplies by it, despite the
// name. The last block row and column may be partial.
//
// DeepSeek-V4 stores the same E4M3 codes with E8M0 (power-of-two) scales,
// which a caller widens to float32 (E8M0ToF32, exact), per blocks of
// 128×128 or, in later releases, 32×32 values; the …Blocks forms take the
// block shape bh×bw, and the shorter names mean 128×128.
//
// The kernels are part of impls (field fp8): the AVX2 set has its own
// dotE4M3 and dotE4M3x4, with the generic's bits for block widths that
// are multiples of 16 (others run the generic loop).

// E4M3BlockLen is the side of the square blocks that share one scale.
const E4M3BlockLen = 128

// fp8Impls is the set of this file's kernels. Exported functions check
// their arguments and call through active.fp8, so an implementation may
// assume its slices are exactly as long as documented.
type fp8Impls struct {
	// dequantE4M3Row expands len(dst) = len(w) values; s holds the
	// row's ⌈len(w)/bw⌉ block scales, bw > 0 the block width.
	dequantE4M3Row func(w []byte, s []float32, bw int, dst []float32)
	// dotE4M3 is the dot product of w with x[:len(w)]; s, bw as above.
	dotE4M3 func(w []byte, s []float32, bw int, x []float32) float32
	// dotE4M3x4 sets out[j] to dotE4M3(w, s, bw, xj), bit for bit.
	dotE4M3x4 func(w []byte, s []float32, bw int, x0, x1, x2, x3 []float32, out *[4]float32)
}

// fp8Generic is the reference set.
var fp8Generic = fp8Impls{
	dequantE4M3Row: dequantE4M3RowGeneric,
	dotE4M3:        dotE4M3Generic,
	dotE4M3x4:      dotE4M3x4Generic,
}

// ---------------------------------------------------------------------------
// Scalar conversions

// e4m3Table holds the float32 value of every E4M3 code, built by init from
// the bit definition (see [E4M3ToF32]). Every value is exact in float32.
var e4m3Table [256]float32

func init() {
	for i := range 256 {
		b := byte(i)
		exp := int(b>>3) & 0xF
		mant := int(b & 7)
		var v float64
		switch {
		case exp == 0xF && mant == 7:
			v = math.NaN()
		case exp == 0: // subnormal: mant/8 · 2^(1−7)
			v = math.Ldexp(float64(mant), -9)
		default: // normal: (1 + mant/8) · 2^(exp−7)
			v = math.Ldexp(float64(8+mant), exp-10)
		}
		f := float32(v)
		if b&0x80 != 0 {
			f = -f // a NaN's sign is kept too, as −0's
		}
		e4m3Table[i] = f
	}
}

// E4M3ToF32 decodes an OCP FP8 E4M3 ("E4M3FN") code exactly. Bit 7 is the
// sign, bits 6–3 the exponent e (bias 7), bits 2–0 the mantissa m:
//
//	e = 0:             (−1)^s · m/8 · 2⁻⁶   (subnormals, ±0 for m = 0)
//	0 < e, not NaN:    (−1)^s · (1 + m/8) · 2^(e−7)
//	e = 15 and m = 7:  NaN (0x7F and 0xFF; there are no infinities)
//
// so the largest finite value is 448 (0x7E), the smallest normal 2⁻⁶ (0x08)
// and the smallest subnormal 2⁻⁹ (0x01). The result is a lookup in a
// 256-entry table built at initialisation from this definition; NaN codes
// give a quiet float32 NaN with the code's sign.
func E4M3ToF32(b byte) float32 {
	return e4m3Table[b]
}

// F32ToE4M3 encodes f as OCP FP8 E4M3, rounding to nearest with ties to
// even, in saturating mode: finite values whose magnitude rounds above 448
// become ±448 (0x7E/0xFE), and ±Inf and NaN become NaN with f's sign
// (0x7F/0xFF). Magnitudes below 2⁻¹⁰ (half the smallest subnormal, a tie
// that goes to the even 0) give ±0 with f's sign.
//
// Saturation is a choice, made for writing test models, where an overflow
// should stay finite. PyTorch's eager x.to(torch.float8_e4m3fn) was
// non-saturating from its introduction (pytorch/pytorch#104242): magnitudes
// from 480 up became NaN and those in (464, 480) rounded to the NaN code,
// as ml_dtypes' float8_e4m3fn still does (jax-ml/ml_dtypes#260, #400),
// while torch.compile/Triton casts saturated (pytorch/ao#1912). The CPU/C++
// cast was changed to saturate finite overflow to ±448 by
// pytorch/pytorch#178817 (merged April 2026; torchao gates on 2.12.0.dev0+,
// pytorch/ao#4364), which is what this function does. For magnitudes up to
// 464 (the midpoint between 448 and the NaN code, a tie that goes to the
// even 448) every convention agrees, and so does this one; the checkpoints
// this package reads never hold anything else.
func F32ToE4M3(f float32) byte {
	bits := math.Float32bits(f)
	sign := byte(bits>>24) & 0x80
	a := bits &^ (1 << 31)
	switch {
	case a >= 0x7f800000: // ±Inf, NaN
		return sign | 0x7F
	case a >= math.Float32bits(448):
		return sign | 0x7E
	case a >= math.Float32bits(0x1p-6): // normal: keep 3 of 23 mantissa bits
		// Rebias the exponent from 127 to 7 and round; a carry out of
		// the mantissa correctly bumps the exponent, at most to 448.
		return sign | byte(shiftRNE(a-(127-7)<<23, 20))
	}
	// Subnormal result: the value in units of 2⁻⁹ is (mant|1<<23)·2^(e−141)
	// for a float32 of biased exponent e ≤ 120. A shift of 25 or more
	// leaves less than half a unit, as do float32 subnormals (e = 0).
	e := a >> 23
	if e == 0 || 141-e > 24 {
		return sign
	}
	return sign | byte(shiftRNE(a&0x7fffff|1<<23, 141-e))
}

// ---------------------------------------------------------------------------
// Row kernels

// e4m3RowScales checks the arguments of the row kernel fn: row ≥ 0,
// cols ≥ 0, bh, bw > 0, len(w) ≥ cols, the vector named vec (dst or x) at
// least cols long, and scales a whole number of block rows of ⌈cols/bw⌉
// scales that covers row. It returns row's ⌈cols/bw⌉ block scales.
func e4m3RowScales(fn string, w []byte, scales []float32, row, cols, bh, bw int, vec string, nVec int) []float32 {
	if bh <= 0 || bw <= 0 {
		panic("kernel: " + fn + ": block " + strconv.Itoa(bh) + "×" + strconv.Itoa(bw) + ": not positive")
	}
	if row < 0 || cols < 0 {
		panic("kernel: " + fn + ": row = " + strconv.Itoa(row) + ", cols = " + strconv.Itoa(cols) + ": negative")
	}
	if len(w) < cols {
		panic("kernel: " + fn + ": cols = " + strconv.Itoa(cols) + " needs " + strconv.Itoa(cols) +
			" bytes of w, have " + strconv.Itoa(len(w)))
	}
	if nVec < cols {
		panic("kernel: " + fn + ": cols = " + strconv.Itoa(cols) + " needs len(" + vec + ") ≥ " + strconv.Itoa(cols) +
			", have " + strconv.Itoa(nVec))
	}
	nb := (cols + bw - 1) / bw
	if nb == 0 {
		return nil
	}
	if len(scales)%nb != 0 {
		panic("kernel: " + fn + ": len(scales) = " + strconv.Itoa(len(scales)) + " is not a multiple of ⌈cols/" + strconv.Itoa(bw) + "⌉ = " +
			strconv.Itoa(nb) + " (cols = " + strconv.Itoa(cols) + ")")
	}
	br := row / bh
	if br >= len(scales)/nb {
		panic("kernel: " + fn + ": row = " + strconv.Itoa(row) + " needs " + strconv.Itoa(br+1) + " block rows of " +
			strconv.Itoa(nb) + " scales, len(scales) = " + strconv.Itoa(len(scales)) + " holds " + strconv.Itoa(len(scales)/nb))
	}
	return scales[br*nb : (br+1)*nb]
}

// DequantE4M3Row expands row row of an FP8 E4M3 matrix with cols columns
// into dst[:cols]. w is that row's cols bytes (len(w) ≥ cols) and scales
// the matrix's whole [⌈rows/128⌉, ⌈cols/128⌉] row-major block-scale array
// (weight_scale_inv). Each value is E4M3ToF32(w[c]) · scales[row/128][c/128]
// as one float32 multiply, which is the exact product correctly rounded.
// It panics if row or cols is negative, w or dst is shorter than cols, or
// len(scales) is not a multiple of ⌈cols/128⌉ or holds no block row
// row/128.
func DequantE4M3Row(w []byte, scales []float32, row, cols int, dst []float32) {
	s := e4m3RowScales("DequantE4M3Row", w, scales, row, cols, E4M3BlockLen, E4M3BlockLen, "dst", len(dst))
	active.fp8.dequantE4M3Row(w[:cols], s, E4M3BlockLen, dst[:cols])
}

// DequantE4M3RowBlocks is DequantE4M3Row for blocks of bh rows by bw
// columns: scales is [⌈rows/bh⌉, ⌈cols/bw⌉] and value c of the row is
// E4M3ToF32(w[c]) · scales[row/bh][c/bw]. It also panics if bh or bw is
// not positive.
func DequantE4M3RowBlocks(w []byte, scales []float32, row, cols, bh, bw int, dst []float32) {
	s := e4m3RowScales("DequantE4M3RowBlocks", w, scales, row, cols, bh, bw, "dst", len(dst))
	active.fp8.dequantE4M3Row(w[:cols], s, bw, dst[:cols])
}

// dequantE4M3RowGeneric is the reference loop of [DequantE4M3Row]:
//
//	dst[c] = E4M3ToF32(w[c]) * s[c/bw]
func dequantE4M3RowGeneric(w []byte, s []float32, bw int, dst []float32) {
	for c := range dst {
		dst[c] = e4m3Table[w[c]] * s[c/bw]
	}
}

// DotE4M3 returns the dot product of row row of an FP8 E4M3 matrix with
// cols columns and the float32 activations x[:cols]. w and scales are as
// for [DequantE4M3Row]. The sum is taken per 128-column block, in 16
// lanes: column c of a block starting at lo adds its product
// E4M3ToF32(w[c])·x[c], rounded to float32, to lane (c−lo) mod 16 in
// column order; the lanes reduce as m_i = lane_i + lane_(i+8), then
// ((m0+m4)+(m1+m5)) + ((m2+m6)+(m3+m7)); that block sum times its scale,
// rounded, is added to a float32 accumulator in block order (see
// dotE4M3Generic). This is the order the AVX2 kernel computes in, without
// fused operations, so every implementation gives the same bits (a NaN
// code gives NaN, its payload unspecified). It panics as DequantE4M3Row
// does, with x in place of dst.
func DotE4M3(w []byte, scales []float32, row, cols int, x []float32) float32 {
	s := e4m3RowScales("DotE4M3", w, scales, row, cols, E4M3BlockLen, E4M3BlockLen, "x", len(x))
	return active.fp8.dotE4M3(w[:cols], s, E4M3BlockLen, x[:cols])
}

// DotE4M3Blocks is DotE4M3 for blocks of bh rows by bw columns (scales as
// for [DequantE4M3RowBlocks]): the same sum with blocks of bw columns in
// place of 128. It panics as DequantE4M3RowBlocks does, with x in place of
// dst.
func DotE4M3Blocks(w []byte, scales []float32, row, cols, bh, bw int, x []float32) float32 {
	s := e4m3RowScales("DotE4M3Blocks", w, scales, row, cols, bh, bw, "x", len(x))
	return active.fp8.dotE4M3(w[:cols], s, bw, x[:cols])
}

// dotE4M3Generic is the reference loop of [DotE4M3], with no operation
// fused (the explicit conversions round each product):
//
//	acc := float32(0)
//	for each block b of up to bw columns lo ≤ c < hi, in order:
//		var lane [16]float32
//		for c := lo; c < hi; c++ {
//			lane[(c-lo)%16] += float32(E4M3ToF32(w[c]) * x[c])
//		}
//		acc += float32(reduce16(lane) * s[b])
//	return acc
func dotE4M3Generic(w []byte, s []float32, bw int, x []float32) float32 {
	var acc float32
	for b, scale := range s {
		lo := b * bw
		hi := min(lo+bw, len(w))
		var lane [16]float32
		for c := lo; c < hi; c++ {
			lane[(c-lo)%16] += float32(e4m3Table[w[c]] * x[c])
		}
		acc += float32(reduce16(&lane) * scale)
	}
	return acc
}

// reduce16 sums 16 lanes in the order of the AVX2 kernels' reduction:
// m_i = lane_i + lane_(i+8), a_i = m_i + m_(i+4), (a0+a1) + (a2+a3).
func reduce16(l *[16]float32) float32 {
	var m [8]float32
	for i := range m {
		m[i] = l[i] + l[i+8]
	}
	a0, a1, a2, a3 := m[0]+m[4], m[1]+m[5], m[2]+m[6], m[3]+m[7]
	return (a0 + a1) + (a2 + a3)
}
