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
