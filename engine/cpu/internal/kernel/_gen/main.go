// Command _gen writes the AVX2 assembly of package kernel with avo
// (github.com/mmcloughlin/avo). It lives in its own module so that avo stays
// out of ulan's go.mod; see README for the command that regenerates.
//
// Every function here mirrors a generic Go twin in the kernel package (named
// in its Doc line) and must keep that twin's meaning. Only Y0–Y15 may be
// used: the set runs on AVX2 machines, where Y16–Y31 do not exist, so no
// function keeps more than 16 vector values live (kernel's
// TestAsmUsesOnlyAVX2Registers checks the output).
package main

import (
	"fmt"

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
	dotQ8_0x4()
	f16ToF32s()
	f32ToF16s()
	quantizeQ8_0()
	cpuid()

	Generate()
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

// hsum leaves the sum of y's eight lanes in lane 0 of y.AsX(), adding
// halves pairwise: (l0+l4 + l2+l6) + (l1+l5 + l3+l7).
func hsum(y VecVirtual) {
	x := y.AsX()
	t := XMM()
	VEXTRACTF128(Imm(1), y, t)
	VADDPS(t, x, x)
	VMOVHLPS(x, x, t)
	VADDPS(t, x, x)
	VMOVSHDUP(x, t)
	VADDSS(t, x, x)
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

// dot writes dot<Kind>AVX2(w, x) = Σ widen(w[i])·x[i]: 32 elements per
// iteration in four accumulators (FMA latency 4 / loads 2 per cycle), then
// 8 at a time, then a scalar tail.
func dot(k weightKind) {
	name := "dot" + k.name + "AVX2"
	TEXT(name, NOSPLIT, fmt.Sprintf("func(w []%s, x []float32) float32", k.elemType))
	Doc(name+" is the AVX2 form of dot"+k.name+"Generic.", "len(x) ≥ len(w).")
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("w").Len(), GP64())

	var acc [4]VecVirtual
	for i := range acc {
		acc[i] = YMM()
		VXORPS(acc[i], acc[i], acc[i])
	}

	Label(name + "_loop32")
	CMPQ(n, Imm(32))
	JB(LabelRef(name + "_loop8"))
	for u := 0; u < 4; u++ {
		t := YMM()
		k.load8(Mem{Base: w, Disp: u * 8 * k.size}, t)
		VFMADD231PS(Mem{Base: x, Disp: u * 32}, t, acc[u])
	}
	ADDQ(Imm(uint64(32*k.size)), w)
	ADDQ(Imm(128), x)
	SUBQ(Imm(32), n)
	JMP(LabelRef(name + "_loop32"))

	Label(name + "_loop8")
	CMPQ(n, Imm(8))
	JB(LabelRef(name + "_reduce"))
	t := YMM()
	k.load8(Mem{Base: w}, t)
	VFMADD231PS(Mem{Base: x}, t, acc[0])
	ADDQ(Imm(uint64(8*k.size)), w)
	ADDQ(Imm(32), x)
	SUBQ(Imm(8), n)
	JMP(LabelRef(name + "_loop8"))

	Label(name + "_reduce")
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	hsum(acc[0])
	s := acc[0].AsX()

	Label(name + "_tail")
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	t1 := XMM()
	k.load1(Mem{Base: w}, t1)
	VFMADD231SS(Mem{Base: x}, t1, s)
	ADDQ(Imm(uint64(k.size)), w)
	ADDQ(Imm(4), x)
	DECQ(n)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_done")
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	RET()
}

// dotx4 writes dot<Kind>x4AVX2(w, x0, x1, x2, x3, out): each 8 weights are
// widened once and multiplied into four vectors' accumulators, two
// accumulators per vector (16 elements per iteration; 10 of 16 registers).
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

	var acc [4][2]VecVirtual
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

	Label(name + "_loop16")
	CMPQ(n, Imm(16))
	JB(LabelRef(name + "_rem8"))
	for u := 0; u < 2; u++ {
		t := YMM()
		k.load8(Mem{Base: w, Disp: u * 8 * k.size}, t)
		for j := range x {
			VFMADD231PS(Mem{Base: x[j], Disp: u * 32}, t, acc[j][u])
		}
	}
	advance(16)
	JMP(LabelRef(name + "_loop16"))

	Label(name + "_rem8") // at most once: fewer than 16 remain
	CMPQ(n, Imm(8))
	JB(LabelRef(name + "_reduce"))
	t := YMM()
	k.load8(Mem{Base: w}, t)
	for j := range x {
		VFMADD231PS(Mem{Base: x[j]}, t, acc[j][0])
	}
	advance(8)

	Label(name + "_reduce")
	var a [4]VecVirtual
	for j := range acc {
		VADDPS(acc[j][1], acc[j][0], acc[j][0])
		a[j] = acc[j][0]
	}
	s := hsum4(a)

	// Tail: lane j of s accumulates vector j, one weight at a time.
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

// onesW returns a YMM register with every int16 lane set to 1, for
// VPMADDWD to add adjacent int16 pairs into int32.
func onesW() VecVirtual {
	r := GP32()
	MOVL(U32(0x00010001), r)
	ones := YMM()
	VMOVD(r, ones.AsX())
	VPBROADCASTD(ones.AsX(), ones)
	return ones
}

// q8Products returns a YMM register with the eight int32 partial sums of
// one block's products w.q[i]·x.q[i] (four products per lane), converted
// to float32 (exact: |sum| ≤ 4·127² < 2²⁴). absW holds |w.q| and w the
// signed w.q; VPMADDUBSW multiplies unsigned |w| by x carrying w's sign,
// the standard trick of ggml's mul_sum_i8_pairs_float. Pair sums reach at
// most 2·127² and do not saturate int16 while quants avoid -128.
func q8Products(w, absW VecVirtual, xq Mem, ones VecVirtual) VecVirtual {
	p := YMM()
	VMOVDQU(xq, p)
	VPSIGNB(w, p, p)
	VPMADDUBSW(p, absW, p)
	VPMADDWD(ones, p, p)
	VCVTDQ2PS(p, p)
	return p
}

// dotQ8_0 writes dotQ8_0AVX2, ggml_vec_dot_q8_0_q8_0's AVX2 path with two
// blocks per iteration in two accumulators, so the FMA chain's latency
// hides behind the other block's integer work.
func dotQ8_0() {
	name := "dotQ8_0AVX2"
	TEXT(name, NOSPLIT, "func(w, x []byte, nBlocks int) float32")
	Doc(name+" is the AVX2 form of dotQ8_0Generic.", "w and x hold nBlocks·34 bytes each.")
	w := Load(Param("w").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	nb := Load(Param("nBlocks"), GP64())
	ones := onesW()
	acc := [2]VecVirtual{YMM(), YMM()}
	for _, a := range acc {
		VXORPS(a, a, a)
	}

	block := func(off int, acc VecVirtual) {
		// Scale d_w·d_x, rounded to float32 once as the generic twin does.
		r := GP32()
		s := YMM()
		MOVWLZX(Mem{Base: w, Disp: off}, r)
		VMOVD(r, s.AsX())
		VPINSRW(Imm(1), Mem{Base: x, Disp: off}, s.AsX(), s.AsX())
		VCVTPH2PS(s.AsX(), s.AsX()) // d_w, d_x, 0, 0
		t := XMM()
		VMOVSHDUP(s.AsX(), t)
		VMULSS(t, s.AsX(), s.AsX())
		VBROADCASTSS(s.AsX(), s)

		wq, absW := YMM(), YMM()
		VMOVDQU(Mem{Base: w, Disp: off + 2}, wq)
		VPABSB(wq, absW)
		p := q8Products(wq, absW, Mem{Base: x, Disp: off + 2}, ones)
		VFMADD231PS(p, s, acc)
	}

	Label(name + "_loop2")
	CMPQ(nb, Imm(2))
	JB(LabelRef(name + "_tail"))
	block(0, acc[0])
	block(q8Block, acc[1])
	ADDQ(Imm(2*q8Block), w)
	ADDQ(Imm(2*q8Block), x)
	SUBQ(Imm(2), nb)
	JMP(LabelRef(name + "_loop2"))

	Label(name + "_tail")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))
	block(0, acc[0])

	Label(name + "_done")
	VADDPS(acc[1], acc[0], acc[0])
	hsum(acc[0])
	VZEROUPPER()
	Store(acc[0].AsX(), ReturnIndex(0))
	RET()
}

// dotQ8_0x4 writes dotQ8_0x4AVX2: |w| and w's sign are loaded and computed
// once per block and applied to four activation blocks. The four scales
// d_w·d_xj are computed together in one XMM and spilled to the frame, so
// each is broadcast by a load instead of a shuffle (port 5 is busy).
func dotQ8_0x4() {
	name := "dotQ8_0x4AVX2"
	TEXT(name, NOSPLIT, "func(w, x0, x1, x2, x3 []byte, nBlocks int, out *[4]float32)")
	Doc(name+" is the AVX2 form of dotQ8_0x4Generic.", "w and every xj hold nBlocks·34 bytes.")
	w := Load(Param("w").Base(), GP64())
	var x [4]Register
	for j := range x {
		x[j] = Load(Param(fmt.Sprintf("x%d", j)).Base(), GP64())
	}
	nb := Load(Param("nBlocks"), GP64())
	scales := AllocLocal(16)
	ones := onesW()
	var acc [4]VecVirtual
	for j := range acc {
		acc[j] = YMM()
		VXORPS(acc[j], acc[j], acc[j])
	}

	Label(name + "_loop")
	TESTQ(nb, nb)
	JZ(LabelRef(name + "_done"))

	dw, dx := XMM(), XMM()
	VPBROADCASTW(Mem{Base: w}, dw)
	VCVTPH2PS(dw, dw)
	r := GP32()
	MOVWLZX(Mem{Base: x[0]}, r)
	VMOVD(r, dx)
	for j := 1; j < 4; j++ {
		VPINSRW(Imm(uint64(j)), Mem{Base: x[j]}, dx, dx)
	}
	VCVTPH2PS(dx, dx)
	VMULPS(dw, dx, dx)
	VMOVUPS(dx, scales)

	wq, absW := YMM(), YMM()
	VMOVDQU(Mem{Base: w, Disp: 2}, wq)
	VPABSB(wq, absW)
	for j := range x {
		p := q8Products(wq, absW, Mem{Base: x[j], Disp: 2}, ones)
		s := YMM()
		VBROADCASTSS(scales.Offset(4*j), s)
		VFMADD231PS(p, s, acc[j])
	}

	ADDQ(Imm(q8Block), w)
	for j := range x {
		ADDQ(Imm(q8Block), x[j])
	}
	DECQ(nb)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	s := hsum4(acc)
	out := Load(Param("out"), GP64())
	VMOVUPS(s, Mem{Base: out})
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
