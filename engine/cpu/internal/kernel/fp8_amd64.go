//go:build !noasm

package kernel

// fp8AVX2 is fp8.go's set with the AVX2 dot products of dot_amd64.s (see
// _gen/fp8.go), which give the generic's bits.
var fp8AVX2 = fp8Impls{
	dequantE4M3Row: dequantE4M3RowGeneric,
	dotE4M3:        dotE4M3Tail,
	dotE4M3x4:      dotE4M3x4Tail,
}

// dotE4M3Tail runs dotE4M3AVX2 with the row's last len(w) mod 16 columns
// copied, zero padded, into whole 16-column groups, and the generic loop
// for block widths the assembly does not take (not a multiple of 16).
func dotE4M3Tail(w []byte, s []float32, bw int, x []float32) float32 {
	if bw%16 != 0 {
		return dotE4M3Generic(w, s, bw, x)
	}
	var tw [16]byte
	var tx [16]float32
	n := len(w) &^ 15
	copy(tw[:], w[n:])
	copy(tx[:], x[n:len(w)])
	return dotE4M3AVX2(w, s, bw, x, &tw, &tx)
}

// dotE4M3x4Tail is dotE4M3Tail for dotE4M3x4AVX2.
func dotE4M3x4Tail(w []byte, s []float32, bw int, x0, x1, x2, x3 []float32, out *[4]float32) {
	if bw%16 != 0 {
		dotE4M3x4Generic(w, s, bw, x0, x1, x2, x3, out)
		return
	}
	var tw [16]byte
	var tx [4][16]float32
	n := len(w) &^ 15
	copy(tw[:], w[n:])
	for j, x := range [...][]float32{x0, x1, x2, x3} {
		copy(tx[j][:], x[n:len(w)])
	}
	dotE4M3x4AVX2(w, s, bw, x0, x1, x2, x3, &tw, &tx, out)
}
