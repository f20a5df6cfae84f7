package sampling

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// openCounter counts a plugin's smp_open calls.
type openCounter struct{ opens atomic.Int64 }

func (c *openCounter) Call(export string, _ time.Duration, _ plugin.ErrorKind) {
	if export == "smp_open" {
		c.opens.Add(1)
	}
}
func (c *openCounter) PoolWait(time.Duration) {}

// evilPlugin loads host/plugin's testdata/evilsmp.wasm (see its source),
// misbehaving in mode, with the given failure policy.
func evilPlugin(t *testing.T, mode string, policy generation.Policy, obs plugin.Observer) *generation.Plugin {
	t.Helper()
	raw, err := os.ReadFile("../plugin/testdata/evilsmp.wasm")
	require.NoError(t, err)
	wasm, err := plugin.EmbedManifest(raw, []byte(`{"abi":1,"name":"evilsmp","version":"0.1.0","kind":"sampler"}`))
	require.NoError(t, err)
	ctx := context.Background()
	p, err := plugin.Load(ctx, wasm, plugin.Config{ID: "evil", Kind: plugin.KindSampler, PoolSize: 1, MemoryPages: 4,
		CallTimeout: 10 * time.Second, PluginConfig: json.RawMessage(`{"mode":"` + mode + `"}`), Observer: obs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })
	return &generation.Plugin{ID: "evil", Policy: policy, Runtime: p}
}

// smallVocab is small enough that a row's first candidates are the whole
// vocabulary, banned tokens (at −Inf, last) included.
const smallVocab = 32

const bannedToken = 5

func evilSeq(t *testing.T, p *generation.Plugin, seed uint64) *Seq {
	t.Helper()
	s, err := NewSeq(Config{Params: &ulanv1.SamplingParams{Seed: u64(seed), BannedTokenIds: []uint32{bannedToken}},
		Vocab: smallVocab, Prompt: []int32{1, 2}, Plugin: p})
	require.NoError(t, err)
	return s
}

// evilRows are rows whose largest logit is the banned token's.
func evilRows(r *rand.Rand, n int) [][]float32 {
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = randomRow(r, smallVocab, 2)
		rows[i][bannedToken] = 100
	}
	return rows
}

func fallbackNotes(notes []Note) int {
	n := 0
	for _, note := range notes {
		if note.Kind == ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_FALLBACK && note.Source == "evil" {
			n++
		}
	}
	return n
}

// TestMisbehavingSamplerFollowsItsPolicy: a sampler whose answer the host
// refuses (a +Inf logit, nothing left to draw, a banned token selected, a
// keep-all temperature that overflows, a widened whole vocabulary) or that
// traps mid-request fails like any plugin failure: under fallback the
// built-in policy serves the rest of the choice, annotated; under
// fail_closed the choice ends with an error naming the plugin. The banned
// token is never drawn.
func TestMisbehavingSamplerFollowsItsPolicy(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"i", "n", "l", "k", "w", "t", "G"} {
		for _, policy := range []generation.Policy{generation.Fallback, generation.FailClosed} {
			t.Run(mode+"/"+policy.String(), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				p := evilPlugin(t, mode, policy, nil)
				st := NewStage()
				defer st.Close(ctx)
				s := evilSeq(t, p, 1)
				r := rand.New(rand.NewPCG(1, 2))
				res := st.Step(ctx, []*Seq{s}, evilRows(r, 1))
				require.NoError(t, res[0].Err, "position 0 is answered well")
				require.NotEqual(t, int32(bannedToken), res[0].Token)
				require.Empty(t, s.Notes())
				res = st.Step(ctx, []*Seq{s}, evilRows(r, 1))
				if policy == generation.FailClosed {
					require.ErrorContains(t, res[0].Err, "sampler plugin evil failed (fail_closed)")
					return
				}
				require.NoError(t, res[0].Err)
				require.NotEqual(t, int32(bannedToken), res[0].Token)
				require.Equal(t, 1, fallbackNotes(s.Notes()))
				for range 3 {
					res = st.Step(ctx, []*Seq{s}, evilRows(r, 1))
					require.NoError(t, res[0].Err)
					require.NotEqual(t, int32(bannedToken), res[0].Token)
				}
				require.Empty(t, s.Notes(), "one annotation")
			})
		}
	}
}

// TestSamplerCannotDrawABannedToken: a processor that writes the same
// output logit for every candidate, banned ones included, gets a draw over
// the tokens the host allows.
func TestSamplerCannotDrawABannedToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := evilPlugin(t, "z", generation.FailClosed, nil)
	st := NewStage()
	defer st.Close(ctx)
	s := evilSeq(t, p, 3)
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[int32]bool{}
	for range 300 {
		res := st.Step(ctx, []*Seq{s}, evilRows(r, 1))
		require.NoError(t, res[0].Err)
		require.NotEqual(t, int32(bannedToken), res[0].Token)
		seen[res[0].Token] = true
	}
	require.Greater(t, len(seen), 10, "the draw is spread over the allowed tokens")
	require.Empty(t, s.Notes())
}

// TestSamplerHandleZero: a sequence the plugin opens as handle 0 (as the
// ABI allows) stays open across steps.
func TestSamplerHandleZero(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	count := &openCounter{}
	p := evilPlugin(t, "x", generation.FailClosed, count) // handles from 0; selects the first candidate
	st := NewStage()
	defer st.Close(ctx)
	s := evilSeq(t, p, 5)
	r := rand.New(rand.NewPCG(5, 6))
	for range 5 {
		res := st.Step(ctx, []*Seq{s}, evilRows(r, 1))
		require.NoError(t, res[0].Err)
	}
	require.Equal(t, int64(1), count.opens.Load(), "one smp_open for the choice")
	st.Release(ctx, s)
}

// TestSamplerLostWithAnotherChoicesInstance: a choice whose plugin
// instance failed on another choice's step lost its state in the plugin;
// at its next step it follows the policy, annotated, rather than going on
// in a fresh sequence as if nothing had happened.
func TestSamplerLostWithAnotherChoicesInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	count := &openCounter{}
	p := evilPlugin(t, "m", generation.Fallback, count) // traps on an instance's third step
	st := NewStage()
	defer st.Close(ctx)
	a, b := evilSeq(t, p, 7), evilSeq(t, p, 8)
	r := rand.New(rand.NewPCG(7, 8))
	step := func(s *Seq) Result {
		res := st.Step(ctx, []*Seq{s}, evilRows(r, 1))
		require.NoError(t, res[0].Err)
		return res[0]
	}
	step(a)
	step(b)
	step(a) // the instance's third step: it traps
	require.Equal(t, 1, fallbackNotes(a.Notes()))
	step(b)
	require.Equal(t, 1, fallbackNotes(b.Notes()), "b's sequence went with the instance")
	require.Equal(t, int64(2), count.opens.Load(), "b was not opened again")
	step(a)
	step(b)
	require.Empty(t, a.Notes())
	require.Empty(t, b.Notes())
}

// TestIntermittentSamplerStages: many stages (servers' worth of choices)
// at once on one sampler that traps on every third step of an instance,
// under fallback: every choice gets a token every step, never a banned
// one; a choice whose plugin failed says so once; the plugin's pool is
// whole afterwards, and no goroutine is left behind.
func TestIntermittentSamplerStages(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	p := evilPlugin(t, "m", generation.Fallback, nil)
	const stages, choices, steps = 8, 3, 12
	var wg sync.WaitGroup
	for i := range stages {
		wg.Go(func() {
			st := NewStage()
			defer st.Close(ctx)
			var seqs []*Seq
			for j := range choices {
				seqs = append(seqs, evilSeq(t, p, uint64(100*i+j)))
			}
			r := rand.New(rand.NewPCG(uint64(i), 9))
			notes := make([]int, choices)
			for range steps {
				for j, res := range st.Step(ctx, seqs, evilRows(r, choices)) {
					if res.Err != nil {
						t.Errorf("stage %d choice %d: %v", i, j, res.Err)
						return
					}
					if res.Token == bannedToken {
						t.Errorf("stage %d choice %d: the banned token", i, j)
					}
					for _, n := range seqs[j].Notes() {
						if !strings.Contains(n.Message, "sampler plugin evil failed") {
							t.Errorf("note: %+v", n)
						}
						notes[j]++
					}
				}
			}
			for j, s := range seqs {
				if notes[j] > 1 {
					t.Errorf("stage %d choice %d: %d fallback notes", i, j, notes[j])
				}
				st.Release(ctx, s)
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { s := p.Runtime.Stats(); return s.Idle == s.Size }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, p.Runtime.Close(ctx))
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+2 }, 10*time.Second, 10*time.Millisecond,
		"goroutines: %d before, %d after", before, runtime.NumGoroutine())
}
