package sampling

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/generation"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// TestForcedTokens: a choice forced to take 5, 6, 7 after tokens 76, 77
// samples as usual until it draws them in a row, then takes 5, 6 and 7 whatever the logits,
// its ban of 6 and the policy (built-in or plugin, greedy or not, through
// the tile maxima or a whole-row pass), each with logprob 0, then samples
// as usual again; the tokens before and after are those of the same seed
// unforced.
func TestForcedTokens(t *testing.T) {
	const vocab = 129280
	for _, plugged := range []bool{false, true} {
		for _, p := range []*ulanv1.SamplingParams{
			{Temperature: f32(0)},
			{Seed: u64(3), TopK: i32(40), TopP: f32(0.9), Logprobs: true},
			{Seed: u64(4), Temperature: f32(0.7)}, // keep-all: a whole-row draw
		} {
			p = &ulanv1.SamplingParams{Temperature: p.Temperature, Seed: p.Seed, TopK: p.TopK, TopP: p.TopP, Logprobs: p.Logprobs,
				BannedTokenIds: []uint32{6}}
			var plugin *generation.Plugin
			if plugged {
				plugin = standardPlugin(t, nil)
			}
			newChoice := func(force *Forcing) *Seq {
				s, err := NewSeq(Config{Params: p, Vocab: vocab, EOS: []int32{0}, Plugin: plugin, Force: force})
				require.NoError(t, err)
				return s
			}
			forced := newChoice(&Forcing{After: []int32{76, 77}, Tokens: []int32{5, 6, 7}})
			free := newChoice(nil)
			r := rand.New(rand.NewPCG(5, 6))
			rows := make([][]float32, 8)
			for i := range rows {
				rows[i] = randomRow(r, vocab, 3)
			}
			rows[0][77] = 100 // 77 alone does not start the forcing
			rows[1][76] = 100
			rows[2][77] = 100 // 76, 77: drawn at steps 1 and 2 whatever the policy
			st, stFree := NewStage(), NewStage()
			var got, want []int32
			for i, row := range rows {
				a := slices.Clone(row)
				res := st.StepTiled(context.Background(), []*Seq{forced}, [][]float32{a}, [][]float32{tileMaxima(a, 64)})
				require.NoError(t, res[0].Err, "step %d", i)
				got = append(got, res[0].Token)
				if i >= 3 && i <= 5 && p.Logprobs {
					require.Zero(t, res[0].Logprob, "step %d: the only token left", i)
				}
				b := slices.Clone(row)
				want = append(want, stFree.StepTiled(context.Background(), []*Seq{free}, [][]float32{b}, [][]float32{tileMaxima(b, 64)})[0].Token)
			}
			require.Equal(t, []int32{77, 76, 77}, got[:3], "plugged %v, %v", plugged, p)
			require.Equal(t, []int32{5, 6, 7}, got[3:6], "plugged %v, %v", plugged, p)
			require.Equal(t, want[:3], got[:3], "before: as unforced")
			require.Equal(t, want[6:], got[6:], "after: as unforced (the same uniforms)")
		}
	}
}

// TestForcedTokensOutsideTheVocabulary are refused by NewSeq.
func TestForcedTokensOutsideTheVocabulary(t *testing.T) {
	_, err := NewSeq(Config{Vocab: 10, Force: &Forcing{Tokens: []int32{3, 10}}})
	require.ErrorContains(t, err, "forced token 1 (10) is outside the vocabulary of 10 tokens")
	_, err = NewSeq(Config{Vocab: 10, Force: &Forcing{After: []int32{12}, Tokens: []int32{3}}})
	require.ErrorContains(t, err, "(12) is outside the vocabulary")
}
