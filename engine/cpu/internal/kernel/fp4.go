package kernel

import (
	"math"
	"strconv"
)

// This file holds the FP4 weight format of DeepSeek-V4's routed experts
// (spec §5.2): OCP FP4 E2M1 values, two to a byte, with one E8M0 scale per
// 32 consecutive values of a row (the OCP MX "MXFP4" block, packed as
// DeepSeek packs it). A row of cols values is cols/2 bytes, byte j holding
// value 2j in its low nibble and value 2j+1 in its high nibble, and
// cols/32 scale bytes. The real weight at column c is
// E2M1ToF32(nibble c) × E8M0ToF32(scale[c/32]), a product that is exact in
// float32 (a small integer times a power of two) unless it leaves
// float32's range. Rows are whole 32-value blocks.
//
// The kernels multiply the packed row against float32 activations; the
// AVX2 set has its own dotE2M1 and dotE2M1x2 (see _gen/fp4.go), which
// fuse the multiply and add and so agree with the generic loop within
// rounding, not bit for bit.

// E2M1BlockLen is how many consecutive values of a row share one scale.
const E2M1BlockLen = 32

// fp4Impls is the set of this file's kernels. Exported functions check
// their arguments and call through active.fp4, so an implementation may
// assume len(w) = 16·len(s) and every vector 32·len(s) long.
type fp4Impls struct {
	// dotE2M1 is the dot product of the packed row w (scales s) with x.
	dotE2M1 func(w, s []byte, x []float32) float32
	// dotE2M1x4 sets out[j] to dotE2M1(w, s, xj), bit for bit.
	dotE2M1x4 func(w, s []byte, x0, x1, x2, x3 []float32, out *[4]float32)
}

// fp4Generic is the reference set.
var fp4Generic = fp4Impls{
	dotE2M1:   dotE2M1Generic,
	dotE2M1x4: dotE2M1x4Generic,
}

// ---------------------------------------------------------------------------
// Scalar conversions

// e2m1Table holds the value of every E2M1 code (E2M1ToF32).
var e2m1Table = [16]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6, float32(math.Copysign(0, -1)), -0.5, -1, -1.5, -2, -3, -4, -6}

// e2m1Twice holds twice each E2M1 code's value, an integer, with −0 as 0:
// the AVX2 kernels look nibbles up in it with VPSHUFB, and e8m0Half's
// scales take the factor 2 back out.
var e2m1Twice = [16]int8{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}

// e8m0Table and e8m0Half hold 2^(e−127) and 2^(e−128) for every E8M0
// byte e below 255, and a quiet NaN for 255. Every value is exact in
// float32 (2⁻¹²⁸ and 2⁻¹²⁷ as subnormals).
var e8m0Table, e8m0Half = func() (t, h [256]float32) {
	for e := range 255 {
		t[e] = float32(math.Ldexp(1, e-127))
		h[e] = float32(math.Ldexp(1, e-128))
	}
	t[255], h[255] = float32(math.NaN()), float32(math.NaN())
	return t, h
}()

// E2M1ToF32 decodes the OCP FP4 E2M1 code in the low four bits of n
// exactly (the high bits are ignored). Bit 3 is the sign, bits 2–1 the
// exponent e (bias 1), bit 0 the mantissa m: e = 0 gives m/2 (0 or 0.5),
// otherwise (1 + m/2)·2^(e−1), so the magnitudes are 0, 0.5, 1, 1.5, 2, 3,
// 4 and 6; code 8 is −0. There are no infinities or NaNs.
func E2M1ToF32(n byte) float32 { return e2m1Table[n&0xF] }

// E8M0ToF32 decodes an OCP E8M0 scale byte (PyTorch's float8_e8m0fnu, the
// safetensors dtype F8_E8M0): 2^(e−127) for e < 255, exact (e = 0 gives
// the float32 subnormal 2⁻¹²⁷), and NaN for e = 255.
func E8M0ToF32(e byte) float32 { return e8m0Table[e] }

// ---------------------------------------------------------------------------
// Row kernels

// e2m1Check panics unless cols is a non-negative multiple of 32, w holds at
// least cols/2 bytes, scales at least cols/32 and the vector named vec at
// least cols values.
func e2m1Check(fn string, w, scales []byte, cols int, vec string, nVec int) {
	if cols < 0 || cols%E2M1BlockLen != 0 {
		panic("kernel: " + fn + ": cols = " + strconv.Itoa(cols) + " is not a non-negative multiple of 32")
	}
	if len(w) < cols/2 || len(scales) < cols/E2M1BlockLen {
		panic("kernel: " + fn + ": cols = " + strconv.Itoa(cols) + " needs " + strconv.Itoa(cols/2) + " bytes of w and " +
			strconv.Itoa(cols/E2M1BlockLen) + " scales, have " + strconv.Itoa(len(w)) + " and " + strconv.Itoa(len(scales)))
	}
	if nVec < cols {
		panic("kernel: " + fn + ": cols = " + strconv.Itoa(cols) + " needs len(" + vec + ") ≥ " + strconv.Itoa(cols) +
			", have " + strconv.Itoa(nVec))
	}
}

// DequantE2M1Row expands a packed FP4 row of cols values (cols a multiple
// of 32; w at least cols/2 bytes, scales at least cols/32) into dst[:cols]:
// dst[c] = E2M1ToF32(nibble c) · E8M0ToF32(scales[c/32]), one float32
// multiply, which is the exact value when it is in float32's range. It
// panics if cols is not a non-negative multiple of 32 or a slice is short.
func DequantE2M1Row(w, scales []byte, cols int, dst []float32) {
	e2m1Check("DequantE2M1Row", w, scales, cols, "dst", len(dst))
	for c := range dst[:cols] {
		dst[c] = e2m1Table[w[c/2]>>(4*(c&1))&0xF] * e8m0Table[scales[c/E2M1BlockLen]]
	}
}

// DotE2M1 returns the dot product of a packed FP4 row of cols values
// (as for DequantE2M1Row) with the float32 activations x[:cols]: the sum
// of the exactly dequantized weights times x, in float32. The sum runs in
// 32 lanes: value c goes to lane c mod 32 (four 8-lane accumulators, one
// per quarter of a block), which reduce as (a0+a1)+(a2+a3) and then
// ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)). The generic loop rounds each product
// before adding it; the AVX2 kernel fuses them, so the two agree within
// the rounding of the sum (a few units of 2⁻²⁴·Σ|wᵢxᵢ|), and a −0 weight
// counts as +0 (which changes at most the sign of a zero sum). It panics
// as DequantE2M1Row does, with x in place of dst.
func DotE2M1(w, scales []byte, cols int, x []float32) float32 {
	e2m1Check("DotE2M1", w, scales, cols, "x", len(x))
	nb := cols / E2M1BlockLen
	return active.fp4.dotE2M1(w[:cols/2], scales[:nb], x[:cols])
}

// DotE2M1x4 sets out[j] to DotE2M1(w, scales, cols, xj) for four
// activation vectors, bit for bit (the AVX2 set decodes the row once per
// pair of vectors). It panics as DotE2M1 does, for any of the four vectors.
func DotE2M1x4(w, scales []byte, cols int, x0, x1, x2, x3 []float32, out *[4]float32) {
	e2m1Check("DotE2M1x4", w, scales, cols, "x0", len(x0))
	for j, x := range [...][]float32{x1, x2, x3} {
		if len(x) < cols {
			panic("kernel: DotE2M1x4: cols = " + strconv.Itoa(cols) + " needs len(x" + strconv.Itoa(j+1) + ") ≥ " +
				strconv.Itoa(cols) + ", have " + strconv.Itoa(len(x)))
		}
	}
	nb := cols / E2M1BlockLen
	active.fp4.dotE2M1x4(w[:cols/2], scales[:nb], x0[:cols], x1[:cols], x2[:cols], x3[:cols], out)
}

// dotE2M1Generic is the reference loop of [DotE2M1], every product
// rounded before it is added (the explicit conversion stops the compiler
// from fusing):
//
//	var acc [4][8]float32
//	for c := range x {
//		v := float32(e2m1Twice[nibble c]) * e8m0Half[s[c/32]] // exact
//		acc[c%32/8][c%8] += float32(v * x[c])
//	}
//	return reduce8(acc[0]+acc[1] + (acc[2]+acc[3]))
func dotE2M1Generic(w, s []byte, x []float32) float32 {
	var acc [4][8]float32
	for b, e := range s {
		sc := e8m0Half[e]
		wb, xb := w[16*b:16*b+16], x[32*b:32*b+32]
		for q := range 4 {
			a := &acc[q]
			for l := range 8 {
				c := 8*q + l
				v := float32(e2m1Twice[wb[c/2]>>(4*(c&1))&0xF]) * sc
				a[l] += float32(v * xb[c])
			}
		}
	}
	var m [8]float32
	for l := range m {
		m[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l])
	}
	return ((m[0] + m[4]) + (m[1] + m[5])) + ((m[2] + m[6]) + (m[3] + m[7]))
}

// dotE2M1x4Generic is the reference of [DotE2M1x4]: four dotE2M1Generic.
func dotE2M1x4Generic(w, s []byte, x0, x1, x2, x3 []float32, out *[4]float32) {
	out[0] = dotE2M1Generic(w, s, x0)
	out[1] = dotE2M1Generic(w, s, x1)
	out[2] = dotE2M1Generic(w, s, x2)
	out[3] = dotE2M1Generic(w, s, x3)
}
