package sampling

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// TestStepTiledIsStep: a choice stepped with its rows' tile maxima draws
// the tokens, log probabilities and alternatives it draws without them,
// over many steps, under every stage that changes the row (logit_bias,
// banned tokens, min_tokens, the penalties over a window that fills and
// slides, allowed_token_ids, which takes the whole-row path), greedy and
// sampled, with top_k, top_p and top_logprobs, on rows whose last tile is
// short, with whole −Inf tiles and with a bias that makes a token the
// best of the row. A row given no maxima, or maxima of the wrong length,
// is sampled as without.
func TestStepTiledIsStep(t *testing.T) {
	const vocab = engine.LogitTile*300 + 23
	params := []*ulanv1.SamplingParams{
		{Seed: u64(1)},
		{Seed: u64(2), Temperature: f32(0)},
		{Seed: u64(3), TopK: i32(40), TopP: f32(0.95), Logprobs: true, TopLogprobs: 5},
		{Seed: u64(4), TopK: i32(1000), Temperature: f32(1.3)},
		{Seed: u64(5), LogitBias: map[uint32]float32{7: 30, 500: -5, vocab - 1: 2}, BannedTokenIds: []uint32{1, 2, 3, 900},
			MinTokens: 6, StopTokenIds: []uint32{11}, TopK: i32(20)},
		{Seed: u64(6), RepetitionPenalty: f32(1.7), PresencePenalty: f32(0.5), FrequencyPenalty: f32(0.25), PenaltyWindow: i32(5),
			TopK: i32(64), Logprobs: true, TopLogprobs: 3},
		{Seed: u64(7), AllowedTokenIds: []uint32{4, 5, 6, 1000, 18000}, TopK: i32(3)},
		{Seed: u64(8), TopK: i32(300), MinP: f32(0.05), Logprobs: true},
	}
	r := rand.New(rand.NewPCG(21, 22))
	for pi, p := range params {
		st1, st2 := NewStage(), NewStage()
		a, b := newSeq(t, p, vocab, 9, 9, 10), newSeq(t, p, vocab, 9, 9, 10)
		for step := range 24 {
			row := randomRow(r, vocab, []float64{0.5, 3}[step%2])
			if step%3 == 2 {
				for i := engine.LogitTile * 10; i < engine.LogitTile*14; i++ {
					row[i] = float32(math.Inf(-1)) // whole tiles out
				}
			}
			// The token drawn last gets a high logit, so that the
			// penalties have something to push down.
			if h := a.history; len(h) > 0 {
				row[h[len(h)-1]] = 8
			}
			maxima := tileMaxima(row, engine.LogitTile)
			switch step {
			case 5:
				maxima = nil
			case 6:
				maxima = maxima[1:]
			}
			want := st1.Step(context.Background(), []*Seq{a}, [][]float32{slices.Clone(row)})
			got := st2.StepTiled(context.Background(), []*Seq{b}, [][]float32{slices.Clone(row)}, [][]float32{maxima})
			require.NoError(t, want[0].Err)
			require.Equal(t, want, got, "params %d step %d", pi, step)
		}
	}
}
