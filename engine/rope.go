package engine

import "math"

// RopeAngles fills cos and sin of every rotated pair at position pos, as
// ggml_rope_cache_init computes them, so every backend rotates the same way: θ starts at the position and is
// multiplied by base^(−2/dims) in f32 pair by pair, so that the rounding
// matches llama.cpp's, then YaRN blends interpolated and extrapolated angles.
func RopeAngles(spec RopeSpec, pos int, cos, sin []float32) {
	thetaScale := float32(math.Pow(float64(spec.Base), -2/float64(spec.Dims)))
	freqScale, ext := float32(1), float32(0)
	var low, high float32
	if spec.Factor > 1 {
		freqScale, ext = 1/spec.Factor, 1
		low, high = yarnCorrDims(spec)
	}
	theta := float32(pos)
	for i := range spec.Dims / 2 {
		interp := freqScale * theta
		t := interp
		if ext != 0 {
			y := (float32(i) - low) / max(0.001, high-low)
			mix := (1 - min(1, max(0, y))) * ext
			t = interp*(1-mix) + theta*mix
		}
		cos[i] = float32(math.Cos(float64(t)))
		sin[i] = float32(math.Sin(float64(t)))
		if spec.Inverse {
			sin[i] = -sin[i]
		}
		theta *= thetaScale
	}
}

// yarnCorrDims are the pair indices where YaRN's blend starts and ends
// (ggml_rope_yarn_corr_dims).
func yarnCorrDims(spec RopeSpec) (low, high float32) {
	corr := func(beta float32) float64 {
		return float64(spec.Dims) * math.Log(float64(spec.OrigContext)/(float64(beta)*2*math.Pi)) / (2 * math.Log(float64(spec.Base)))
	}
	low = max(0, float32(math.Floor(float64(float32(corr(spec.BetaFast))))))
	high = min(float32(spec.Dims-1), float32(math.Ceil(float64(float32(corr(spec.BetaSlow))))))
	return low, high
}
