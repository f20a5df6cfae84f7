//go:build amd64 && !noasm

package expsum

import "golang.org/x/sys/cpu"

var hasAVX2 = cpu.X86.HasAVX2

func sum8(x []float32, m float32, lanes *[8]float64) {
	if hasAVX2 {
		sum8AVX2(x, m, lanes)
		return
	}
	sum8Go(x, m, lanes)
}

// sum8AVX2 is sum8Go with AVX2; len(x) is a multiple of 8.
//
//go:noescape
func sum8AVX2(x []float32, m float32, lanes *[8]float64)

func exps8(x []float32, m float32, out []float32) {
	if hasAVX2 {
		exps8AVX2(x, m, out)
		return
	}
	exps8Go(x, m, out)
}

// exps8AVX2 is exps8Go with AVX2; len(x) is a multiple of 8, out as long.
//
//go:noescape
func exps8AVX2(x []float32, m float32, out []float32)

func scan8(x []float32, l *scanLanes) {
	if hasAVX2 {
		scan8AVX2(x, l)
		return
	}
	scan8Go(x, l)
}

// scan8AVX2 is scan8Go with AVX2; len(x) is a multiple of 8.
//
//go:noescape
func scan8AVX2(x []float32, l *scanLanes)

func div8(x []float32, t float32) {
	if hasAVX2 {
		div8AVX2(x, t)
		return
	}
	div8Go(x, t)
}

// div8AVX2 is div8Go with AVX2; len(x) is a multiple of 8.
//
//go:noescape
func div8AVX2(x []float32, t float32)

func firstAbove8(x []float32, t float32) int {
	if hasAVX2 {
		return firstAbove8AVX2(x, t)
	}
	return firstAbove8Go(x, t)
}

// firstAbove8AVX2 is firstAbove8Go with AVX2; len(x) is a multiple of 8.
//
//go:noescape
func firstAbove8AVX2(x []float32, t float32) int

func scanAbove8(x []float32, t float32, l *scanLanes) int {
	if hasAVX2 {
		return scanAbove8AVX2(x, t, l)
	}
	return scanAbove8Go(x, t, l)
}

// scanAbove8AVX2 is scanAbove8Go with AVX2; len(x) is a multiple of 8.
//
//go:noescape
func scanAbove8AVX2(x []float32, t float32, l *scanLanes) int
