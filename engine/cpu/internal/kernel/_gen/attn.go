package main

import (
	"fmt"

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
	ps, rows, n, out, dvb := accumArgs()
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

// dotRowsF32x4 writes dotRowsF32x4AVX2, the AVX2 form of
// dotRowsF32x4Generic: attention's score pass for four heads over a list
// of key rows. Per row it runs dotF32x4AVX2's loop (dotx4 for F32) with
// the same accumulators, chunk order, reduction and scalar tail, so each
// head's dot product has DotF32x4's bits; then it multiplies the four by
// scale (one rounding, as Go's out4[k]·scale) and stores them at out[j],
// out[stride+j], out[2·stride+j] and out[3·stride+j]. Before each row it
// prefetches every line of the row rowsPrefetchAhead further on: in a
// decode step the cache rows come from L3 or memory (the weights of the
// whole model pass between one layer's attention and the next), each row
// is a few lines at its own address, and the hardware prefetcher does
// not see far enough ahead. The row and the four query pointers advance by themselves
// rather than by a shared index: a fused multiply-add whose memory operand
// has an index register issues as two micro-operations on Intel cores,
// and with 64 of them a row the loop was bound by issue, not by the FMA
// units. At the end of a row every pointer has moved on by exactly d
// values, so subtracting d·4 bytes resets the query pointers.
func dotRowsF32x4() {
	name := "dotRowsF32x4AVX2"
	TEXT(name, NOSPLIT, "func(rows []*float32, q []float32, scale float32, out []float32, stride int)")
	Doc(name+" is the AVX2 form of dotRowsF32x4Generic.",
		"len(q) is a multiple of 4; every rows[j] points at len(q)/4 values; out holds 3·stride+len(rows) values.")
	rows, left, d, db, x, out, sb := scoreArgs()
	w, n := GP64(), GP64()

	Label(name + "_row")
	TESTQ(left, left)
	JZ(LabelRef(name + "_end"))
	// Prefetch row j+rowsPrefetchAhead, every line of it (w and n serve
	// as its pointer and offset until the row's own loop sets them).
	CMPQ(left, Imm(rowsPrefetchAhead))
	JBE(LabelRef(name + "_start"))
	prefetchRow(name+"_prefetch", rows, rowsPrefetchAhead, w, n, db)
	Label(name + "_start")
	MOVQ(Mem{Base: rows}, w)
	MOVQ(d, n)
	var acc [4][floatAccs]VecVirtual
	for j := range acc {
		for u := range acc[j] {
			acc[j][u] = YMM()
			VXORPS(acc[j][u], acc[j][u], acc[j][u])
		}
	}
	advance := func(elems int) {
		b := Imm(uint64(elems * 4))
		ADDQ(b, w)
		for _, p := range x {
			ADDQ(b, p)
		}
		SUBQ(Imm(uint64(elems)), n)
	}
	at8 := func(base Register, disp int) Mem { return Mem{Base: base, Disp: disp} }

	Label(name + "_loop")
	CMPQ(n, Imm(8*floatAccs))
	JB(LabelRef(name + "_rem0"))
	for u := 0; u < floatAccs; u++ {
		t := YMM()
		VMOVUPS(at8(w, u*32), t)
		for j := range x {
			VFMADD231PS(at8(x[j], u*32), t, acc[j][u])
		}
	}
	advance(8 * floatAccs)
	JMP(LabelRef(name + "_loop"))

	for u := 0; u < floatAccs-1; u++ {
		Label(fmt.Sprintf("%s_rem%d", name, u))
		CMPQ(n, Imm(8))
		JB(LabelRef(name + "_reduce"))
		t := YMM()
		VMOVUPS(at8(w, 0), t)
		for j := range x {
			VFMADD231PS(at8(x[j], 0), t, acc[j][u])
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

	Label(name + "_tail")
	TESTQ(n, n)
	JZ(LabelRef(name + "_store"))
	wb, xv := XMM(), XMM()
	VMOVSS(at8(w, 0), wb)
	VBROADCASTSS(wb, wb)
	VMOVSS(at8(x[0], 0), xv)
	VINSERTPS(Imm(0x10), at8(x[1], 0), xv, xv)
	VINSERTPS(Imm(0x20), at8(x[2], 0), xv, xv)
	VINSERTPS(Imm(0x30), at8(x[3], 0), xv, xv)
	VFMADD231PS(xv, wb, s)
	advance(1)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_store")
	for _, p := range x {
		SUBQ(db, p)
	}
	sc := XMM()
	VBROADCASTSS(NewParamAddr("scale", 48), sc)
	VMULPS(sc, s, s)
	// w is spent: it walks the four outputs.
	MOVQ(out, w)
	VMOVSS(s, Mem{Base: w})
	for k := 1; k < 4; k++ {
		ADDQ(sb, w)
		VEXTRACTPS(Imm(uint64(k)), s, Mem{Base: w})
	}
	ADDQ(Imm(8), rows)
	ADDQ(Imm(4), out)
	DECQ(left)
	JMP(LabelRef(name + "_row"))

	Label(name + "_end")
	VZEROUPPER()
	RET()
}

// prefetchRow prefetches every line of rows[ahead], db bytes long, with p
// and off as scratch (its pointer and offset); label names its loop.
func prefetchRow(label string, rows Register, ahead int, p, off, db Register) {
	MOVQ(Mem{Base: rows, Disp: 8 * ahead}, p)
	XORQ(off, off)
	Label(label)
	PREFETCHT0(Mem{Base: p, Index: off, Scale: 1})
	ADDQ(Imm(64), off)
	CMPQ(off, db)
	JB(LabelRef(label))
	PREFETCHT0(Mem{Base: p, Index: db, Scale: 1, Disp: -4})
}

// rowsPrefetchAhead is how many rows ahead dotRowsF32x4 prefetches: a
// row of 128 values takes about 30 ns, a line from L3 or memory 30–100.
const rowsPrefetchAhead = 4

// dotRowsF32x4Pairs writes dotRowsF32x4PairsAVX512, dotRowsF32x4AVX2 for
// two rows at a time with AVX-512 registers and the same bits. AVX2 keeps
// three accumulators of eight lanes per dot product, chunk c of 24 values
// going to lanes 0–7 of the first, 8–15 of the second and 16–23 of the
// third; here one 16-lane register holds the first two (its halves) and an
// 8-lane one the third, so each dot product takes two fused multiply-adds a
// chunk instead of three, every lane adding the same products in the same
// order. Two rows share the loads of the four heads' query chunks: per
// chunk, 12 loads feed 16 multiply-adds (the AVX2 loop loads 15 for 12),
// with 16 accumulators and 12 operands in the 32 registers. After the
// whole chunks, a last 16 values go to the 16-lane register and a last 8
// to its low half (a masked multiply-add, which leaves the high lanes
// untouched), as AVX2's two remainder steps do; a scalar tail is the
// caller's (it sends rows whose length is not a multiple of 8 to the AVX2
// form). The reduction adds the halves, then the third register, then
// sums each head's lanes in hsum4's order, with shuffles and adds that
// have EVEX forms (VHADDPS has none, and the registers may be above 15).
func dotRowsF32x4Pairs() {
	name := "dotRowsF32x4PairsAVX512"
	TEXT(name, NOSPLIT, "func(rows []*float32, q []float32, scale float32, out []float32, stride int)")
	Doc(name+" is dotRowsF32x4AVX2 two rows at a time, with its bits; see _gen.",
		"len(rows) is even; len(q)/4 is a multiple of 8; every rows[j] points at len(q)/4 values; out holds 3·stride+len(rows) values.")
	rows, left, d, db, x, out, sb := scoreArgs()
	low := K()
	mask := GP32()
	MOVL(U32(0xff), mask)
	KMOVW(mask, low)
	w := [2]Register{GP64(), GP64()}
	n := GP64()

	Label(name + "_pair")
	TESTQ(left, left)
	JZ(LabelRef(name + "_end"))
	// Prefetch the pair rowsPrefetchAhead rows on, every line of each.
	CMPQ(left, Imm(rowsPrefetchAhead+1))
	JBE(LabelRef(name + "_start"))
	for i := range w {
		prefetchRow(fmt.Sprintf("%s_prefetch%d", name, i), rows, rowsPrefetchAhead+i, w[i], n, db)
	}
	Label(name + "_start")
	MOVQ(Mem{Base: rows}, w[0])
	MOVQ(Mem{Base: rows, Disp: 8}, w[1])
	MOVQ(d, n)
	var accZ, accY [2][4]VecVirtual // [row][head]: lanes 0–15 and 16–23 of each chunk
	for i := range accZ {
		for j := range accZ[i] {
			accZ[i][j], accY[i][j] = ZMM(), YMM()
			VXORPS(accZ[i][j], accZ[i][j], accZ[i][j])
			VXORPS(accY[i][j], accY[i][j], accY[i][j])
		}
	}
	advance := func(elems int) {
		b := Imm(uint64(elems * 4))
		for _, p := range w {
			ADDQ(b, p)
		}
		for _, p := range x {
			ADDQ(b, p)
		}
		SUBQ(Imm(uint64(elems)), n)
	}

	// chunk multiplies the next values (24, 16 or 8) of both rows by the
	// four heads' queries: lanes 0–15 to accZ, 16–23 to accY; 8 values go
	// to lanes 0–7 only, through the mask.
	chunk := func(values int) {
		load := func(m Mem, z VecVirtual) {
			if values == 8 {
				VMOVUPS(m, z.AsY())
			} else {
				VMOVUPS(m, z)
			}
		}
		var qz, qy [4]VecVirtual
		for j := range x {
			qz[j] = ZMM()
			load(Mem{Base: x[j]}, qz[j])
			if values == 24 {
				qy[j] = YMM()
				VMOVUPS(Mem{Base: x[j], Disp: 64}, qy[j])
			}
		}
		for i := range w {
			kz, ky := ZMM(), VecVirtual(nil)
			load(Mem{Base: w[i]}, kz)
			if values == 24 {
				ky = YMM()
				VMOVUPS(Mem{Base: w[i], Disp: 64}, ky)
			}
			for j := range x {
				if values == 8 {
					VFMADD231PS(qz[j], kz, low, accZ[i][j])
				} else {
					VFMADD231PS(qz[j], kz, accZ[i][j])
				}
				if values == 24 {
					VFMADD231PS(qy[j], ky, accY[i][j])
				}
			}
		}
		advance(values)
	}

	Label(name + "_loop")
	CMPQ(n, Imm(24))
	JB(LabelRef(name + "_rem16"))
	chunk(24)
	JMP(LabelRef(name + "_loop"))

	// A last 16 values: lanes 0–15, AVX2's two remainder steps at once.
	Label(name + "_rem16")
	CMPQ(n, Imm(16))
	JB(LabelRef(name + "_rem8"))
	chunk(16)
	JMP(LabelRef(name + "_reduce"))

	// A last 8 values: lanes 0–7 only.
	Label(name + "_rem8")
	CMPQ(n, Imm(8))
	JB(LabelRef(name + "_reduce"))
	chunk(8)

	Label(name + "_reduce")
	for _, p := range x {
		SUBQ(db, p)
	}
	sc := XMM()
	VBROADCASTSS(NewParamAddr("scale", 48), sc)
	for i := range w {
		var a [4]VecVirtual
		for j := range a {
			a[j] = YMM()
			VEXTRACTF64X4(Imm(1), accZ[i][j], a[j])
			VADDPS(a[j], accZ[i][j].AsY(), a[j])
			VADDPS(accY[i][j], a[j], a[j])
		}
		s := hsum4EVEX(a)
		VMULPS(sc, s, s)
		// w[i] is spent: it walks the row's four outputs.
		LEAQ(Mem{Base: out, Disp: 4 * i}, w[i])
		VMOVSS(s, Mem{Base: w[i]})
		for k := 1; k < 4; k++ {
			ADDQ(sb, w[i])
			VEXTRACTPS(Imm(uint64(k)), s, Mem{Base: w[i]})
		}
	}
	ADDQ(Imm(16), rows)
	ADDQ(Imm(8), out)
	SUBQ(Imm(2), left)
	JMP(LabelRef(name + "_pair"))

	Label(name + "_end")
	VZEROUPPER()
	RET()
}

// accumArgs loads the arguments of the value pass (p []float32, stride
// int, rows []*float32, out []float32): the four heads' weight pointers
// (p, then stride values apart), the rows' pointer and count, out, and
// len(out), 4·dv values, which is also dv·4, the bytes of one head's
// output: the stride between heads and the end of the tile loop.
func accumArgs() (ps []Register, rows, n, out, dvb Register) {
	p0 := Load(Param("p").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	rows = Load(Param("rows").Base(), GP64())
	n = Load(Param("rows").Len(), GP64())
	out = Load(Param("out").Base(), GP64())
	dvb = Load(Param("out").Len(), GP64())
	SHLQ(Imm(2), stride)
	p1, p2, p3 := GP64(), GP64(), GP64()
	LEAQ(Mem{Base: p0, Index: stride, Scale: 1}, p1)
	LEAQ(Mem{Base: p1, Index: stride, Scale: 1}, p2)
	LEAQ(Mem{Base: p2, Index: stride, Scale: 1}, p3)
	return []Register{p0, p1, p2, p3}, rows, n, out, dvb
}

// scoreArgs loads the arguments of the score pass (rows []*float32, q
// []float32, scale float32, out []float32, stride int): the rows' pointer
// and count, the row length d = len(q)/4 in values and db in bytes, the
// four heads' query pointers, out, and the stride in bytes.
func scoreArgs() (rows, left, d, db Register, x [4]Register, out, sb Register) {
	rows = Load(Param("rows").Base(), GP64())
	left = Load(Param("rows").Len(), GP64())
	d = Load(Param("q").Len(), GP64())
	SHRQ(Imm(2), d)
	x[0] = Load(Param("q").Base(), GP64())
	db = GP64()
	MOVQ(d, db)
	SHLQ(Imm(2), db)
	for k := 1; k < 4; k++ {
		x[k] = GP64()
		LEAQ(Mem{Base: x[k-1], Index: db, Scale: 1}, x[k])
	}
	out = Load(Param("out").Base(), GP64())
	sb = Load(Param("stride"), GP64())
	SHLQ(Imm(2), sb)
	return rows, left, d, db, x, out, sb
}

// hsum4EVEX is hsum4 with instructions that have EVEX forms, so that its
// registers may be any of the 32: each head's high half is added to its
// low half (lanes l and l+4), then VHADDPS's adjacent pairs come from two
// shuffles, of the even and of the odd lanes, and one add (the same sums,
// each of the same two values).
func hsum4EVEX(a [4]VecVirtual) VecVirtual {
	for _, y := range a {
		t := XMM()
		VEXTRACTF32X4(Imm(1), y, t)
		VADDPS(t, y.AsX(), y.AsX())
	}
	hadd := func(p, q Register) VecVirtual { // [p0+p1, p2+p3, q0+q1, q2+q3]
		ev, od := XMM(), XMM()
		VSHUFPS(Imm(0x88), q, p, ev)
		VSHUFPS(Imm(0xDD), q, p, od)
		VADDPS(od, ev, ev)
		return ev
	}
	lo := hadd(a[0].AsX(), a[1].AsX())
	hi := hadd(a[2].AsX(), a[3].AsX())
	return hadd(lo, hi)
}

// accumRowsF32x4Wide writes accumRowsF32x4AVX512, accumRowsF32x4AVX2 with
// AVX-512 registers and the same bits: tiles of 64 values per head (sixteen
// 16-lane accumulators for the four heads) while 64 remain, then tiles of
// 16 (four accumulators). Per row of a wide tile: four loads of the row,
// four broadcast weights and sixteen fused multiply-adds, for four times
// the work of an AVX2 row step; every output value still takes the rows'
// products one by one in row order (acc = row·p + acc), so the tiling does
// not change a bit. Before a row's tile it prefetches the row's next tile.
func accumRowsF32x4Wide() {
	name := "accumRowsF32x4AVX512"
	TEXT(name, NOSPLIT, "func(p []float32, stride int, rows []*float32, out []float32)")
	Doc(name+" is accumRowsF32x4AVX2 with AVX-512 registers, with its bits; see _gen.",
		"len(out) is a multiple of 64; every rows[j] points at len(out)/4 values.")
	ps, rows, n, out, dvb := accumArgs()
	d, o, j, ptr, end := GP64(), GP64(), GP64(), GP64(), GP64()
	XORQ(d, d)

	// tile writes the loop over tiles of width values per head, from d
	// while at least width remain, then jumps to next.
	tile := func(label string, width int, next string) {
		vecs := width / 16
		acc := make([][]VecVirtual, 4)
		for k := range acc {
			acc[k] = make([]VecVirtual, vecs)
			for v := range acc[k] {
				acc[k][v] = ZMM()
			}
		}
		Label(name + "_" + label)
		LEAQ(Mem{Base: d, Disp: 4 * width}, end)
		CMPQ(end, dvb)
		JA(LabelRef(name + "_" + next))
		LEAQ(Mem{Base: out, Index: d, Scale: 1}, o)
		for k := range 4 {
			for v := range vecs {
				VMOVUPS(Mem{Base: o, Disp: 64 * v}, acc[k][v])
			}
			if k < 3 {
				ADDQ(dvb, o)
			}
		}
		XORQ(j, j)
		Label(name + "_" + label + "_row")
		CMPQ(j, n)
		JAE(LabelRef(name + "_" + label + "_store"))
		MOVQ(Mem{Base: rows, Index: j, Scale: 8}, ptr)
		r := make([]VecVirtual, vecs)
		for v := range r {
			r[v] = ZMM()
			VMOVUPS(Mem{Base: ptr, Index: d, Scale: 1, Disp: 64 * v}, r[v])
		}
		for v := range vecs {
			PREFETCHT0(Mem{Base: ptr, Index: d, Scale: 1, Disp: 4*width + 64*v})
		}
		w := make([]VecVirtual, 4)
		for k := range w {
			w[k] = ZMM()
			VBROADCASTSS(Mem{Base: ps[k], Index: j, Scale: 4}, w[k])
		}
		for k := range 4 {
			for v := range vecs {
				VFMADD231PS(r[v], w[k], acc[k][v])
			}
		}
		INCQ(j)
		JMP(LabelRef(name + "_" + label + "_row"))

		Label(name + "_" + label + "_store")
		LEAQ(Mem{Base: out, Index: d, Scale: 1}, o)
		for k := range 4 {
			for v := range vecs {
				VMOVUPS(acc[k][v], Mem{Base: o, Disp: 64 * v})
			}
			if k < 3 {
				ADDQ(dvb, o)
			}
		}
		MOVQ(end, d)
		JMP(LabelRef(name + "_" + label))
	}
	tile("wide", 64, "narrow")
	tile("narrow", 16, "done")

	Label(name + "_done")
	VZEROUPPER()
	RET()
}
