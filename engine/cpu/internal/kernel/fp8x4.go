package kernel

import "strconv"

// DotE4M3x4 sets out[j] to DotE4M3(w, scales, row, cols, xj) for four
// activation vectors, bit for bit, reading the weight row once. It panics
// as DotE4M3 does, for any of the four vectors.
func DotE4M3x4(w []byte, scales []float32, row, cols int, x0, x1, x2, x3 []float32, out *[4]float32) {
	dotE4M3x4Blocks("DotE4M3x4", w, scales, row, cols, E4M3BlockLen, E4M3BlockLen, x0, x1, x2, x3, out)
}

// DotE4M3x4Blocks sets out[j] to DotE4M3Blocks(w, scales, row, cols, bh,
// bw, xj) for four activation vectors, bit for bit, reading the weight row
// once. It panics as DotE4M3Blocks does, for any of the four vectors.
func DotE4M3x4Blocks(w []byte, scales []float32, row, cols, bh, bw int, x0, x1, x2, x3 []float32, out *[4]float32) {
	dotE4M3x4Blocks("DotE4M3x4Blocks", w, scales, row, cols, bh, bw, x0, x1, x2, x3, out)
}

// dotE4M3x4Blocks checks the arguments of the x4 form named fn and runs it.
func dotE4M3x4Blocks(fn string, w []byte, scales []float32, row, cols, bh, bw int, x0, x1, x2, x3 []float32, out *[4]float32) {
	s := e4m3RowScales(fn, w, scales, row, cols, bh, bw, "x0", len(x0))
	for j, x := range [...][]float32{x1, x2, x3} {
		if len(x) < cols {
			panic("kernel: " + fn + ": cols = " + strconv.Itoa(cols) + " needs len(x" + strconv.Itoa(j+1) + ") ≥ " +
				strconv.Itoa(cols) + ", have " + strconv.Itoa(len(x)))
		}
	}
	active.fp8.dotE4M3x4(w[:cols], s, bw, x0[:cols], x1[:cols], x2[:cols], x3[:cols], out)
}

// dotE4M3x4Generic is the reference of [DotE4M3x4]: four dotE4M3Generic.
func dotE4M3x4Generic(w []byte, s []float32, bw int, x0, x1, x2, x3 []float32, out *[4]float32) {
	out[0] = dotE4M3Generic(w, s, bw, x0)
	out[1] = dotE4M3Generic(w, s, bw, x1)
	out[2] = dotE4M3Generic(w, s, bw, x2)
	out[3] = dotE4M3Generic(w, s, bw, x3)
}
