package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// fp4 writes the FP4 E2M1 kernels of fp4.go: dotE2M1AVX2 and
// dotE2M1x2AVX2.
func fp4() {
	dotE2M1(1)
	dotE2M1(2)
}

var e2m1x2 Mem

// e2m1TwiceConst is fp4.go's e2m1Twice, the 16 int8 values VPSHUFB looks
// nibbles up in.
func e2m1TwiceConst() Mem {
	if e2m1x2.Symbol.Name == "" {
		e2m1x2 = GLOBL("e2m1x2", RODATA|NOPTR)
		for i, v := range []int8{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12} {
			DATA(i, U8(uint8(v)))
		}
	}
	return e2m1x2
}

// dotE2M1 writes dotE2M1AVX2 (vecs 1) or dotE2M1x2AVX2 (vecs 2): per
// vector four accumulators, accumulator q taking quarter q (values 8q to
// 8q+7) of every 32-value block, as dotE2M1Generic's acc[q]. A block's 16
// bytes split into low and high nibbles, which interleave back into value
// order (low nibble first), VPSHUFB turns the 32 codes into twice their
// values as int8, and each run of 8 widens to int32, converts to float32
// and is multiplied by the block's scale from tab (2^(e−128), so the
// product is the exact weight), then fused into its accumulator with x.
// The accumulators reduce as (a0+a1)+(a2+a3) and then with hsum's order.
func dotE2M1(vecs int) {
	name, sig := "dotE2M1AVX2", "func(w, s []byte, x []float32, tab *[256]float32) float32"
	if vecs == 2 {
		name = "dotE2M1x2AVX2"
		sig = "func(w, s []byte, x0, x1 []float32, tab *[256]float32, out *[2]float32)"
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(name+" is the AVX2 form of dotE2M1Generic (vectors x0, x1 for the x2 form), with fused multiply-adds.",
		"len(w) = 16·len(s), every x 32·len(s) long; tab is e8m0Half.")
	w := Load(Param("w").Base(), GP64())
	sp := Load(Param("s").Base(), GP64())
	n := Load(Param("s").Len(), GP64())
	tab := Load(Param("tab"), GP64())
	x := make([]Register, vecs)
	if vecs == 1 {
		x[0] = Load(Param("x").Base(), GP64())
	} else {
		for j := range x {
			x[j] = Load(Param(fmt.Sprintf("x%d", j)).Base(), GP64())
		}
	}
	acc := make([][4]VecVirtual, vecs)
	for j := range acc {
		for q := range acc[j] {
			acc[j][q] = YMM()
			VXORPS(acc[j][q], acc[j][q], acc[j][q])
		}
	}
	lut := XMM()
	VMOVDQU(e2m1TwiceConst(), lut)

	Label(name + "_block")
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	prefetchW(Mem{Base: w})
	e := GP64()
	MOVBQZX(Mem{Base: sp}, e)
	sc := YMM()
	VBROADCASTSS(Mem{Base: tab, Index: e, Scale: 4}, sc)
	lo, hi := XMM(), XMM()
	VMOVDQU(Mem{Base: w}, lo)
	VPSRLW(Imm(4), lo, hi)
	VPAND(bytesConst(0x0F), lo, lo)
	VPAND(bytesConst(0x0F), hi, hi)
	v0, v1 := XMM(), XMM()
	VPUNPCKLBW(hi, lo, v0) // values 0–15: lo0, hi0, lo1, hi1, …
	VPUNPCKHBW(hi, lo, v1) // values 16–31
	VPSHUFB(v0, lut, v0)
	VPSHUFB(v1, lut, v1)
	for q := range 4 {
		src := v0
		if q >= 2 {
			src = v1
		}
		if q%2 == 1 {
			t := XMM()
			VPSHUFD(Imm(0xEE), src, t) // the high 8 bytes to the low half
			src = t
		}
		f := YMM()
		VPMOVSXBD(src, f)
		VCVTDQ2PS(f, f)
		VMULPS(sc, f, f)
		for j := range x {
			VFMADD231PS(Mem{Base: x[j], Disp: 32 * q}, f, acc[j][q])
		}
	}
	ADDQ(Imm(16), w)
	INCQ(sp)
	for j := range x {
		ADDQ(U32(128), x[j])
	}
	DECQ(n)
	JMP(LabelRef(name + "_block"))

	Label(name + "_done")
	for j := range acc {
		a := acc[j]
		VADDPS(a[1], a[0], a[0])
		VADDPS(a[3], a[2], a[2])
		VADDPS(a[2], a[0], a[0])
		hsum(a[0])
	}
	VZEROUPPER()
	if vecs == 1 {
		Store(acc[0][0].AsX(), ReturnIndex(0))
	} else {
		out := Load(Param("out"), GP64())
		for j := range acc {
			VMOVSS(acc[j][0].AsX(), Mem{Base: out, Disp: 4 * j})
		}
	}
	RET()
}
