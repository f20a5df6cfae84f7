package kernel

// The small elementwise kernels of a decode step's per-token ops: RMSNorm's
// sum of squares and scaling, the hyper-connections' weighted sums and
// rope's rotation of channel pairs. Each multiplies and adds as separate
// roundings (no fused multiply-add) and its AVX2 form gives the generic
// twin's bits, so the ops' results do not depend on the machine.

// SumSquaresF64 returns Σ x[i]², each square rounded to float32 and the
// sum taken in float64, as ggml's rms_norm does (ggml_float). ggml adds
// the squares in order into one double; this adds square i into lane
// i mod 16 of sixteen and the lanes pairwise at the end, which differs
// from the sequential sum by a few float64 roundings (relative 1e-16 at
// these lengths), below what the float32 mean that RMSNorm takes of it
// can show except at a rounding boundary.
func SumSquaresF64(x []float32) float64 { return sumSquaresF64(x, false) }

// sumSquaresF64 is [SumSquaresF64], with the generic loop for whole groups
// of 16 when generic is true. (The choice is a flag, not a func value,
// so that the lanes stay on the stack.)
func sumSquaresF64(x []float32, generic bool) float64 {
	var lanes [16]float64
	n := len(x) &^ 15
	if generic {
		sumSquaresF64x16Generic(x[:n], &lanes)
	} else {
		sumSquaresF64x16(x[:n], &lanes)
	}
	for i, v := range x[n:] {
		lanes[i] += float64(v * v)
	}
	for w := 8; w >= 1; w /= 2 {
		for i := range w {
			lanes[i] += lanes[i+w]
		}
	}
	return lanes[0]
}

// sumSquaresF64x16Generic is the reference loop of [SumSquaresF64] over a
// length that is a multiple of 16.
func sumSquaresF64x16Generic(x []float32, lanes *[16]float64) {
	for i, v := range x {
		lanes[i&15] += float64(v * v)
	}
}

// ScaleF32 sets dst[i] = x[i]·s, then ·w[i] when w is not nil (two
// roundings, in that order): RMSNorm's scaling and weights. It panics if
// dst or a non-nil w is shorter than x.
func ScaleF32(dst, x []float32, s float32, w []float32) {
	scaleF32(dst, x, s, w, scaleF32x8, scaleMulF32x8)
}

// scaleF32 is [ScaleF32] with body and bodyW for whole groups of 8.
func scaleF32(dst, x []float32, s float32, w []float32, body func(dst, x []float32, s float32), bodyW func(dst, x []float32, s float32, w []float32)) {
	dst = dst[:len(x)]
	n := len(x) &^ 7
	if w == nil {
		body(dst, x[:n], s)
		for i := n; i < len(x); i++ {
			dst[i] = x[i] * s
		}
		return
	}
	w = w[:len(x)]
	bodyW(dst, x[:n], s, w)
	for i := n; i < len(x); i++ {
		dst[i] = float32(x[i]*s) * w[i]
	}
}

// scaleF32Generic is the reference loop of [ScaleF32] without weights.
func scaleF32Generic(dst, x []float32, s float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = v * s
	}
}

// scaleMulF32Generic is the reference loop of [ScaleF32] with weights.
func scaleMulF32Generic(dst, x []float32, s float32, w []float32) {
	dst, w = dst[:len(x)], w[:len(x)]
	for i, v := range x {
		dst[i] = float32(v*s) * w[i]
	}
}

// MulAddF32 adds x[i]·a to y[i], the product rounded before the add
// (unlike [AxpyF32], which fuses them): a weighted sum of rows that keeps
// the bits of the plain loop. It panics if y is shorter than x.
func MulAddF32(y, x []float32, a float32) { mulAddF32(y, x, a, mulAddF32x8) }

// mulAddF32 is [MulAddF32] with body for whole groups of 8.
func mulAddF32(y, x []float32, a float32, body func(y, x []float32, a float32)) {
	y = y[:len(x)]
	n := len(x) &^ 7
	body(y, x[:n], a)
	for i := n; i < len(x); i++ {
		y[i] += float32(x[i] * a)
	}
}

// mulAddF32Generic is the reference loop of [MulAddF32].
func mulAddF32Generic(y, x []float32, a float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += float32(v * a)
	}
}

// RotatePairsF32 rotates channel pairs: dst[i] = x[i]·cc[i] + x[i^1]·ss[i]
// (two products, each rounded, then their sum). With cc = (c₀, c₀, c₁, c₁,
// …) and ss = (−s₀, s₀, −s₁, s₁, …) that is rope's (x₀c − x₁s, x₀s + x₁c)
// per pair, the same bits as that expression; with the signs of ss
// swapped, the inverse rotation. len(x) must be even; it panics if dst,
// cc or ss is shorter than x.
func RotatePairsF32(dst, x, cc, ss []float32) { rotatePairsF32(dst, x, cc, ss, rotatePairsF32x8) }

// rotatePairsF32 is [RotatePairsF32] with body for whole groups of 8.
func rotatePairsF32(dst, x, cc, ss []float32, body func(dst, x, cc, ss []float32)) {
	dst, cc, ss = dst[:len(x)], cc[:len(x)], ss[:len(x)]
	n := len(x) &^ 7
	body(dst, x[:n], cc, ss)
	rotatePairsF32Generic(dst[n:], x[n:], cc[n:], ss[n:])
}

// rotatePairsF32Generic is the reference loop of [RotatePairsF32].
func rotatePairsF32Generic(dst, x, cc, ss []float32) {
	dst, cc, ss = dst[:len(x)], cc[:len(x)], ss[:len(x)]
	for i := 0; i+1 < len(x); i += 2 {
		x0, x1 := x[i], x[i+1]
		dst[i] = float32(x0*cc[i]) + float32(x1*ss[i])
		dst[i+1] = float32(x1*cc[i+1]) + float32(x0*ss[i+1])
	}
}

// SinkhornLanes is how many 4×4 matrices [Sinkhorn4] normalises at once.
const SinkhornLanes = 8

// Sinkhorn4 normalises eight 4×4 matrices stored lane by lane, m[8·(4j+k)
// + t] holding row j, column k of matrix t: one column normalisation,
// then rounds times a row and a column normalisation. A normalisation
// divides each of the four elements of a row (column) by their sum plus
// eps, the sum added in float32 from zero in index order and eps last:
// the bits of the scalar loops of DeepSeek-V4's mHC Sinkhorn step, eight
// tokens at a time.
func Sinkhorn4(m *[4 * 4 * SinkhornLanes]float32, rounds int, eps float32) {
	sinkhorn4x8(m, max(rounds, 0), eps)
}

// sinkhorn4x8Generic is the reference loop of [Sinkhorn4].
func sinkhorn4x8Generic(m *[128]float32, rounds int, eps float32) {
	const lanes = SinkhornLanes
	normalise := func(at func(i, l int) int) {
		for t := range lanes {
			for i := range 4 {
				var s float32
				for l := range 4 {
					s += m[lanes*at(i, l)+t]
				}
				s += eps
				for l := range 4 {
					m[lanes*at(i, l)+t] /= s
				}
			}
		}
	}
	rows := func(j, k int) int { return 4*j + k }
	cols := func(k, j int) int { return 4*j + k }
	normalise(cols)
	for range rounds {
		normalise(rows)
		normalise(cols)
	}
}
