//go:build !noasm

package kernel

// fp4AVX2 is fp4.go's set with the AVX2 dot products of dot_amd64.s (see
// _gen/fp4.go).
var fp4AVX2 = fp4Impls{
	dotE2M1:   dotE2M1Rows,
	dotE2M1x4: dotE2M1x4Pairs,
}

// dotE2M1Rows runs dotE2M1AVX2 with the scale table it reads.
func dotE2M1Rows(w, s []byte, x []float32) float32 {
	return dotE2M1AVX2(w, s, x, &e8m0Half)
}

// dotE2M1x4Pairs runs dotE2M1x2AVX2 on x0, x1 and then x2, x3: four
// vectors' accumulators and the decoded weights would need more than the
// sixteen YMM registers, and the row is in L1 the second time.
func dotE2M1x4Pairs(w, s []byte, x0, x1, x2, x3 []float32, out *[4]float32) {
	dotE2M1x2AVX2(w, s, x0, x1, &e8m0Half, (*[2]float32)(out[0:2]))
	dotE2M1x2AVX2(w, s, x2, x3, &e8m0Half, (*[2]float32)(out[2:4]))
}
