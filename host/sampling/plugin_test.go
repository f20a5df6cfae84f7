package sampling

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/plugins"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// stepCounter counts a plugin's smp_step calls.
type stepCounter struct{ steps atomic.Int64 }

func (c *stepCounter) Call(export string, _ time.Duration, _ plugin.ErrorKind) {
	if export == "smp_step" {
		c.steps.Add(1)
	}
}
func (c *stepCounter) PoolWait(time.Duration) {}

// standardPlugin loads the committed standard sampler plugin.
func standardPlugin(t testing.TB, obs plugin.Observer) *generation.Plugin {
	t.Helper()
	if testing.Short() {
		t.Skip("compiles the standard sampler plugin")
	}
	ctx := context.Background()
	p, err := plugin.Load(ctx, plugins.Standard, plugin.Config{ID: "standard", Kind: plugin.KindSampler, PoolSize: 1,
		MemoryPages: 1024, CallTimeout: time.Minute, InitTimeout: time.Minute, Observer: obs})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })
	require.True(t, p.LSEOnDemand(), "the standard plugin's manifest declares the log-sum-exp on demand")
	return &generation.Plugin{ID: "standard", Policy: generation.FailClosed, Runtime: p}
}

// TestStandardPluginMatchesTheBuiltInOnEveryPath: the standard plugin and
// the built-in policy draw the same tokens, with the same log
// probabilities, for the same seed — on the paths that skip work: a
// temperature-only request (the plugin answers keep-all, and the host
// draws over the whole row with one plugin call per step, never widening),
// top_p alone (the plugin asks for the row's log-sum-exp), and top_k
// before top_p (it never asks).
func TestStandardPluginMatchesTheBuiltInOnEveryPath(t *testing.T) {
	const vocab, rows, steps = 5000, 4, 6
	count := &stepCounter{}
	gp := standardPlugin(t, count)
	r := rand.New(rand.NewPCG(7, 8))
	banned := make([]uint32, 200)
	for i := range banned {
		banned[i] = uint32(r.IntN(vocab))
	}
	for _, tc := range []struct {
		name   string
		params *ulanv1.SamplingParams
		calls  int // smp_step calls per step, 0: not checked
	}{
		{"temperature-only", &ulanv1.SamplingParams{Temperature: f32(0.8), Logprobs: true, TopLogprobs: 3}, 1},
		{"no-parameters", &ulanv1.SamplingParams{BannedTokenIds: banned}, 1},
		{"top_p-only", &ulanv1.SamplingParams{TopP: f32(0.9), Logprobs: true}, 0},
		{"top_k-top_p", &ulanv1.SamplingParams{TopK: i32(40), TopP: f32(0.9), Temperature: f32(0.7)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			native, plugged := NewStage(), NewStage()
			defer native.Close(ctx)
			defer plugged.Close(ctx)
			var ns, ps []*Seq
			for i := range rows {
				p := proto.Clone(tc.params).(*ulanv1.SamplingParams)
				p.Seed = u64(uint64(100 + i))
				for _, gen := range []*generation.Plugin{nil, gp} {
					s, err := NewSeq(Config{Params: p, Vocab: vocab, Prompt: []int32{1, 2}, Plugin: gen})
					require.NoError(t, err)
					if gen == nil {
						ns = append(ns, s)
					} else {
						ps = append(ps, s)
					}
				}
			}
			before := count.steps.Load()
			for range steps {
				base := make([][]float32, rows)
				for i := range base {
					base[i] = randomRow(r, vocab, 0.3+3*r.Float64())
				}
				clone := func() [][]float32 {
					out := make([][]float32, rows)
					for i := range base {
						out[i] = slices.Clone(base[i])
					}
					return out
				}
				nr := native.Step(ctx, ns, clone())
				pr := plugged.Step(ctx, ps, clone())
				for i := range nr {
					require.NoError(t, nr[i].Err)
					require.NoError(t, pr[i].Err)
					require.Equal(t, nr[i].Token, pr[i].Token, "row %d", i)
					require.Equal(t, math.Float32bits(nr[i].Logprob), math.Float32bits(pr[i].Logprob), "row %d", i)
					require.Equal(t, nr[i].Top, pr[i].Top, "row %d", i)
				}
			}
			if tc.calls > 0 {
				require.Equal(t, int64(tc.calls*steps), count.steps.Load()-before, "one smp_step per step: nothing widened")
			}
			for _, s := range ps {
				require.Empty(t, s.Notes(), "no fallback")
				require.Equal(t, tc.name == "top_p-only", s.readsLSE, "the plugin asks for the log-sum-exp only for top_p alone")
			}
		})
	}
}
