package cpu

import (
	"math"

	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// exp32 returns float32(math.Exp(float64(x))) bit for bit, in about half
// the time of that expression (BenchmarkExp32): a 64-entry table of 2^(j/64) and a degree-5
// polynomial give e^x in float64 to within a few units in the last place,
// far closer than float32 needs, and only where that value lies within
// expBand float64 units of a point halfway between two float32 values
// (where math.Exp's own last-place error could round it the other way,
// about once in 65,000) does exp32 ask math.Exp. Outside (−87, 88), where
// the result would be subnormal, infinite or NaN, it asks math.Exp too.
// The softmaxes, SiLUs and sigmoids of a decode step call it tens of
// thousands of times.
func exp32(x float32) float32 {
	if !(x > -87 && x < 88) {
		return float32(math.Exp(float64(x)))
	}
	y := expNear(float64(x))
	if !roundsSure(y) {
		return float32(math.Exp(float64(x)))
	}
	return float32(y)
}

// expNear is e^x for x in (−87, 88), within a few float64 units in the
// last place: k = round(x·64/ln2), r = x − k·ln2/64 (ln2/64 in two parts,
// k·expLn2Hi exact), e^x = 2^(k/64)·e^r with e^r a degree-5 polynomial
// (|r| ≤ ln2/128: the next term is below 2^−54).
func expNear(x float64) float64 {
	kf := x*(expTableLen/math.Ln2) + expRound - expRound
	k := int64(kf)
	r := x - kf*expLn2Hi - kf*expLn2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120)))))
	return expTable[k&(expTableLen-1)] * math.Float64frombits(uint64(1023+(k>>6))<<52) * p
}

// roundsSure reports whether y, a normal float32's worth of float64
// within a few units of e^x, rounds to the float32 that math.Exp's value
// does: whether it lies at least expBand units from a point halfway
// between two float32 values. The low 29 of a float64's 52 fraction bits
// are what rounding to float32 drops; 1<<28 is the halfway point.
func roundsSure(y float64) bool {
	d := int64(math.Float64bits(y)&(1<<29-1)) - 1<<28
	return d <= -expBand || d >= expBand
}

const (
	expTableLen = 64
	expRound    = 0x1.8p52 // adding and subtracting it rounds to an integer
	// expLn2Hi is ln2/64 to 32 significant bits, so that k·expLn2Hi is
	// exact for |k| < 2^21; expLn2Lo is the rest.
	expLn2Hi = 0x1.62e42fefp-7
	expLn2Lo = math.Ln2/expTableLen - expLn2Hi
	// expBand is how close, in float64 units in the last place, the
	// polynomial's e^x may come to a float32 rounding boundary before
	// math.Exp decides: both errors are a few units, the band thousands.
	expBand = 1 << 12
)

// expTable holds 2^(j/64) for j < 64.
var expTable = func() (t [expTableLen]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / expTableLen)
	}
	return t
}()

// swigluRows sets g[i] = swiglu(g[i], u[i], clamp) for every i, with the
// same bits: kernel.SwiGLUF32, whose exponential is exp32's
// float32(math.Exp(float64(x))), eight values at a time in AVX2.
func swigluRows(g, u []float32, clamp float32) {
	kernel.SwiGLUF32(g, u, clamp)
}
