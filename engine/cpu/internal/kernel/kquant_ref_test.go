package kernel

import (
	"encoding/binary"
	"math"
)

// This file decodes the K-quant and 32-value block formats a second time,
// independently of kquant.go: every field is read through kqBits at the
// bit offset ggml-common.h's struct layout gives it, and the integer parts
// of the dot products are plain sums over those decoded values. The tests
// hold the kernels to these decodings.

// kqBits reads n (≤ 8) bits of b starting at bit off, bits numbered from
// the least significant bit of b[0] upward.
func kqBits(b []byte, off, n int) int32 {
	var v int32
	for k := range n {
		bit := off + k
		v |= int32(b[bit/8]>>(bit%8)&1) << k
	}
	return v
}

// kqRefBlock is one weight block decoded: value i is exactly
// d·sc[i]·q[i] − dmin·mn[i] (exact in float64: at most 11+8+6 significant
// bits in a product, and the difference spans under 53 bits), and q, sc, mn
// are the integers ggml's dot products sum. The 32-value formats have
// sc = 1; Q4_1 and Q5_1 carry their min m as dmin = m, mn = −1.
type kqRefBlock struct {
	d, dmin   float64
	q, sc, mn []int32
	qlo, qhi  int32 // the range of q the format can hold
}

func (r *kqRefBlock) value(i int) float64 {
	return r.d*float64(r.sc[i])*float64(r.q[i]) - r.dmin*float64(r.mn[i])
}

func kqHalfAt(b []byte, off int) float64 {
	return float64(F16ToF32(binary.LittleEndian.Uint16(b[off:])))
}

func newKQRefBlock(n int, qlo, qhi int32) kqRefBlock {
	r := kqRefBlock{q: make([]int32, n), sc: make([]int32, n), mn: make([]int32, n), qlo: qlo, qhi: qhi}
	for i := range r.sc {
		r.sc[i] = 1
	}
	return r
}

// kqDecodeQ4_0: d f16 @0; value i's nibble at byte 2+i%16, bits 4·(i/16).
func kqDecodeQ4_0(b []byte) kqRefBlock {
	r := newKQRefBlock(32, -8, 7)
	r.d = kqHalfAt(b, 0)
	for i := range 32 {
		r.q[i] = kqBits(b, (2+i%16)*8+4*(i/16), 4) - 8
	}
	return r
}

// kqDecodeQ4_1: d @0, m @2, nibbles from byte 4.
func kqDecodeQ4_1(b []byte) kqRefBlock {
	r := newKQRefBlock(32, 0, 15)
	r.d, r.dmin = kqHalfAt(b, 0), kqHalfAt(b, 2)
	for i := range 32 {
		r.q[i] = kqBits(b, (4+i%16)*8+4*(i/16), 4)
		r.mn[i] = -1
	}
	return r
}

// kqDecodeQ5_0: d @0, qh u32 @2 (bit i is value i's fifth bit), nibbles
// from byte 6.
func kqDecodeQ5_0(b []byte) kqRefBlock {
	r := newKQRefBlock(32, -16, 15)
	r.d = kqHalfAt(b, 0)
	for i := range 32 {
		r.q[i] = kqBits(b, (6+i%16)*8+4*(i/16), 4) + 16*kqBits(b, 2*8+i, 1) - 16
	}
	return r
}

// kqDecodeQ5_1: d @0, m @2, qh @4, nibbles from byte 8.
func kqDecodeQ5_1(b []byte) kqRefBlock {
	r := newKQRefBlock(32, 0, 31)
	r.d, r.dmin = kqHalfAt(b, 0), kqHalfAt(b, 2)
	for i := range 32 {
		r.q[i] = kqBits(b, (8+i%16)*8+4*(i/16), 4) + 16*kqBits(b, 4*8+i, 1)
		r.mn[i] = -1
	}
	return r
}

// kqRefScaleMin decodes the 6-bit scale and min of sub-block j from the 12
// scale bytes at byte off of b. For j < 4 both are whole 6-bit fields
// (scale in byte j, min in byte j+4, bits 0–5); for j ≥ 4 byte j+4 holds
// the low four bits of the scale (bits 0–3) and of the min (bits 4–7), and
// the top two bits of bytes j−4 and j (bits 6–7) hold their high bits.
func kqRefScaleMin(b []byte, off, j int) (sc, m int32) {
	bit := func(byteIdx, from, n int) int32 { return kqBits(b, (off+byteIdx)*8+from, n) }
	if j < 4 {
		return bit(j, 0, 6), bit(j+4, 0, 6)
	}
	return bit(j+4, 0, 4) + 16*bit(j-4, 6, 2), bit(j+4, 4, 4) + 16*bit(j, 6, 2)
}

// kqDecodeQ4_K: d @0, dmin @2, scales @4, qs @16; value i = 64c+r has its
// nibble in byte 16+32c+r%32, bits 4·(r/32), and sub-block i/32.
func kqDecodeQ4_K(b []byte) kqRefBlock {
	r := newKQRefBlock(256, 0, 15)
	r.d, r.dmin = kqHalfAt(b, 0), kqHalfAt(b, 2)
	for i := range 256 {
		c, rem := i/64, i%64
		r.q[i] = kqBits(b, (16+32*c+rem%32)*8+4*(rem/32), 4)
		r.sc[i], r.mn[i] = kqRefScaleMin(b, 4, i/32)
	}
	return r
}

// kqDecodeQ5_K: as Q4_K with qs @48, and the fifth bit of value i at bit
// i/32 of qh[i%32] (qh @16).
func kqDecodeQ5_K(b []byte) kqRefBlock {
	r := newKQRefBlock(256, 0, 31)
	r.d, r.dmin = kqHalfAt(b, 0), kqHalfAt(b, 2)
	for i := range 256 {
		c, rem := i/64, i%64
		r.q[i] = kqBits(b, (48+32*c+rem%32)*8+4*(rem/32), 4) + 16*kqBits(b, (16+i%32)*8+i/32, 1)
		r.sc[i], r.mn[i] = kqRefScaleMin(b, 4, i/32)
	}
	return r
}

// kqDecodeQ6_K: ql @0, qh @128, int8 scales @192, d @208. Value
// i = 128n+32g+l has low bits in ql[64n+32(g%2)+l] at 4·(g/2), high bits
// in qh[32n+l] at 2g, and scale scales[i/16].
func kqDecodeQ6_K(b []byte) kqRefBlock {
	r := newKQRefBlock(256, -32, 31)
	r.d = kqHalfAt(b, 208)
	for i := range 256 {
		n, g, l := i/128, i%128/32, i%32
		lo := kqBits(b, (64*n+32*(g%2)+l)*8+4*(g/2), 4)
		hi := kqBits(b, (128+32*n+l)*8+2*g, 2)
		r.q[i] = lo + 16*hi - 32
		r.sc[i] = int32(int8(b[192+i/16]))
	}
	return r
}

// kqRefAct is one activation block decoded: values d·q[i]; s is Q8_1's
// stored d·Σq and bsums Q8_K's stored group sums (as stored, not
// recomputed).
type kqRefAct struct {
	d, s  float32
	q     []int32
	bsums []int32
}

func kqDecodeQ8_0(b []byte) kqRefAct {
	a := kqRefAct{d: F16ToF32(binary.LittleEndian.Uint16(b)), q: make([]int32, 32)}
	for i := range a.q {
		a.q[i] = int32(int8(b[2+i]))
	}
	return a
}

func kqDecodeQ8_1(b []byte) kqRefAct {
	a := kqRefAct{d: F16ToF32(binary.LittleEndian.Uint16(b)), s: F16ToF32(binary.LittleEndian.Uint16(b[2:])), q: make([]int32, 32)}
	for i := range a.q {
		a.q[i] = int32(int8(b[4+i]))
	}
	return a
}

func kqDecodeQ8_K(b []byte) kqRefAct {
	a := kqRefAct{d: math.Float32frombits(binary.LittleEndian.Uint32(b)), q: make([]int32, 256), bsums: make([]int32, 16)}
	for i := range a.q {
		a.q[i] = int32(int8(b[4+i]))
	}
	for j := range a.bsums {
		a.bsums[j] = int32(int16(binary.LittleEndian.Uint16(b[260+2*j:])))
	}
	return a
}

// kqRefSum is Σ q·x.q over a 32-value block: the integer part of the
// Q4_0/Q4_1/Q5_0/Q5_1 dot products.
func kqRefSum(w *kqRefBlock, x *kqRefAct) int32 {
	var s int32
	for i := range w.q {
		s += w.q[i] * x.q[i]
	}
	return s
}

// kqRefLanes is the integer part of a K-quant super-block product: lane l
// sums sc·q·x.q over the values whose index is l mod 8, and summ is
// Σ_j bsums[j]·mn of group j (16 values, within one 32-value sub-block).
func kqRefLanes(w *kqRefBlock, x *kqRefAct) (lanes [8]int32, summ int32) {
	for i := range w.q {
		lanes[i%8] += w.sc[i] * w.q[i] * x.q[i]
	}
	for j, bs := range x.bsums {
		summ += bs * w.mn[16*j]
	}
	return lanes, summ
}

// kqRefDot restates ggml's generic dot product of format f (its float32
// operations in C's order, each product rounded) over the independently
// decoded blocks.
func kqRefDot(f *kqFormat, w, x []byte, nb int) float32 {
	var sumf float32
	var sums [8]float32
	for b := range nb {
		wb := f.decode(w[b*f.wSize:])
		xb := f.actDecode(x[b*f.xSize:])
		dw, dmw := float32(wb.d), float32(wb.dmin)
		switch f.name {
		case "Q4_0":
			sumf += float32(float32(float32(kqRefSum(&wb, &xb))*dw) * xb.d)
		case "Q5_0":
			sumf += float32(float32(dw*xb.d) * float32(kqRefSum(&wb, &xb)))
		case "Q4_1", "Q5_1":
			sumf += float32(float32(dw*xb.d)*float32(kqRefSum(&wb, &xb))) + float32(dmw*xb.s)
		case "Q4_K", "Q5_K", "Q6_K":
			lanes, summ := kqRefLanes(&wb, &xb)
			d := float32(dw * xb.d)
			for l := range sums {
				sums[l] += float32(d * float32(lanes[l]))
			}
			if f.name != "Q6_K" {
				sumf -= float32(float32(dmw*xb.d) * float32(summ))
			}
		default:
			panic("kqRefDot: " + f.name)
		}
	}
	if f.blockLen == 256 {
		for _, v := range sums {
			sumf += v
		}
	}
	return sumf
}

// kqRefDot64 is the dot product of the dequantized weights and the
// dequantized activations in float64 (whose rounding is negligible here),
// with absSum = Σ (|d·sc·q| + |dmin·mn|)·|x|, which bounds the magnitude
// of every term the float32 kernels round, and q81 = Σ |m|·|s − d·Σq| over
// Q8_1 blocks: the difference the half-rounded s makes by design.
func kqRefDot64(f *kqFormat, w, x []byte, nb int) (dot, absSum, q81 float64) {
	for b := range nb {
		wb := f.decode(w[b*f.wSize:])
		xb := f.actDecode(x[b*f.xSize:])
		var qsum int64
		for i := range wb.q {
			xv := float64(xb.d) * float64(xb.q[i])
			dot += wb.value(i) * xv
			absSum += (math.Abs(wb.d*float64(wb.sc[i])*float64(wb.q[i])) + math.Abs(wb.dmin*float64(wb.mn[i]))) * math.Abs(xv)
			qsum += int64(xb.q[i])
		}
		if f.xSize == Q8_1BlockSize {
			q81 += math.Abs(wb.dmin) * math.Abs(float64(xb.s)-float64(xb.d)*float64(qsum))
		}
	}
	return dot, absSum, q81
}

// refQuantizeQ8_K is ggml's quantize_row_q8_K_ref restated statement by
// statement for finite input, sharing no code with QuantizeQ8_K except
// kqNearestInt (tested on its own against round-half-even).
func refQuantizeQ8_K(x []float32, y []byte) {
	const qk = 256
	for i := range len(x) / qk {
		xb := x[i*qk : (i+1)*qk]
		yb := y[i*292 : (i+1)*292]
		var max, amax float32
		for j := range qk {
			ax := float32(math.Abs(float64(xb[j])))
			if ax > amax {
				amax = ax
				max = xb[j]
			}
		}
		if amax == 0 {
			for k := range yb {
				yb[k] = 0
			}
			continue
		}
		iscale := float32(-127.0) / max
		for j := range qk {
			v := kqNearestInt(iscale * xb[j])
			if v > 127 {
				v = 127
			}
			yb[4+j] = uint8(int8(v))
		}
		for j := range qk / 16 {
			sum := 0
			for ii := range 16 {
				sum += int(int8(yb[4+j*16+ii]))
			}
			binary.LittleEndian.PutUint16(yb[260+2*j:], uint16(int16(sum)))
		}
		binary.LittleEndian.PutUint32(yb, math.Float32bits(1/iscale))
	}
}
