//go:build !noasm

package kernel

// The kernels of norm.go take their AVX2 forms when the active set is
// the assembly (the same CPU requirement), their generic twins otherwise
// (ForceGeneric included).

func sumSquaresF64x16(x []float32, lanes *[16]float64) {
	if len(x) == 0 || active.name == generic.name {
		sumSquaresF64x16Generic(x, lanes)
		return
	}
	sumSquaresF64x16AVX2(x, lanes)
}

func scaleF32x8(dst, x []float32, s float32) {
	if len(x) == 0 || active.name == generic.name {
		scaleF32Generic(dst, x, s)
		return
	}
	scaleF32x8AVX2(dst, x, s)
}

func scaleMulF32x8(dst, x []float32, s float32, w []float32) {
	if len(x) == 0 || active.name == generic.name {
		scaleMulF32Generic(dst, x, s, w)
		return
	}
	scaleMulF32x8AVX2(dst, x, s, w)
}

func mulAddF32x8(y, x []float32, a float32) {
	if len(x) == 0 || active.name == generic.name {
		mulAddF32Generic(y, x, a)
		return
	}
	mulAddF32x8AVX2(y, x, a)
}

func rotatePairsF32x8(dst, x, cc, ss []float32) {
	if len(x) == 0 || active.name == generic.name {
		rotatePairsF32Generic(dst, x, cc, ss)
		return
	}
	rotatePairsF32x8AVX2(dst, x, cc, ss)
}

func sinkhorn4x8(m *[128]float32, rounds int, eps float32) {
	if active.name == generic.name {
		sinkhorn4x8Generic(m, rounds, eps)
		return
	}
	sinkhorn4x8AVX2(m, rounds, eps)
}
