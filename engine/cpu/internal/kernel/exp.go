package kernel

import "math"

// Constants of Cephes' single-precision expf: ln 2 in two parts for the
// range reduction and the degree-5 polynomial of exp(r) − 1 − r over r².
const (
	expLog2e = float32(1.44269504088896341)
	expLn2Hi = float32(0.693359375)
	expLn2Lo = float32(-2.12194440e-4)
	expP0    = float32(1.9875691500e-4)
	expP1    = float32(1.3981999507e-3)
	expP2    = float32(8.3334519073e-3)
	expP3    = float32(4.1665795894e-2)
	expP4    = float32(1.6666665459e-1)
	expP5    = float32(5.0000001201e-1)
	// expFloor and expCeil bound the argument: below, exp(−87) ≈ 1.6e-38
	// stands in for an underflow (nothing a softmax sum of at least 1 can
	// see); above, exp(88) ≈ 1.65e38 for an overflow, where 2^n would
	// leave the exponent range.
	expFloor = float32(-87)
	expCeil  = float32(88)
)

// ExpRelErr bounds the relative error of [ExpShift]'s exponentials
// against the exact exp(x[i] − m) of the rounded difference, for
// differences in [−87, 88]: Cephes' expf is within about 1e-7; the bound
// leaves room for the rounding of the difference's reduction.
const ExpRelErr = 2e-7

// ExpShift replaces each x[i] with exp(x[i] − m) and returns their sum:
// softmax's exponentials, for m at least every x[i] (the largest score),
// so that every value lies in (0, 1] and the sum is at least 1 when m is
// one of the x[i]. The exponential is Cephes' expf, within [ExpRelErr] of
// the exact one, with x[i] − m clamped to [−87, 88]; a NaN stays NaN.
//
// The sum is taken in float64 (as ggml's soft_max does), in eight lanes,
// value i into lane i mod 8, added pairwise at the end. Every value and
// the sum have the same bits in the AVX2 kernel and the generic code, so
// attention's weights do not depend on the machine.
func ExpShift(x []float32, m float32) float64 {
	return active.expShift(x, m)
}

// expShiftGeneric is [ExpShift] in Go.
func expShiftGeneric(x []float32, m float32) float64 {
	var lanes [8]float64
	n := len(x) &^ 7
	expShift8Generic(x[:n], m, &lanes)
	return expShiftTail(x, n, m, &lanes)
}

// expShiftTail finishes [ExpShift] after the eight-value kernel has taken
// x[:n]: the last len(x) − n values add into lanes 0, 1, …, and the lanes
// meet pairwise.
func expShiftTail(x []float32, n int, m float32, lanes *[8]float64) float64 {
	for i, v := range x[n:] {
		e := expF32(v - m)
		x[n+i] = e
		lanes[i] += float64(e)
	}
	return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

// expShift8Generic is the reference loop of [ExpShift] over a length that
// is a multiple of 8: value i becomes expF32(x[i] − m) and adds into lane
// i mod 8.
func expShift8Generic(x []float32, m float32, lanes *[8]float64) {
	for i, v := range x {
		e := expF32(v - m)
		x[i] = e
		lanes[i&7] += float64(e)
	}
}

// expF32 is Cephes' expf with its argument clamped to [expFloor,
// expCeil]. Every product is rounded on its own (float32(…)), as the
// kernel's separate multiplies and adds are, so that no compiler fuses a
// multiply and an add; max and min keep a NaN, as the kernel's clamps do.
func expF32(x float32) float32 {
	x = min(max(x, expFloor), expCeil)
	n := float32(math.RoundToEven(float64(float32(x * expLog2e))))
	r := x - float32(n*expLn2Hi)
	r = r - float32(n*expLn2Lo)
	z := float32(r * r)
	y := float32(expP0*r) + expP1
	y = float32(y*r) + expP2
	y = float32(y*r) + expP3
	y = float32(y*r) + expP4
	y = float32(y*r) + expP5
	y = float32(y*z) + r
	y = y + 1
	return float32(y * math.Float32frombits(uint32(int32(n)+127)<<23))
}

// MaxF32 returns the largest of x's values: softmax's shift. It is −Inf
// for an empty x and NaN when any value is NaN (as Go's max is); of −0
// and +0, either may stand for zero. The AVX2 kernel and the generic
// code return the same bits.
func MaxF32(x []float32) float32 {
	return active.maxF32(x)
}

// maxF32Generic is [MaxF32] in Go.
func maxF32Generic(x []float32) float32 {
	lanes := maxLanes()
	n := len(x) &^ 7
	nan := maxF32x8Generic(x[:n], &lanes)
	return maxF32Tail(x, n, nan, &lanes)
}

// maxLanes is the eight lanes of [MaxF32] before any value: −Inf.
func maxLanes() [8]float32 {
	inf := float32(math.Inf(-1))
	return [8]float32{inf, inf, inf, inf, inf, inf, inf, inf}
}

// maxF32Tail finishes [MaxF32] after the eight-value kernel has taken
// x[:n] (and seen a NaN or not): lane i mod 8 keeps the largest of the
// values at i, by [greater]'s rule, and the lanes meet pairwise.
func maxF32Tail(x []float32, n int, nan bool, lanes *[8]float32) float32 {
	for i, v := range x[n:] {
		nan = nan || v != v
		lanes[i] = greater(lanes[i], v)
	}
	if nan {
		return float32(math.NaN())
	}
	return greater(greater(greater(lanes[0], lanes[1]), greater(lanes[2], lanes[3])),
		greater(greater(lanes[4], lanes[5]), greater(lanes[6], lanes[7])))
}

// greater is VMAXPS's rule: a if a > b, else b (b when either is NaN, or
// for −0 and +0).
func greater(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// maxF32x8Generic is the reference loop of [MaxF32] over a length that is
// a multiple of 8: lanes[i mod 8] = greater(lanes[i mod 8], x[i]), and it
// reports whether some x[i] is NaN.
func maxF32x8Generic(x []float32, lanes *[8]float32) bool {
	nan := false
	for i, v := range x {
		nan = nan || v != v
		lanes[i&7] = greater(lanes[i&7], v)
	}
	return nan
}

// Tile is the number of values one of TileMax's maxima covers.
const Tile = 64

// TileMax sets out[j] to the largest of x[Tile·j : Tile·(j+1)] (the last
// tile may be short; len(out) must be ⌈len(x)/Tile⌉) and reports whether
// every value of x is finite. The maxima mean nothing when some value is
// not: a sampler summarises a logits row by them only when it is. Of −0
// and +0, either may stand for zero; otherwise the AVX2 kernel and the
// generic code return the same bits.
func TileMax(x, out []float32) bool {
	full := len(x) / Tile
	if len(out) != (len(x)+Tile-1)/Tile {
		panic("kernel: TileMax: out does not match x")
	}
	finite := true
	if full > 0 {
		finite = active.tileMax64(x[:full*Tile], out[:full])
	}
	if rest := x[full*Tile:]; len(rest) > 0 {
		m := float32(math.Inf(-1))
		for _, v := range rest {
			finite = finite && !math.IsInf(float64(v), 0) && v == v
			m = greater(m, v)
		}
		out[full] = m
	}
	return finite
}

// tileMax64Generic is TileMax's kernel in Go, for len(x) = Tile·len(out):
// per tile, lane l (of eight) keeps the largest of the values at l mod 8,
// and the lanes meet as tileMax64AVX2's do (by greater's rule, which
// Go's max follows for numbers, ±0 aside).
func tileMax64Generic(x, out []float32) bool {
	// fin is the kernel's test, in eight lanes: v·0 is ±0 for a finite v
	// and NaN for ±Inf and NaN, and NaN stays in a sum.
	var fin [8]float32
	for j := range out {
		tile := x[j*Tile : (j+1)*Tile : (j+1)*Tile]
		a := [8]float32(tile[:8])
		for l, v := range a {
			fin[l] += v * 0
		}
		for i := 8; i < Tile; i += 8 {
			v := [8]float32(tile[i : i+8])
			for l := range a {
				a[l] = max(a[l], v[l]) // greater's answer for numbers, without its branch
				fin[l] += v[l] * 0
			}
		}
		h0, h1 := greater(a[0], a[4]), greater(a[1], a[5])
		h2, h3 := greater(a[2], a[6]), greater(a[3], a[7])
		out[j] = greater(greater(h0, h2), greater(h1, h3))
	}
	return fin[0]+fin[1]+fin[2]+fin[3]+fin[4]+fin[5]+fin[6]+fin[7] == 0
}
