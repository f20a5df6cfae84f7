//go:build !noasm

package kernel

// expShiftAVX2 is [ExpShift] with expShift8AVX2 over whole groups of
// eight; the lanes stay on the stack (the assembly does not keep them).
func expShiftAVX2(x []float32, m float32) float64 {
	var lanes [8]float64
	n := len(x) &^ 7
	if n > 0 {
		expShift8AVX2(x[:n], m, &lanes)
	}
	return expShiftTail(x, n, m, &lanes)
}

// maxF32AVX2 is [MaxF32] with maxF32x8AVX2 over whole groups of eight.
func maxF32AVX2(x []float32) float32 {
	lanes := maxLanes()
	n := len(x) &^ 7
	nan := false
	if n > 0 {
		nan = maxF32x8AVX2(x[:n], &lanes)
	}
	return maxF32Tail(x, n, nan, &lanes)
}
