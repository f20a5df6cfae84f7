package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// norm writes the small elementwise kernels of norm.go: RMSNorm's sum of
// squares and scaling, the hyper-connections' weighted sums and rope's
// pair rotation. None fuses a multiply and an add, so each gives its
// generic twin's bits.
func norm() {
	sumSquaresF64()
	scaleF32()
	scaleMulF32()
	mulAddF32()
	rotatePairsF32()
	sinkhorn4x8()
}

// sinkhorn4x8 writes sinkhorn4x8AVX2, the AVX2 form of
// sinkhorn4x8Generic: the eight matrices are the eight lanes of a
// vector, each element of the 4×4 a vector of m (m[32·(4j+k):]), so every
// lane does the scalar loop's adds and divisions in its order, with its
// bits. The state stays in memory (sixteen vectors, 512 bytes, in L1);
// the divisions, not the loads, bound it.
func sinkhorn4x8() {
	name := "sinkhorn4x8AVX2"
	TEXT(name, NOSPLIT, "func(m *[128]float32, rounds int, eps float32)")
	Doc(name+" is the AVX2 form of sinkhorn4x8Generic.", "rounds ≥ 0.")
	Pragma("noescape")
	m := Load(Param("m"), GP64())
	rounds := Load(Param("rounds"), GP64())
	eps := YMM()
	VBROADCASTSS(Load(Param("eps"), XMM()), eps)
	zero := YMM()
	VXORPS(zero, zero, zero)
	at := func(j, k int) Mem { return Mem{Base: m, Disp: 32 * (4*j + k)} }
	// normalise divides the four elements at(pos(i, 0…3)) by their sum
	// (from zero, in order) plus eps, for i = 0…3.
	normalise := func(pos func(i, l int) (int, int)) {
		for i := range 4 {
			s := YMM()
			VMOVAPS(zero, s)
			for l := range 4 {
				VADDPS(at(pos(i, l)), s, s)
			}
			VADDPS(eps, s, s)
			for l := range 4 {
				x := YMM()
				VMOVUPS(at(pos(i, l)), x)
				VDIVPS(s, x, x)
				VMOVUPS(x, at(pos(i, l)))
			}
		}
	}
	rows := func(j, k int) (int, int) { return j, k }
	cols := func(k, j int) (int, int) { return j, k }
	normalise(cols)
	TESTQ(rounds, rounds)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	normalise(rows)
	normalise(cols)
	DECQ(rounds)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

func sumSquaresF64() {
	name := "sumSquaresF64x16AVX2"
	TEXT(name, NOSPLIT, "func(x []float32, lanes *[16]float64)")
	Doc(name+" is the AVX2 form of sumSquaresF64x16Generic.", "len(x) is a multiple of 16.")
	Pragma("noescape")
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	lanes := Load(Param("lanes"), GP64())
	var acc [4]VecVirtual
	for k := range acc {
		acc[k] = YMM()
		VMOVUPD(Mem{Base: lanes, Disp: 32 * k}, acc[k])
	}
	SHRQ(Imm(4), n)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	for k := range acc {
		v, d := XMM(), YMM()
		VMOVUPS(Mem{Base: x, Disp: 16 * k}, v)
		VMULPS(v, v, v)
		VCVTPS2PD(v, d)
		VADDPD(d, acc[k], acc[k])
	}
	ADDQ(Imm(64), x)
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_done")
	for k := range acc {
		VMOVUPD(acc[k], Mem{Base: lanes, Disp: 32 * k})
	}
	VZEROUPPER()
	RET()
}

func scaleF32() {
	name := "scaleF32x8AVX2"
	TEXT(name, NOSPLIT, "func(dst, x []float32, s float32)")
	Doc(name+" is the AVX2 form of scaleF32Generic.", "len(x) is a multiple of 8, len(dst) ≥ len(x).")
	Pragma("noescape")
	dst := Load(Param("dst").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	s := YMM()
	VBROADCASTSS(Load(Param("s"), XMM()), s)
	SHRQ(Imm(3), n)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	v := YMM()
	VMULPS(Mem{Base: x}, s, v)
	VMOVUPS(v, Mem{Base: dst})
	ADDQ(Imm(32), x)
	ADDQ(Imm(32), dst)
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

func scaleMulF32() {
	name := "scaleMulF32x8AVX2"
	TEXT(name, NOSPLIT, "func(dst, x []float32, s float32, w []float32)")
	Doc(name+" is the AVX2 form of scaleMulF32Generic.", "len(x) is a multiple of 8, len(dst) and len(w) ≥ len(x).")
	Pragma("noescape")
	dst := Load(Param("dst").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	w := Load(Param("w").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	s := YMM()
	VBROADCASTSS(Load(Param("s"), XMM()), s)
	SHRQ(Imm(3), n)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	v := YMM()
	VMULPS(Mem{Base: x}, s, v)
	VMULPS(Mem{Base: w}, v, v)
	VMOVUPS(v, Mem{Base: dst})
	ADDQ(Imm(32), x)
	ADDQ(Imm(32), w)
	ADDQ(Imm(32), dst)
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

func mulAddF32() {
	name := "mulAddF32x8AVX2"
	TEXT(name, NOSPLIT, "func(y, x []float32, a float32)")
	Doc(name+" is the AVX2 form of mulAddF32Generic: a multiply, then an add.", "len(x) is a multiple of 8, len(y) ≥ len(x).")
	Pragma("noescape")
	y := Load(Param("y").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	a := YMM()
	VBROADCASTSS(Load(Param("a"), XMM()), a)
	SHRQ(Imm(3), n)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	v := YMM()
	VMULPS(Mem{Base: x}, a, v)
	VADDPS(Mem{Base: y}, v, v)
	VMOVUPS(v, Mem{Base: y})
	ADDQ(Imm(32), x)
	ADDQ(Imm(32), y)
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

func rotatePairsF32() {
	name := "rotatePairsF32x8AVX2"
	TEXT(name, NOSPLIT, "func(dst, x, cc, ss []float32)")
	Doc(name+" is the AVX2 form of rotatePairsF32Generic.", "len(x) is a multiple of 8, len(dst), len(cc) and len(ss) ≥ len(x).")
	Pragma("noescape")
	dst := Load(Param("dst").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	cc := Load(Param("cc").Base(), GP64())
	ss := Load(Param("ss").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	SHRQ(Imm(3), n)
	JZ(LabelRef(name + "_done"))
	Label(name + "_loop")
	v, sw := YMM(), YMM()
	VMOVUPS(Mem{Base: x}, v)
	VPERMILPS(Imm(0xB1), v, sw) // the pairs swapped
	VMULPS(Mem{Base: cc}, v, v)
	VMULPS(Mem{Base: ss}, sw, sw)
	VADDPS(sw, v, v)
	VMOVUPS(v, Mem{Base: dst})
	ADDQ(Imm(32), x)
	ADDQ(Imm(32), cc)
	ADDQ(Imm(32), ss)
	ADDQ(Imm(32), dst)
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}
