package main

import (
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// fp8 writes the FP8 E4M3 kernels of fp8.go: dotE4M3AVX2 and
// dotE4M3x4AVX2.
func fp8() {
	dotE4M3(1)
	dotE4M3(4)
}

var wordsConsts = map[uint16]Mem{}

// wordsConst is a 32-byte read-only vector of one repeated 16-bit word.
func wordsConst(v uint16) Mem {
	if m, ok := wordsConsts[v]; ok {
		return m
	}
	m := GLOBL(fmt.Sprintf("words%04x", v), RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(2*i, U16(v))
	}
	wordsConsts[v] = m
	return m
}

var f32x8_256 Mem

// f32Const256 is eight float32 256s.
func f32Const256() Mem {
	if f32x8_256.Symbol.Name == "" {
		f32x8_256 = GLOBL("f32x8_256", RODATA|NOPTR)
		for i := 0; i < 8; i++ {
			DATA(4*i, U32(math.Float32bits(256)))
		}
	}
	return f32x8_256
}

// e4m3Decode16 widens the 16 E4M3 codes at m into float32 lanes lo (codes
// 0–7) and hi (8–15), exactly as e4m3Table does for every code but NaN
// (which gives some NaN). An E4M3 code s eeee mmm placed as the half
// s 0 eeee mmm 0000000 is the value times 2⁻⁸, subnormals included (F16C
// converts half subnormals exactly), so the halves are converted and
// multiplied by 256, which is exact. The NaN codes s 1111 111 would be
// 1.875·2⁰ as halves, so they are set to all ones (a half NaN) first.
func e4m3Decode16(m Mem) (lo, hi VecVirtual) {
	h, t := YMM(), YMM()
	VPMOVZXBW(m, h)
	VPSLLW(Imm(8), h, h)
	VPSRAW(Imm(1), h, h) // s s eeee mmm 0…
	VPAND(wordsConst(0xBFFF), h, h)
	VPOR(wordsConst(0x8000), h, t)
	VPCMPEQW(wordsConst(0xBF80), t, t)
	VPOR(t, h, h)
	lo, hi = YMM(), YMM()
	VCVTPH2PS(h.AsX(), lo)
	VEXTRACTI128(Imm(1), h, t.AsX())
	VCVTPH2PS(t.AsX(), hi)
	VMULPS(f32Const256(), lo, lo)
	VMULPS(f32Const256(), hi, hi)
	return lo, hi
}

// dotE4M3 writes dotE4M3AVX2 (vecs 1) or dotE4M3x4AVX2 (vecs 4): per
// vector two accumulators hold dotE4M3Generic's 16 lanes (lo: lanes 0–7,
// hi: 8–15), each 16-column group adding its rounded products (VMULPS,
// VADDPS: nothing fused); a block ends with lo+hi, hsum's order, one
// VMULSS by its scale and one VADDSS into the result. Whole blocks of bw
// columns (128 for V3, 32 or 128 for V4) run 64 columns at a time unrolled
// (prefetching w) and then 16 at a time; the last partial block runs 16
// columns at a time and then its last len(w) mod 16 columns from tw and tx, which the
// Go wrapper fills with them and zero padding (a +0 product leaves a lane
// as it is: a lane that starts at +0 never becomes −0).
func dotE4M3(vecs int) {
	name, sig := "dotE4M3AVX2", "func(w []byte, s []float32, bw int, x []float32, tw *[16]byte, tx *[16]float32) float32"
	if vecs == 4 {
		name = "dotE4M3x4AVX2"
		sig = "func(w []byte, s []float32, bw int, x0, x1, x2, x3 []float32, tw *[16]byte, tx *[4][16]float32, out *[4]float32)"
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(name+" is the AVX2 form of dotE4M3Generic (vectors x0…x3 for the x4 form), bit for bit.",
		"bw is the block width, a positive multiple of 16; len(s) = ⌈len(w)/bw⌉, every x at least len(w) long;",
		"tw and tx hold the last len(w) mod 16 columns, zero padded.")
	w := Load(Param("w").Base(), GP64())
	n := Load(Param("w").Len(), GP64())
	sp := Load(Param("s").Base(), GP64())
	bw := Load(Param("bw"), GP64())
	tw := Load(Param("tw"), GP64())
	tx := Load(Param("tx"), GP64())
	x := make([]Register, vecs)
	if vecs == 1 {
		x[0] = Load(Param("x").Base(), GP64())
	} else {
		for j := range x {
			x[j] = Load(Param(fmt.Sprintf("x%d", j)).Base(), GP64())
		}
	}
	lo, hi, acc := make([]VecVirtual, vecs), make([]VecVirtual, vecs), make([]VecVirtual, vecs)
	for j := range lo {
		lo[j], hi[j], acc[j] = YMM(), YMM(), XMM()
		VXORPS(lo[j], lo[j], lo[j])
		VXORPS(hi[j], hi[j], hi[j])
		VXORPS(acc[j], acc[j], acc[j])
	}
	group := func(wm Mem, xm func(j int) Mem) {
		a, b := e4m3Decode16(wm)
		for j := range lo {
			p := YMM()
			VMULPS(xm(j), a, p)
			VADDPS(p, lo[j], lo[j])
			m := xm(j)
			m.Disp += 32
			VMULPS(m, b, p)
			VADDPS(p, hi[j], hi[j])
		}
	}
	finish := func() {
		for j := range lo {
			VADDPS(hi[j], lo[j], lo[j])
			hsum(lo[j])
			VMULSS(Mem{Base: sp}, lo[j].AsX(), lo[j].AsX())
			VADDSS(lo[j].AsX(), acc[j], acc[j])
			VXORPS(lo[j], lo[j], lo[j])
			VXORPS(hi[j], hi[j], hi[j])
		}
		ADDQ(Imm(4), sp)
	}

	Label(name + "_block")
	CMPQ(n, bw)
	JB(LabelRef(name + "_partial"))
	m := GP64()
	MOVQ(bw, m)
	Label(name + "_inner")
	CMPQ(m, Imm(64))
	JB(LabelRef(name + "_inner16"))
	prefetchW(Mem{Base: w})
	for g := 0; g < 4; g++ {
		group(Mem{Base: w, Disp: 16 * g}, func(j int) Mem { return Mem{Base: x[j], Disp: 64 * g} })
	}
	ADDQ(Imm(64), w)
	for j := range x {
		ADDQ(U32(256), x[j])
	}
	SUBQ(Imm(64), m)
	JMP(LabelRef(name + "_inner"))
	Label(name + "_inner16")
	TESTQ(m, m)
	JZ(LabelRef(name + "_blockend"))
	group(Mem{Base: w}, func(j int) Mem { return Mem{Base: x[j]} })
	ADDQ(Imm(16), w)
	for j := range x {
		ADDQ(Imm(64), x[j])
	}
	SUBQ(Imm(16), m)
	JMP(LabelRef(name + "_inner16"))
	Label(name + "_blockend")
	finish()
	SUBQ(bw, n)
	JMP(LabelRef(name + "_block"))

	Label(name + "_partial")
	any := GP64()
	XORQ(any, any)
	Label(name + "_group")
	CMPQ(n, Imm(16))
	JB(LabelRef(name + "_tail"))
	group(Mem{Base: w}, func(j int) Mem { return Mem{Base: x[j]} })
	ADDQ(Imm(16), w)
	for j := range x {
		ADDQ(Imm(64), x[j])
	}
	SUBQ(Imm(16), n)
	MOVQ(U32(1), any)
	JMP(LabelRef(name + "_group"))

	Label(name + "_tail")
	TESTQ(n, n)
	JZ(LabelRef(name + "_last"))
	group(Mem{Base: tw}, func(j int) Mem { return Mem{Base: tx, Disp: 64 * j} })
	MOVQ(U32(1), any)
	Label(name + "_last")
	TESTQ(any, any)
	JZ(LabelRef(name + "_done"))
	finish()

	Label(name + "_done")
	VZEROUPPER()
	if vecs == 1 {
		Store(acc[0], ReturnIndex(0))
	} else {
		out := Load(Param("out"), GP64())
		for j := range acc {
			VMOVSS(acc[j], Mem{Base: out, Disp: 4 * j})
		}
	}
	RET()
}
