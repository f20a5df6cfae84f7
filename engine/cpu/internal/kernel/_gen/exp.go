package main

import (
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// expConst is a 32-byte read-only vector of eight copies of a float32's
// (or an int32's) bits.
func expConst(name string, bits uint32) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(4*i, U32(bits))
	}
	return m
}

// expShift writes expShift8AVX2, the AVX2 form of expShift8Generic
// (exp.go): softmax's exponentials in place and their sum. Per eight
// values it performs expF32's operations in the same order, each rounded
// on its own (separate multiplies and adds, no fused multiply-add), so
// every value has the generic code's bits: subtract m; clamp to [floor,
// ceil] with the clamp register as the first source, so that a NaN (the
// second source) passes through as Go's max and min pass it; n =
// round(x·log2e) to nearest even; r = x − n·ln2hi − n·ln2lo; the degree-5
// polynomial in r and r²; the scale by 2^n built in the exponent bits.
// Lanes 0–3 of the sum widen to float64 in one accumulator and lanes 4–7
// in another, as the generic code adds value i into lane i mod 8.
func expShift() {
	f := func(name string, v float32) Mem { return expConst(name, math.Float32bits(v)) }
	log2e := f("expLog2e", 1.44269504088896341)
	ln2Hi := f("expLn2Hi", 0.693359375)
	ln2Lo := f("expLn2Lo", -2.12194440e-4)
	p := []Mem{
		f("expP0", 1.9875691500e-4),
		f("expP1", 1.3981999507e-3),
		f("expP2", 8.3334519073e-3),
		f("expP3", 4.1665795894e-2),
		f("expP4", 1.6666665459e-1),
		f("expP5", 5.0000001201e-1),
	}
	one := f("expOne", 1)
	floor := f("expFloor", -87)
	ceil := f("expCeil", 88)
	bias := expConst("expBias", 127)

	name := "expShift8AVX2"
	TEXT(name, NOSPLIT, "func(x []float32, m float32, lanes *[8]float64)")
	Doc(name+" is the AVX2 form of expShift8Generic.", "len(x) is a multiple of 8.")
	Pragma("noescape")
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	lanes := Load(Param("lanes"), GP64())
	m, lo, hi := YMM(), YMM(), YMM()
	VBROADCASTSS(NewParamAddr("m", 24), m)
	VMOVUPS(floor, lo)
	VMOVUPS(ceil, hi)
	acc0, acc1 := YMM(), YMM()
	VMOVUPD(Mem{Base: lanes}, acc0)
	VMOVUPD(Mem{Base: lanes, Disp: 32}, acc1)
	SHRQ(Imm(3), n)
	JZ(LabelRef(name + "_done"))

	Label(name + "_loop")
	v, k, t, z, y := YMM(), YMM(), YMM(), YMM(), YMM()
	VMOVUPS(Mem{Base: x}, v)
	VSUBPS(m, v, v)
	VMAXPS(v, lo, v) // lo > v ? lo : v
	VMINPS(v, hi, v) // hi < v ? hi : v
	VMULPS(log2e, v, k)
	VROUNDPS(Imm(0), k, k)
	VMULPS(ln2Hi, k, t)
	VSUBPS(t, v, v)
	VMULPS(ln2Lo, k, t)
	VSUBPS(t, v, v)
	VMULPS(v, v, z)
	VMULPS(p[0], v, y)
	VADDPS(p[1], y, y)
	for _, c := range p[2:] {
		VMULPS(v, y, y)
		VADDPS(c, y, y)
	}
	VMULPS(z, y, y)
	VADDPS(v, y, y)
	VADDPS(one, y, y)
	VCVTTPS2DQ(k, k)
	VPADDD(bias, k, k)
	VPSLLD(Imm(23), k, k)
	VMULPS(k, y, y)
	VMOVUPS(y, Mem{Base: x})
	VCVTPS2PD(y.AsX(), t)
	VADDPD(t, acc0, acc0)
	VEXTRACTF128(Imm(1), y, z.AsX())
	VCVTPS2PD(z.AsX(), z)
	VADDPD(z, acc1, acc1)
	ADDQ(Imm(32), x)
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	VMOVUPD(acc0, Mem{Base: lanes})
	VMOVUPD(acc1, Mem{Base: lanes, Disp: 32})
	VZEROUPPER()
	RET()
}

// maxF32 writes maxF32x8AVX2, the AVX2 form of maxF32x8Generic (exp.go):
// per eight values, acc = VMAXPS(acc, x), which is acc > x ? acc : x as
// the generic greater(acc, x), and an unordered compare of x with itself
// ORed into a mask, which says at the end whether some value was NaN.
func maxF32() {
	name := "maxF32x8AVX2"
	TEXT(name, NOSPLIT, "func(x []float32, lanes *[8]float32) bool")
	Doc(name+" is the AVX2 form of maxF32x8Generic.", "len(x) is a multiple of 8.")
	Pragma("noescape")
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	lanes := Load(Param("lanes"), GP64())
	acc, nan := YMM(), YMM()
	VMOVUPS(Mem{Base: lanes}, acc)
	VXORPS(nan, nan, nan)
	SHRQ(Imm(3), n)
	JZ(LabelRef(name + "_done"))

	Label(name + "_loop")
	v, u := YMM(), YMM()
	VMOVUPS(Mem{Base: x}, v)
	VMAXPS(v, acc, acc)     // acc > v ? acc : v
	VCMPPS(Imm(3), v, v, u) // unordered: v is NaN
	VORPS(u, nan, nan)
	ADDQ(Imm(32), x)
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	VMOVUPS(acc, Mem{Base: lanes})
	mask, r := GP32(), GP8()
	VMOVMSKPS(nan, mask)
	TESTL(mask, mask)
	SETNE(r)
	Store(r, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// tileMax writes tileMax64AVX2, the AVX2 form of tileMax64Generic
// (exp.go): per tile of 64 values, acc = VMAXPS(acc, x) over its eight
// vectors in order, then the lanes meet as tileMax64Generic's; and per
// vector fin = x·0 + fin, which stays ±0 while every value is finite and
// turns NaN at the first that is not (Inf·0 and NaN·0 are NaN).
func tileMax() {
	name := "tileMax64AVX2"
	TEXT(name, NOSPLIT, "func(x []float32, out []float32) bool")
	Doc(name+" is the AVX2 form of tileMax64Generic.", "len(x) is 64·len(out).")
	Pragma("noescape")
	x := Load(Param("x").Base(), GP64())
	out := Load(Param("out").Base(), GP64())
	n := Load(Param("out").Len(), GP64())
	// Four accumulators of fin, taken in turn, so that its additions do
	// not make one chain through the whole row.
	zero := YMM()
	VXORPS(zero, zero, zero)
	fin := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for _, f := range fin {
		VXORPS(f, f, f)
	}
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))

	Label(name + "_loop")
	acc := YMM()
	VMOVUPS(Mem{Base: x}, acc)
	VFMADD231PS(acc, zero, fin[0])
	for i := 1; i < 8; i++ {
		v := YMM()
		VMOVUPS(Mem{Base: x, Disp: 32 * i}, v)
		VMAXPS(v, acc, acc) // acc > v ? acc : v
		VFMADD231PS(v, zero, fin[i%4])
	}
	h, t := XMM(), XMM()
	VEXTRACTF128(Imm(1), acc, h)
	VMAXPS(h, acc.AsX(), h) // lane l: greater(acc[l], acc[l+4])
	VPERMILPS(Imm(0x4E), h, t)
	VMAXPS(t, h, h) // lanes 0, 1: greater(h[l], h[l+2])
	VPERMILPS(Imm(0xB1), h, t)
	VMAXPS(t, h, h) // lane 0: greater(h[0], h[1])
	VMOVSS(h, Mem{Base: out})
	ADDQ(U32(256), x)
	ADDQ(Imm(4), out)
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_done")
	mask, r := GP32(), GP8()
	VADDPS(fin[1], fin[0], fin[0])
	VADDPS(fin[3], fin[2], fin[2])
	VADDPS(fin[2], fin[0], fin[0])
	VCMPPS(Imm(3), fin[0], fin[0], fin[0]) // unordered: NaN
	VMOVMSKPS(fin[0], mask)
	TESTL(mask, mask)
	SETEQ(r)
	Store(r, ReturnIndex(0))
	VZEROUPPER()
	RET()
}
