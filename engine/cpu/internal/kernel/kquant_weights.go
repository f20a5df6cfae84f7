package kernel

import (
	"encoding/binary"
	"math"
)

// The weight quantizers: ggml's reference (_ref) quantizers of
// ggml/src/ggml-quants.c at llama.cpp commit
// 01243c587feceaa5d6a6c2305535ef2f549c48b8, restated in Go with the same
// float32 operations in the same order (no fused multiply-adds), so that
// a test model written with them holds the bytes llama-quantize writes for
// the same tensor without an importance matrix (quantize_q4_K and its
// siblings call the _ref function when quant_weights is NULL). They are
// for building models and tests, not for the hot path, and are not
// dispatched. Each panics if len(x) is not a whole number of blocks or dst
// is too short, and allocates nothing.

// kqTruncInt8 is C's (int8_t)f, and the low byte of (uint8_t)f, as gcc and
// clang compile them for amd64: CVTTSS2SI (toward zero; 0x80000000 for NaN
// and values outside the int32 range), keeping the low byte.
func kqTruncInt8(f float32) int8 {
	if !(f > -0x1p31 && f < 0x1p31) {
		return 0
	}
	return int8(int32(f))
}

// kqSqrt is sqrtf: the float64 square root of a float32 rounds to float32
// correctly (53 ≥ 2·24+2 bits).
func kqSqrt(f float32) float32 {
	return float32(math.Sqrt(float64(f)))
}

// QuantizeQ4_0 quantizes x into len(x)/32 Q4_0 blocks at the start of dst,
// bit for bit as ggml's quantize_row_q4_0_ref. Per block:
//
//	max := the first x[i] of largest |x[i]| ("if (amax < fabsf(v))")
//	d := max / -8; id := 1/d, or 0 if d == 0
//	q[i] = min(15, (int8_t)(x[i]·id + 8.5))
//
// so the value of largest magnitude maps to q = 0 (−8·d) and the opposite
// extreme may clip at 15. It panics if len(x) is not a multiple of 32 or
// dst is shorter than len(x)/32·18 bytes.
func QuantizeQ4_0(x []float32, dst []byte) {
	kqRowBytes("QuantizeQ4_0", "x", len(x), Q4_0BlockLen, Q4_0BlockSize, "dst", len(dst))
	for i := range len(x) / Q4_0BlockLen {
		xb := (*[Q4_0BlockLen]float32)(x[i*Q4_0BlockLen:])
		y := (*[Q4_0BlockSize]byte)(dst[i*Q4_0BlockSize:])
		var amax, mx float32
		for _, v := range xb {
			if amax < kqAbs(v) {
				amax, mx = kqAbs(v), v
			}
		}
		d := mx / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		kqPutF16(y[0:], d)
		for j := range 16 {
			x0 := float32(xb[j] * id)
			x1 := float32(xb[16+j] * id)
			xi0 := uint8(min(15, int32(kqTruncInt8(x0+8.5))))
			xi1 := uint8(min(15, int32(kqTruncInt8(x1+8.5))))
			y[2+j] = xi0 | xi1<<4
		}
	}
}

// QuantizeQ4_1 quantizes x into len(x)/32 Q4_1 blocks at the start of dst,
// bit for bit as ggml's quantize_row_q4_1_ref. Per block:
//
//	min, max := the block's extremes; d := (max − min)/15; id := 1/d or 0
//	dst: F32ToF16(d), F32ToF16(min), q[i] = min(15, (int8_t)((x[i]−min)·id + 0.5))
//
// It panics if len(x) is not a multiple of 32 or dst is shorter than
// len(x)/32·20 bytes.
func QuantizeQ4_1(x []float32, dst []byte) {
	kqRowBytes("QuantizeQ4_1", "x", len(x), Q4_1BlockLen, Q4_1BlockSize, "dst", len(dst))
	for i := range len(x) / Q4_1BlockLen {
		xb := (*[Q4_1BlockLen]float32)(x[i*Q4_1BlockLen:])
		y := (*[Q4_1BlockSize]byte)(dst[i*Q4_1BlockSize:])
		lo, hi := float32(math.MaxFloat32), float32(-math.MaxFloat32)
		for _, v := range xb {
			if v < lo {
				lo = v
			}
			if v > hi {
				hi = v
			}
		}
		d := (hi - lo) / 15
		var id float32
		if d != 0 {
			id = 1 / d
		}
		kqPutF16(y[0:], d)
		kqPutF16(y[2:], lo)
		for j := range 16 {
			x0 := float32((xb[j] - lo) * id)
			x1 := float32((xb[16+j] - lo) * id)
			xi0 := uint8(min(15, int32(kqTruncInt8(x0+0.5))))
			xi1 := uint8(min(15, int32(kqTruncInt8(x1+0.5))))
			y[4+j] = xi0 | xi1<<4
		}
	}
}

// QuantizeQ5_0 quantizes x into len(x)/32 Q5_0 blocks at the start of dst,
// bit for bit as ggml's quantize_row_q5_0_ref: as [QuantizeQ4_0] with
// d := max / -16 and q[i] = min(31, (int8_t)(x[i]·id + 16.5)), the fifth
// bits gathered into qh. It panics if len(x) is not a multiple of 32 or
// dst is shorter than len(x)/32·22 bytes.
func QuantizeQ5_0(x []float32, dst []byte) {
	kqRowBytes("QuantizeQ5_0", "x", len(x), Q5_0BlockLen, Q5_0BlockSize, "dst", len(dst))
	for i := range len(x) / Q5_0BlockLen {
		xb := (*[Q5_0BlockLen]float32)(x[i*Q5_0BlockLen:])
		y := (*[Q5_0BlockSize]byte)(dst[i*Q5_0BlockSize:])
		var amax, mx float32
		for _, v := range xb {
			if amax < kqAbs(v) {
				amax, mx = kqAbs(v), v
			}
		}
		d := mx / -16
		var id float32
		if d != 0 {
			id = 1 / d
		}
		kqPutF16(y[0:], d)
		var qh uint32
		for j := range 16 {
			x0 := float32(xb[j] * id)
			x1 := float32(xb[16+j] * id)
			xi0 := uint8(min(31, int32(kqTruncInt8(x0+16.5))))
			xi1 := uint8(min(31, int32(kqTruncInt8(x1+16.5))))
			y[6+j] = xi0&0x0F | (xi1&0x0F)<<4
			qh |= uint32(xi0&0x10) >> 4 << j
			qh |= uint32(xi1&0x10) >> 4 << (j + 16)
		}
		binary.LittleEndian.PutUint32(y[2:], qh)
	}
}

// QuantizeQ5_1 quantizes x into len(x)/32 Q5_1 blocks at the start of dst,
// bit for bit as ggml's quantize_row_q5_1_ref: as [QuantizeQ4_1] with
// d := (max − min)/31 and q[i] = (uint8_t)((x[i]−min)·id + 0.5), unclipped
// (the largest value gives at most 31.5), the fifth bits gathered into qh.
// It panics if len(x) is not a multiple of 32 or dst is shorter than
// len(x)/32·24 bytes.
func QuantizeQ5_1(x []float32, dst []byte) {
	kqRowBytes("QuantizeQ5_1", "x", len(x), Q5_1BlockLen, Q5_1BlockSize, "dst", len(dst))
	for i := range len(x) / Q5_1BlockLen {
		xb := (*[Q5_1BlockLen]float32)(x[i*Q5_1BlockLen:])
		y := (*[Q5_1BlockSize]byte)(dst[i*Q5_1BlockSize:])
		lo, hi := float32(math.MaxFloat32), float32(-math.MaxFloat32)
		for _, v := range xb {
			if v < lo {
				lo = v
			}
			if v > hi {
				hi = v
			}
		}
		d := (hi - lo) / 31
		var id float32
		if d != 0 {
			id = 1 / d
		}
		kqPutF16(y[0:], d)
		kqPutF16(y[2:], lo)
		var qh uint32
		for j := range 16 {
			x0 := float32((xb[j] - lo) * id)
			x1 := float32((xb[16+j] - lo) * id)
			xi0 := uint8(kqTruncInt8(x0 + 0.5))
			xi1 := uint8(kqTruncInt8(x1 + 0.5))
			y[8+j] = xi0&0x0F | (xi1&0x0F)<<4
			qh |= uint32(xi0&0x10) >> 4 << j
			qh |= uint32(xi1&0x10) >> 4 << (j + 16)
		}
		binary.LittleEndian.PutUint32(y[4:], qh)
	}
}

// kqMakeQKX2 is ggml's make_qkx2_quants: it fits x[:n] (with weights) by
// scale·L + min, L in [0, nmax] and min ≤ 0, trying the range max−min
// stretched by rmin + rdelta·is for is = 0…nstep and keeping the weighted
// least-squares fit of smallest error. It writes L (Laux is scratch) and
// returns the scale and −min.
func kqMakeQKX2(n, nmax int, x, weights []float32, L, Laux []uint8, rmin, rdelta float32, nstep int, useMAD bool) (scale, negMin float32) {
	x, weights, L, Laux = x[:n], weights[:n], L[:n], Laux[:n]
	lo, hi := x[0], x[0]
	sumW := weights[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < n; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		clear(L)
		return 0, -lo
	}
	errOf := func(diff float32) float32 {
		if useMAD {
			return kqAbs(diff)
		}
		return float32(diff * diff)
	}
	iscale := float32(nmax) / (hi - lo)
	scale = 1 / iscale
	var bestError float32
	for i := range n {
		l := kqNearestInt(float32(iscale * (x[i] - lo)))
		L[i] = uint8(max(0, min(int32(nmax), l)))
		diff := float32(float32(scale*float32(L[i]))+lo) - x[i]
		bestError += float32(weights[i] * errOf(diff))
	}
	if nstep < 1 {
		return scale, -lo
	}
	for is := 0; is <= nstep; is++ {
		iscale = float32(float32(rmin+float32(rdelta*float32(is)))+float32(nmax)) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i := range n {
			l := kqNearestInt(float32(iscale * (x[i] - lo)))
			l = max(0, min(int32(nmax), l))
			Laux[i] = uint8(l)
			w, fl := weights[i], float32(l)
			wl := float32(w * fl)
			sumL += wl
			sumL2 += float32(wl * fl)
			sumXL += float32(wl * x[i])
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curError float32
			for i := range n {
				diff := float32(float32(thisScale*float32(Laux[i]))+thisMin) - x[i]
				curError += float32(weights[i] * errOf(diff))
			}
			if curError < bestError {
				copy(L, Laux)
				bestError = curError
				scale = thisScale
				lo = thisMin
			}
		}
	}
	return scale, -lo
}

// kqQuantizeK4K5 is the body shared by quantize_row_q4_K_ref (nmax 15) and
// quantize_row_q5_K_ref (nmax 31) up to the packing of the quants: the
// per-sub-block fits, the 6-bit scales and mins with d and dmin (written
// to y[0:16]), and the requantized L.
func kqQuantizeK4K5(x *[256]float32, y []byte, L *[256]uint8, nmax int32, rmin, rdelta float32, nstep int) {
	var Laux [32]uint8
	var weights [32]float32
	var mins, scales [8]float32
	var maxScale, maxMin float32
	for j := range 8 {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := kqSqrt(sumX2 / 32)
		for l, v := range xs {
			weights[l] = avX + kqAbs(v)
		}
		scales[j], mins[j] = kqMakeQKX2(32, int(nmax), xs, weights[:], L[32*j:32*j+32], Laux[:], rmin, rdelta, nstep, false)
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := (*[12]byte)(y[4:])
	for j := range 8 {
		ls := min(63, uint8(kqNearestInt(float32(invScale*scales[j]))))
		lm := min(63, uint8(kqNearestInt(float32(invMin*mins[j]))))
		if j < 4 {
			sc[j] = ls
			sc[j+4] = lm
		} else {
			sc[j+4] = ls&0xF | (lm&0xF)<<4
			sc[j-4] |= (ls >> 4) << 6
			sc[j] |= (lm >> 4) << 6
		}
	}
	kqPutF16(y[0:], maxScale/63)
	kqPutF16(y[2:], maxMin/63)
	dh, dminh := kqF16(y[0:]), kqF16(y[2:])
	for j := range 8 {
		s, m := kqScaleMinK4(j, sc)
		d := float32(dh * float32(s))
		if d == 0 {
			continue
		}
		dm := float32(dminh * float32(m)) // rounded before x + dm, as in C
		for ii := range 32 {
			l := kqNearestInt((x[32*j+ii] + dm) / d)
			L[32*j+ii] = uint8(max(0, min(nmax, l)))
		}
	}
}

// QuantizeQ4_K quantizes x into len(x)/256 Q4_K super-blocks at the start
// of dst, bit for bit as ggml's quantize_row_q4_K_ref (what llama-quantize
// writes for a Q4_K tensor without an importance matrix). Per sub-block of
// 32, make_qkx2_quants fits scale·L − min with weights √(mean x²) + |x|
// (nmax 15, rmin −1, rdelta 0.1, 20 steps); the scales and mins are
// quantized to 6 bits against d = max scale/63 and dmin = max min/63, and
// every value is requantized against the stored scale and min:
// L = clamp(nearest_int((x + dmin·m)/(d·sc)), 0, 15). It panics if len(x)
// is not a multiple of 256 or dst is shorter than len(x)/256·144 bytes.
func QuantizeQ4_K(x []float32, dst []byte) {
	kqRowBytes("QuantizeQ4_K", "x", len(x), Q4_KBlockLen, Q4_KBlockSize, "dst", len(dst))
	for i := range len(x) / Q4_KBlockLen {
		xb := (*[Q4_KBlockLen]float32)(x[i*Q4_KBlockLen:])
		y := (*[Q4_KBlockSize]byte)(dst[i*Q4_KBlockSize:])
		var L [256]uint8
		kqQuantizeK4K5(xb, y[:], &L, 15, -1, 0.1, 20)
		for c := range 4 {
			q := (*[32]byte)(y[16+32*c:])
			for l := range q {
				q[l] = L[64*c+l] | L[64*c+32+l]<<4
			}
		}
	}
}

// QuantizeQ5_K quantizes x into len(x)/256 Q5_K super-blocks at the start
// of dst, bit for bit as ggml's quantize_row_q5_K_ref: as [QuantizeQ4_K]
// with 5-bit quants (nmax 31, rmin −0.5, rdelta 0.1, 15 steps), the fifth
// bits going to qh. It panics if len(x) is not a multiple of 256 or dst is
// shorter than len(x)/256·176 bytes.
func QuantizeQ5_K(x []float32, dst []byte) {
	kqRowBytes("QuantizeQ5_K", "x", len(x), Q5_KBlockLen, Q5_KBlockSize, "dst", len(dst))
	for i := range len(x) / Q5_KBlockLen {
		xb := (*[Q5_KBlockLen]float32)(x[i*Q5_KBlockLen:])
		y := (*[Q5_KBlockSize]byte)(dst[i*Q5_KBlockSize:])
		var L [256]uint8
		kqQuantizeK4K5(xb, y[:], &L, 31, -0.5, 0.1, 15)
		qh := (*[32]byte)(y[16:])
		clear(qh[:])
		m1, m2 := byte(1), byte(2)
		for c := range 4 {
			ql := (*[32]byte)(y[48+32*c:])
			for j := range 32 {
				l1, l2 := L[64*c+j], L[64*c+j+32]
				if l1 > 15 {
					l1 -= 16
					qh[j] |= m1
				}
				if l2 > 15 {
					l2 -= 16
					qh[j] |= m2
				}
				ql[j] = l1 | l2<<4
			}
			m1 <<= 2
			m2 <<= 2
		}
	}
}

// kqGroupMaxEps is ggml-quants.c's GROUP_MAX_EPS: a group whose largest
// magnitude is below it quantizes to zeros.
const kqGroupMaxEps float32 = 1e-15

// kqMakeQXQuants is ggml's make_qx_quants for rmse_type 1 and no
// importance weights (weights x²), as quantize_row_q6_K_ref calls it: the
// scale mapping max to −nmax, refined by a weighted least-squares scale
// over 19 trial scales. It writes L = l + nmax (in [0, 2·nmax)) and
// returns the scale.
func kqMakeQXQuants(nmax int32, x []float32, L []uint8) float32 {
	var mx, amax float32
	for _, v := range x {
		if ax := kqAbs(v); ax > amax {
			amax, mx = ax, v
		}
	}
	if amax < kqGroupMaxEps {
		clear(L[:len(x)])
		return 0
	}
	quant := func(iscale, v float32) int32 {
		return max(-nmax, min(nmax-1, kqNearestInt(float32(iscale*v))))
	}
	iscale := float32(-nmax) / mx
	var sumlx, suml2 float32
	for i, v := range x {
		l := quant(iscale, v)
		L[i] = uint8(l + nmax)
		w, fl := float32(v*v), float32(l)
		sumlx += float32(float32(w*v) * fl)
		suml2 += float32(float32(w*fl) * fl)
	}
	var scale float32
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	best := float32(scale * sumlx)
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(float32(nmax) + float32(0.1*float32(is))) / mx
		sumlx, suml2 = 0, 0
		for _, v := range x {
			l := quant(iscale, v)
			w, fl := float32(v*v), float32(l)
			sumlx += float32(float32(w*v) * fl)
			suml2 += float32(float32(w*fl) * fl)
		}
		if suml2 > 0 && float32(sumlx*sumlx) > float32(best*suml2) {
			for i, v := range x {
				L[i] = uint8(nmax + quant(iscale, v))
			}
			scale = sumlx / suml2
			best = float32(scale * sumlx)
		}
	}
	return scale
}

// QuantizeQ6_K quantizes x into len(x)/256 Q6_K super-blocks at the start
// of dst, bit for bit as ggml's quantize_row_q6_K_ref. Per sub-block of
// 16, make_qx_quants (nmax 32, weights x²) fits a signed scale; the scale
// of largest magnitude sets iscale = −128/scale, d = 1/iscale and the
// int8 scales min(127, nearest_int(iscale·scale)); every value is then
// requantized against d·sc: L = clamp(nearest_int(x/(d·sc)), −32, 31) + 32.
// A super-block whose scales are all below 1e-15 becomes all zeros. It
// panics if len(x) is not a multiple of 256 or dst is shorter than
// len(x)/256·210 bytes.
func QuantizeQ6_K(x []float32, dst []byte) {
	kqRowBytes("QuantizeQ6_K", "x", len(x), Q6_KBlockLen, Q6_KBlockSize, "dst", len(dst))
	for i := range len(x) / Q6_KBlockLen {
		xb := (*[Q6_KBlockLen]float32)(x[i*Q6_KBlockLen:])
		y := (*[Q6_KBlockSize]byte)(dst[i*Q6_KBlockSize:])
		var L [256]uint8
		var scales [16]float32
		var maxScale, maxAbsScale float32
		for ib := range 16 {
			scale := kqMakeQXQuants(32, xb[16*ib:16*ib+16], L[16*ib:16*ib+16])
			scales[ib] = scale
			if as := kqAbs(scale); as > maxAbsScale {
				maxAbsScale, maxScale = as, scale
			}
		}
		if maxAbsScale < kqGroupMaxEps {
			clear(y[:])
			continue
		}
		iscale := -128 / maxScale
		kqPutF16(y[208:], 1/iscale)
		for ib := range 16 {
			y[192+ib] = byte(min(127, kqNearestInt(float32(iscale*scales[ib]))))
		}
		dh := kqF16(y[208:])
		for j := range 16 {
			d := dh * float32(int8(y[192+j]))
			if d == 0 {
				continue
			}
			for ii := range 16 {
				l := kqNearestInt(xb[16*j+ii] / d)
				L[16*j+ii] = uint8(max(-32, min(31, l)) + 32)
			}
		}
		for n := range 2 {
			ql := (*[64]byte)(y[64*n:])
			qh := (*[32]byte)(y[128+32*n:])
			Ln := (*[128]uint8)(L[128*n:])
			for l := range 32 {
				q1, q2, q3, q4 := Ln[l], Ln[l+32], Ln[l+64], Ln[l+96]
				ql[l] = q1&0xF | (q3&0xF)<<4
				ql[l+32] = q2&0xF | (q4&0xF)<<4
				qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
			}
		}
	}
}
