package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// accumRowsF32x4 writes accumRowsF32x4AVX2, the AVX2 form of
// accumRowsF32x4Generic, fused as axpyF32AVX2 is: attention's value pass
// for four heads over a list of cache rows. The output is cut into tiles
// of sixteen values per head, whose eight accumulators stay in registers
// while every row passes: per row, two loads of its tile, then per head a
// broadcast weight and two fused multiply-adds (acc = row·p + acc, the
// same single rounding as axpyF32AVX2's y = x·a + y). Each output value
// therefore takes the rows' products in row order, as AxpyF32 called row
// by row gives it, whatever the tiling.
func accumRowsF32x4() {
	name := "accumRowsF32x4AVX2"
	TEXT(name, NOSPLIT, "func(p []float32, stride int, rows []*float32, out []float32)")
	Doc(name+" is the AVX2 form of accumRowsF32x4Generic, fused.",
		"len(out) is a multiple of 64; every rows[j] points at len(out)/4 values.")
	p0 := Load(Param("p").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	rows := Load(Param("rows").Base(), GP64())
	n := Load(Param("rows").Len(), GP64())
	out := Load(Param("out").Base(), GP64())
	// len(out) is 4·dv values, which is also dv·4, the bytes of one head's
	// output: the stride between heads and the end of the tile loop.
	dvb := Load(Param("out").Len(), GP64())
	SHLQ(Imm(2), stride)
	p1, p2, p3 := GP64(), GP64(), GP64()
	LEAQ(Mem{Base: p0, Index: stride, Scale: 1}, p1)
	LEAQ(Mem{Base: p1, Index: stride, Scale: 1}, p2)
	LEAQ(Mem{Base: p2, Index: stride, Scale: 1}, p3)
	ps := []Register{p0, p1, p2, p3}
	d := GP64()
	XORQ(d, d)
	acc := make([]VecVirtual, 8)
	for i := range acc {
		acc[i] = YMM()
	}
	o, j, ptr := GP64(), GP64(), GP64()

	Label(name + "_tile")
	CMPQ(d, dvb)
	JAE(LabelRef(name + "_done"))
	LEAQ(Mem{Base: out, Index: d, Scale: 1}, o)
	for k := range 4 {
		VMOVUPS(Mem{Base: o}, acc[2*k])
		VMOVUPS(Mem{Base: o, Disp: 32}, acc[2*k+1])
		if k < 3 {
			ADDQ(dvb, o)
		}
	}
	XORQ(j, j)
	Label(name + "_row")
	CMPQ(j, n)
	JAE(LabelRef(name + "_store"))
	MOVQ(Mem{Base: rows, Index: j, Scale: 8}, ptr)
	r0, r1, w := YMM(), YMM(), YMM()
	VMOVUPS(Mem{Base: ptr, Index: d, Scale: 1}, r0)
	VMOVUPS(Mem{Base: ptr, Index: d, Scale: 1, Disp: 32}, r1)
	// The next tile's line of this row: rows are far apart, so the
	// hardware does not see the stride, and without this every tile would
	// wait for memory row by row.
	PREFETCHT0(Mem{Base: ptr, Index: d, Scale: 1, Disp: 64})
	for k := range 4 {
		VBROADCASTSS(Mem{Base: ps[k], Index: j, Scale: 4}, w)
		VFMADD231PS(r0, w, acc[2*k])
		VFMADD231PS(r1, w, acc[2*k+1])
	}
	INCQ(j)
	JMP(LabelRef(name + "_row"))

	Label(name + "_store")
	LEAQ(Mem{Base: out, Index: d, Scale: 1}, o)
	for k := range 4 {
		VMOVUPS(acc[2*k], Mem{Base: o})
		VMOVUPS(acc[2*k+1], Mem{Base: o, Disp: 32})
		if k < 3 {
			ADDQ(dvb, o)
		}
	}
	ADDQ(Imm(64), d)
	JMP(LabelRef(name + "_tile"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}
