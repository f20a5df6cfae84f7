package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// evilSampler loads testdata/evilsmp.wasm (see its source) misbehaving in
// the given mode, with two instances of 4 pages.
func evilSampler(t *testing.T, mode string, mod func(*Config)) *Plugin {
	t.Helper()
	module := withManifest(t, "evilsmp", `{"abi":1,"name":"evilsmp","version":"0.1.0","kind":"sampler"}`)
	cfg := Config{ID: "evilsmp", Kind: KindSampler, PoolSize: 2, MemoryPages: 4, CallTimeout: 10 * time.Second,
		PluginConfig: json.RawMessage(`{"mode":"` + mode + `"}`)}
	if mod != nil {
		mod(&cfg)
	}
	p, err := loadWithLog(module, cfg, &syncBuffer{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// evilRow is a row whose last candidate the host's stage banned (−Inf).
func evilRow(h int64, position int32) []SamplerRow {
	inf := float32(math.Inf(-1))
	return []SamplerRow{{Handle: h, Position: position, IDs: []int32{11, 12, 13}, Logits: []float32{3, 2, inf}}}
}

// goodSamplerCall opens a batch of its own and steps one row at position
// 0, where every mode answers with the first candidate.
func goodSamplerCall(t *testing.T, p *Plugin) func() error {
	return func() error {
		ctx := context.Background()
		b, err := p.OpenSamplerBatch(ctx)
		if err != nil {
			return err
		}
		defer b.Close(ctx)
		h, err := b.Open(ctx, []byte(`{}`))
		if err != nil {
			return err
		}
		out, err := b.Step(ctx, evilRow(h, 0))
		if err != nil {
			return err
		}
		if out[0].Token != 11 {
			t.Errorf("good step: %+v", out)
		}
		return b.CloseSequence(ctx, h)
	}
}

// TestSamplerAnswersTheHostCannotDraw: a sampler's answer that would leave
// the host nothing to draw, or would draw a token the host's own stage
// banned, is refused as the plugin's failure (the instance is replaced, the
// batch ends), not passed on to fail the choice in the draw or to emit a
// banned token.
func TestSamplerAnswersTheHostCannotDraw(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct{ mode, want string }{
		{"i", "smp_step: row 0: +Inf logit for candidate 11"},
		{"n", "smp_step: row 0: every candidate's output logit is -Inf"},
		{"l", "smp_step: row 0: token 13 is a candidate the host's stage dropped"},
		{"k", "smp_step: row 0: keep-all temperature 1e-45 takes the best logit 3 to +Inf"},
		{"t", "smp_step: trap"},
		{"G", "smp_step: trap"}, // grows its memory to the cap, then traps
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			p := evilSampler(t, tc.mode, nil)
			b, err := p.OpenSamplerBatch(ctx)
			require.NoError(t, err)
			h, err := b.Open(ctx, []byte(`{}`))
			require.NoError(t, err)
			err = contain(t, p, false, goodSamplerCall(t, p), func() error {
				_, err := b.Step(ctx, evilRow(h, 1))
				return err
			})
			require.ErrorContains(t, err, "plugin evilsmp: ")
			require.ErrorContains(t, err, tc.want)
			_, err = b.Step(ctx, evilRow(h, 0))
			require.ErrorContains(t, err, "the session's instance failed")
			b.Close(ctx)
			require.Equal(t, 1, p.Stats().Replacements)
		})
	}
}

// TestSamplerCannotLiftTheHostsBans: a processor that raises every output
// logit to 0 leaves the banned candidate at −Inf; nothing fails.
func TestSamplerCannotLiftTheHostsBans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := evilSampler(t, "z", nil)
	b, err := p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	defer b.Close(ctx)
	h, err := b.Open(ctx, []byte(`{}`))
	require.NoError(t, err)
	out, err := b.Step(ctx, evilRow(h, 1))
	require.NoError(t, err)
	require.Equal(t, int32(-1), out[0].Token)
	require.Equal(t, []float32{0, 0, float32(math.Inf(-1))}, out[0].Logits)
	require.Equal(t, 0, p.Stats().Replacements)
}

// TestSamplerAtItsMemoryCap: a sampler that takes every page it may on
// every call goes on answering (the host reads the arena again after the
// call), and keeps its instance.
func TestSamplerAtItsMemoryCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := evilSampler(t, "g", nil)
	b, err := p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	defer b.Close(ctx)
	h, err := b.Open(ctx, []byte(`{}`))
	require.NoError(t, err)
	for pos := range int32(5) {
		out, err := b.Step(ctx, evilRow(h, pos))
		require.NoError(t, err)
		require.Equal(t, int32(11), out[0].Token)
	}
	require.Equal(t, uint32(4*65536), b.inst.mod.Memory().Size(), "at its cap")
	require.Equal(t, 0, p.Stats().Replacements)
}

// TestSamplerHandlesAreUnique: smp_open that gives a handle an open
// sequence of the batch already has is refused: the two sequences'
// histories would mix, and closing one would drop the other's.
func TestSamplerHandlesAreUnique(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := badKind(t, "badsmp", KindSampler, 10*time.Second) // smp_open answers 1, always
	b, err := p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	h, err := b.Open(ctx, []byte(`{}`))
	require.NoError(t, err)
	require.NoError(t, b.Record(h, 1, 2, 3))
	_, err = b.Open(ctx, []byte(`{}`))
	require.ErrorContains(t, err, "plugin badsmp: smp_open returned handle 1, which an open sequence already has")
	_, err = b.Step(ctx, evilRow(h, 0))
	require.ErrorContains(t, err, "the session's instance failed")
	b.Close(ctx)
	require.Eventually(t, func() bool { s := p.Stats(); return s.Idle == s.Size && s.Replacements == 1 }, 10*time.Second, 5*time.Millisecond)

	// A handle closed may come again.
	b, err = p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	defer b.Close(ctx)
	h, err = b.Open(ctx, []byte(`{}`))
	require.NoError(t, err)
	require.NoError(t, b.CloseSequence(ctx, h))
	_, err = b.Open(ctx, []byte(`{}`))
	require.NoError(t, err)
}

// TestInitThatNeverReturns: a plugin whose ulan_init loops forever fails
// to load at its init deadline, naming the timeout, instead of hanging.
func TestInitThatNeverReturns(t *testing.T) {
	t.Parallel()
	module := withManifest(t, "evilsmp", `{"abi":1,"name":"evilsmp","version":"0.1.0","kind":"sampler"}`)
	for _, unmetered := range []bool{false, true} {
		start := time.Now()
		_, err := loadWithLog(module, Config{ID: "evilsmp", Kind: KindSampler, PoolSize: 2, MemoryPages: 4,
			InitTimeout: 200 * time.Millisecond, PluginConfig: json.RawMessage(`{"mode":"L"}`), unmetered: unmetered}, &syncBuffer{})
		var ce *CallError
		require.ErrorAs(t, err, &ce, "unmetered: %v", unmetered)
		require.Equal(t, KindTimeout, ce.Kind)
		require.ErrorContains(t, err, "ulan_init")
		require.Less(t, time.Since(start), 10*time.Second)
	}
}

// TestCloseDoesNotWaitOutReplacements: a pool closing while its lost
// instance's replacement hangs in ulan_init (until the init deadline, then
// again after a backoff) stops the replacement instead of waiting it out.
func TestCloseDoesNotWaitOutReplacements(t *testing.T) {
	t.Parallel()
	p := evilSampler(t, "x", func(c *Config) { c.PoolSize = 1; c.InitTimeout = 20 * time.Second })
	// From now on every new instance's ulan_init loops (the replacement's).
	p.cfg.PluginConfig = json.RawMessage(`{"mode":"L"}`)
	m, err := p.pool.checkout(context.Background())
	require.NoError(t, err)
	p.pool.discard(m)
	time.Sleep(50 * time.Millisecond) // the replacement is in ulan_init
	start := time.Now()
	require.NoError(t, p.Close(context.Background()))
	require.Less(t, time.Since(start), 5*time.Second, "Close waited for the hanging replacement")
}

// TestTokenizerTrapCountsOnce: a failed tokenizer call counts once against
// the circuit breaker, and an instance whose ulan_free trapped after a good
// answer is not pooled again.
func TestTokenizerTrapCountsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := badKind(t, "badtok", KindTokenizer, 10*time.Second)
	_, err := p.Encode(ctx, "Fx", 0, 256)
	require.ErrorContains(t, err, "ulan_free: trap")
	p.breaker.mu.Lock()
	failures := p.breaker.failures
	p.breaker.mu.Unlock()
	require.Equal(t, 1, failures)
	require.Eventually(t, func() bool { s := p.Stats(); return s.Idle == s.Size && s.Replacements == 1 }, 10*time.Second, 5*time.Millisecond)
	// The breaker opens after breakerFailures failed calls, not fewer.
	for range breakerFailures - 2 {
		_, err := p.Encode(ctx, "Fx", 0, 256)
		require.ErrorContains(t, err, "ulan_free: trap")
	}
	require.False(t, p.Stats().Unhealthy)
}

// TestIntermittentSamplerUnderLoad: many batches at once on a sampler that
// traps on every third step of an instance. Each step either answers
// correctly or fails as a trap (or, once the breaker opens, as unhealthy);
// nothing hangs or panics, lost instances are replaced, and no goroutine
// outlives the plugin.
func TestIntermittentSamplerUnderLoad(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	p := evilSampler(t, "m", func(c *Config) { c.PoolSize = 3 })
	const workers, rounds = 24, 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	kinds := map[ErrorKind]int{}
	answered := 0
	for range workers {
		wg.Go(func() {
			for range rounds {
				b, err := p.OpenSamplerBatch(ctx)
				if err != nil {
					var ce *CallError
					if !errors.As(err, &ce) || ce.Kind != KindUnhealthy {
						t.Errorf("open batch: %v", err)
					}
					continue
				}
				h, err := b.Open(ctx, []byte(`{}`))
				for pos := int32(0); err == nil && pos < 4; pos++ {
					var out []SamplerOutput
					out, err = b.Step(ctx, evilRow(h, pos))
					if err == nil {
						if out[0].Token != 11 {
							t.Errorf("step: %+v", out)
						}
						mu.Lock()
						answered++
						mu.Unlock()
					}
				}
				if err == nil {
					err = b.CloseSequence(ctx, h)
				}
				b.Close(ctx)
				if err != nil {
					var ce *CallError
					if !errors.As(err, &ce) || (ce.Kind != KindTrap && ce.Kind != KindUnhealthy) {
						t.Errorf("step: %v", err)
						continue
					}
					mu.Lock()
					kinds[ce.Kind]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	require.NotZero(t, answered)
	require.NotZero(t, kinds[KindTrap])
	require.Eventually(t, func() bool { s := p.Stats(); return s.Idle == s.Size }, 10*time.Second, 5*time.Millisecond, "the pool is whole again")
	require.NoError(t, p.Close(ctx))
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+2 }, 10*time.Second, 10*time.Millisecond,
		"goroutines: %d before, %d after", before, runtime.NumGoroutine())
}
