package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRopeYarnKnownAnswers checks the V3 YaRN frequencies against spec §8:
// at position 1 each pair turns by exactly its frequency.
func TestRopeYarnKnownAnswers(t *testing.T) {
	t.Parallel()
	spec := RopeSpec{Dims: 64, Base: 10000, Factor: 40, OrigContext: 4096, BetaFast: 32, BetaSlow: 1}
	low, high := yarnCorrDims(spec)
	require.Equal(t, float32(10), low)
	require.Equal(t, float32(23), high)
	cos, sin := make([]float32, 32), make([]float32, 32)
	RopeAngles(spec, 1, cos, sin)
	freq := func(i int) float64 { return math.Atan2(float64(sin[i]), float64(cos[i])) }
	for i, want := range map[int]float64{0: 1, 10: 5.6234133e-2, 11: 3.9006927e-2, 15: 8.3345090e-3, 20: 7.9056942e-4, 23: 3.3338036e-5, 31: 3.3338036e-6} {
		require.InEpsilon(t, want, freq(i), 2e-6, "pair %d", i)
	}
	RopeAngles(spec, 0, cos, sin)
	for i := range cos {
		require.Equal(t, float32(1), cos[i], "position 0 is the identity")
		require.Equal(t, float32(0), sin[i])
	}
}
