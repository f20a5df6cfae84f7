//go:build !amd64 || noasm

package kernel

// bestImpls returns the generic set: this build has no assembly, either
// because the target is not amd64 or because the noasm tag was given
// (CI runs the tests both ways).
func bestImpls() impls { return generic }

// packR16 is Q8_0R16In.Pack's loop.
func packR16(xs [][]byte, nBlocks int, q []byte, d []float32, c []int32) {
	packQ8_0R16Generic(xs, nBlocks, q, d, c)
}
