// Command _gen writes the AVX2 assembly of package kernel with avo
// (github.com/mmcloughlin/avo). It lives in its own module so that avo stays
// out of ulan's go.mod; see README for the command that regenerates.
//
// Every function here mirrors a generic Go twin in the kernel package (named
// in its Doc line) and must keep that twin's meaning. Only Y0–Y15 may be
// used outside the functions named …VNNI: the AVX2 set runs on machines
// where Y16–Y31, Z and K registers do not exist, so no such function keeps
// more than 16 vector values live (kernel's TestAsmUsesOnlyAVX2Registers
// checks the output). The …VNNI functions need AVX-512 F, BW, VL and VNNI.
package main

import (
	"fmt"
	"sync"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("!noasm")

	for _, k := range []weightKind{f32Kind, f16Kind, bf16Kind} {
		dot(k)
	}
	for _, k := range []weightKind{f32Kind, f16Kind, bf16Kind} {
		dotx4(k)
	}
	dotQ8_0()
	dotQ8_0xRows(2, 4)
	dotQ8_0xRows(1, 4)
	dotQ8_0xRows(2, 2)
	dotQ8_0xRows(1, 2)
	dotQ8_0x1Rows(4)
	dotQ8_0x1Rows(1)
	dotQ8_0x4R2VNNI()
	dotQ8_0x8R2VNNI()
	for n := 1; n <= 8; n++ {
		dotQ8_0R16VNNI(n)
	}
	axpyF32()
	accumRowsF32x4()
	dotRowsF32x4()
	dotRowsF32x4Pairs()
	accumRowsF32x4Wide()
	packQ8_0R16()
	expShift()
	maxF32()
	tileMax()
	norm()
	swiglu()
	exp32()
	f16ToF32s()
	f32ToF16s()
	quantizeQ8_0()
	dotQ4_K(4)
	dotQ4_K(5)
	dotQ4_Kx4(4)
	dotQ4_Kx4(5)
	dotQ4_KVNNI(4)
	dotQ4_KVNNI(5)
	dotQ4_Kx4VNNI(4)
	dotQ4_Kx4VNNI(5)
	dotQ6_K()
	dotQ6_Kx4()
	dotQ6_KVNNI()
	dotQ6_Kx4VNNI()
	for _, f := range q32Formats {
		dotQ32(f)
	}
	cpuid()
	fp8()
	fp4()

	Generate()
}

// prefetchAhead is how far ahead of the current weight the loops prefetch
// (PREFETCHT0), in bytes. In decode the rows stream from DRAM, and the
// hardware prefetcher alone fell behind: on the development machine (Xeon,
// 2 shared vCPUs) a 64 MiB matrix-vector product on one core went from
// about 6.6 to 8.3 GB/s for Q8_0, 3.5 to 4.4 for Q8_0x4 and 7.5 to 9.9 for
// F16; 512 bytes ahead did a little worse than 1 KiB, 2 KiB worse again.
// Prefetches past the end of a row never fault and usually hit the next row.
const prefetchAhead = 1024

// vnniPrefetchAhead is prefetchAhead for the VNNI tile. The tile spends
// about twice as long per weight byte as a single dot product (and the
// backend runs it once per group of four inputs over the same rows), so a
// line must be asked for earlier: streaming a 64 MiB matrix against four
// vectors on one core went from about 3.5 GB/s at 1 KiB ahead to 4.5 at
// 4 KiB and 4.7–5.0 at 8 KiB, and no better at 16 KiB.
const vnniPrefetchAhead = 8192

// prefetchW prefetches the weight line prefetchAhead bytes past m.
func prefetchW(m Mem) {
	m.Disp += prefetchAhead
	PREFETCHT0(m)
}

// weightKind describes how a weight row is stored and widened to float32.
type weightKind struct {
	name     string // F32, F16, BF16
	elemType string // Go element type of the weight slice
	size     int    // bytes per weight

	// load8 widens the 8 weights at m into the 8 float32 lanes of y.
	load8 func(m Mem, y VecVirtual)
	// load1 widens the weight at m into lane 0 of x; other lanes are
	// unspecified.
	load1 func(m Mem, x VecVirtual)
}

var f32Kind = weightKind{
	name: "F32", elemType: "float32", size: 4,
	load8: func(m Mem, y VecVirtual) { VMOVUPS(m, y) },
	load1: func(m Mem, x VecVirtual) { VMOVSS(m, x) },
}

// F16C converts halves exactly, subnormals, Inf and NaN included.
var f16Kind = weightKind{
	name: "F16", elemType: "uint16", size: 2,
	load8: func(m Mem, y VecVirtual) { VCVTPH2PS(m, y) },
	load1: func(m Mem, x VecVirtual) {
		r := GP32()
		MOVWLZX(m, r)
		VMOVD(r, x)
		VCVTPH2PS(x, x)
	},
}

// A bfloat16 is the upper half of a float32: zero-extend and shift.
var bf16Kind = weightKind{
	name: "BF16", elemType: "uint16", size: 2,
	load8: func(m Mem, y VecVirtual) {
		VPMOVZXWD(m, y)
		VPSLLD(Imm(16), y, y)
	},
	load1: func(m Mem, x VecVirtual) {
		r := GP32()
		MOVWLZX(m, r)
		SHLL(Imm(16), r)
		VMOVD(r, x)
	},
}

// hsum leaves the sum of y's eight lanes in lane 0 of y.AsX(), in the
// order hsum4 uses for each of its vectors, so a single-vector kernel and
// its x4 form round alike: with aᵢ = lᵢ + lᵢ₊₄, (a0+a1) + (a2+a3).
func hsum(y VecVirtual) {
	x := y.AsX()
	t := XMM()
	VEXTRACTF128(Imm(1), y, t)
	VADDPS(t, x, x)
	VHADDPS(x, x, x)
	VHADDPS(x, x, x)
}

// hsum4 returns an XMM register holding the lane sums of a[0]…a[3], in
// order, so lane j is the sum of a[j]'s eight lanes.
func hsum4(a [4]VecVirtual) VecVirtual {
	for _, y := range a {
		t := XMM()
		VEXTRACTF128(Imm(1), y, t)
		VADDPS(t, y.AsX(), y.AsX())
	}
	lo, hi := XMM(), XMM()
	VHADDPS(a[1].AsX(), a[0].AsX(), lo) // a0 01, a0 23, a1 01, a1 23
	VHADDPS(a[3].AsX(), a[2].AsX(), hi) // a2 01, a2 23, a3 01, a3 23
	VHADDPS(hi, lo, lo)                 // a0, a1, a2, a3
	return lo
}

// floatAccs is the number of accumulators per activation vector in the
// float kernels: 8-element chunk c of a row goes to accumulator c mod 3,
// in both the single and the x4 forms, and both reduce (a0+a1)+a2 and then
// with hsum's order, so DotKx4(w, …)[j] equals DotK(w, xj) bit for bit:
// a token's result does not depend on how it was batched. Three chains of
// FMA (latency 4) let one vector run at 6 elements a cycle; the x4 form
// then needs 12 accumulators and one register for the widened weights.
const floatAccs = 3

// dot writes dot<Kind>AVX2(w, x) = Σ widen(w[i])·x[i]: 24 elements per
// iteration (prefetching w), then up to two chunks of 8, then a scalar
// tail after the reduction.
func dot(k weightKind) {
	name := "dot" + k.name + "AVX2"
	TEXT(name, NOSPLIT, fmt.Sprintf("func(w []%s, x []float32) float32", k.elemType))
	Doc(name+" is the AVX2 form of dot"+k.name+"Generic.", "len(x) ≥ len(w).")
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("w").Len(), GP64())

	var acc [floatAccs]VecVirtual
	for i := range acc {
		acc[i] = YMM()
		VXORPS(acc[i], acc[i], acc[i])
	}
	advance := func(elems int) {
		ADDQ(Imm(uint64(elems*k.size)), w)
		ADDQ(Imm(uint64(elems*4)), x)
		SUBQ(Imm(uint64(elems)), n)
	}

	Label(name + "_loop")
	CMPQ(n, Imm(8*floatAccs))
	JB(LabelRef(name + "_rem0"))
	for b := 0; b < 8*floatAccs*k.size; b += 64 {
		prefetchW(Mem{Base: w, Disp: b})
	}
	for u := range acc {
		t := YMM()
		k.load8(Mem{Base: w, Disp: u * 8 * k.size}, t)
		VFMADD231PS(Mem{Base: x, Disp: u * 32}, t, acc[u])
	}
	advance(8 * floatAccs)
	JMP(LabelRef(name + "_loop"))

	for u := 0; u < floatAccs-1; u++ {
		Label(fmt.Sprintf("%s_rem%d", name, u))
		CMPQ(n, Imm(8))
		JB(LabelRef(name + "_reduce"))
		t := YMM()
		k.load8(Mem{Base: w}, t)
		VFMADD231PS(Mem{Base: x}, t, acc[u])
		advance(8)
	}

	Label(name + "_reduce")
	for u := 1; u < floatAccs; u++ {
		VADDPS(acc[u], acc[0], acc[0])
	}
	hsum(acc[0])
	s := acc[0].AsX()

	Label(name + "_tail")
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	t1 := XMM()
	k.load1(Mem{Base: w}, t1)
	VFMADD231SS(Mem{Base: x}, t1, s)
	advance(1)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_done")
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	RET()
}

// dotx4 writes dot<Kind>x4AVX2(w, x0, x1, x2, x3, out): each 8 weights are
// widened once and multiplied into the four vectors' accumulators, with
// dot's chunk-to-accumulator rule, reduction and tail, lane j of an XMM
// standing for vector j once the lanes are reduced.
func dotx4(k weightKind) {
	name := "dot" + k.name + "x4AVX2"
	TEXT(name, NOSPLIT, fmt.Sprintf("func(w []%s, x0, x1, x2, x3 []float32, out *[4]float32)", k.elemType))
	Doc(name+" is the AVX2 form of dot"+k.name+"x4Generic.", "Every xj has len(xj) ≥ len(w).")
	w := Load(Param("w").Base(), GP64())
	n := Load(Param("w").Len(), GP64())
	var x [4]Register
	for j := range x {
		x[j] = Load(Param(fmt.Sprintf("x%d", j)).Base(), GP64())
	}

	var acc [4][floatAccs]VecVirtual
	for j := range acc {
		for u := range acc[j] {
			acc[j][u] = YMM()
			VXORPS(acc[j][u], acc[j][u], acc[j][u])
		}
	}
	advance := func(elems int) {
		ADDQ(Imm(uint64(elems*k.size)), w)
		for j := range x {
			ADDQ(Imm(uint64(elems*4)), x[j])
		}
		SUBQ(Imm(uint64(elems)), n)
	}

	Label(name + "_loop")
	CMPQ(n, Imm(8*floatAccs))
	JB(LabelRef(name + "_rem0"))
	for b := 0; b < 8*floatAccs*k.size; b += 64 {
		prefetchW(Mem{Base: w, Disp: b})
	}
	for u := 0; u < floatAccs; u++ {
		t := YMM()
		k.load8(Mem{Base: w, Disp: u * 8 * k.size}, t)
		for j := range x {
			VFMADD231PS(Mem{Base: x[j], Disp: u * 32}, t, acc[j][u])
		}
	}
	advance(8 * floatAccs)
	JMP(LabelRef(name + "_loop"))

	for u := 0; u < floatAccs-1; u++ {
		Label(fmt.Sprintf("%s_rem%d", name, u))
		CMPQ(n, Imm(8))
		JB(LabelRef(name + "_reduce"))
		t := YMM()
		k.load8(Mem{Base: w}, t)
		for j := range x {
			VFMADD231PS(Mem{Base: x[j]}, t, acc[j][u])
		}
		advance(8)
	}

	Label(name + "_reduce")
	var a [4]VecVirtual
	for j := range acc {
		for u := 1; u < floatAccs; u++ {
			VADDPS(acc[j][u], acc[j][0], acc[j][0])
		}
		a[j] = acc[j][0]
	}
	s := hsum4(a)

	// Tail: lane j of s accumulates vector j, one weight at a time, as
	// dot's scalar tail does.
	Label(name + "_tail")
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	wb, xv := XMM(), XMM()
	k.load1(Mem{Base: w}, wb)
	VBROADCASTSS(wb, wb)
	VMOVSS(Mem{Base: x[0]}, xv)
	VINSERTPS(Imm(0x10), Mem{Base: x[1]}, xv, xv)
	VINSERTPS(Imm(0x20), Mem{Base: x[2]}, xv, xv)
	VINSERTPS(Imm(0x30), Mem{Base: x[3]}, xv, xv)
	VFMADD231PS(xv, wb, s)
	advance(1)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_done")
	out := Load(Param("out"), GP64())
	VMOVUPS(s, Mem{Base: out})
	VZEROUPPER()
	RET()
}

const q8Block = 34 // bytes per Q8_0 block: f16 scale, 32 int8 quants

// Q8_0 kernels, single and multi-row, compute each block's products the
// same way and add them in the same order, so that DotQ8_0x4Rows's out[4r+j]
// equals DotQ8_0(row r, xj) bit for bit: a token's result does not depend
// on how it was batched (RATIONALE.md, "Why must a batched kernel give
// exactly the single-vector result?"). Per block, the 32 quants of both
// sides are widened to int16 (VPMOVSXBW) and VPMADDWD multiplies them, so
// int32 lane i (i < 8) holds the exact sum of the products at 2i, 2i+1,
// 16+2i and 17+2i (at most 4·128², exact in float32 too, and -128 is no
// special case); the lanes, converted to float32, are multiplied by
// d_w·d_x (rounded to float32 once, as in the generic twin) and added to
// one accumulator per output with one FMA; the accumulator's lanes are
// reduced at the end in hsum's order. One accumulator per output, rather
// than the two a lone dot product would like for its FMA latency, is what
// lets the multi-row kernel keep eight outputs in registers.

// q8Lanes returns a YMM register holding block lane sums as float32: wLo
// and wHi are the weight block's quants 0–15 and 16–31 as int16, xLo and
// xHi the activation's, each a register or memory operand.
func q8Lanes(wLo, wHi VecVirtual, xLo, xHi Op) VecVirtual {
	p, q := YMM(), YMM()
	VPMADDWD(xLo, wLo, p)
	VPMADDWD(xHi, wHi, q)
	VPADDD(q, p, p)
	VCVTDQ2PS(p, p)
	return p
}

// q8Widen loads the 32 int8 quants of the block at m (past its scale) as
// two YMM registers of int16.
func q8Widen(m Mem) (lo, hi VecVirtual) {
	lo, hi = YMM(), YMM()
	VPMOVSXBW(m.Offset(2), lo)
	VPMOVSXBW(m.Offset(18), hi)
	return lo, hi
}

// q8Scale1 returns a YMM register holding d_w·d_x of the block at w+off
// and x+off in every lane, rounded to float32 once as in the generic twin.
func q8Scale1(w, x Register, off Register) VecVirtual {
	r := GP32()
	s := YMM()
	MOVWLZX(Mem{Base: w, Index: off, Scale: 1}, r)
	VMOVD(r, s.AsX())
	VPINSRW(Imm(1), Mem{Base: x, Index: off, Scale: 1}, s.AsX(), s.AsX())
	VCVTPH2PS(s.AsX(), s.AsX()) // d_w, d_x, 0, 0
	t := XMM()
	VMOVSHDUP(s.AsX(), t)
	VMULSS(t, s.AsX(), s.AsX())
	VBROADCASTSS(s.AsX(), s)
	return s
}

// dotQ8_0 writes dotQ8_0AVX2 with four blocks per iteration: the four
// blocks' scales are converted together (eight halves d_w0…3, d_x0…3
// gathered into one XMM, one VCVTPH2PS, one multiply, a spill, and a
// broadcast load each). One offset register indexes both rows, and the
// loop prefetches w. Up to three blocks left over go one at a time. The
// single accumulator makes this a chain of FMAs, about four cycles a
// block, still well above what memory feeds a decode step.
func dotQ8_0() {
	name := "dotQ8_0AVX2"
	TEXT(name, NOSPLIT, "func(w, x []byte, nBlocks int) float32")
	Doc(name+" is the AVX2 form of dotQ8_0Generic.", "w and x hold nBlocks·34 bytes each.")
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	scales := AllocLocal(16)
	acc := YMM()
	VXORPS(acc, acc, acc)
	off, end4, end := GP64(), GP64(), GP64()
	XORQ(off, off)
	IMUL3Q(Imm(q8Block), nb, end) // bytes in each row
	MOVQ(nb, end4)
	ANDQ(I32(-4), end4)
	IMUL3Q(Imm(q8Block), end4, end4) // bytes in whole groups of four

	// products adds the block at disp's products, scaled by s, into acc.
	products := func(disp int, s VecVirtual) {
		wLo, wHi := q8Widen(Mem{Base: w, Index: off, Scale: 1, Disp: disp})
		xLo, xHi := q8Widen(Mem{Base: x, Index: off, Scale: 1, Disp: disp})
		VFMADD231PS(q8Lanes(wLo, wHi, xLo, xHi), s, acc)
	}

	TESTQ(end4, end4)
	JZ(LabelRef(name + "_rem0"))
	Label(name + "_loop4")
	prefetchW(Mem{Base: w, Index: off, Scale: 1})
	prefetchW(Mem{Base: w, Index: off, Scale: 1, Disp: 64})
	sc := YMM()
	r := GP32()
	MOVWLZX(Mem{Base: w, Index: off, Scale: 1}, r)
	VMOVD(r, sc.AsX())
	for k := 1; k < 8; k++ {
		row := w
		if k >= 4 {
			row = x
		}
		VPINSRW(Imm(uint64(k)), Mem{Base: row, Index: off, Scale: 1, Disp: q8Block * (k % 4)}, sc.AsX(), sc.AsX())
	}
	VCVTPH2PS(sc.AsX(), sc) // d_w0…3, d_x0…3
	hi := XMM()
	VEXTRACTF128(Imm(1), sc, hi)
	VMULPS(hi, sc.AsX(), sc.AsX()) // d_wk·d_xk
	VMOVUPS(sc.AsX(), scales)
	for k := 0; k < 4; k++ {
		s := YMM()
		VBROADCASTSS(scales.Offset(4*k), s)
		products(q8Block*k, s)
	}
	ADDQ(Imm(4*q8Block), off)
	CMPQ(off, end4)
	JB(LabelRef(name + "_loop4"))

	Label(name + "_rem0")
	CMPQ(off, end)
	JAE(LabelRef(name + "_done"))
	products(0, q8Scale1(w, x, off))
	ADDQ(Imm(q8Block), off)
	JMP(LabelRef(name + "_rem0"))

	Label(name + "_done")
	hsum(acc)
	VZEROUPPER()
	Store(acc.AsX(), ReturnIndex(0))
	RET()
}

// q8PackedQ is the bytes of int16 quants per block and packed vector in
// kernel.Q8_0x4 and kernel.Q8_0x2 (vectors side by side per block, then, in
// a separate slice, one float32 scale per vector and block).
const q8PackedQ = 32 * 2

// dotQ8_0xRows writes dotQ8_0x<vecs>R<rows>AVX2, the register tile of
// MulQ8_0x4 (vecs 4) or MulQ8_0x2 (vecs 2): rows weight rows (1 or 2,
// rowBytes apart) against the packed activation vectors, one block per
// iteration. Per block each row's quants are widened once and its scale
// converted once; the vectors' scales come ready as float32, so a row's
// d_w·d_xj are one VMULPS, spilled and broadcast by loads. The
// activations' int16 quants are memory operands of VPMADDWD, read once per
// row from L1. Two rows of four vectors use 8 accumulators, 4 widened
// weight registers and 3 temporaries: 15 of the 16 YMM registers; each
// output gets one VPMADDWD pair, an add, a conversion and an FMA a block,
// about 2 cycles on ports 0 and 1. The two-vector form serves groups of
// two inputs (in batched decode most experts get one or two tokens), which
// the four-vector form would pad to four and so do twice the work.
func dotQ8_0xRows(rows, vecs int) {
	name := fmt.Sprintf("dotQ8_0x%dR%dAVX2", vecs, rows)
	TEXT(name, NOSPLIT, "func(w []byte, rowBytes int, xq []int16, xd []float32, nBlocks int, out []float32)")
	Doc(fmt.Sprintf("%s sets out[%dr+j] for r < %d as mulQ8_0x%dGeneric does;", name, vecs, rows, vecs),
		fmt.Sprintf("see _gen. w holds the rows, xq and xd nBlocks packed blocks, out %d·rows floats.", vecs))
	var w [2]Register
	w[0] = Load(Param("w").Base(), GP64())
	if rows == 2 {
		stride := Load(Param("rowBytes"), GP64())
		w[1] = GP64()
		LEAQ(Mem{Base: w[0], Index: stride, Scale: 1}, w[1])
	}
	xq := Load(Param("xq").Base(), GP64())
	xd := Load(Param("xd").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	scales := AllocLocal(16 * rows)
	var acc [2][4]VecVirtual
	for r := range rows {
		for j := range vecs {
			acc[r][j] = YMM()
			VXORPS(acc[r][j], acc[r][j], acc[r][j])
		}
	}

	Label(name + "_loop")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	dx := XMM()
	if vecs == 4 {
		VMOVUPS(Mem{Base: xd}, dx)
	} else {
		VMOVDDUP(Mem{Base: xd}, dx) // d_x0, d_x1, d_x0, d_x1
	}
	for r := range rows {
		prefetchW(Mem{Base: w[r]})
		dw := XMM()
		VPBROADCASTW(Mem{Base: w[r]}, dw)
		VCVTPH2PS(dw, dw)
		VMULPS(dx, dw, dw) // d_w·d_xj, j < vecs
		VMOVUPS(dw, scales.Offset(16*r))
	}
	var wq [2][2]VecVirtual
	for r := range rows {
		wq[r][0], wq[r][1] = q8Widen(Mem{Base: w[r]})
	}
	for j := range vecs {
		for r := range rows {
			p := q8Lanes(wq[r][0], wq[r][1], Mem{Base: xq, Disp: q8PackedQ * j}, Mem{Base: xq, Disp: q8PackedQ*j + 32})
			s := YMM()
			VBROADCASTSS(scales.Offset(16*r+4*j), s)
			VFMADD231PS(p, s, acc[r][j])
		}
	}
	for r := range rows {
		ADDQ(Imm(q8Block), w[r])
	}
	ADDQ(U32(uint64(q8PackedQ*vecs)), xq)
	ADDQ(Imm(uint64(4*vecs)), xd)
	DECQ(nb)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	out := Load(Param("out").Base(), GP64())
	for r := range rows {
		if vecs == 4 {
			VMOVUPS(hsum4(acc[r]), Mem{Base: out, Disp: 16 * r})
		} else {
			VMOVQ(hsum2(acc[r][0], acc[r][1]), Mem{Base: out, Disp: 8 * r})
		}
	}
	VZEROUPPER()
	RET()
}

// dotQ8_0x1Rows writes dotQ8_0x1R<rows>AVX2, the single-vector tile of
// MulQ8_0x1: rows weight rows (4 or 1, rowBytes apart) against one packed
// activation vector (int16 quants, float32 scales, as in Q8_0x2 with one
// vector), one block per iteration. Each row keeps its own accumulator and
// adds, per block, the same lanes times the same d_w·d_x (one VMULPS
// rounding) as dotQ8_0AVX2, then reduces with hsum: every output is
// dotQ8_0AVX2's bits. Four rows at a time give the core four independent
// FMA chains and four weight streams instead of one: a narrow row (a small
// model's output projection, four blocks) no longer waits on one chain and
// a call per row, and a wide one keeps more loads from memory in flight.
//
// Prefetch. The four rows lie one after another, so prefetchAhead bytes
// past one row's block is mostly another row's current block; each row
// instead prefetches, into L2, its block four rows on (the next tile's),
// one tile's time ahead. Streaming a 64 MiB matrix on one core: 2048-wide
// rows went from about 4.7 (prefetchAhead) to 7 GB/s, 7168-wide from 6.5
// to 7.3; DotQ8_0 row by row does 5–6.
func dotQ8_0x1Rows(rows int) {
	name := fmt.Sprintf("dotQ8_0x1R%dAVX2", rows)
	TEXT(name, NOSPLIT, "func(w []byte, rowBytes int, xq []int16, xd []float32, nBlocks int, out []float32)")
	Doc(fmt.Sprintf("%s sets out[r] for r < %d as mulQ8_0x1Generic does;", name, rows),
		"see _gen. w holds the rows, xq and xd nBlocks packed blocks of one vector.")
	w := make([]Register, rows)
	w[0] = Load(Param("w").Base(), GP64())
	var stride4 Register
	if rows > 1 {
		stride := Load(Param("rowBytes"), GP64())
		stride4 = GP64()
		LEAQ(Mem{Base: stride, Index: stride, Scale: 1}, stride4)
		ADDQ(stride4, stride4)
		for r := 1; r < rows; r++ {
			w[r] = GP64()
			switch r {
			case 1:
				LEAQ(Mem{Base: w[0], Index: stride, Scale: 1}, w[r])
			case 2:
				LEAQ(Mem{Base: w[0], Index: stride, Scale: 2}, w[r])
			default:
				LEAQ(Mem{Base: w[r-2], Index: stride, Scale: 2}, w[r])
			}
		}
	}
	xq := Load(Param("xq").Base(), GP64())
	xd := Load(Param("xd").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	acc := make([]VecVirtual, rows)
	for r := range acc {
		acc[r] = YMM()
		VXORPS(acc[r], acc[r], acc[r])
	}

	Label(name + "_loop")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	dx := YMM()
	VBROADCASTSS(Mem{Base: xd}, dx)
	for r := range rows {
		if rows > 1 {
			// The same block of the row four rows on: the next call's.
			PREFETCHT1(Mem{Base: w[r], Index: stride4, Scale: 1})
		} else {
			prefetchW(Mem{Base: w[r]})
		}
		s := YMM()
		VPBROADCASTW(Mem{Base: w[r]}, s.AsX())
		VCVTPH2PS(s.AsX(), s)
		VMULPS(dx, s, s) // d_w·d_x in every lane
		lo, hi := q8Widen(Mem{Base: w[r]})
		p := q8Lanes(lo, hi, Mem{Base: xq}, Mem{Base: xq, Disp: 32})
		VFMADD231PS(p, s, acc[r])
	}
	for r := range rows {
		ADDQ(Imm(q8Block), w[r])
	}
	ADDQ(U32(q8PackedQ), xq)
	ADDQ(Imm(4), xd)
	DECQ(nb)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	out := Load(Param("out").Base(), GP64())
	for r := range rows {
		hsum(acc[r])
		VMOVSS(acc[r].AsX(), Mem{Base: out, Disp: 4 * r})
	}
	VZEROUPPER()
	RET()
}

// hsum2 returns an XMM register whose lanes 0 and 1 hold the lane sums of
// a0 and a1, each in hsum's order.
func hsum2(a0, a1 VecVirtual) VecVirtual {
	for _, y := range []VecVirtual{a0, a1} {
		t := XMM()
		VEXTRACTF128(Imm(1), y, t)
		VADDPS(t, y.AsX(), y.AsX())
	}
	s := XMM()
	VHADDPS(a1.AsX(), a0.AsX(), s) // a0 01, a0 23, a1 01, a1 23
	VHADDPS(s, s, s)               // a0, a1, a0, a1
	return s
}

// axpyF32 writes axpyF32AVX2, y += a·x with one FMA per element: 32
// elements per iteration, then 8, then one at a time.
func axpyF32() {
	name := "axpyF32AVX2"
	TEXT(name, NOSPLIT, "func(a float32, x, y []float32)")
	Doc(name+" is the AVX2 form of axpyF32Generic, fused.", "len(y) ≥ len(x).")
	x := Load(Param("x").Base(), GP64())
	y := Load(Param("y").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	a := YMM()
	VBROADCASTSS(NewParamAddr("a", 0), a)
	for _, width := range []int{32, 8} {
		loop, next := fmt.Sprintf("%s_loop%d", name, width), fmt.Sprintf("%s_end%d", name, width)
		Label(loop)
		CMPQ(n, Imm(uint64(width)))
		JB(LabelRef(next))
		for u := 0; u < width/8; u++ {
			v := YMM()
			VMOVUPS(Mem{Base: y, Disp: 32 * u}, v)
			VFMADD231PS(Mem{Base: x, Disp: 32 * u}, a, v)
			VMOVUPS(v, Mem{Base: y, Disp: 32 * u})
		}
		ADDQ(Imm(uint64(4*width)), x)
		ADDQ(Imm(uint64(4*width)), y)
		SUBQ(Imm(uint64(width)), n)
		JMP(LabelRef(loop))
		Label(next)
	}
	Label(name + "_tail")
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	v := XMM()
	VMOVSS(Mem{Base: y}, v)
	VFMADD231SS(Mem{Base: x}, a.AsX(), v)
	VMOVSS(v, Mem{Base: y})
	ADDQ(Imm(4), x)
	ADDQ(Imm(4), y)
	DECQ(n)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// f16ToF32s writes f16ToF32sAVX2: VCVTPH2PS 32 halves per iteration, then
// 8, then one.
func f16ToF32s() {
	name := "f16ToF32sAVX2"
	TEXT(name, NOSPLIT, "func(dst []float32, src []uint16)")
	Doc(name+" is the AVX2 form of f16ToF32sGeneric.", "len(dst) ≥ len(src).")
	dst := Load(Param("dst").Base(), GP64())
	src := Load(Param("src").Base(), GP64())
	n := Load(Param("src").Len(), GP64())

	for _, width := range []int{32, 8} {
		loop, next := fmt.Sprintf("%s_loop%d", name, width), fmt.Sprintf("%s_end%d", name, width)
		Label(loop)
		CMPQ(n, Imm(uint64(width)))
		JB(LabelRef(next))
		for u := 0; u < width/8; u++ {
			y := YMM()
			VCVTPH2PS(Mem{Base: src, Disp: 16 * u}, y)
			VMOVUPS(y, Mem{Base: dst, Disp: 32 * u})
		}
		ADDQ(Imm(uint64(2*width)), src)
		ADDQ(Imm(uint64(4*width)), dst)
		SUBQ(Imm(uint64(width)), n)
		JMP(LabelRef(loop))
		Label(next)
	}

	Label(name + "_tail")
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	t := XMM()
	f16Kind.load1(Mem{Base: src}, t)
	VMOVSS(t, Mem{Base: dst})
	ADDQ(Imm(2), src)
	ADDQ(Imm(4), dst)
	DECQ(n)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// f32ToF16s writes f32ToF16sAVX2: VCVTPS2PH with immediate 0 (round to
// nearest even, ignoring MXCSR), 32 floats per iteration, then 8, then one.
func f32ToF16s() {
	name := "f32ToF16sAVX2"
	TEXT(name, NOSPLIT, "func(dst []uint16, src []float32)")
	Doc(name+" is the AVX2 form of f32ToF16sGeneric.", "len(dst) ≥ len(src).")
	dst := Load(Param("dst").Base(), GP64())
	src := Load(Param("src").Base(), GP64())
	n := Load(Param("src").Len(), GP64())

	for _, width := range []int{32, 8} {
		loop, next := fmt.Sprintf("%s_loop%d", name, width), fmt.Sprintf("%s_end%d", name, width)
		Label(loop)
		CMPQ(n, Imm(uint64(width)))
		JB(LabelRef(next))
		for u := 0; u < width/8; u++ {
			y := YMM()
			VMOVUPS(Mem{Base: src, Disp: 32 * u}, y)
			VCVTPS2PH(Imm(0), y, Mem{Base: dst, Disp: 16 * u})
		}
		ADDQ(Imm(uint64(4*width)), src)
		ADDQ(Imm(uint64(2*width)), dst)
		SUBQ(Imm(uint64(width)), n)
		JMP(LabelRef(loop))
		Label(next)
	}

	Label(name + "_tail")
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	t := XMM()
	VMOVSS(Mem{Base: src}, t)
	VCVTPS2PH(Imm(0), t, t)
	VPEXTRW(Imm(0), t, Mem{Base: dst})
	ADDQ(Imm(4), src)
	ADDQ(Imm(2), dst)
	DECQ(n)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// cpuid writes cpuid, for the one feature bit golang.org/x/sys/cpu does not
// report: F16C (leaf 1, ECX bit 29).
func cpuid() {
	TEXT("cpuid", NOSPLIT, "func(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)")
	Doc("cpuid executes CPUID with EAX = leaf and ECX = subleaf.")
	Load(Param("leaf"), EAX)
	Load(Param("subleaf"), ECX)
	CPUID()
	Store(EAX, Return("eax"))
	Store(EBX, Return("ebx"))
	Store(ECX, Return("ecx"))
	Store(EDX, Return("edx"))
	RET()
}

// quantizeQ8_0 writes quantizeQ8_0AVX2, which quantizes whole blocks in
// order, exactly as quantizeQ8_0Generic, and returns how many it did. It
// stops before the first block it cannot do exactly and leaves that block
// to the Go code: one holding a NaN or an infinity (where C's MAX order
// and CVTTSS2SI's 0x80000000 matter) or one whose 1/d overflows to +Inf.
// In every other block |x·id| ≤ 127·(1+2⁻²³), so the saturating packs
// below never saturate.
func quantizeQ8_0() {
	name := "quantizeQ8_0AVX2"
	TEXT(name, NOSPLIT, "func(x []float32, dst []byte) int")
	Doc(name+" quantizes leading blocks of x as quantizeQ8_0Generic and",
		"returns their number; see _gen for the blocks it leaves to Go.",
		"len(x) is a multiple of 32 and len(dst) ≥ len(x)/32·34.")
	x := Load(Param("x").Base(), GP64())
	dst := Load(Param("dst").Base(), GP64())
	nb := Load(Param("x").Len(), GP64())
	SHRQ(Imm(5), nb)
	done := GP64()
	XORQ(done, done)

	// Constants: |x| mask, ±0.5, and the dword order that undoes the
	// 128-bit lane interleaving of VPACKSSDW then VPACKSSWB (ggml's
	// 0,4,1,5,2,6,3,7 fix-up).
	consts := GLOBL("quantizeQ8_0Consts", RODATA|NOPTR)
	for i, v := range []uint32{0, 4, 1, 5, 2, 6, 3, 7, 0x7fffffff, 0x3f000000, 0xbf000000, 0x42fe0000, 0x3f800000} {
		DATA(4*i, U32(v))
	}
	absMask, half, negHalf, perm := YMM(), YMM(), YMM(), YMM()
	VMOVDQU(consts, perm)
	VBROADCASTSS(consts.Offset(32), absMask)
	VBROADCASTSS(consts.Offset(36), half)
	VBROADCASTSS(consts.Offset(40), negHalf)
	c := GP32()

	Label(name + "_loop")
	CMPQ(done, nb)
	JAE(LabelRef(name + "_done"))

	// amax: for non-negative floats the order of the bit patterns as
	// int32 is the order of the values, so an integer max of |x| finds
	// amax and flags NaN and Inf (bits ≥ 0x7f800000) in one pass.
	var v [4]VecVirtual
	m := YMM()
	for i := range v {
		v[i] = YMM()
		VMOVUPS(Mem{Base: x, Disp: 32 * i}, v[i])
	}
	a := YMM()
	VPAND(absMask, v[0], m)
	for i := 1; i < 4; i++ {
		VPAND(absMask, v[i], a)
		VPMAXSD(a, m, m)
	}
	mx := m.AsX()
	t := XMM()
	VEXTRACTI128(Imm(1), m, t)
	VPMAXSD(t, mx, mx)
	VPSHUFD(Imm(0x4e), mx, t)
	VPMAXSD(t, mx, mx)
	VPSHUFD(Imm(0xb1), mx, t)
	VPMAXSD(t, mx, mx) // amax in every lane
	bits := GP32()
	VMOVD(mx, bits)
	CMPL(bits, U32(0x7f800000))
	JAE(LabelRef(name + "_done"))

	// d = amax/127 and id = 1/d, or 0 when amax is 0, in float32 as C.
	d, id := XMM(), XMM()
	VMOVSS(consts.Offset(44), d) // 127
	VDIVSS(d, mx, d)             // d = amax / 127
	VXORPS(id, id, id)
	TESTL(bits, bits)
	JZ(LabelRef(name + "_scaled"))
	VMOVSS(consts.Offset(48), id) // 1
	VDIVSS(d, id, id)             // id = 1 / d
	VMOVD(id, c)
	CMPL(c, U32(0x7f800000))
	JAE(LabelRef(name + "_done"))
	Label(name + "_scaled")

	VCVTPS2PH(Imm(0), d, d) // round to nearest even, as GGML_FP32_TO_FP16
	VPEXTRW(Imm(0), d, Mem{Base: dst})
	idv := YMM()
	VBROADCASTSS(id, idv)

	// q = (int8_t)roundf(x·id): truncate, then step away from zero when
	// the exact remainder is at least one half.
	for i := range v {
		p, tr, f, cmp := v[i], YMM(), YMM(), YMM()
		VMULPS(idv, p, p)
		VCVTTPS2DQ(p, tr)
		VCVTDQ2PS(tr, f)
		VSUBPS(f, p, f)                 // remainder, exact
		VCMPPS(Imm(0x1d), half, f, cmp) // f ≥ 0.5 (GE_OQ): all ones = -1
		VPSUBD(cmp, tr, tr)
		VCMPPS(Imm(0x12), negHalf, f, cmp) // f ≤ -0.5 (LE_OQ)
		VPADDD(cmp, tr, tr)
		v[i] = tr
	}
	VPACKSSDW(v[1], v[0], v[0])
	VPACKSSDW(v[3], v[2], v[2])
	VPACKSSWB(v[2], v[0], v[0])
	VPERMD(v[0], perm, v[0])
	VMOVDQU(v[0], Mem{Base: dst, Disp: 2})

	ADDQ(Imm(128), x)
	ADDQ(Imm(34), dst)
	INCQ(done)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	VZEROUPPER()
	Store(done, ReturnIndex(0))
	RET()
}

// dotQ8_0x4R2VNNI writes the AVX-512 VNNI form of dotQ8_0x4R2AVX2: the same
// outputs bit for bit, with about half the vector instructions. One ZMM
// holds a block of both rows, row 0's AVX2 lanes in its low eight int32
// lanes and row 1's in its high eight, so one VPDPBUSD (64 byte products
// summed four at a time into sixteen int32 lanes) does what eight VPMADDWD
// and VPADDD of the AVX2 tile do.
//
// Exactness. The AVX2 tile's lane l of a block sums the products of quants
// 2l, 2l+1, 16+2l and 17+2l; VPDPBUSD's lane k sums bytes 4k…4k+3. So the
// weights are permuted per block with one VPERMT2W (words l and 8+l of row
// 0 into lane l, of row 1 into lane 8+l), and Q8_0x4.Pack wrote each
// activation block with the same grouping: every lane then holds one AVX2
// lane's four products, and its exact int32 sum is the same integer.
// VPDPBUSD multiplies unsigned by signed bytes: the activations are stored
// unsigned (x+128, their sign bit flipped), which adds 128·Σw over the
// lane's weights; the kernel computes that once per block (one VPDPBUSD of
// the weights by 128s), and every vector's lane starts from its negation
// instead of zero, so the sum is exact for every int8 (−128 included). The
// scale d_w·d_xj is one VMULPS rounding as in the AVX2 tile; the FMA per
// block and the final reduction (hsum4, each row's lanes already in one
// half) are the AVX2 tile's, lane for lane.
//
// Packed layout per block (the VNNI form of Q8_0x4): xv holds each vector's
// eight lanes of unsigned quants (32 bytes, broadcast to both rows' halves
// by the load), xd the four scales. Per block and vector the tile reads 32
// bytes of activations, so eight vectors of a 7168-wide row (224 blocks,
// 56 KiB) stay in L2 and of a 2048-wide one (16 KiB) in L1 while the
// weight rows stream past.
func dotQ8_0x4R2VNNI() { dotQ8_0VNNI(1) }

// dotQ8_0x8R2VNNI writes dotQ8_0x4R2VNNI for two packs of four vectors
// (x and y) in one pass over the two rows, each row's eight outputs side by
// side. Batched decode and prefill multiply every weight row by
// eight or more inputs; streaming the rows once for eight, not twice for
// four, halves the weight-side work (loads, permutation, scales) per
// product and the passes over rows that come from memory.
func dotQ8_0x8R2VNNI() { dotQ8_0VNNI(2) }

// vnniConsts returns the constants of the VNNI tiles (see dotQ8_0x4R2VNNI):
// the VPERMT2W word index and the unsigned 128s that measure Σw.
var vnniConsts = sync.OnceValue(func() [2]Mem {
	perm := GLOBL("q8VNNIPerm", RODATA|NOPTR)
	for r := range 2 { // row 0 (wq) into lanes 0…7, row 1 (the second table) into 8…15
		for l := range 8 {
			for k, v := range []int{l, 8 + l} {
				DATA(2*(16*r+2*l+k), U16(uint16(32*r+v)))
			}
		}
	}
	u128 := GLOBL("q8VNNI128s", RODATA|NOPTR)
	DATA(0, U32(0x80808080))
	return [2]Mem{perm, u128}
})

// dotQ8_0VNNI writes the VNNI tile for groups packs of four vectors.
func dotQ8_0VNNI(groups int) {
	name := "dotQ8_0x4R2VNNI"
	sig := "func(w []byte, rowBytes int, xv []byte, xd []float32, nBlocks int, out []float32)"
	doc := []string{name + " sets out[4r+j] for r < 2 exactly as dotQ8_0x4R2AVX2 does;",
		"see _gen. w holds the rows; xv and xd nBlocks blocks of the VNNI packing."}
	if groups == 2 {
		name = "dotQ8_0x8R2VNNI"
		sig = "func(w []byte, rowBytes int, xv []byte, xd []float32, yv []byte, yd []float32, nBlocks int, out []float32)"
		doc = []string{name + " is dotQ8_0x4R2VNNI for the packs x and y in one pass over the rows:",
			"out[8r+j] for x's vector j, out[8r+4+j] for y's; see _gen."}
	}
	TEXT(name, NOSPLIT, sig)
	Doc(doc...)
	c := vnniConsts()
	perm, u128s := c[0], c[1]

	w0 := Load(Param("w").Base(), GP64())
	stride := Load(Param("rowBytes"), GP64())
	w1 := GP64()
	LEAQ(Mem{Base: w0, Index: stride, Scale: 1}, w1)
	type pack struct{ v, d Register }
	packs := []pack{{Load(Param("xv").Base(), GP64()), Load(Param("xd").Base(), GP64())}}
	if groups == 2 {
		packs = append(packs, pack{Load(Param("yv").Base(), GP64()), Load(Param("yd").Base(), GP64())})
	}
	nb := Load(Param("nBlocks"), GP64())
	idx, u128, zero := ZMM(), ZMM(), ZMM()
	VMOVDQU64(perm, idx)
	VPBROADCASTD(u128s, u128)
	VPXORD(zero, zero, zero)
	acc := make([]VecVirtual, 4*groups)
	for j := range acc {
		acc[j] = ZMM()
		VPXORD(acc[j], acc[j], acc[j])
	}

	Label(name + "_loop")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	PREFETCHT0(Mem{Base: w0, Disp: vnniPrefetchAhead})
	PREFETCHT0(Mem{Base: w1, Disp: vnniPrefetchAhead})
	// The two rows' quants, permuted into their halves.
	wq, hi := ZMM(), ZMM()
	VMOVDQU64(Mem{Base: w0, Disp: 2}, wq.AsY())
	VMOVDQU64(Mem{Base: w1, Disp: 2}, hi.AsY())
	VPERMT2W(hi, idx, wq)
	// −128·Σw per lane: every vector's lanes start there.
	sw, start := ZMM(), ZMM()
	VPXORD(sw, sw, sw)
	VPDPBUSD(wq, u128, sw)
	VPSUBD(sw, zero, start)
	// d_w of row 0 in the low eight lanes, of row 1 in the high eight.
	h0, h1 := XMM(), XMM()
	VPBROADCASTW(Mem{Base: w0}, h0)
	VPBROADCASTW(Mem{Base: w1}, h1)
	h := YMM()
	VINSERTI128(Imm(1), h1, h0.AsY(), h)
	dw := ZMM()
	VCVTPH2PS(h, dw)
	for j := range acc {
		pk := packs[j/4]
		x, t, s := ZMM(), ZMM(), ZMM()
		VBROADCASTI64X4(Mem{Base: pk.v, Disp: 32 * (j % 4)}, x)
		VMOVDQA64(start, t)
		VPDPBUSD(wq, x, t)
		VCVTDQ2PS(t, t)
		VMULPS_BCST(Mem{Base: pk.d, Disp: 4 * (j % 4)}, dw, s)
		VFMADD231PS(t, s, acc[j])
	}
	ADDQ(Imm(q8Block), w0)
	ADDQ(Imm(q8Block), w1)
	for _, pk := range packs {
		ADDQ(U32(4*32), pk.v)
		ADDQ(Imm(16), pk.d)
	}
	DECQ(nb)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	out := Load(Param("out").Base(), GP64())
	for g := range groups {
		var row0, row1 [4]VecVirtual
		for j := range 4 {
			a := acc[4*g+j]
			row0[j] = a.AsY().(VecVirtual)
			row1[j] = YMM()
			VEXTRACTF64X4(Imm(1), a, row1[j])
		}
		VMOVUPS(hsum4(row0), Mem{Base: out, Disp: 16 * g})
		VMOVUPS(hsum4(row1), Mem{Base: out, Disp: 16*g + 16*groups})
	}
	VZEROUPPER()
	RET()
}

// r16Block is the bytes of one block of a group of sixteen rows in
// kernel's R16 layout (see kernel's q8r16.go): sixteen f16 scales, then
// for k = 0…7 the sixteen rows' quants 4k…4k+3, each plus 128.
const r16Block = 16 * q8Block

// r16PrefetchAhead is how far ahead of the current block the one-vector R16
// tile prefetches the group's weights, in bytes: about four blocks. It
// streams near the memory's pace, and the hardware prefetcher keeps up.
const r16PrefetchAhead = 2048

// r16PrefetchAheadWide is r16PrefetchAhead for the tiles of two to eight
// vectors, which spend longer on each block: asked for only four blocks
// ahead, too few lines are in flight for one core to stream from DRAM. On
// an AMD EPYC (Zen 5) core over a 71 MB matrix, the eight-vector tile went
// from about 180 GMAC/s at 2 KiB ahead to 285 at 8 KiB and 310 at 16 KiB
// (330 with the matrix in L3), no better at 32 KiB; the two-vector tile
// from 68 to 86, the one-vector tile only from 39 to 42, within the noise
// of a whole decode step. (On the Cascade Lake Xeon of earlier sessions the
// distance made no difference.)
const r16PrefetchAheadWide = 16384

// dotQ8_0R16VNNI writes dotQ8_0R16x{n}VNNI, the VNNI form of kernel's
// mulQ8_0R16Generic for one group of sixteen rows and n packed vectors,
// with its bits. Per block, the eight 64-byte quant vectors are loaded
// once; for each vector, its int32 lanes (one per row) start from the
// packed −128·Σx, eight VPDPBUSD add the products of the unsigned weights
// with four of the vector's signed quants broadcast from memory (in two
// or four independent chains, added at the end: exact), and the
// exact block sums are converted, multiplied by d_w·d_x (one VMULPS with
// the broadcast d_x) and added to the vector's sixteen row sums: a
// multiply, then an add, as the generic rounds them.
func dotQ8_0R16VNNI(n int) {
	name := fmt.Sprintf("dotQ8_0R16x%dVNNI", n)
	TEXT(name, NOSPLIT, "func(w []byte, nBlocks int, xq []byte, xd []float32, xc []int32, out []float32, stride int)")
	Doc(name+fmt.Sprintf(" sets out[stride·j+r] to row r of one R16 group of w times vector j < %d", n),
		"of a Q8_0R16In (xq, xd, xc) over nBlocks blocks, as mulQ8_0R16Generic does; see _gen.")
	w := Load(Param("w").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	xq := Load(Param("xq").Base(), GP64())
	xd := Load(Param("xd").Base(), GP64())
	xc := Load(Param("xc").Base(), GP64())
	acc := make([]VecVirtual, n)
	for j := range acc {
		acc[j] = ZMM()
		VPXORD(acc[j], acc[j], acc[j])
	}
	ahead := r16PrefetchAhead
	if n > 1 {
		ahead = r16PrefetchAheadWide
	}

	Label(name + "_loop")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	for off := 0; off < r16Block; off += 64 {
		PREFETCHT0(Mem{Base: w, Disp: ahead + off})
	}
	var wk [8]VecVirtual
	for k := range wk {
		wk[k] = ZMM()
		VMOVDQU64(Mem{Base: w, Disp: 32 + 64*k}, wk[k])
	}
	dw := ZMM()
	VCVTPH2PS(Mem{Base: w}, dw)
	for j := range n {
		// Two chains of four VPDPBUSD instead of one of eight: the
		// integer sums are exact, so adding the halves gives the same
		// bits, with half the latency in the way.
		// Independent chains of VPDPBUSD: the integer sums are exact, so
		// adding the chains gives the same bits with less latency in the
		// way. Four where the registers allow, else two.
		chains := 2
		if n <= 4 {
			chains = 4
		}
		part := make([]VecVirtual, chains)
		for i := range part {
			part[i] = ZMM()
		}
		t, d := part[0], ZMM()
		VPBROADCASTD(Mem{Base: xc, Disp: 4 * j}, t)
		for _, u := range part[1:] {
			VPXORD(u, u, u)
		}
		for k := range wk {
			VPDPBUSD_BCST(Mem{Base: xq, Disp: 32*j + 4*k}, wk[k], part[k%chains])
		}
		for len(part) > 1 {
			h := len(part) / 2
			for i := range h {
				VPADDD(part[i+h], part[i], part[i])
			}
			part = part[:h]
		}
		VCVTDQ2PS(t, t)
		VMULPS_BCST(Mem{Base: xd, Disp: 4 * j}, dw, d)
		VMULPS(d, t, t)
		VADDPS(t, acc[j], acc[j])
	}
	ADDQ(U32(r16Block), w)
	ADDQ(U32(32*n), xq)
	ADDQ(U32(4*n), xd)
	ADDQ(U32(4*n), xc)
	DECQ(nb)
	JMP(LabelRef(name + "_loop"))

	// Each vector's sixteen sums go to its own row of out, stride values
	// after the last: into the scratch of a compact layout, or straight
	// into a product's output rows.
	Label(name + "_done")
	out := Load(Param("out").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(U8(2), stride)
	for j := range n {
		if j > 0 {
			ADDQ(stride, out)
		}
		VMOVUPS(acc[j], Mem{Base: out})
	}
	VZEROUPPER()
	RET()
}

// Q4_K and Q8_K super-blocks (kernel's Q4_KBlockSize, Q8_KBlockSize): Q4_K
// holds d and dmin (f16) at 0 and 2, twelve bytes of 6-bit scales and mins
// at 4, and 128 bytes of nibbles at 16; Q8_K holds d (f32) at 0, 256 int8
// quants at 4 and sixteen int16 sums of 16 quants each at 260.
const (
	q4kBlock = 144
	q5kBlock = 176
	q8kBlock = 292
)

// q4kPerm reorders each 16-byte half of a 32-value run to positions 0, 8, 1,
// 9, …, 7, 15, so that VPMADDUBSW's adjacent pairs are positions k and k+8
// and the int16 sum in lane k of a half belongs to dotQ4_KGeneric's lane k.
var q4kPerm = sync.OnceValue(func() Mem {
	m := GLOBL("q4kPerm", RODATA|NOPTR)
	for half := 0; half < 2; half++ {
		for k := 0; k < 8; k++ {
			DATA(16*half+2*k, U8(k))
			DATA(16*half+2*k+1, U8(k+8))
		}
	}
	return m
})

// dotQ4_K writes dotQ4_KAVX2, the AVX2 form of dotQ4_KGeneric with its
// results bit for bit, one super-block per iteration:
//
//   - the eight 6-bit scales and mins are unpacked from their twelve bytes
//     with four 32-bit masks and shifts (ggml's utmp trick); the scales are
//     widened to int32 in a local, the mins to int16;
//   - the min term Σ bsums·m is exact (VPHADDW pairs the 16-value sums into
//     32-value sub-blocks, VPMADDWD and two VPHADDD sum them) and is
//     subtracted in float32 from a scalar, in the generic's order;
//   - the generic keeps eight int32 lanes, lane k summing positions ≡ k mod
//     8 of each 32-value run. Here each run's quants are permuted (q4kPerm)
//     so that VPMADDUBSW pairs positions k and k+8, and VPMADDWD by the
//     sub-block's scale interleaved with zeros keeps the even lanes k and,
//     by the scale shifted up a word, the odd ones, in two accumulators
//     that hold exactly the generic's lane sums once their halves are
//     added and interleaved;
//   - the lanes are converted, multiplied by x.d·d and added to eight
//     float32 lane sums, which are added to the scalar one by one at the
//     end, as the generic does.
//
// With five (Q5_K) it writes dotQ5_KAVX2, the same with each quant's fifth
// bit from the 32 bytes of qh at 16 (bit 2c of qh[l] for run c's low
// nibble at l, bit 2c+1 for its high one) and the nibbles at 48.
func dotQ4_K(bits int) {
	name, block, nibbles := "dotQ4_KAVX2", q4kBlock, 16
	if bits == 5 {
		name, block, nibbles = "dotQ5_KAVX2", q5kBlock, 48
	}
	TEXT(name, NOSPLIT, "func(w, x []byte, nBlocks int) float32")
	Doc(name+" is the AVX2 form of dot"+name[3:7]+"Generic.", fmt.Sprintf("w and x hold nBlocks·%d and nBlocks·292 bytes.", block))
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	scales := AllocLocal(32) // the 8 scales as int32

	sums, sumf := YMM(), XMM()
	VXORPS(sums, sums, sums)
	VXORPS(sumf, sumf, sumf)
	mask, perm := YMM(), YMM()
	r := GP32()
	MOVL(U32(0x0f0f0f0f), r)
	VMOVD(r, mask.AsX())
	VPBROADCASTD(mask.AsX(), mask)
	VMOVDQU(q4kPerm(), perm)

	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	prefetchW(Mem{Base: w})
	prefetchW(Mem{Base: w, Disp: 64})
	prefetchW(Mem{Base: w, Disp: 128})

	mins, _ := unpackKScales(w, scales, VMOVDQU)

	// d = float32(d_w·x.d) in lane 0, dmin = float32(dmin_w·x.d) in lane 1.
	dd, xd := XMM(), XMM()
	MOVL(Mem{Base: w}, r)
	VMOVD(r, dd)
	VCVTPH2PS(dd, dd)
	VBROADCASTSS(Mem{Base: x}, xd)
	VMULPS(xd, dd, dd)

	// The min term, exact: Σ_j m_j·(bsums[2j] + bsums[2j+1]); then
	// sumf -= float32(dmin·float32(summ)).
	VSUBSS(minTerm(Mem{Base: x, Disp: 260}, mins, dd), sumf, sumf)

	even, odd := YMM(), YMM()
	VPXOR(even, even, even)
	VPXOR(odd, odd, odd)
	for j := 0; j < 4; j++ {
		lo, hi := YMM(), YMM()
		VMOVDQU(Mem{Base: w, Disp: nibbles + 32*j}, lo)
		VPSRLW(Imm(4), lo, hi)
		VPAND(mask, lo, lo)
		VPAND(mask, hi, hi)
		if bits == 5 {
			for h, q := range []VecVirtual{lo, hi} {
				fifth := YMM()
				VMOVDQU(Mem{Base: w, Disp: 16}, fifth)
				if sh := 2*j + h; sh > 0 {
					VPSRLW(Imm(uint64(sh)), fifth, fifth)
				}
				VPAND(bytesConst(1), fifth, fifth)
				VPSLLW(Imm(4), fifth, fifth)
				VPOR(fifth, q, q)
			}
		}
		for h, q4 := range []VecVirtual{lo, hi} {
			q8, se, so := YMM(), YMM(), YMM()
			VPSHUFB(perm, q4, q4)
			VMOVDQU(Mem{Base: x, Disp: 4 + 64*j + 32*h}, q8)
			VPSHUFB(perm, q8, q8)
			VPMADDUBSW(q8, q4, q4) // u8 nibbles · s8 quants, pairs k and k+8
			VPBROADCASTD(scales.Offset(4*(2*j+h)), se)
			VPSLLD(Imm(16), se, so)
			VPMADDWD(se, q4, se) // even lanes · scale
			VPMADDWD(so, q4, so) // odd lanes · scale
			VPADDD(se, even, even)
			VPADDD(so, odd, odd)
		}
	}
	lanes := kLanes(even, odd)
	d := YMM()
	VBROADCASTSS(dd, d)
	VMULPS(d, lanes, lanes)
	VADDPS(lanes, sums, sums)

	ADDQ(I32(block), w)
	ADDQ(I32(q8kBlock), x)
	DECQ(nb)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	addLanesInOrder(sums, sumf)
	VZEROUPPER()
	Store(sumf, ReturnIndex(0))
	RET()
}

// minTerm returns, in lane 0, a Q4_K or Q5_K super-block's min term
// float32(dmin·float32(Σ_j m_j·(bsums[2j] + bsums[2j+1]))), the sum exact
// (VPHADDW pairs the 16-value sums into 32-value sub-blocks, VPMADDWD and
// two VPHADDD add them up): bsums are the activations' sixteen int16 sums,
// mins the eight mins as int16, dd has dmin in lane 1. mins is not
// changed.
func minTerm(bsums Mem, mins, dd VecVirtual) VecVirtual {
	bs, bsHi, m := YMM(), XMM(), XMM()
	VMOVDQU(bsums, bs)
	VEXTRACTI128(Imm(1), bs, bsHi)
	VPHADDW(bsHi, bs.AsX(), bsHi)
	VPMADDWD(bsHi, mins, m)
	VPHADDD(m, m, m)
	VPHADDD(m, m, m)
	VCVTDQ2PS(m, m)
	dmin := XMM()
	VMOVSHDUP(dd, dmin)
	VMULSS(dmin, m, m)
	return m
}

// doubleMins returns the eight int16 mins of mins each twice in a row,
// once per 16-value bsum of its sub-block (minTermEVEX).
func doubleMins(mins VecVirtual) VecVirtual {
	lo, hi, d := XMM(), XMM(), YMM()
	VPUNPCKLWD(mins, mins, lo)
	VPUNPCKHWD(mins, mins, hi)
	VINSERTI32X4(Imm(1), hi, lo.AsY(), d)
	return d
}

// minTermEVEX is minTerm with EVEX instructions only (VPHADDW has no EVEX
// form): the bsums meet the mins doubled (doubleMins) in one VPMADDWD and
// shuffles add up the eight dwords, the same exact integer.
func minTermEVEX(bsums Mem, minsDup, dd VecVirtual) VecVirtual {
	bs, p, m, t := YMM(), YMM(), XMM(), XMM()
	VMOVDQU64(bsums, bs)
	VPMADDWD(minsDup, bs, p)
	VEXTRACTI32X4(Imm(1), p, m)
	VPADDD(m, p.AsX(), m)
	VPSHUFD(Imm(0x4e), m, t)
	VPADDD(t, m, m)
	VPSHUFD(Imm(0xb1), m, t)
	VPADDD(t, m, m)
	VCVTDQ2PS(m, m)
	dmin := XMM()
	VMOVSHDUP(dd, dmin)
	VMULSS(dmin, m, m)
	return m
}

// unpackKScales unpacks the eight 6-bit scales and mins of the Q4_K or
// Q5_K super-block at w from their twelve bytes with four 32-bit masks and
// shifts (ggml's utmp trick). It returns the mins widened to int16 and the
// scales widened to int32, and stores the scales to scales too unless
// store is nil (the AVX2 kernels broadcast them from there; the VNNI ones
// spread them with VPERMD, since a load from the middle of a recent wide
// store is not always forwarded). The bytes go to vector registers whole
// (VMOVD, VPINSRD): storing them in pieces and reloading them together
// would stall store forwarding every super-block.
func unpackKScales(w Register, scales Mem, store func(Op, Op)) (mins, sc VecVirtual) {
	u0, u1, u2, t, s := GP32(), GP32(), GP32(), GP32(), GP32()
	MOVL(Mem{Base: w, Disp: 4}, u0)
	MOVL(Mem{Base: w, Disp: 8}, u1)
	MOVL(Mem{Base: w, Disp: 12}, u2)
	mb := XMM()
	// mins 0–3: u1 & 0x3f3f3f3f
	MOVL(u1, s)
	ANDL(U32(0x3f3f3f3f), s)
	VMOVD(s, mb)
	// mins 4–7: ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4)
	MOVL(u2, s)
	SHRL(Imm(4), s)
	ANDL(U32(0x0f0f0f0f), s)
	MOVL(u1, t)
	SHRL(Imm(6), t)
	ANDL(U32(0x03030303), t)
	SHLL(Imm(4), t)
	ORL(t, s)
	VPINSRD(Imm(1), s, mb, mb)
	// scales 4–7: (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4)
	ANDL(U32(0x0f0f0f0f), u2)
	MOVL(u0, t)
	SHRL(Imm(6), t)
	ANDL(U32(0x03030303), t)
	SHLL(Imm(4), t)
	ORL(t, u2)
	// scales 0–3: u0 & 0x3f3f3f3f
	ANDL(U32(0x3f3f3f3f), u0)
	sb := XMM()
	sc = YMM()
	VMOVD(u0, sb)
	VPINSRD(Imm(1), u2, sb, sb)
	VPMOVZXBD(sb, sc)
	if store != nil {
		store(sc, scales)
	}
	mins = XMM()
	VPMOVZXBW(mb, mins)
	return mins, sc
}

// q4kPermVNNI reorders each 32-byte half of a 64-byte vector so that dword
// l of the half holds positions l, l+8, l+16 and l+24: VPDPBUSD then sums
// in dword l exactly the positions dotQ4_KGeneric's lane l takes from a
// 32-value run.
var q4kPermVNNI = sync.OnceValue(func() Mem {
	m := GLOBL("q4kPermVNNI", RODATA|NOPTR)
	for half := 0; half < 2; half++ {
		for l := 0; l < 8; l++ {
			for k := 0; k < 4; k++ {
				DATA(32*half+4*l+k, U8(32*half+l+8*k))
			}
		}
	}
	return m
})

// quantsVNNI returns chunk c of a Q4_K (one nil) or Q5_K super-block's
// quants as one permuted (perm) vector: the 32 low nibbles of the nibble
// bytes at w+nibbles+32c (sub-block 2c), then the 32 high ones (2c+1),
// each with its fifth bit from the qh bytes at w+16 (bits 2c and 2c+1)
// when one (bytes of 1) is given. Only EVEX instructions.
func quantsVNNI(w Register, nibbles, c int, mask, one, perm VecVirtual) VecVirtual {
	lo, hi, q := YMM(), YMM(), ZMM()
	VMOVDQU64(Mem{Base: w, Disp: nibbles + 32*c}, lo)
	VPSRLW(Imm(4), lo, hi)
	VINSERTI64X4(Imm(1), hi, lo.AsZ(), q)
	VPANDD(mask, q, q)
	if one != nil {
		f, fh, fz := YMM(), YMM(), ZMM()
		VMOVDQU64(Mem{Base: w, Disp: 16}, f)
		if c > 0 {
			VPSRLW(Imm(uint64(2*c)), f, f)
		}
		VPSRLW(Imm(1), f, fh)
		VINSERTI64X4(Imm(1), fh, f.AsZ(), fz)
		VPANDD(one, fz, fz)
		VPSLLW(Imm(4), fz, fz)
		VPORD(fz, q, q)
	}
	VPERMB(q, perm, q)
	return q
}

// pairScaleIdx holds, for c = 0…3, the VPERMD index that spreads dword 2c
// of a vector over its low eight dwords and 2c+1 over its high eight.
var pairScaleIdx = sync.OnceValue(func() Mem {
	m := GLOBL("pairScaleIdx", RODATA|NOPTR)
	for c := 0; c < 4; c++ {
		for i := 0; i < 16; i++ {
			DATA(64*c+4*i, U32(2*c+i/8))
		}
	}
	return m
})

// dotQ4_KVNNI writes dotQ4_KVNNI (dotQ5_KVNNI with five bits), the AVX-512
// VNNI form of dotQ4_KGeneric with its results bit for bit, one super-block
// per iteration: the scales, mins and min term as dotQ4_K; then per 32-byte
// chunk of nibbles (sub-blocks 2c and 2c+1) one 64-byte vector of quants,
// low nibbles then high, next to the 64 activations of the same sub-blocks,
// both permuted (q4kPermVNNI) so that one VPDPBUSD gives each sub-block's
// eight lane sums; VPMULLD by the pair's two scales and a sum
// over the chunks and the two halves give the generic's eight int32 lanes,
// exact, and the float32 tail is dotQ4_K's.
func dotQ4_KVNNI(bits int) {
	name, block, nibbles := "dotQ4_KVNNI", q4kBlock, 16
	if bits == 5 {
		name, block, nibbles = "dotQ5_KVNNI", q5kBlock, 48
	}
	TEXT(name, NOSPLIT, "func(w, x []byte, nBlocks int) float32")
	Doc(name+" is the AVX-512 VNNI form of dot"+name[3:7]+"Generic.", fmt.Sprintf("w and x hold nBlocks·%d and nBlocks·292 bytes.", block))
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())

	sums, sumf := YMM(), XMM()
	VPXORD(sums, sums, sums)
	VPXORD(sumf, sumf, sumf)
	mask, perm := ZMM(), ZMM()
	r := GP32()
	MOVL(U32(0x0f0f0f0f), r)
	VPBROADCASTD(r, mask)
	VMOVDQU64(q4kPermVNNI(), perm)
	var idx [4]VecVirtual
	for c := range idx {
		idx[c] = ZMM()
		VMOVDQU32(pairScaleIdx().Offset(64*c), idx[c])
	}
	var one VecVirtual
	if bits == 5 {
		one = ZMM()
		MOVL(U32(0x01010101), r)
		VPBROADCASTD(r, one)
	}

	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	prefetchW(Mem{Base: w})
	prefetchW(Mem{Base: w, Disp: 64})
	prefetchW(Mem{Base: w, Disp: 128})
	mins, sc := unpackKScales(w, Mem{}, nil)

	// d = float32(d_w·x.d) in lane 0, dmin = float32(dmin_w·x.d) in lane 1.
	dd, xd := XMM(), XMM()
	MOVL(Mem{Base: w}, r)
	VMOVD(r, dd)
	VCVTPH2PS(dd, dd)
	VBROADCASTSS(Mem{Base: x}, xd)
	VMULPS(xd, dd, dd)

	// The min term, exact, as dotQ4_K's.
	VSUBSS(minTermEVEX(Mem{Base: x, Disp: 260}, doubleMins(mins), dd), sumf, sumf)

	total := ZMM()
	VPXORD(total, total, total)
	for c := 0; c < 4; c++ {
		q := quantsVNNI(w, nibbles, c, mask, one, perm)
		xq, acc := ZMM(), ZMM()
		VPERMB(Mem{Base: x, Disp: 4 + 64*c}, perm, xq)
		VPXORD(acc, acc, acc)
		VPDPBUSD(xq, q, acc) // u8 quants · s8 activations, lanes by sub-block
		s := ZMM()
		VPERMD(sc.AsZ(), idx[c], s)
		VPMULLD(s, acc, acc)
		VPADDD(acc, total, total)
	}
	lanes := YMM()
	VEXTRACTI64X4(Imm(1), total, lanes)
	VPADDD(total.AsY(), lanes, lanes)
	VCVTDQ2PS(lanes, lanes)
	d := YMM()
	VBROADCASTSS(dd, d)
	VMULPS(d, lanes, lanes)
	VADDPS(lanes, sums, sums)

	ADDQ(I32(block), w)
	ADDQ(I32(q8kBlock), x)
	DECQ(nb)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	addLanesInOrderEVEX(sums, sumf)
	VZEROUPPER()
	Store(sumf, ReturnIndex(0))
	RET()
}

// dotQ4_Kx4VNNI writes dotQ4_Kx4VNNI (dotQ5_Kx4VNNI with five bits): the
// four-row form of dotQ4_KVNNI, as dotQ4_Kx4 is of dotQ4_KAVX2: the
// scales, each chunk's permuted quants and its pair of scales are made once
// for the four rows, which each do the rest as dotQ4_KVNNI does. The min
// term pairs the bsums with the mins doubled (VPMADDWD) instead of VPHADDW,
// which has no EVEX form: the same exact integer. Every instruction has an
// EVEX form, so that any of the 32 vector registers may be given.
func dotQ4_Kx4VNNI(bits int) {
	name, block, nibbles := "dotQ4_Kx4VNNI", q4kBlock, 16
	if bits == 5 {
		name, block, nibbles = "dotQ5_Kx4VNNI", q5kBlock, 48
	}
	TEXT(name, NOSPLIT, "func(w, x []byte, xStride, nBlocks int, out *[4]float32)")
	Doc(name+" is the four-row form of dot"+name[3:7]+"VNNI: out[t] is the dot of w with the Q8_K row at x[t·xStride:].",
		fmt.Sprintf("w holds nBlocks·%d bytes, x 3·xStride + nBlocks·292.", block))
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	stride := Load(Param("xStride"), GP64())
	nb := Load(Param("nBlocks"), GP64())
	x2, row := fourRows(x, stride)
	sums := AllocLocal(4 * 32) // each row's eight float32 lane sums
	sumf := AllocLocal(4 * 4)  // each row's scalar sum

	zero := YMM()
	VPXORD(zero, zero, zero)
	for t := 0; t < 4; t++ {
		VMOVDQU64(zero, sums.Offset(32*t))
	}
	VMOVDQU64(zero.AsX(), sumf)
	mask, perm := ZMM(), ZMM()
	r := GP32()
	MOVL(U32(0x0f0f0f0f), r)
	VPBROADCASTD(r, mask)
	VMOVDQU64(q4kPermVNNI(), perm)
	var one VecVirtual
	if bits == 5 {
		one = ZMM()
		MOVL(U32(0x01010101), r)
		VPBROADCASTD(r, one)
	}

	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	prefetchW(Mem{Base: w})
	prefetchW(Mem{Base: w, Disp: 64})
	prefetchW(Mem{Base: w, Disp: 128})
	minsW, sc := unpackKScales(w, Mem{}, nil)
	minsDup := doubleMins(minsW)
	dw := XMM()
	MOVL(Mem{Base: w}, r)
	VMOVD(r, dw)
	VCVTPH2PS(dw, dw)

	var dd, total [4]VecVirtual
	for t := 0; t < 4; t++ {
		// d = float32(d_w·x.d) in lane 0, dmin = float32(dmin_w·x.d) in
		// lane 1; then the min term, exact, into the row's scalar sum.
		xd := XMM()
		dd[t] = XMM()
		VBROADCASTSS(row(t, 0), xd)
		VMULPS(xd, dw, dd[t])
		f := XMM()
		VMOVSS(sumf.Offset(4*t), f)
		VSUBSS(minTermEVEX(row(t, 260), minsDup, dd[t]), f, f)
		VMOVSS(f, sumf.Offset(4*t))
		total[t] = ZMM()
		VPXORD(total[t], total[t], total[t])
	}

	for c := 0; c < 4; c++ {
		q := quantsVNNI(w, nibbles, c, mask, one, perm)
		s := ZMM()
		VMOVDQU32(pairScaleIdx().Offset(64*c), s)
		VPERMD(sc.AsZ(), s, s)
		for t := 0; t < 4; t++ {
			xq, acc := ZMM(), ZMM()
			VPERMB(row(t, 4+64*c), perm, xq)
			VPXORD(acc, acc, acc)
			VPDPBUSD(xq, q, acc)
			VPMULLD(s, acc, acc)
			VPADDD(acc, total[t], total[t])
		}
	}
	for t := 0; t < 4; t++ {
		lanes, d := YMM(), YMM()
		VEXTRACTI64X4(Imm(1), total[t], lanes)
		VPADDD(total[t].AsY(), lanes, lanes)
		VCVTDQ2PS(lanes, lanes)
		VBROADCASTSS(dd[t], d)
		VMULPS(d, lanes, lanes)
		VADDPS(sums.Offset(32*t), lanes, lanes)
		VMOVUPS(lanes, sums.Offset(32*t))
	}

	ADDQ(I32(block), w)
	ADDQ(I32(q8kBlock), x)
	ADDQ(I32(q8kBlock), x2)
	DECQ(nb)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	out := Load(Param("out"), GP64())
	for t := 0; t < 4; t++ {
		acc, f := YMM(), XMM()
		VMOVUPS(sums.Offset(32*t), acc)
		VMOVSS(sumf.Offset(4*t), f)
		addLanesInOrderEVEX(acc, f)
		VMOVSS(f, Mem{Base: out, Disp: 4 * t})
	}
	VZEROUPPER()
	RET()
}

// fourRows addresses four rows of activations stride bytes apart from x:
// row(t, disp) is byte disp of row t, at x, x+stride, x2 or x2+stride,
// where x2 = x + 2·stride (a loop advances x2 with x).
func fourRows(x, stride Register) (GPVirtual, func(t, disp int) Mem) {
	x2 := GP64()
	LEAQ(Mem{Base: x, Index: stride, Scale: 2}, x2)
	return x2, func(t, disp int) Mem {
		base := Register(x)
		if t >= 2 {
			base = x2
		}
		if t%2 == 1 {
			return Mem{Base: base, Index: stride, Scale: 1, Disp: disp}
		}
		return Mem{Base: base, Disp: disp}
	}
}

// dotQ4_Kx4 writes dotQ4_Kx4AVX2 (dotQ5_Kx4AVX2 with five bits): one
// weight row against four rows of Q8_K activations, each result exactly
// dotQ4_KAVX2's (so dotQ4_KGeneric's) for that row. A super-block's scales
// are unpacked, and each 32-value run's quants put together and permuted,
// once for the four rows; each row then does what dotQ4_KAVX2 does with
// them, in the same order: its min term into its scalar sum, its even and
// odd lane accumulators, its float32 lane sums. The lane and scalar sums
// live in locals, so that the eight accumulators, the run's quants and
// scales and a row's quants fit in sixteen registers.
func dotQ4_Kx4(bits int) {
	name, block, nibbles := "dotQ4_Kx4AVX2", q4kBlock, 16
	if bits == 5 {
		name, block, nibbles = "dotQ5_Kx4AVX2", q5kBlock, 48
	}
	TEXT(name, NOSPLIT, "func(w, x []byte, xStride, nBlocks int, out *[4]float32)")
	Doc(name+" is the four-row form of dot"+name[3:7]+"AVX2: out[t] is the dot of w with the Q8_K row at x[t·xStride:].",
		fmt.Sprintf("w holds nBlocks·%d bytes, x 3·xStride + nBlocks·292.", block))
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	stride := Load(Param("xStride"), GP64())
	nb := Load(Param("nBlocks"), GP64())
	x2, row := fourRows(x, stride)
	scales := AllocLocal(32)   // the 8 scales as int32
	sums := AllocLocal(4 * 32) // each row's eight float32 lane sums
	sumf := AllocLocal(4 * 4)  // each row's scalar sum
	ds := AllocLocal(4 * 4)    // each row's float32(d_w·x.d) in this super-block

	zero := YMM()
	VXORPS(zero, zero, zero)
	for t := 0; t < 4; t++ {
		VMOVUPS(zero, sums.Offset(32*t))
	}
	VMOVUPS(zero.AsX(), sumf)

	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	prefetchW(Mem{Base: w})
	prefetchW(Mem{Base: w, Disp: 64})
	prefetchW(Mem{Base: w, Disp: 128})
	minsW, _ := unpackKScales(w, scales, VMOVDQU)

	r := GP32()
	for t := 0; t < 4; t++ {
		// d = float32(d_w·x.d) in lane 0, dmin = float32(dmin_w·x.d) in
		// lane 1; then the min term, exact, into the row's scalar sum.
		dd, xd := XMM(), XMM()
		MOVL(Mem{Base: w}, r)
		VMOVD(r, dd)
		VCVTPH2PS(dd, dd)
		VBROADCASTSS(row(t, 0), xd)
		VMULPS(xd, dd, dd)
		VMOVSS(dd, ds.Offset(4*t))
		f := XMM()
		VMOVSS(sumf.Offset(4*t), f)
		VSUBSS(minTerm(row(t, 260), minsW, dd), f, f)
		VMOVSS(f, sumf.Offset(4*t))
	}

	var even, odd [4]VecVirtual
	for t := range even {
		even[t], odd[t] = YMM(), YMM()
		VPXOR(even[t], even[t], even[t])
		VPXOR(odd[t], odd[t], odd[t])
	}
	for j := 0; j < 4; j++ {
		lo, hi := YMM(), YMM()
		VMOVDQU(Mem{Base: w, Disp: nibbles + 32*j}, lo)
		VPSRLW(Imm(4), lo, hi)
		VPAND(bytesConst(0x0f), lo, lo)
		VPAND(bytesConst(0x0f), hi, hi)
		if bits == 5 {
			for h, q := range []VecVirtual{lo, hi} {
				fifth := YMM()
				VMOVDQU(Mem{Base: w, Disp: 16}, fifth)
				if sh := 2*j + h; sh > 0 {
					VPSRLW(Imm(uint64(sh)), fifth, fifth)
				}
				VPAND(bytesConst(1), fifth, fifth)
				VPSLLW(Imm(4), fifth, fifth)
				VPOR(fifth, q, q)
			}
		}
		for h, q4 := range []VecVirtual{lo, hi} {
			se, so := YMM(), YMM()
			VPSHUFB(q4kPerm(), q4, q4)
			VPBROADCASTD(scales.Offset(4*(2*j+h)), se)
			VPSLLD(Imm(16), se, so)
			for t := 0; t < 4; t++ {
				q8, p := YMM(), YMM()
				VMOVDQU(row(t, 4+64*j+32*h), q8)
				VPSHUFB(q4kPerm(), q8, q8)
				VPMADDUBSW(q8, q4, q8) // u8 nibbles · s8 quants, pairs k and k+8
				VPMADDWD(se, q8, p)    // even lanes · scale
				VPADDD(p, even[t], even[t])
				VPMADDWD(so, q8, p) // odd lanes · scale
				VPADDD(p, odd[t], odd[t])
			}
		}
	}
	for t := 0; t < 4; t++ {
		lanes := kLanes(even[t], odd[t])
		d, acc := YMM(), YMM()
		VBROADCASTSS(ds.Offset(4*t), d)
		VMULPS(d, lanes, lanes)
		VMOVUPS(sums.Offset(32*t), acc)
		VADDPS(lanes, acc, acc)
		VMOVUPS(acc, sums.Offset(32*t))
	}

	ADDQ(I32(block), w)
	ADDQ(I32(q8kBlock), x)
	ADDQ(I32(q8kBlock), x2)
	DECQ(nb)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	out := Load(Param("out"), GP64())
	for t := 0; t < 4; t++ {
		acc, f := YMM(), XMM()
		VMOVUPS(sums.Offset(32*t), acc)
		VMOVSS(sumf.Offset(4*t), f)
		addLanesInOrder(acc, f)
		VMOVSS(f, Mem{Base: out, Disp: 4 * t})
	}
	VZEROUPPER()
	RET()
}

// q6kBlock is Q6_K's super-block size: 128 bytes of low nibbles at 0, 64 of
// high bit pairs at 128, 16 int8 scales at 192, d (f16) at 208.
const q6kBlock = 210

// bytesConsts holds the byte vectors bytesConst has declared.
var bytesConsts = map[byte]Mem{}

// bytesConst is a 32-byte read-only vector of one repeated byte, declared
// once per value however many kernels use it.
func bytesConst(b byte) Mem {
	if m, ok := bytesConsts[b]; ok {
		return m
	}
	m := GLOBL(fmt.Sprintf("bytes%02x", b), RODATA|NOPTR)
	for i := 0; i < 32; i++ {
		DATA(i, U8(b))
	}
	bytesConsts[b] = m
	return m
}

// kLanes turns the even and odd int32 accumulators of dotQ4_K and dotQ6_K
// into the generic's eight lane sums, as float32 (exact: each is below 2²⁴):
// lane k is the two 128-bit halves' lane k/2 of even (k even) or odd. Every
// instruction writes its whole register, so that no result reads as live
// before the loop that makes it (which would cost a register per call in
// dotQ4_Kx4).
func kLanes(even, odd VecVirtual) VecVirtual {
	lo, hi := YMM(), YMM()
	VPUNPCKLDQ(odd, even, lo) // e0 o0 e1 o1 | e4 o4 e5 o5
	VPUNPCKHDQ(odd, even, hi) // e2 o2 e3 o3 | e6 o6 e7 o7
	lanes, upper := YMM(), YMM()
	VPERM2I128(Imm(0x20), hi, lo, lanes) // e0 o0 e1 o1 e2 o2 e3 o3
	VPERM2I128(Imm(0x31), hi, lo, upper) // e4 o4 e5 o5 e6 o6 e7 o7
	VPADDD(upper, lanes, lanes)
	VCVTDQ2PS(lanes, lanes)
	return lanes
}

// addLanesInOrder does sumf += sums[0]; …; sumf += sums[7], one lane at a
// time, as the generic twins end.
func addLanesInOrder(sums, sumf VecVirtual) {
	hiSums := XMM()
	VEXTRACTF128(Imm(1), sums, hiSums)
	addHalvesInOrder(sums, hiSums, sumf)
}

// addLanesInOrderEVEX is addLanesInOrder with EVEX instructions only.
func addLanesInOrderEVEX(sums, sumf VecVirtual) {
	hiSums := XMM()
	VEXTRACTF32X4(Imm(1), sums, hiSums)
	addHalvesInOrder(sums, hiSums, sumf)
}

// addHalvesInOrder adds the four lanes of sums's low half, then those of
// hiSums, to sumf one at a time.
func addHalvesInOrder(sums, hiSums, sumf VecVirtual) {
	for _, half := range []Op{sums.AsX(), hiSums} {
		for k := 0; k < 4; k++ {
			v := XMM()
			VPERMILPS(Imm(uint64(k)), half, v)
			VADDSS(v, sumf, sumf)
		}
	}
}

// q6kPairIdx holds, for g = 0…3, the VPERMD index that spreads dword 2g
// of 32 bytes over the low four dwords of a 256-bit vector and 2g+1 over
// the high four.
var q6kPairIdx = sync.OnceValue(func() Mem {
	m := GLOBL("q6kPairIdx", RODATA|NOPTR)
	for g := 0; g < 4; g++ {
		for i := 0; i < 8; i++ {
			DATA(32*g+4*i, U32(2*g+i/4))
		}
	}
	return m
})

// dotQ6_K writes dotQ6_KAVX2, the AVX2 form of dotQ6_KGeneric with its
// results bit for bit, in the manner of dotQ4_K: per half super-block the
// four 32-value groups of 6-bit quants are put together from their low
// nibbles and high bit pairs, permuted with their activations (q4kPerm) so
// that VPMADDUBSW pairs the generic's lane positions k and k+8, and the
// offset of 32 is taken off exactly as 32·Σq8 (a second VPMADDUBSW). Each
// 16-value sub-block has its own signed scale, so a group's scale vector
// holds one scale in its low 128 bits and the next in its high 128.
func dotQ6_K() {
	name := "dotQ6_KAVX2"
	TEXT(name, NOSPLIT, "func(w, x []byte, nBlocks int) float32")
	Doc(name+" is the AVX2 form of dotQ6_KGeneric.", "w and x hold nBlocks·210 and nBlocks·292 bytes.")
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	scales := AllocLocal(64) // the 16 scales as int16, each zero-extended to a dword
	low4 := bytesConst(0x0f)
	low2 := bytesConst(0x03)
	m32 := bytesConst(32)

	sums := YMM()
	VXORPS(sums, sums, sums)
	perm := YMM()
	VMOVDQU(q4kPerm(), perm)

	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	prefetchW(Mem{Base: w})
	prefetchW(Mem{Base: w, Disp: 64})
	prefetchW(Mem{Base: w, Disp: 128})
	prefetchW(Mem{Base: w, Disp: 192})

	for k := 0; k < 2; k++ {
		sw, sd := XMM(), YMM()
		VPMOVSXBW(Mem{Base: w, Disp: 192 + 8*k}, sw)
		VPMOVZXWD(sw, sd)
		VMOVDQU(sd, scales.Offset(32*k))
	}

	even, odd := YMM(), YMM()
	VPXOR(even, even, even)
	VPXOR(odd, odd, odd)
	for n := 0; n < 2; n++ {
		for g := 0; g < 4; g++ {
			// a = low nibble (g even) or high nibble (g odd) of ql[32·(g&1)…],
			// ORed with bits 2g…2g+1 of qh, shifted to bits 4–5.
			a, h := YMM(), YMM()
			VMOVDQU(Mem{Base: w, Disp: 64*n + 32*(g&1)}, a)
			if g >= 2 {
				VPSRLW(Imm(4), a, a)
			}
			VPAND(low4, a, a)
			VMOVDQU(Mem{Base: w, Disp: 128 + 32*n}, h)
			if g > 0 {
				VPSRLW(Imm(uint64(2*g)), h, h)
			}
			VPAND(low2, h, h)
			VPSLLW(Imm(4), h, h)
			VPOR(h, a, a)

			q8, p, m := YMM(), YMM(), YMM()
			VPSHUFB(perm, a, a)
			VMOVDQU(Mem{Base: x, Disp: 4 + 128*n + 32*g}, q8)
			VPSHUFB(perm, q8, q8)
			VPMADDUBSW(q8, a, p) // q·q8, pairs k and k+8
			VMOVDQU(m32, m)
			VPMADDUBSW(q8, m, m) // 32·q8, the same pairs
			VPSUBW(m, p, p)      // (q−32)·q8, exact

			// generic: sc[is] for positions 0–15, sc[is+1] for 16–31, is =
			// 8n+2g, spread from the whole 32 bytes of scales stored (a
			// load the store forwards) rather than loaded 4 bytes at a time.
			se, so := YMM(), YMM()
			VMOVDQU(q6kPairIdx().Offset(32*g), se)
			VPERMD(scales.Offset(32*n), se, se)
			VPSLLD(Imm(16), se, so)
			VPMADDWD(se, p, se)
			VPMADDWD(so, p, so)
			VPADDD(se, even, even)
			VPADDD(so, odd, odd)
		}
	}
	lanes := kLanes(even, odd)

	// d = float32(d_w·x.d)
	r := GP32()
	dd, d := XMM(), YMM()
	MOVWLZX(Mem{Base: w, Disp: 208}, r)
	VMOVD(r, dd)
	VCVTPH2PS(dd, dd)
	VMULSS(Mem{Base: x}, dd, dd)
	VBROADCASTSS(dd, d)
	VMULPS(d, lanes, lanes)
	VADDPS(lanes, sums, sums)

	ADDQ(I32(q6kBlock), w)
	ADDQ(I32(q8kBlock), x)
	DECQ(nb)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	sumf := XMM()
	VXORPS(sumf, sumf, sumf)
	addLanesInOrder(sums, sumf)
	VZEROUPPER()
	Store(sumf, ReturnIndex(0))
	RET()
}

// dotQ6_Kx4 writes dotQ6_Kx4AVX2, dotQ6_KAVX2 for four rows of
// activations as dotQ4_Kx4 is for Q4_K: each 32-value group's quants and
// scale vectors are put together once, and each row does with them what
// dotQ6_KAVX2 does, so that its result has that kernel's bits.
func dotQ6_Kx4() {
	name := "dotQ6_Kx4AVX2"
	TEXT(name, NOSPLIT, "func(w, x []byte, xStride, nBlocks int, out *[4]float32)")
	Doc(name+" is the four-row form of dotQ6_KAVX2: out[t] is the dot of w with the Q8_K row at x[t·xStride:].",
		"w holds nBlocks·210 bytes, x 3·xStride + nBlocks·292.")
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	stride := Load(Param("xStride"), GP64())
	nb := Load(Param("nBlocks"), GP64())
	x2, row := fourRows(x, stride)
	scales := AllocLocal(64)   // the 16 scales as int16, each zero-extended to a dword
	sums := AllocLocal(4 * 32) // each row's eight float32 lane sums
	low4 := bytesConst(0x0f)
	low2 := bytesConst(0x03)

	zero := YMM()
	VXORPS(zero, zero, zero)
	for t := 0; t < 4; t++ {
		VMOVUPS(zero, sums.Offset(32*t))
	}

	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	prefetchW(Mem{Base: w})
	prefetchW(Mem{Base: w, Disp: 64})
	prefetchW(Mem{Base: w, Disp: 128})
	prefetchW(Mem{Base: w, Disp: 192})

	for k := 0; k < 2; k++ {
		sw, sd := XMM(), YMM()
		VPMOVSXBW(Mem{Base: w, Disp: 192 + 8*k}, sw)
		VPMOVZXWD(sw, sd)
		VMOVDQU(sd, scales.Offset(32*k))
	}

	var even, odd [4]VecVirtual
	for t := range even {
		even[t], odd[t] = YMM(), YMM()
		VPXOR(even[t], even[t], even[t])
		VPXOR(odd[t], odd[t], odd[t])
	}
	m32 := YMM()
	VMOVDQU(bytesConst(32), m32)
	for n := 0; n < 2; n++ {
		for g := 0; g < 4; g++ {
			a, h := YMM(), YMM()
			VMOVDQU(Mem{Base: w, Disp: 64*n + 32*(g&1)}, a)
			if g >= 2 {
				VPSRLW(Imm(4), a, a)
			}
			VPAND(low4, a, a)
			VMOVDQU(Mem{Base: w, Disp: 128 + 32*n}, h)
			if g > 0 {
				VPSRLW(Imm(uint64(2*g)), h, h)
			}
			VPAND(low2, h, h)
			VPSLLW(Imm(4), h, h)
			VPOR(h, a, a)
			VPSHUFB(q4kPerm(), a, a)

			se, hiScale, so := YMM(), XMM(), YMM()
			is := 8*n + 2*g
			VPBROADCASTD(scales.Offset(4*is), se)
			VPBROADCASTD(scales.Offset(4*(is+1)), hiScale)
			VINSERTI128(Imm(1), hiScale, se, se)
			VPSLLD(Imm(16), se, so)
			for t := 0; t < 4; t++ {
				q8, p, m := YMM(), YMM(), YMM()
				VMOVDQU(row(t, 4+128*n+32*g), q8)
				VPSHUFB(q4kPerm(), q8, q8)
				VPMADDUBSW(q8, a, p)   // q·q8, pairs k and k+8
				VPMADDUBSW(q8, m32, m) // 32·q8, the same pairs
				VPSUBW(m, p, p)        // (q−32)·q8, exact
				VPMADDWD(se, p, m)
				VPADDD(m, even[t], even[t])
				VPMADDWD(so, p, m)
				VPADDD(m, odd[t], odd[t])
			}
		}
	}
	r := GP32()
	for t := 0; t < 4; t++ {
		lanes := kLanes(even[t], odd[t])
		// d = float32(d_w·x.d)
		dd, d, acc := XMM(), YMM(), YMM()
		MOVWLZX(Mem{Base: w, Disp: 208}, r)
		VMOVD(r, dd)
		VCVTPH2PS(dd, dd)
		VMULSS(row(t, 0), dd, dd)
		VBROADCASTSS(dd, d)
		VMULPS(d, lanes, lanes)
		VMOVUPS(sums.Offset(32*t), acc)
		VADDPS(lanes, acc, acc)
		VMOVUPS(acc, sums.Offset(32*t))
	}

	ADDQ(I32(q6kBlock), w)
	ADDQ(I32(q8kBlock), x)
	ADDQ(I32(q8kBlock), x2)
	DECQ(nb)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	out := Load(Param("out"), GP64())
	for t := 0; t < 4; t++ {
		acc, f := YMM(), XMM()
		VMOVUPS(sums.Offset(32*t), acc)
		VXORPS(f, f, f)
		addLanesInOrder(acc, f)
		VMOVSS(f, Mem{Base: out, Disp: 4 * t})
	}
	VZEROUPPER()
	RET()
}

// q6kScaleIdx holds, for j = 0…3, the VPERMD index that spreads dwords
// 4j…4j+3 of a vector over its four 128-bit lanes, one a lane.
var q6kScaleIdx = sync.OnceValue(func() Mem {
	m := GLOBL("q6kScaleIdx", RODATA|NOPTR)
	for j := 0; j < 4; j++ {
		for i := 0; i < 16; i++ {
			DATA(64*j+4*i, U32(4*j+i/4))
		}
	}
	return m
})

// dotQ6_KVNNI writes dotQ6_KVNNI, dotQ6_KAVX2 on 512-bit vectors (AVX-512
// BW; named for the set that uses it): two 32-value groups a vector, so
// half the instructions. Each 128-bit lane holds one 16-value sub-block, so
// a vector's scale vector has four scales, one a lane (q6kScaleIdx); the
// even and odd lane sums of its four lanes add up to the generic's eight
// int32 lanes exactly as dotQ6_KAVX2's two do, and the float32 tail is
// that kernel's. Only EVEX instructions.
func dotQ6_KVNNI() {
	name := "dotQ6_KVNNI"
	TEXT(name, NOSPLIT, "func(w, x []byte, nBlocks int) float32")
	Doc(name+" is the AVX-512 form of dotQ6_KGeneric.", "w and x hold nBlocks·210 and nBlocks·292 bytes.")
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	sums, sumf := YMM(), XMM()
	VPXORD(sums, sums, sums)
	VPXORD(sumf, sumf, sumf)
	low4, low2, m32, perm, idx := q6kConstsVNNI()
	r := GP32()

	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	prefetchW(Mem{Base: w})
	prefetchW(Mem{Base: w, Disp: 64})
	prefetchW(Mem{Base: w, Disp: 128})
	prefetchW(Mem{Base: w, Disp: 192})

	// The 16 scales as int16, each zero-extended to a dword.
	sw, sd := YMM(), ZMM()
	VPMOVSXBW(Mem{Base: w, Disp: 192}, sw)
	VPMOVZXWD(sw, sd)

	even, odd := ZMM(), ZMM()
	VPXORD(even, even, even)
	VPXORD(odd, odd, odd)
	for n := 0; n < 2; n++ {
		for g := 0; g < 4; g += 2 {
			// Groups g and g+1: the low (g = 0) or high (g = 2) nibbles of
			// the 64 bytes of ql at 64n, ORed with bits 2g…2g+1 (2g+2…2g+3
			// for g+1) of the 32 bytes of qh at 128+32n, shifted to bits 4–5.
			a := q6kPairVNNI(w, n, g, low4, low2, perm)

			q8, p, m := ZMM(), ZMM(), ZMM()
			VMOVDQU64(Mem{Base: x, Disp: 4 + 128*n + 32*g}, q8)
			VPSHUFB(perm, q8, q8)
			VPMADDUBSW(q8, a, p)   // q·q8, pairs k and k+8
			VPMADDUBSW(q8, m32, m) // 32·q8, the same pairs
			VPSUBW(m, p, p)        // (q−32)·q8, exact

			// Scales 8n+2g … 8n+2g+3, one a 128-bit lane.
			se, so := ZMM(), ZMM()
			VPERMD(sd, idx[(8*n+2*g)/4], se)
			VPSLLD(Imm(16), se, so)
			VPMADDWD(se, p, se)
			VPMADDWD(so, p, so)
			VPADDD(se, even, even)
			VPADDD(so, odd, odd)
		}
	}
	lanes := kLanesVNNI(even, odd)

	// d = float32(d_w·x.d)
	dd, d := XMM(), YMM()
	MOVWLZX(Mem{Base: w, Disp: 208}, r)
	VMOVD(r, dd)
	VCVTPH2PS(dd, dd)
	VMULSS(Mem{Base: x}, dd, dd)
	VBROADCASTSS(dd, d)
	VMULPS(d, lanes, lanes)
	VADDPS(lanes, sums, sums)

	ADDQ(I32(q6kBlock), w)
	ADDQ(I32(q8kBlock), x)
	DECQ(nb)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	addLanesInOrderEVEX(sums, sumf)
	VZEROUPPER()
	Store(sumf, ReturnIndex(0))
	RET()
}

// q6kPairVNNI returns Q6_K groups g and g+1 (g = 0 or 2) of half n of the
// super-block at w as one vector of 6-bit quants, permuted by perm within
// each 128-bit lane as q4kPerm: the low (g = 0) or high (g = 2) nibbles of
// the 64 bytes of ql at 64n, ORed with bits 2g…2g+1 (2g+2…2g+3 for g+1) of
// the 32 bytes of qh at 128+32n, shifted to bits 4–5.
func q6kPairVNNI(w Register, n, g int, low4, low2, perm VecVirtual) VecVirtual {
	a, hl, hh, h := ZMM(), YMM(), YMM(), ZMM()
	VMOVDQU64(Mem{Base: w, Disp: 64 * n}, a)
	if g == 2 {
		VPSRLW(Imm(4), a, a)
	}
	VPANDD(low4, a, a)
	VMOVDQU64(Mem{Base: w, Disp: 128 + 32*n}, hl)
	VPSRLW(Imm(uint64(2*g+2)), hl, hh)
	if g > 0 {
		VPSRLW(Imm(uint64(2*g)), hl, hl)
	}
	VINSERTI64X4(Imm(1), hh, hl.AsZ(), h)
	VPANDD(low2, h, h)
	VPSLLW(Imm(4), h, h)
	VPORD(h, a, a)
	VPSHUFB(perm, a, a)
	return a
}

// kLanesVNNI is kLanes for 512-bit even and odd accumulators whose four
// 128-bit lanes all hold lane sums (dotQ6_KVNNI): it adds the upper 256
// bits to the lower, then interleaves as kLanes does, with EVEX
// instructions only.
func kLanesVNNI(even, odd VecVirtual) VecVirtual {
	e, o := YMM(), YMM()
	VEXTRACTI64X4(Imm(1), even, e)
	VPADDD(even.AsY(), e, e)
	VEXTRACTI64X4(Imm(1), odd, o)
	VPADDD(odd.AsY(), o, o)
	lo, hi := YMM(), YMM()
	VPUNPCKLDQ(o, e, lo) // e0 o0 e1 o1 | e4 o4 e5 o5
	VPUNPCKHDQ(o, e, hi) // e2 o2 e3 o3 | e6 o6 e7 o7
	lanes, upper := YMM(), YMM()
	VSHUFI32X4(Imm(0b00), hi, lo, lanes) // e0 o0 e1 o1 e2 o2 e3 o3
	VSHUFI32X4(Imm(0b11), hi, lo, upper) // e4 o4 e5 o5 e6 o6 e7 o7
	VPADDD(upper, lanes, lanes)
	VCVTDQ2PS(lanes, lanes)
	return lanes
}

// q6kConstsVNNI loads dotQ6_KVNNI's constants: bytes of 0x0f, 0x03 and 32,
// q4kPerm in every 128-bit lane, and the four q6kScaleIdx indexes.
func q6kConstsVNNI() (low4, low2, m32, perm VecVirtual, idx [4]VecVirtual) {
	low4, low2, m32, perm = ZMM(), ZMM(), ZMM(), ZMM()
	r := GP32()
	for _, c := range []struct {
		v   VecVirtual
		val uint32
	}{{low4, 0x0f0f0f0f}, {low2, 0x03030303}, {m32, 0x20202020}} {
		MOVL(U32(c.val), r)
		VPBROADCASTD(r, c.v)
	}
	VBROADCASTI32X4(q4kPerm(), perm)
	for j := range idx {
		idx[j] = ZMM()
		VMOVDQU32(q6kScaleIdx().Offset(64*j), idx[j])
	}
	return
}

// dotQ6_Kx4VNNI writes dotQ6_Kx4VNNI, dotQ6_KVNNI for four rows of
// activations as dotQ6_Kx4 is dotQ6_KAVX2 for four: each pair of groups'
// quants and scales are put together once, and each row does the rest as
// dotQ6_KVNNI does, for its bits.
func dotQ6_Kx4VNNI() {
	name := "dotQ6_Kx4VNNI"
	TEXT(name, NOSPLIT, "func(w, x []byte, xStride, nBlocks int, out *[4]float32)")
	Doc(name+" is the four-row form of dotQ6_KVNNI: out[t] is the dot of w with the Q8_K row at x[t·xStride:].",
		"w holds nBlocks·210 bytes, x 3·xStride + nBlocks·292.")
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	stride := Load(Param("xStride"), GP64())
	nb := Load(Param("nBlocks"), GP64())
	x2, row := fourRows(x, stride)
	sums := AllocLocal(4 * 32) // each row's eight float32 lane sums

	zero := YMM()
	VPXORD(zero, zero, zero)
	for t := 0; t < 4; t++ {
		VMOVDQU64(zero, sums.Offset(32*t))
	}
	low4, low2, m32, perm, idx := q6kConstsVNNI()

	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	prefetchW(Mem{Base: w})
	prefetchW(Mem{Base: w, Disp: 64})
	prefetchW(Mem{Base: w, Disp: 128})
	prefetchW(Mem{Base: w, Disp: 192})

	sw, sd := YMM(), ZMM()
	VPMOVSXBW(Mem{Base: w, Disp: 192}, sw)
	VPMOVZXWD(sw, sd)

	var even, odd [4]VecVirtual
	for t := range even {
		even[t], odd[t] = ZMM(), ZMM()
		VPXORD(even[t], even[t], even[t])
		VPXORD(odd[t], odd[t], odd[t])
	}
	for n := 0; n < 2; n++ {
		for g := 0; g < 4; g += 2 {
			a := q6kPairVNNI(w, n, g, low4, low2, perm)
			se, so := ZMM(), ZMM()
			VPERMD(sd, idx[(8*n+2*g)/4], se)
			VPSLLD(Imm(16), se, so)
			for t := 0; t < 4; t++ {
				q8, p, m := ZMM(), ZMM(), ZMM()
				VMOVDQU64(row(t, 4+128*n+32*g), q8)
				VPSHUFB(perm, q8, q8)
				VPMADDUBSW(q8, a, p)   // q·q8, pairs k and k+8
				VPMADDUBSW(q8, m32, m) // 32·q8, the same pairs
				VPSUBW(m, p, p)        // (q−32)·q8, exact
				VPMADDWD(se, p, m)
				VPADDD(m, even[t], even[t])
				VPMADDWD(so, p, m)
				VPADDD(m, odd[t], odd[t])
			}
		}
	}
	r := GP32()
	for t := 0; t < 4; t++ {
		lanes := kLanesVNNI(even[t], odd[t])
		dd, d := XMM(), YMM()
		MOVWLZX(Mem{Base: w, Disp: 208}, r)
		VMOVD(r, dd)
		VCVTPH2PS(dd, dd)
		VMULSS(row(t, 0), dd, dd)
		VBROADCASTSS(dd, d)
		VMULPS(d, lanes, lanes)
		VADDPS(sums.Offset(32*t), lanes, lanes)
		VMOVUPS(lanes, sums.Offset(32*t))
	}

	ADDQ(I32(q6kBlock), w)
	ADDQ(I32(q8kBlock), x)
	ADDQ(I32(q8kBlock), x2)
	DECQ(nb)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	out := Load(Param("out"), GP64())
	for t := 0; t < 4; t++ {
		acc, f := YMM(), XMM()
		VMOVUPS(sums.Offset(32*t), acc)
		VPXORD(f, f, f)
		addLanesInOrderEVEX(acc, f)
		VMOVSS(f, Mem{Base: out, Disp: 4 * t})
	}
	VZEROUPPER()
	RET()
}

// q32Format is one of ggml's 32-value block formats for dotQ32.
type q32Format struct {
	name         string
	wBlock       int  // bytes per weight block
	xBlock       int  // bytes per activation block (Q8_0 34, Q8_1 36)
	hasMin       bool // Q4_1, Q5_1: m at 2, and Q8_1's s at 2 of x
	qh           int  // offset of the 32 fifth bits, or 0 for none
	qs           int  // offset of the 16 bytes of nibbles
	offset       byte // subtracted from each quant (8, 16), or 0
	xq           int  // offset of x's quants
	scaleFirstDw bool // Q4_0's float order: (sumi·d_w)·d_x
}

var q32Formats = []q32Format{
	{name: "Q4_0", wBlock: 18, xBlock: 34, qs: 2, offset: 8, xq: 2, scaleFirstDw: true},
	{name: "Q4_1", wBlock: 20, xBlock: 36, hasMin: true, qs: 4, xq: 4},
	{name: "Q5_0", wBlock: 22, xBlock: 34, qh: 2, qs: 6, offset: 16, xq: 2},
	{name: "Q5_1", wBlock: 24, xBlock: 36, hasMin: true, qh: 4, qs: 8, xq: 4},
}

// q32Consts are the constants of dotQ32: the nibble mask, the shuffle that
// spreads qh's four bytes eight times each, and the bit of each byte.
var q32Consts = sync.OnceValues(func() (spread, bit Mem) {
	spread = GLOBL("q32Spread", RODATA|NOPTR)
	for i := 0; i < 32; i++ {
		DATA(i, U8(i/8))
	}
	bit = GLOBL("q32Bit", RODATA|NOPTR)
	for i := 0; i < 32; i++ {
		DATA(i, U8(1<<(i%8)))
	}
	return spread, bit
})

// dotQ32 writes dot<Q>AVX2 for a 32-value format, bit for bit its generic
// twin: each block's integer sum is taken exactly in SIMD — the 32 quants
// (low nibbles, then high ones, each ORed with its fifth bit from qh, spread
// to bytes with a shuffle, a bit mask and a compare) times x's quants by
// VPMADDUBSW, less offset·Σq8 by a second one, then VPMADDWD by ones and a
// horizontal sum — and the float part is the generic's scalar chain, in its
// order, one block after another.
func dotQ32(f q32Format) {
	name := "dot" + f.name + "AVX2"
	TEXT(name, NOSPLIT, "func(w, x []byte, nBlocks int) float32")
	Doc(name+" is the AVX2 form of dot"+f.name+"Generic.",
		fmt.Sprintf("w and x hold nBlocks·%d and nBlocks·%d bytes.", f.wBlock, f.xBlock))
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	low4 := bytesConst(0x0f)
	var spread, bitm, fifth, off Mem
	if f.qh != 0 {
		spread, bitm = q32Consts()
		fifth = bytesConst(0x10)
	}
	if f.offset != 0 {
		off = bytesConst(f.offset)
	}
	ones := YMM()
	r := GP32()
	MOVL(U32(0x00010001), r)
	VMOVD(r, ones.AsX())
	VPBROADCASTD(ones.AsX(), ones)

	sumf := XMM()
	VXORPS(sumf, sumf, sumf)
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	prefetchW(Mem{Base: w})

	// The 32 quants: low nibbles in the low 128 bits, high ones above.
	lo, hi, q := XMM(), XMM(), YMM()
	VMOVDQU(Mem{Base: w, Disp: f.qs}, lo)
	VPSRLW(Imm(4), lo, hi)
	VINSERTI128(Imm(1), hi, lo.AsY(), q)
	VPAND(low4, q, q)
	if f.qh != 0 {
		h := YMM()
		VPBROADCASTD(Mem{Base: w, Disp: f.qh}, h)
		VPSHUFB(spread, h, h)
		VPAND(bitm, h, h)
		VPCMPEQB(bitm, h, h) // 0xff where the bit is set
		VPAND(fifth, h, h)   // 16 there
		VPOR(h, q, q)
	}
	q8, p := YMM(), YMM()
	VMOVDQU(Mem{Base: x, Disp: f.xq}, q8)
	VPMADDUBSW(q8, q, p)
	if f.offset != 0 {
		m := YMM()
		VMOVDQU(off, m)
		VPMADDUBSW(q8, m, m)
		VPSUBW(m, p, p)
	}
	VPMADDWD(ones, p, p)
	ph := XMM()
	VEXTRACTI128(Imm(1), p, ph)
	VPADDD(ph, p.AsX(), ph)
	VPHADDD(ph, ph, ph)
	VPHADDD(ph, ph, ph)
	VCVTDQ2PS(ph, ph) // float32(sumi), exact

	// The scales: d_w, d_x (and m_w, s_x) as float32.
	sc := XMM()
	r2 := GP32()
	MOVWLZX(Mem{Base: w}, r2)
	VMOVD(r2, sc)
	VPINSRW(Imm(1), Mem{Base: x}, sc, sc)
	if f.hasMin {
		VPINSRW(Imm(2), Mem{Base: w, Disp: 2}, sc, sc)
		VPINSRW(Imm(3), Mem{Base: x, Disp: 2}, sc, sc)
	}
	VCVTPH2PS(sc, sc) // d_w, d_x, m_w, s_x
	dx := XMM()
	VMOVSHDUP(sc, dx)
	if f.scaleFirstDw {
		VMULSS(sc, ph, ph) // float32(sumi)·d_w
		VMULSS(dx, ph, ph) // ·d_x
		VADDSS(ph, sumf, sumf)
	} else {
		dd := XMM()
		VMULSS(dx, sc, dd) // d_w·d_x
		VMULSS(dd, ph, ph) // ·float32(sumi)
		if f.hasMin {
			ms, sx := XMM(), XMM()
			VMOVHLPS(sc, sc, ms) // m_w, s_x
			VMOVSHDUP(ms, sx)
			VMULSS(sx, ms, ms)
			VADDSS(ms, ph, ph)
		}
		VADDSS(ph, sumf, sumf)
	}

	ADDQ(I32(f.wBlock), w)
	ADDQ(I32(f.xBlock), x)
	DECQ(nb)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	VZEROUPPER()
	Store(sumf, ReturnIndex(0))
	RET()
}

// packQ8_0R16 writes packQ8_0R16AVX2, the AVX2 form of packQ8_0R16Generic
// (Q8_0R16In.Pack's loop): per block and vector, the f16 scale widened by
// VCVTPH2PS (F16ToF32's values, NaNs quieted alike), the 32 quants copied,
// and −128·Σquants from VPSADBW over the quants with their sign bits
// flipped (each byte its value plus 128, so the sum is Σ + 4096).
func packQ8_0R16() {
	name := "packQ8_0R16AVX2"
	TEXT(name, NOSPLIT, "func(xs [][]byte, nBlocks int, q []byte, d []float32, c []int32)")
	Pragma("noescape") // it keeps no pointer: the vectors' list may stay on the caller's stack
	Doc(name+" is the AVX2 form of packQ8_0R16Generic.",
		"Every xs[j] holds nBlocks Q8_0 blocks; q, d and c hold nBlocks·len(xs) blocks' worth.")
	xs := Load(Param("xs").Base(), GP64())
	n := Load(Param("xs").Len(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	q := Load(Param("q").Base(), GP64())
	d := Load(Param("d").Base(), GP64())
	c := Load(Param("c").Base(), GP64())
	flip, zero := YMM(), YMM()
	t32 := GP32()
	MOVL(U32(0x80808080), t32)
	VMOVD(t32, flip.AsX())
	VPBROADCASTD(flip.AsX(), flip)
	VPXOR(zero, zero, zero)
	off, j, p, src, s := GP64(), GP64(), GP64(), GP64(), GP64()
	XORQ(off, off)

	Label(name + "_block")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	XORQ(j, j)
	MOVQ(xs, p)
	Label(name + "_vec")
	CMPQ(j, n)
	JAE(LabelRef(name + "_next"))
	MOVQ(Mem{Base: p}, src)
	ADDQ(off, src)
	h, v, hi, t := XMM(), YMM(), XMM(), XMM()
	MOVWLZX(Mem{Base: src}, t32)
	VMOVD(t32, h)
	VCVTPH2PS(h, h)
	VMOVSS(h, Mem{Base: d})
	VMOVDQU(Mem{Base: src, Disp: 2}, v)
	VMOVDQU(v, Mem{Base: q})
	VPXOR(flip, v, v)
	VPSADBW(zero, v, v)
	VEXTRACTI128(Imm(1), v, hi)
	VPADDQ(hi, v.AsX(), hi)
	VPSHUFD(Imm(0x4E), hi, t)
	VPADDQ(t, hi, hi)
	VMOVQ(hi, s)
	// c = −128·(Σ(v+128) − 4096) = 128·(4096 − Σ(v+128))
	MOVL(U32(4096), t32)
	SUBL(s.As32(), t32)
	SHLL(U8(7), t32)
	MOVL(t32, Mem{Base: c})
	ADDQ(U8(32), q)
	ADDQ(U8(4), d)
	ADDQ(U8(4), c)
	ADDQ(U8(24), p)
	INCQ(j)
	JMP(LabelRef(name + "_vec"))
	Label(name + "_next")
	ADDQ(U8(34), off)
	DECQ(nb)
	JMP(LabelRef(name + "_block"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}
