package samplemath

import "math"

// Exp and Log are written so that every platform computes the same bits:
// only +, −, ×, ÷ (each rounded once, as IEEE 754 requires), conversions
// between float64 and int, and math.Frexp and Ldexp (plain Go on every
// platform but s390x, and exact but for Ldexp's one rounding into the
// subnormals). Go lets a compiler fuse
// x*y + z into one fused multiply-add on some architectures (arm64,
// ppc64le, s390x; amd64 with GOAMD64=v3), which rounds once instead of
// twice; an explicit float64(x*y) conversion forbids it (the spec, "Floating-
// point operators"), so every product below that feeds a sum is wrapped.
// math.Exp and math.Log are not used because amd64 runs them in assembly,
// whose last bit can differ from the same call compiled to WebAssembly.

// ln 2 split in two (Cody and Waite): ln2Hi has its low 32 bits zero, so
// k·ln2Hi (and k·ln2Hi/32) is exact for every k that occurs here
// (|k| < 2^16), and x − k·ln2Hi/32 loses nothing.
const (
	ln2Hi = 6.93147180369123816490e-01 // 0x3fe62e42fee00000
	ln2Lo = 1.90821492927058770002e-10 // ln 2 − ln2Hi
	log2e = 1.44269504088896338700e+00 // 1/ln 2

	// Beyond these, e^x overflows to +Inf or underflows to 0.
	expOverflow  = 7.09782712893383973096e+02
	expUnderflow = -7.45133219101941108420e+02
)

// exp2Table holds 2^(j/32) for j = 0 … 31, each the float64 nearest the
// true value (computed with 60-digit decimal arithmetic), as bits.
var exp2Table = [32]uint64{
	0x3ff0000000000000, 0x3ff059b0d3158574, 0x3ff0b5586cf9890f, 0x3ff11301d0125b51,
	0x3ff172b83c7d517b, 0x3ff1d4873168b9aa, 0x3ff2387a6e756238, 0x3ff29e9df51fdee1,
	0x3ff306fe0a31b715, 0x3ff371a7373aa9cb, 0x3ff3dea64c123422, 0x3ff44e086061892d,
	0x3ff4bfdad5362a27, 0x3ff5342b569d4f82, 0x3ff5ab07dd485429, 0x3ff6247eb03a5585,
	0x3ff6a09e667f3bcd, 0x3ff71f75e8ec5f74, 0x3ff7a11473eb0187, 0x3ff82589994cce13,
	0x3ff8ace5422aa0db, 0x3ff93737b0cdc5e5, 0x3ff9c49182a3f090, 0x3ffa5503b23e255d,
	0x3ffae89f995ad3ad, 0x3ffb7f76f2fb5e47, 0x3ffc199bdd85529c, 0x3ffcb720dcef9069,
	0x3ffd5818dcfba487, 0x3ffdfc97337b9b5f, 0x3ffea4afa2a490da, 0x3fff50765b6e4540,
}

// expPoly holds 1/n! for n = 6 down to 2: Horner's order. On the reduced
// range |r| ≤ ln2/64 (plus rounding), the first term left out, r⁷/7!, is
// below 4e-18 of e^r.
var expPoly = [...]float64{1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 1.0 / 2}

// Exp returns e^x, within 2 ulps (4e-16 relative) of the true value,
// and the same bits on every platform. Exp(−Inf) is 0, Exp(+Inf) is +Inf,
// Exp(NaN) is NaN, Exp(0) is exactly 1.
func Exp(x float64) float64 {
	switch {
	case x != x:
		return x
	case x > expOverflow:
		return math.Inf(1)
	case x < expUnderflow:
		return 0
	case x == 0:
		return 1
	}
	k, r := expReduce(x)
	t := math.Float64frombits(exp2Table[k&31])
	y := t + float64(t*expm1Poly(r)) // 2^(j/32)·e^r, rounded once at the end
	m := k >> 5                      // floor(k/32): an arithmetic shift
	if m > -1000 && m < 1000 {
		return y * math.Float64frombits(uint64(m+1023)<<52) // exact: a power of 2, no overflow or subnormal
	}
	return math.Ldexp(y, m)
}

// expReduce writes x = k·ln2/32 + r with |r| ≤ ln2/64 (k = 32m + j), so
// that e^x = 2^m · 2^(j/32) · e^r. Go's conversion to int truncates, so
// ±0.5 rounds k to the nearest integer, the same way everywhere. It and
// expm1Poly are small enough to inline, so that ExpGather's loop makes no
// calls.
func expReduce(x float64) (k int, r float64) {
	kf := float64(x * (32 * log2e))
	if kf < 0 {
		kf -= 0.5
	} else {
		kf += 0.5
	}
	k = int(kf)
	fk := float64(k)
	return k, (x - float64(fk*(ln2Hi/32))) - float64(fk*(ln2Lo/32))
}

// expm1Poly is e^r − 1 = r + r²·(1/2 + r/6 + … + r⁴/720) on the reduced
// range, by Horner, written out: a loop costs a WebAssembly guest a branch
// and a check per turn.
func expm1Poly(r float64) float64 {
	p := float64(expPoly[0]*r) + expPoly[1]
	p = float64(p*r) + expPoly[2]
	p = float64(p*r) + expPoly[3]
	p = float64(p*r) + expPoly[4]
	return r + float64(float64(r*r)*p)
}

// expDirect bounds the arguments whose e^x is Exp's y times 2^m with no
// special case: NaN fails the comparison, ±Inf, overflow and underflow
// lie outside, and |m| < 1000 inside (e^0 comes out as exactly 1).
const expDirect = 690

// ExpGather sets dst[j] = Exp(float64(src[idx[j]]) − shift) for every j <
// len(idx), bit for bit, four at a time and without calls where the
// arguments are in the ordinary range: a Go function compiled to
// WebAssembly pays for every call and loop turn (a sandboxed guest also a
// meter count), and a policy's exponentials over its candidates were
// most of its cost. dst must hold len(idx) values.
func ExpGather(dst []float64, src []float32, idx []int32, shift float64) {
	dst = dst[:len(idx)]
	j := 0
	for ; j+4 <= len(idx); j += 4 {
		x0 := float64(src[idx[j]]) - shift
		x1 := float64(src[idx[j+1]]) - shift
		x2 := float64(src[idx[j+2]]) - shift
		x3 := float64(src[idx[j+3]]) - shift
		if !(x0 > -expDirect && x0 < expDirect && x1 > -expDirect && x1 < expDirect &&
			x2 > -expDirect && x2 < expDirect && x3 > -expDirect && x3 < expDirect) {
			break
		}
		k0, r0 := expReduce(x0)
		k1, r1 := expReduce(x1)
		k2, r2 := expReduce(x2)
		k3, r3 := expReduce(x3)
		t0 := math.Float64frombits(exp2Table[k0&31])
		t1 := math.Float64frombits(exp2Table[k1&31])
		t2 := math.Float64frombits(exp2Table[k2&31])
		t3 := math.Float64frombits(exp2Table[k3&31])
		dst[j] = (t0 + float64(t0*expm1Poly(r0))) * math.Float64frombits(uint64(k0>>5+1023)<<52)
		dst[j+1] = (t1 + float64(t1*expm1Poly(r1))) * math.Float64frombits(uint64(k1>>5+1023)<<52)
		dst[j+2] = (t2 + float64(t2*expm1Poly(r2))) * math.Float64frombits(uint64(k2>>5+1023)<<52)
		dst[j+3] = (t3 + float64(t3*expm1Poly(r3))) * math.Float64frombits(uint64(k3>>5+1023)<<52)
	}
	for ; j < len(idx); j++ {
		dst[j] = Exp(float64(src[idx[j]]) - shift)
	}
}

// logSeries holds 1/(2n+1) for n = 10 down to 1: log m = 2·atanh(s) =
// 2s·(1 + z/3 + z²/5 + …) with s = (m−1)/(m+1) and z = s², where
// z ≤ 0.0295 on [√½, √2); the first term left out, z¹¹/23, is below 1e-18
// of the sum.
var logSeries = [...]float64{
	1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9,
	1.0 / 7, 1.0 / 5, 1.0 / 3,
}

// Log returns the natural logarithm of x, within 2 ulps of the true
// value, and the same bits on every platform. Log(0) is −Inf, Log(+Inf) is
// +Inf, Log of a negative number or NaN is NaN, Log(1) is exactly 0.
func Log(x float64) float64 {
	switch {
	case x != x || x < 0:
		return math.NaN()
	case x == 0:
		return math.Inf(-1)
	case math.IsInf(x, 1):
		return x
	case x == 1:
		return 0
	}
	// x = m·2^e with m in [√½, √2), so log x = e·ln2 + log m.
	m, e := math.Frexp(x) // m in [½, 1)
	if m < math.Sqrt2/2 {
		m *= 2
		e--
	}
	s := (m - 1) / (m + 1) // m − 1 is exact (Sterbenz)
	z := float64(s * s)
	// Horner, written out (see Exp).
	q := float64(logSeries[0]*z) + logSeries[1]
	q = float64(q*z) + logSeries[2]
	q = float64(q*z) + logSeries[3]
	q = float64(q*z) + logSeries[4]
	q = float64(q*z) + logSeries[5]
	q = float64(q*z) + logSeries[6]
	q = float64(q*z) + logSeries[7]
	q = float64(q*z) + logSeries[8]
	q = float64(q*z) + logSeries[9]
	// log m = 2s + 2s·(z·q); 2s is exact.
	s2 := 2 * s
	tail := float64(s2 * float64(z*q))
	fe := float64(e)
	return float64(fe*ln2Hi) + (s2 + (tail + float64(fe*ln2Lo)))
}
