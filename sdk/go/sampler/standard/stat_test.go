package standard_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/sampler/samplemath"
	"github.com/ulan-ai/ulan/sdk/go/sampler/standard"
)

// chiSquareCritical is the chi-square distribution's upper 0.001 quantile
// for dof degrees of freedom, by the Wilson–Hilferty approximation (cube
// root of a chi-square is close to normal; good to about 1% from dof 3).
func chiSquareCritical(dof int) float64 {
	const z = 3.090232306167813 // the standard normal's upper 0.001 quantile
	k := float64(dof)
	a := 2 / (9 * k)
	return k * math.Pow(1-a+z*math.Sqrt(a), 3)
}

// TestSampledFrequencies draws N tokens from one fixed row with the
// standard policy and the host's draw (softmax of the policy's output,
// then the inverse CDF at a seeded uniform), and compares the frequencies
// with the target distribution the reference chain computes in float64: a
// chi-square test at p = 0.001, deterministic with fixed seeds. The policy
// runs once, widening from 8 candidates as it asks: on a fixed row its
// output is the same at every step, and only the uniforms change.
func TestSampledFrequencies(t *testing.T) {
	t.Parallel()
	const n = 20000
	rng := rand.New(rand.NewPCG(31, 32))
	row := make([]float32, 200)
	for i := range row {
		row[i] = float32(rng.NormFloat64() * 1.5)
	}
	for _, p := range []params{
		{temp: f32(0.7)},
		{topK: i32(5)},
		{topP: f32(0.9)},
		{minP: f32(0.1)},
		{typ: f32(0.8)},
		{topK: i32(40), topP: f32(0.95), minP: f32(0.05), temp: f32(0.8)},
	} {
		t.Run(p.String(), func(t *testing.T) {
			pol, err := standard.Parse(p.openJSON(len(row)))
			require.NoError(t, err)
			// The target: the reference's survivors, softmax in float64.
			ref := reference(row, p)
			target := map[int32]float64{}
			var z float64
			for id, l := range ref {
				target[id] = math.Exp(float64(l))
				z += target[id]
			}
			for id := range target {
				target[id] /= z
			}

			counts := map[int32]int{}
			u := rand.New(rand.NewPCG(33, 34))
			r, _ := apply(t, pol, row, 8)
			probs := make([]float32, len(r.Out))
			require.NoError(t, samplemath.Softmax(r.Out, 1, probs))
			for range n {
				i, err := samplemath.Draw(probs, float32(u.Uint32()>>8)/(1<<24))
				require.NoError(t, err)
				counts[r.IDs[i]]++
			}
			for id := range counts {
				require.Contains(t, target, id, "token %d drawn, but the policy drops it", id)
			}
			// Bins: each token expected at least 5 times, the rest pooled.
			var chi2, poolE float64
			bins, poolO := 0, 0
			for id, q := range target {
				e := q * n
				if e < 5 {
					poolE += e
					poolO += counts[id]
					continue
				}
				d := float64(counts[id]) - e
				chi2 += d * d / e
				bins++
			}
			if poolE >= 5 {
				d := float64(poolO) - poolE
				chi2 += d * d / poolE
				bins++
			}
			if bins < 2 {
				t.Skip("one outcome")
			}
			dof := bins - 1
			crit := chiSquareCritical(dof)
			t.Logf("%d tokens kept, chi-square %.2f with %d degrees of freedom (critical value at p = 0.001: %.2f)", len(target), chi2, dof, crit)
			require.Less(t, chi2, crit)
		})
	}
}
