//go:build !amd64 || noasm

package kernel

// Without assembly the kernels of norm.go are their generic twins.

func sumSquaresF64x16(x []float32, lanes *[16]float64) { sumSquaresF64x16Generic(x, lanes) }

func scaleF32x8(dst, x []float32, s float32) { scaleF32Generic(dst, x, s) }

func scaleMulF32x8(dst, x []float32, s float32, w []float32) { scaleMulF32Generic(dst, x, s, w) }

func mulAddF32x8(y, x []float32, a float32) { mulAddF32Generic(y, x, a) }

func rotatePairsF32x8(dst, x, cc, ss []float32) { rotatePairsF32Generic(dst, x, cc, ss) }

func sinkhorn4x8(m *[128]float32, rounds int, eps float32) { sinkhorn4x8Generic(m, rounds, eps) }
