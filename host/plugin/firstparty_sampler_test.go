package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
	"github.com/ulan-ai/ulan/sdk/go/sampler"
	"github.com/ulan-ai/ulan/sdk/go/sampler/standard"
)

// firstParty builds the first-party plugin plugins/<name> from its sources
// (as `ulan plugin build` does) and loads it, with its manifest's needs.
func firstParty(t *testing.T, name string) *Plugin {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	dir := filepath.Join("..", "..", "plugins", name)
	man, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	key := dir + "\x00" + string(man)
	wasm, ok := built.Load(key)
	if !ok {
		out := filepath.Join(t.TempDir(), name+".wasm")
		var cmd *exec.Cmd
		if cFiles, _ := filepath.Glob(filepath.Join(dir, "*.c")); len(cFiles) > 0 {
			clang, err := exec.LookPath("clang")
			if err != nil {
				t.Skip("a C plugin needs clang, lld and wasi-libc (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32)")
			}
			cmd = exec.Command(clang, append([]string{"--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-o", out}, cFiles...)...)
		} else {
			gocmd, err := exec.LookPath("go")
			if err != nil {
				gocmd = filepath.Join(runtime.GOROOT(), "bin", "go")
			}
			cmd = exec.Command(gocmd, "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		}
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Run())
		raw, err := os.ReadFile(out)
		require.NoError(t, err)
		w, err := EmbedManifest(raw, man)
		require.NoError(t, err)
		built.Store(key, w)
		wasm = w
	}
	p, err := loadWithLog(wasm.([]byte), Config{ID: name, Kind: KindSampler, PoolSize: 1, MemoryPages: 512, CallTimeout: time.Minute}, &syncBuffer{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// candidates is the host's pre-selection of a row (host/sampling): its k
// best tokens, largest first, ties to the lower id, and the whole row's
// log-sum-exp.
func candidates(t testing.TB, row []float32, k int) SamplerRow {
	k = min(k, len(row))
	ids, cand := make([]int32, k), make([]float32, k)
	if k > primitive.MaxTopK {
		ids = ids[:len(row)]
		for i := range ids {
			ids[i] = int32(i)
		}
		slices.SortStableFunc(ids, func(a, b int32) int {
			switch {
			case row[a] > row[b]:
				return -1
			case row[a] < row[b]:
				return 1
			}
			return 0
		})
		ids = ids[:k]
		for j, id := range ids {
			cand[j] = row[id]
		}
	} else {
		_, err := primitive.TopK(row, k, ids, cand)
		require.NoError(t, err)
	}
	var sum float64
	for _, l := range row {
		sum += math.Exp(float64(l) - float64(cand[0]))
	}
	return SamplerRow{IDs: ids, Logits: cand, LSE: float32(float64(cand[0]) + math.Log(sum))}
}

// hostDraw is the host's draw over a processor's output: softmax at
// temperature 1, then the inverse CDF at the row's first uniform.
func hostDraw(t testing.TB, ids []int32, out []float32, u float32) (int32, float32) {
	probs := make([]float32, len(out))
	require.NoError(t, primitive.Softmax(out, 1, probs))
	i, err := primitive.Draw(probs, u)
	require.NoError(t, err)
	return ids[i], probs[i]
}

func uniform(rng *rand.Rand) float32 { return float32(rng.Uint32()>>8) / (1 << 24) }

// TestStandardPluginMatchesNative: the standard sampler plugin, through a
// real batch, answers every row — widen requests included — with exactly
// the bits the native standard.Apply (the host's fallback) writes, so the
// host draws the same tokens for a seed either way; a policy that keeps
// every token answers keep-all at its temperature (the host's fallback
// scales the row the same way). Half the rows come without their
// log-sum-exp, which the plugin asks for (row_lse) when it needs it.
func TestStandardPluginMatchesNative(t *testing.T) {
	t.Parallel()
	p := firstParty(t, "standard")
	ctx := context.Background()
	b, err := p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	defer b.Close(ctx)
	rng := rand.New(rand.NewPCG(21, 22))
	opt := func(x string) string {
		if rng.IntN(2) == 0 {
			return ""
		}
		return x
	}
	steps, widened, compared, keptAll, loaded := 0, 0, 0, 0, 0
	for c := range 24 {
		vocab := 100 + rng.IntN(3000)
		// A batch of 8 sequences, each with its own parameters.
		type seq struct {
			h    int64
			pol  *standard.Policy
			open []byte
		}
		seqs := make([]seq, 8)
		for i := range seqs {
			sampling := fmt.Sprintf(`{"seed": "%d"`, rng.Uint64())
			for _, f := range []string{
				opt(fmt.Sprintf(`, "temperature": %g`, []float32{0, 0.5, 0.8, 1.3}[rng.IntN(4)])),
				opt(fmt.Sprintf(`, "top_k": %d`, 1+rng.IntN(100))),
				opt(fmt.Sprintf(`, "top_p": %g`, float32(0.5+0.5*rng.Float64()))),
				opt(fmt.Sprintf(`, "min_p": %g`, float32(0.2*rng.Float64()))),
				opt(fmt.Sprintf(`, "typical_p": %g`, float32(0.3+0.7*rng.Float64()))),
			} {
				sampling += f
			}
			params := opt(`, "params": {"order": ["temperature", "min_p", "top_p", "typical_p", "top_k"]}`)
			open := fmt.Appendf(nil, `{"sampling": %s}%s, "vocab_size": %d}`, sampling, params, vocab)
			h, err := b.Open(ctx, open)
			require.NoError(t, err, "%s", open)
			pol, err := standard.Parse(open)
			require.NoError(t, err)
			seqs[i] = seq{h, pol, open}
		}
		for step := range 5 {
			rows := make([]SamplerRow, len(seqs))
			full := make([][]float32, len(seqs))
			ks := make([]int, len(seqs))
			for i, s := range seqs {
				full[i] = make([]float32, vocab)
				sigma := 0.3 + 4*rng.Float64()
				for j := range full[i] {
					full[i][j] = float32(rng.NormFloat64() * sigma)
				}
				ks[i] = []int{8, 64, 512, vocab}[rng.IntN(4)]
				rows[i] = candidates(t, full[i], ks[i])
				rows[i].Handle, rows[i].Position, rows[i].U0 = s.h, int32(step), uniform(rng)
				if rng.IntN(2) == 0 { // the plugin reads the LSE on demand
					lse := rows[i].LSE
					rows[i].LSE, rows[i].LoadLSE = float32(math.NaN()), func() float32 { loaded++; return lse }
				}
			}
			// Step all rows, then the widened ones again, wider, until
			// every row is answered: the host's loop.
			pending := make([]int, len(rows))
			for i := range pending {
				pending[i] = i
			}
			for len(pending) > 0 {
				in := make([]SamplerRow, len(pending))
				for j, i := range pending {
					in[j] = rows[i]
				}
				outs, err := b.Step(ctx, in)
				require.NoError(t, err)
				steps++
				var again []int
				for j, i := range pending {
					r := rows[i]
					if temp, all := seqs[i].pol.KeepsAll(); all {
						require.Equal(t, SamplerOutput{Token: -1, KeepAll: true, Temperature: temp}, outs[j], "case %d step %d row %d: %s", c, step, i, seqs[i].open)
						keptAll++
						continue
					}
					nat := &sampler.Row{Position: r.Position, U0: r.U0, LSE: r.LSE, LoadLSE: r.LoadLSE, IDs: r.IDs, Logits: r.Logits, Out: slices.Clone(r.Logits), Token: -1}
					widen, err := seqs[i].pol.Apply(nat, vocab)
					require.NoError(t, err)
					require.Equal(t, widen, outs[j].Widen, "case %d step %d row %d (%d candidates): %s", c, step, i, len(r.IDs), seqs[i].open)
					compared++
					if widen {
						require.Less(t, len(r.IDs), vocab, "widened a complete row")
						widened++
						ks[i] *= 16
						rows[i] = candidates(t, full[i], ks[i])
						rows[i].Handle, rows[i].Position, rows[i].U0 = r.Handle, r.Position, r.U0
						again = append(again, i)
						continue
					}
					for k := range nat.Out {
						require.Equal(t, math.Float32bits(nat.Out[k]), math.Float32bits(outs[j].Logits[k]), "case %d row %d candidate %d", c, i, k)
					}
					tp, _ := hostDraw(t, r.IDs, outs[j].Logits, r.U0)
					tn, _ := hostDraw(t, r.IDs, nat.Out, r.U0)
					require.Equal(t, tn, tp)
				}
				pending = again
			}
		}
		for _, s := range seqs {
			require.NoError(t, b.CloseSequence(ctx, s.h))
		}
	}
	t.Logf("%d smp_step calls, %d rows compared, %d widened, %d kept whole, %d log-sum-exps loaded", steps, compared, widened, keptAll, loaded)
	require.NotZero(t, widened)
	require.NotZero(t, keptAll)
	require.NotZero(t, loaded)
}

// zipf is a fixed synthetic row: logit −s·ln(rank), the ranks shuffled
// over the vocabulary so that ids and ranks differ.
func zipf(vocab int, s float64, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0))
	row := make([]float32, vocab)
	for i, r := range rng.Perm(vocab) {
		row[i] = float32(-s * math.Log(float64(r+1)))
	}
	return row
}

// TestMirostatConverges: Mirostat 2.0's defining property. Driven through
// a real batch, with the host drawing from its output (softmax, then the
// inverse CDF at a seeded uniform) and recording each token, the observed
// surprise of the drawn tokens settles at tau: its mean over the last 500
// of 2000 steps is within 0.2 bits of it. Every other step hands the row
// without its log-sum-exp, which the plugin asks for.
func TestMirostatConverges(t *testing.T) {
	t.Parallel()
	p := firstParty(t, "mirostat")
	ctx := context.Background()
	const vocab, steps = 4000, 2000
	row := zipf(vocab, 1.1, 7) // entropy about 7.8 bits
	for _, tau := range []float64{3, 5} {
		b, err := p.OpenSamplerBatch(ctx)
		require.NoError(t, err)
		open, _ := json.Marshal(map[string]any{"sampling": map[string]any{}, "params": map[string]any{"tau": tau}, "vocab_size": vocab})
		h, err := b.Open(ctx, open)
		require.NoError(t, err)
		require.NoError(t, b.Record(h, 1, 2, 3)) // the prompt
		rng := rand.New(rand.NewPCG(uint64(tau), 9))
		var late float64
		calls := 0
		for pos := range steps {
			k := 64
			for {
				r := candidates(t, row, k)
				r.Handle, r.Position, r.U0 = h, int32(pos), uniform(rng)
				in := r
				if pos%2 == 1 { // the plugin reads the LSE on demand (row_lse)
					in.LSE, in.LoadLSE = float32(math.NaN()), func() float32 { return r.LSE }
				}
				out, err := b.Step(ctx, []SamplerRow{in})
				require.NoError(t, err)
				calls++
				if out[0].Widen {
					require.Less(t, k, vocab)
					k *= 16
					continue
				}
				if pos == 0 {
					// The first truncation keeps exactly the tokens whose
					// true surprise is within mu = 2·tau.
					for i, l := range r.Logits {
						s := (float64(r.LSE) - float64(l)) / math.Ln2
						require.Equal(t, s <= 2*tau || i == 0, !math.IsInf(float64(out[0].Logits[i]), -1), "candidate %d, surprise %v", i, s)
					}
				}
				tok, prob := hostDraw(t, r.IDs, out[0].Logits, r.U0)
				if pos >= steps-500 {
					late += -math.Log2(float64(prob))
				}
				require.NoError(t, b.Record(h, tok))
				break
			}
		}
		mean := late / 500
		t.Logf("tau %v: mean observed surprise over the last 500 steps %.3f bits (%d smp_step calls)", tau, mean, calls)
		require.InDelta(t, tau, mean, 0.2)
		require.NoError(t, b.CloseSequence(ctx, h))
		b.Close(ctx)
	}
}
