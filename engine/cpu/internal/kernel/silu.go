package kernel

import (
	"math"
	"strconv"
)

// SwiGLUF32 sets g[i] = silu(g'[i])·u'[i] for every i < len(g), where g' is
// g[i] clamped above at clamp and u' is u[i] clamped to [−clamp, clamp]
// (no clamp when clamp ≤ 0 or NaN: V4's asymmetric swiglu_limit), and
//
//	silu(x) = x / (1 + e^(−x))
//
// with e^(−x) the float32 that float32(math.Exp(float64(−x))) gives, bit
// for bit, and then one rounding per add, divide and multiply, in that
// order: the bits of the routed experts' scalar SwiGLU in engine/cpu. A NaN
// passes through the clamps. It panics if u is shorter than g.
//
// The AVX2 kernel computes e^(−x) in float64, eight values at a time, to
// within a few units in the last place, and rounds it to float32 where it
// lies well clear of a point halfway between two float32 values (as the
// scalar code does, see expNearF64); the rare group of eight with a value
// near such a point, or outside (−87, 88) where e^x is subnormal, infinite
// or NaN, goes through the scalar code.
func SwiGLUF32(g, u []float32, clamp float32) {
	if len(u) < len(g) {
		panic("kernel: SwiGLUF32: " + strconv.Itoa(len(g)) + " gates, " + strconv.Itoa(len(u)) + " ups")
	}
	if !(clamp > 0) {
		clamp = float32(math.Inf(1))
	}
	active.swiglu(g, u[:len(g)], clamp)
}

// swigluGeneric is [SwiGLUF32] in Go, for clamp > 0 (+Inf for none).
func swigluGeneric(g, u []float32, clamp float32) {
	u = u[:len(g)]
	for i, gv := range g {
		g[i] = swiglu1(gv, u[i], clamp)
	}
}

// swiglu1 is one value of [SwiGLUF32] for clamp > 0. The clamps are
// branches that leave a NaN alone, as VMINPS and VMAXPS with the clamp as
// the first source do.
func swiglu1(gv, uv, clamp float32) float32 {
	if gv > clamp {
		gv = clamp
	}
	if uv > clamp {
		uv = clamp
	} else if uv < -clamp {
		uv = -clamp
	}
	x := -gv
	var e float32
	if y := expNearF64(float64(x)); x > -87 && x < 88 && roundsSureF32(y) {
		e = float32(y)
	} else {
		e = expSlowF32(x)
	}
	return gv / (1 + e) * uv
}

// Exp32 returns float32(math.Exp(float64(x))) bit for bit, faster: a
// 64-entry table of 2^(j/64) and a degree-5 polynomial give e^x in
// float64 to within a few units in the last place, far closer than
// float32 needs, and only where that value lies within siluBand float64
// units of a point halfway between two float32 values (where math.Exp's
// own last-place error could round it the other way, about once in
// 65,000) does Exp32 ask math.Exp. Outside (−87, 88), where the result
// would be subnormal, infinite or NaN, it asks math.Exp too.
func Exp32(x float32) float32 {
	if !(x > -87 && x < 88) {
		return expSlowF32(x)
	}
	y := expNearF64(float64(x))
	if !roundsSureF32(y) {
		return expSlowF32(x)
	}
	return float32(y)
}

// expNearF64 is e^x for x in (−87, 88), within a few float64 units in the
// last place: k = round(x·64/ln2), r = x − k·ln2/64 (ln2/64 in two parts,
// k·siluLn2Hi exact), e^x = 2^(k/64)·e^r with e^r a degree-5 polynomial
// (|r| ≤ ln2/128: the next term is below 2^−54).
func expNearF64(x float64) float64 {
	kf := x*(siluTableLen/math.Ln2) + siluRound - siluRound
	k := int64(kf)
	r := x - kf*siluLn2Hi - kf*siluLn2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120)))))
	return siluTable[k&(siluTableLen-1)] * math.Float64frombits(uint64(1023+(k>>6))<<52) * p
}

// roundsSureF32 reports whether y, a normal float32's worth of float64
// within a few units of e^x, rounds to the float32 that math.Exp's value
// does: whether it lies at least siluBand units from a point halfway
// between two float32 values. The low 29 of a float64's 52 fraction bits
// are what rounding to float32 drops; 1<<28 is the halfway point.
func roundsSureF32(y float64) bool {
	d := int64(math.Float64bits(y)&(1<<29-1)) - 1<<28
	return d <= -siluBand || d >= siluBand
}

// expSlowF32 is float32(math.Exp(float64(x))), out of line so that the
// loop that calls it rarely keeps its values in registers.
//
//go:noinline
func expSlowF32(x float32) float32 { return float32(math.Exp(float64(x))) }

const (
	siluTableLen = 64
	siluRound    = 0x1.8p52 // adding and subtracting it rounds to an integer
	// siluLn2Hi is ln2/64 to 32 significant bits, so that k·siluLn2Hi is
	// exact for |k| < 2^21; siluLn2Lo is the rest.
	siluLn2Hi = 0x1.62e42fefp-7
	siluLn2Lo = math.Ln2/siluTableLen - siluLn2Hi
	// siluBand is how close, in float64 units in the last place, an
	// approximation of e^x may come to a float32 rounding boundary before
	// math.Exp decides: the approximations' errors and math.Exp's are a
	// few units, the band thousands.
	siluBand = 1 << 12
)

// siluTable holds 2^(j/64) for j < 64.
var siluTable = func() (t [siluTableLen]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / siluTableLen)
	}
	return t
}()

// Exp32s sets dst[i] = [Exp32](x[i]) for every i < len(x), eight values
// at a time where the CPU allows (the exponential of [SwiGLUF32]'s
// kernel), with Exp32's bits. It panics if dst is shorter than x.
func Exp32s(dst, x []float32) {
	dst = dst[:len(x)]
	n := len(x) &^ 7
	for i := 0; i < n; {
		i += exp32s8(dst[i:n], x[i:n])
		if i < n {
			exp32sGeneric(dst[i:i+8], x[i:i+8])
			i += 8
		}
	}
	exp32sGeneric(dst[n:], x[n:])
}

// exp32sGeneric is the reference loop of [Exp32s].
func exp32sGeneric(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = Exp32(v)
	}
}
