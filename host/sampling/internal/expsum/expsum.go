// Package expsum sums exp(x − m) over a row of logits: the inner loop of a
// row's log-sum-exp, over 129k values per row and step. The exponential is
// Cephes' single-precision expf (range reduction by ln 2 in two parts, a
// degree-5 polynomial, relative error about 1e-7) and the sum is taken in
// float64, in eight lanes. The AVX2 kernel and the plain-Go code compute
// the very same operations in the same order, so they give the same bits:
// a sum does not depend on the machine. The package also holds the other
// passes over a whole row, with the same guarantee: Scan (the row's
// largest finite value and its count of finite values) and Divide (a
// temperature).
package expsum

import "math"

// Constants of Cephes' expf.
const (
	log2e = float32(1.44269504088896341)
	ln2Hi = float32(0.693359375)
	ln2Lo = float32(-2.12194440e-4)
	p0    = float32(1.9875691500e-4)
	p1    = float32(1.3981999507e-3)
	p2    = float32(8.3334519073e-3)
	p3    = float32(4.1665795894e-2)
	p4    = float32(1.6666665459e-1)
	p5    = float32(5.0000001201e-1)
	// floor is where exp(x) is left at exp(floor) ≈ 1.6e-38 rather than
	// underflow: a −Inf logit adds that much, nothing a sum of at least
	// 1 can see.
	floor = float32(-87)
)

// Sum returns Σ exp(x[i] − m), for m at least every x[i] (the row's
// largest value), in float64.
func Sum(x []float32, m float32) float64 {
	var lanes [8]float64
	n := len(x) &^ 7
	if n > 0 {
		sum8(x[:n], m, &lanes)
	}
	for i, v := range x[n:] {
		lanes[i] += float64(exp(v - m))
	}
	return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

// sum8Go is the kernel in Go: lane j sums the elements at j mod 8.
func sum8Go(x []float32, m float32, lanes *[8]float64) {
	for i, v := range x {
		lanes[i&7] += float64(exp(v - m))
	}
}

// exp is Cephes' expf for x ≤ 0, clamped at floor; each product is
// rounded on its own (float32(…)), as the kernel's separate multiply and
// add do, so no compiler fuses them.
func exp(x float32) float32 {
	x = max(x, floor)
	n := float32(math.RoundToEven(float64(float32(x * log2e))))
	r := x - float32(n*ln2Hi)
	r = r - float32(n*ln2Lo)
	z := float32(r * r)
	y := float32(p0*r) + p1
	y = float32(y*r) + p2
	y = float32(y*r) + p3
	y = float32(y*r) + p4
	y = float32(y*r) + p5
	y = float32(y*z) + r
	y = y + 1
	return float32(y * math.Float32frombits(uint32(int32(n)+127)<<23))
}

// Exps writes exp(x[i] − m) to out[i] (out at least as long as x), each
// value the same exp whatever its position: a draw over these weights
// does not depend on which other values are in the slice.
func Exps(x []float32, m float32, out []float32) {
	out = out[:len(x)]
	n := len(x) &^ 7
	if n > 0 {
		exps8(x[:n], m, out[:n])
	}
	for i, v := range x[n:] {
		out[n+i] = exp(v - m)
	}
}

func exps8Go(x []float32, m float32, out []float32) {
	for i, v := range x {
		out[i] = exp(v - m)
	}
}
