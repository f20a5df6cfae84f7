package main

import (
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// siluConst64 is a 32-byte read-only vector of four copies of a float64's
// (or an int64's) bits.
func siluConst64(name string, bits uint64) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 4; i++ {
		DATA(8*i, U64(bits))
	}
	return m
}

// siluPoly is the degree of swiglu8AVX2's polynomial for e^r, |r| ≤ ln2/2:
// Taylor's 1/i!, whose next term, r^13/13!, is below 2^−52.
const siluPoly = 12

// swiglu writes swiglu8AVX2, the AVX2 form of swigluGeneric (silu.go) over
// whole groups of eight, which stops at the first group it cannot finish
// with swigluGeneric's bits and returns how many values it did. Per group:
// the clamps (VMINPS and VMAXPS with the clamp first, so a NaN passes);
// x = −g; then e^x in float64, four lanes at a time: k = round(x/ln2) by
// adding 1.5·2^52 (whose low bits then hold k), r = x − k·ln2 in two parts
// by fused multiply-adds, e^r by Horner's rule in siluPoly fused steps, and
// 2^k added into the exponent bits — within a few float64 units of e^x,
// as expNearF64 is. The group stops the kernel when some x is outside
// (−87, 88) or NaN, or some e^x lies within 4095 units of a point halfway
// between two float32 values (a check at least as strict as
// roundsSureF32's); otherwise e^x rounds to float32 as
// float32(math.Exp(float64(x))) does, and g/(1 + e^x)·u takes an add, a
// divide and a multiply, each rounded as Go rounds them.
// exactExp holds the constants of e^x in float64 for a float32 x, as
// swiglu8AVX2 and exp32x8AVX2 compute it.
type exactExp struct {
	invLn2, round, ln2Hi, ln2Lo Mem
	coef                        []Mem
	low29, nearLo               Mem
	floor, ceil                 Mem
}

// newExactExp defines exactExp's constants (once per generated file).
func newExactExp() *exactExp {
	f64 := func(name string, v float64) Mem { return siluConst64(name, math.Float64bits(v)) }
	e := &exactExp{
		invLn2: f64("siluInvLn2", 1/math.Ln2),
		round:  f64("siluRound", 0x1.8p52),
		ln2Hi:  f64("siluLn2Hi", math.Ln2),
		ln2Lo:  f64("siluLn2Lo", 2.319046813846299558e-17), // ln2 − float64(ln2)
		coef:   make([]Mem, siluPoly+1),
		low29:  siluConst64("siluLow29", 1<<29-1),
		// A float64 within 4095 units of the halfway point 1<<28 has low
		// bits b with b − (1<<28 − 4095) in [0, 8192): shifted right by 13
		// (as an unsigned number, so that below zero stays nonzero) it is
		// zero.
		nearLo: siluConst64("siluNearLo", 1<<28-4095),
		floor:  expConst("siluFloor", math.Float32bits(-87)),
		ceil:   expConst("siluCeil", math.Float32bits(88)),
	}
	fact := 1.0
	for i := range e.coef {
		if i > 0 {
			fact *= float64(i)
		}
		e.coef[i] = f64("siluC"+string(rune('A'+i)), 1/fact)
	}
	return e
}

var exactExpConsts *exactExp

// exactExpOf returns the constants, defining them on first use.
func exactExpOf() *exactExp {
	if exactExpConsts == nil {
		exactExpConsts = newExactExp()
	}
	return exactExpConsts
}

// outside ORs into bad a mask of the lanes of X (eight float32) outside
// (−87, 88) or NaN.
func (e *exactExp) outside(X, bad VecVirtual) {
	t := YMM()
	VCMPPS(Imm(0x1A), e.floor, X, bad) // NGT_UQ: !(x > −87)
	VCMPPS(Imm(0x15), e.ceil, X, t)    // NLT_UQ: !(x < 88)
	VORPS(t, bad, bad)
}

// exp4 leaves e^x of four float32 lanes (an XMM) as float64 in the
// returned YMM and ORs a mask of its lanes near a float32 halfway point
// into bad (zero holds zeros).
func (e *exactExp) exp4(x4 Op, bad, zero VecVirtual) VecVirtual {
	xd, k, r, p := YMM(), YMM(), YMM(), YMM()
	VCVTPS2PD(x4, xd)
	VMOVUPD(e.invLn2, k)
	VFMADD213PD(e.round, xd, k) // k = x/ln2 + 1.5·2^52: k in the low bits
	VSUBPD(e.round, k, r)       // r = k as a float64
	VMOVAPD(xd, p)
	VFNMADD231PD(e.ln2Hi, r, p) // p = x − k·ln2hi
	VFNMADD231PD(e.ln2Lo, r, p) // p = x − k·ln2hi − k·ln2lo
	VMOVAPD(p, r)
	VMOVUPD(e.coef[siluPoly], p)
	for i := siluPoly - 1; i >= 0; i-- {
		VFMADD213PD(e.coef[i], r, p) // p = p·r + c_i
	}
	VPSUBQ(e.round, k, k) // k as an int64
	VPSLLQ(Imm(52), k, k)
	VPADDQ(k, p, p) // p·2^k
	m := YMM()
	VPAND(e.low29, p, m)
	VPSUBQ(e.nearLo, m, m)
	VPSRLQ(Imm(13), m, m)
	VPCMPEQQ(zero, m, m)
	VPOR(m, bad, bad)
	return p
}

// exp8 is e^x of the eight lanes of X rounded to float32 as
// float32(math.Exp(float64(x))) rounds it, in the returned YMM, valid
// when bad (which it ORs into) ends up zero.
func (e *exactExp) exp8(X, bad, zero VecVirtual) VecVirtual {
	e.outside(X, bad)
	yl := e.exp4(X.AsX(), bad, zero)
	xh := XMM()
	VEXTRACTF128(Imm(1), X, xh)
	yh := e.exp4(xh, bad, zero)
	lo, hi := XMM(), XMM()
	VCVTPD2PSY(yl, lo)
	VCVTPD2PSY(yh, hi)
	E := lo.AsY().(VecVirtual)
	VINSERTF128(Imm(1), hi, E, E)
	return E
}

func swiglu() {
	e := exactExpOf()
	one := expConst("siluOne", math.Float32bits(1))
	sign := expConst("siluSign", 1<<31)

	name := "swiglu8AVX2"
	TEXT(name, NOSPLIT, "func(g, u []float32, clamp float32) int")
	Doc(name+" is the AVX2 form of swigluGeneric over whole groups of eight; it returns how many values it did.",
		"len(g) is a multiple of 8, len(u) = len(g), clamp > 0 (+Inf for none).")
	Pragma("noescape")
	gp := Load(Param("g").Base(), GP64())
	up := Load(Param("u").Base(), GP64())
	n := Load(Param("g").Len(), GP64())
	hi, lo := YMM(), YMM()
	VBROADCASTSS(NewParamAddr("clamp", 48), hi)
	VXORPS(sign, hi, lo)
	zero := YMM()
	VPXOR(zero, zero, zero)
	groupsOfEight(name, n, func(done GPVirtual) {
		G, U, X := YMM(), YMM(), YMM()
		VMOVUPS(Mem{Base: gp, Index: done, Scale: 4}, G)
		VMOVUPS(Mem{Base: up, Index: done, Scale: 4}, U)
		VMINPS(G, hi, G) // hi < g ? hi : g
		VMINPS(U, hi, U) // hi < u ? hi : u
		VMAXPS(U, lo, U) // lo > u ? lo : u
		VXORPS(sign, G, X)
		bad := YMM()
		E := e.exp8(X, bad, zero)
		VPTEST(bad, bad)
		JNZ(LabelRef(name + "_end"))
		VADDPS(one, E, E) // 1 + e
		VDIVPS(E, G, G)   // g / (1 + e)
		VMULPS(U, G, G)   // · u
		VMOVUPS(G, Mem{Base: gp, Index: done, Scale: 4})
	})
}

// exp32 writes exp32x8AVX2, the AVX2 form of exp32sGeneric (silu.go) over
// whole groups of eight: dst[i] = float32(math.Exp(float64(x[i]))), bit
// for bit, by swiglu8AVX2's exponential, stopping at the first group it
// cannot round for sure (or with a value outside (−87, 88)) and returning
// how many values it did.
func exp32() {
	e := exactExpOf()
	name := "exp32x8AVX2"
	TEXT(name, NOSPLIT, "func(dst, x []float32) int")
	Doc(name+" is the AVX2 form of exp32sGeneric over whole groups of eight; it returns how many values it did.",
		"len(x) is a multiple of 8, len(dst) ≥ len(x).")
	Pragma("noescape")
	dp := Load(Param("dst").Base(), GP64())
	xp := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	zero := YMM()
	VPXOR(zero, zero, zero)
	groupsOfEight(name, n, func(done GPVirtual) {
		X, bad := YMM(), YMM()
		VMOVUPS(Mem{Base: xp, Index: done, Scale: 4}, X)
		E := e.exp8(X, bad, zero)
		VPTEST(bad, bad)
		JNZ(LabelRef(name + "_end"))
		VMOVUPS(E, Mem{Base: dp, Index: done, Scale: 4})
	})
}

// groupsOfEight writes the loop of a kernel that returns how many values
// it did: body runs for each group of eight of the n values, done being
// the index of the group's first, and may jump to name+"_end" to stop
// before it; the kernel then returns done.
func groupsOfEight(name string, n Register, body func(done GPVirtual)) {
	SHRQ(Imm(3), n)
	done := GP64()
	XORQ(done, done)
	TESTQ(n, n)
	JZ(LabelRef(name + "_end"))
	Label(name + "_loop")
	body(done)
	ADDQ(Imm(8), done)
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_end")
	Store(done, ReturnIndex(0))
	VZEROUPPER()
	RET()
}
