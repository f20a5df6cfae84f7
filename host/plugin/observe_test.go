package plugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// call is one Observer.Call.
type call struct {
	export string
	kind   ErrorKind
}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu    sync.Mutex
	calls []call
	waits []time.Duration
}

func (r *recorder) Call(export string, d time.Duration, kind ErrorKind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d < 0 {
		panic(fmt.Sprintf("%s took %v", export, d))
	}
	r.calls = append(r.calls, call{export, kind})
}

func (r *recorder) PoolWait(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits = append(r.waits, d)
}

// take returns and clears what was recorded.
func (r *recorder) take() ([]call, []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, w := r.calls, r.waits
	r.calls, r.waits = nil, nil
	return c, w
}

// TestObserverSeesCalls: a success, a trap, a missing export, a timeout in
// the guest and one waiting for an instance each reach the observer with
// their kind; the wait is reported as a pool wait.
func TestObserverSeesCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &recorder{}
	p, _ := load(t, "hostile", Config{PoolSize: 1, CallTimeout: 300 * time.Millisecond, Observer: rec})

	_, err := p.Call(ctx, "add", 1, 2)
	require.NoError(t, err)
	_, err = p.Call(ctx, "boom")
	require.Equal(t, KindTrap, Classify(err))
	require.Eventually(t, func() bool { return p.Stats().Idle == 1 }, 10*time.Second, time.Millisecond)
	_, err = p.Call(ctx, "nope")
	require.Equal(t, KindMissing, Classify(err))
	calls, waits := rec.take()
	require.Equal(t, []call{{"add", 0}, {"boom", KindTrap}, {"nope", KindMissing}}, calls)
	require.Empty(t, waits, "an idle instance is no wait")

	spun := make(chan error, 1)
	go func() {
		_, err := p.Call(ctx, "spin") // holds the only instance until its deadline
		spun <- err
	}()
	require.Eventually(t, func() bool { return p.Stats().Idle == 0 }, 10*time.Second, time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = p.Call(short, "add", 1, 2)
	require.ErrorContains(t, err, "no instance free")
	require.Equal(t, KindTimeout, Classify(<-spun))
	calls, waits = rec.take()
	require.ElementsMatch(t, []call{{"add", KindTimeout}, {"spin", KindTimeout}}, calls)
	require.Len(t, waits, 1)
	require.GreaterOrEqual(t, waits[0], 40*time.Millisecond, "the wait ran to the caller's deadline")
}

// TestObserverSeesKinds: the kinds' APIs report each call by its export; a
// plugin's error status is KindStatus (a StatusError), a refused output
// KindInvalid; calls on a session that already failed are not reported
// again.
func TestObserverSeesKinds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	loadObserved := func(t *testing.T, name string, kind Kind) (*Plugin, *recorder) {
		rec := &recorder{}
		module := withManifest(t, name, `{"abi":1,"name":"`+name+`","version":"0.1.0","kind":"`+string(kind)+`"}`)
		p, err := loadWithLog(module, Config{ID: name, Kind: kind, PoolSize: 1, MemoryPages: 16, Observer: rec}, &syncBuffer{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close(ctx) })
		return p, rec
	}

	t.Run("status", func(t *testing.T) {
		t.Parallel()
		p, rec := loadObserved(t, "statushook", KindHook)
		s, err := p.OpenHook(ctx, []byte(`{}`))
		require.NoError(t, err)
		_, err = s.Delta(ctx, "x", nil, ChannelContent)
		var se *StatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, StatusError{Plugin: "statushook", Export: "hook_delta", Status: 5, Message: "refused"}, *se)
		require.EqualError(t, err, "plugin statushook: hook_delta: status 5: refused")
		s.Close(ctx)
		calls, _ := rec.take()
		require.Equal(t, []call{{"hook_open", 0}, {"hook_delta", KindStatus}, {"hook_close", 0}}, calls)
		require.Equal(t, Stats{Idle: 1, Size: 1}, p.Stats(), "a status keeps the instance")
	})

	t.Run("refused hook output", func(t *testing.T) {
		t.Parallel()
		p, rec := loadObserved(t, "badhook", KindHook)
		s, err := p.OpenHook(ctx, []byte(`{}`))
		require.NoError(t, err)
		_, err = s.Delta(ctx, "u", nil, ChannelContent)
		require.ErrorContains(t, err, "hook_delta returned text that is not valid UTF-8")
		require.ErrorIs(t, err, errBadOutput)
		_, err = s.Delta(ctx, "more", nil, ChannelContent)
		require.ErrorIs(t, err, errSessionDead)
		s.Close(ctx)
		calls, _ := rec.take()
		require.Equal(t, []call{{"hook_open", 0}, {"hook_delta", KindInvalid}}, calls)
	})

	t.Run("sampler", func(t *testing.T) {
		t.Parallel()
		p, rec := loadObserved(t, "badsmp", KindSampler)
		b, err := p.OpenSamplerBatch(ctx)
		require.NoError(t, err)
		h, err := b.Open(ctx, []byte(`{}`))
		require.NoError(t, err)
		_, err = b.Step(ctx, []SamplerRow{{Handle: h, IDs: []int32{11}, Logits: []float32{1, 2}}})
		require.ErrorContains(t, err, "1 ids and 2 logits", "a caller's error is not reported")
		_, err = b.Step(ctx, []SamplerRow{{Handle: h, IDs: []int32{11, 12}, Logits: []float32{1, 2}}})
		require.NoError(t, err)
		require.NoError(t, b.CloseSequence(ctx, h))
		b.Close(ctx)
		calls, _ := rec.take()
		require.Equal(t, []call{{"smp_open", 0}, {"smp_step", 0}, {"smp_close", 0}, {"ulan_free", 0}}, calls)
	})

	t.Run("tokenizer", func(t *testing.T) {
		t.Parallel()
		p, rec := loadObserved(t, "badtok", KindTokenizer)
		_, err := p.Encode(ctx, "fine", 0, 256)
		require.NoError(t, err)
		_, err = p.Encode(ctx, "r", 0, 256)
		require.ErrorIs(t, err, errBadOutput)
		calls, _ := rec.take()
		require.Equal(t, []call{{"tok_encode", 0}, {"tok_encode", KindInvalid}}, calls)
	})
}

func TestClassify(t *testing.T) {
	t.Parallel()
	require.Zero(t, Classify(nil))
	require.Equal(t, KindTimeout, Classify(fmt.Errorf("wrapped: %w", &CallError{Kind: KindTimeout})))
	require.Equal(t, KindStatus, Classify(fmt.Errorf("wrapped: %w", &StatusError{Status: 1})))
	require.Equal(t, KindInvalid, Classify(refused{errors.New("garbage")}))
	require.Equal(t, "status", KindStatus.String())
	require.Equal(t, "invalid output", KindInvalid.String())
}

// nopObserver is the cheapest Observer, for BenchmarkObservedCall.
type nopObserver struct{}

func (nopObserver) Call(string, time.Duration, ErrorKind) {}
func (nopObserver) PoolWait(time.Duration)                {}

// BenchmarkObservedCall is BenchmarkNoopCall (sandboxed) with an observer
// that does nothing: the difference is the price of observing a call (two
// clock reads and an interface call).
func BenchmarkObservedCall(b *testing.B) {
	for _, o := range []struct {
		name string
		obs  Observer
	}{{"none", nil}, {"nop", nopObserver{}}} {
		b.Run(o.name, func(b *testing.B) {
			p, err := Load(context.Background(), mustRead(b, "ok"), Config{ID: "bench", PoolSize: 1, Logger: discard, Observer: o.obs})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			for b.Loop() {
				if _, err := p.Call(ctx, "noop"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
