package expsum

import "math"

// The whole-row passes around the exps: a row's scan before its
// log-sum-exp (largest finite value, how many are finite, whether any is
// NaN or +Inf) and the division by a temperature. Like the exps, the AVX2
// kernels and the Go code give the same results on every machine.

// Scan returns the largest finite value of x (−Inf when none is; +0 when
// it is a zero, whatever the zeros' signs), how many values are finite,
// and ok false when some value is NaN or +Inf.
func Scan(x []float32) (mx float32, finite int, ok bool) {
	var s Scanner
	s.Reset()
	s.Add(x)
	return s.Result()
}

// Scanner is a Scan taken in pieces, which other work can interleave
// with: the pieces, one after another, must make up the row, and each but
// the last must hold a multiple of 8 values, so that every value goes to
// the lane it goes to in Scan, and the result is Scan's, bit for bit.
type Scanner struct {
	l scanLanes
	n int // values scanned
}

// Reset starts a new row.
func (s *Scanner) Reset() {
	s.l = scanLanes{}
	for i := range s.l.max {
		s.l.max[i] = float32(math.Inf(-1))
	}
	s.n = 0
}

// Add scans the row's next values.
func (s *Scanner) Add(x []float32) {
	n := len(x) &^ 7
	if n > 0 {
		scan8(x[:n], &s.l)
	}
	scan8Go(x[n:], &s.l)
	s.n += len(x)
}

// AddBelow scans the row's next values, eight at a time, up to the first
// group of eight that holds a value above t (NaN is above nothing), and
// returns that group's start in x, which it leaves unscanned for the
// caller to look at and Add; len(x) &^ 7 when there is none, the values
// past it (fewer than eight) unscanned. It is Add and FirstAbove in one
// pass.
func (s *Scanner) AddBelow(x []float32, t float32) int {
	n := len(x) &^ 7
	if n == 0 {
		return 0
	}
	i := scanAbove8(x[:n], t, &s.l)
	s.n += i
	return i
}

// Result returns Scan's answer for the values scanned: the largest finite
// value, how many are finite, and false when some are NaN or +Inf.
func (s *Scanner) Result() (mx float32, finite int, ok bool) {
	l := &s.l
	mx = l.max[0]
	negInf := 0
	for i := range l.max {
		if !(mx > l.max[i]) {
			mx = l.max[i]
		}
		finite += int(l.finite[i])
		negInf += int(l.negInf[i])
	}
	return mx + 0, finite, finite+negInf == s.n // mx + 0: −0 becomes +0
}

// scanLanes are Scan's running figures in eight lanes: lane j takes the
// values at j mod 8.
type scanLanes struct {
	max    [8]float32 // the largest finite value, −Inf for none
	finite [8]int32
	negInf [8]int32
}

// scan8Go is the kernel in Go. The max keeps the kernel's VMAXPS rule
// (the new value unless the old one is larger), so that the lanes hold the
// same bits, zeros' signs included.
func scan8Go(x []float32, l *scanLanes) {
	negInf := float32(math.Inf(-1))
	for i, v := range x {
		j := i & 7
		switch {
		case v >= -math.MaxFloat32 && v <= math.MaxFloat32:
			l.finite[j]++
			if !(l.max[j] > v) {
				l.max[j] = v
			}
		case v == negInf:
			l.negInf[j]++
		}
	}
}

// Divide divides every value of x by t, in place: x[i] /= t, each
// quotient rounded as Go rounds it (IEEE division, which the kernel's
// VDIVPS does too).
func Divide(x []float32, t float32) {
	n := len(x) &^ 7
	if n > 0 {
		div8(x[:n], t)
	}
	div8Go(x[n:], t)
}

func div8Go(x []float32, t float32) {
	for i := range x {
		x[i] /= t
	}
}

// FirstAbove returns the start of the first group of eight values of x
// (counted from x[0]) that holds a value above t, or len(x) when none
// does: a caller looking for the few values above a threshold skips the
// rest eight at a time. NaN is above nothing.
func FirstAbove(x []float32, t float32) int {
	n := len(x) &^ 7
	i := n
	if n > 0 {
		i = firstAbove8(x[:n], t)
	}
	if i < n {
		return i
	}
	for _, v := range x[n:] {
		if v > t {
			return n
		}
	}
	return len(x)
}

func firstAbove8Go(x []float32, t float32) int {
	for i := 0; i < len(x); i += 8 {
		for _, v := range x[i : i+8] {
			if v > t {
				return i
			}
		}
	}
	return len(x)
}

// scanAbove8Go is scanAbove8AVX2 in Go: scan8Go over the groups before the
// first one with a value above t, whose start it returns (len(x) for
// none).
func scanAbove8Go(x []float32, t float32, l *scanLanes) int {
	for g := 0; g < len(x); g += 8 {
		for _, v := range x[g : g+8] {
			if v > t {
				return g
			}
		}
		scan8Go(x[g:g+8], l)
	}
	return len(x)
}
