package sampling

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
	"github.com/ulan-ai/ulan/host/sampling/internal/expsum"
	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// TestDrawWholeIsWeightsThenDraw: the fused whole-row draw returns the
// index the general path (weights, then primitive.Draw) returns, on rows
// of every length around the block and vector sizes, with banned tokens,
// flat and peaked rows, and uniforms at the ends of [0, 1); and with a
// temperature it divides by on the way, as a row divided first.
func TestDrawWholeIsWeightsThenDraw(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	us := []float32{0, 1 - 1.0/(1<<24), 0.5}
	for _, n := range []int{1, 7, 8, 9, drawBlock - 1, drawBlock, drawBlock + 1, 3*drawBlock + 5, 129280} {
		for _, spread := range []float64{0.01, 1, 8, 40} {
			for _, banned := range []int{0, 3, 90} {
				row := randomRow(r, n, spread)
				for range banned * n / 100 {
					row[r.IntN(n)] = float32(math.Inf(-1))
				}
				row[r.IntN(n)] = float32(spread) * 5 // at least one finite
				mx := float32(math.Inf(-1))
				for _, v := range row {
					mx = max(mx, v)
				}
				w, err := weights(row)
				require.NoError(t, err)
				// At a temperature, drawWhole divides as it goes: the
				// same index as a row divided first.
				const temp = 0.7
				scaled := append([]float32(nil), row...)
				expsum.Divide(scaled, temp)
				ws, err := weights(scaled)
				require.NoError(t, err)
				for k := range 20 {
					u := float32(r.Uint32()>>8) / (1 << 24)
					if k < len(us) {
						u = us[k]
					}
					want, err := primitive.Draw(w, u)
					require.NoError(t, err)
					got, err := drawWhole(row, 0, mx, u, false)
					require.NoError(t, err)
					require.Equal(t, want, got, "n %d, spread %v, banned %d%%, u %v", n, spread, banned, u)
					want, err = primitive.Draw(ws, u)
					require.NoError(t, err)
					got, err = drawWhole(row, temp, mx/temp, u, false)
					require.NoError(t, err)
					require.Equal(t, want, got, "temperature: n %d, spread %v, banned %d%%, u %v", n, spread, banned, u)
					if !slices.Contains(scaled, float32(math.Inf(-1))) {
						// No −Inf: the dense sums give the same index.
						got, err = drawWhole(row, temp, mx/temp, u, true)
						require.NoError(t, err)
						require.Equal(t, want, got, "dense: n %d, spread %v, banned %d%%, u %v", n, spread, banned, u)
					}
				}
			}
		}
	}
	_, err := drawWhole([]float32{0}, 0, 0, 1, true)
	require.Error(t, err, "u outside [0, 1)")
}

// TestWholeRowDrawIsTheGeneralOne: through the stage, a whole row (a
// temperature-only request) draws the same tokens with logprobs (the
// general path) as without (the fused one).
func TestWholeRowDrawIsTheGeneralOne(t *testing.T) {
	const vocab = 3000
	r := rand.New(rand.NewPCG(13, 14))
	st := NewStage()
	fast := newSeq(t, &ulanv1.SamplingParams{Seed: u64(5), Temperature: f32(0.6), BannedTokenIds: []uint32{1, 2, 3}}, vocab)
	general := newSeq(t, &ulanv1.SamplingParams{Seed: u64(5), Temperature: f32(0.6), BannedTokenIds: []uint32{1, 2, 3}, Logprobs: true}, vocab)
	for range 300 {
		row := randomRow(r, vocab, 0.5+4*r.Float64())
		require.Equal(t, step(t, st, general, row).Token, step(t, st, fast, row).Token)
	}
}
