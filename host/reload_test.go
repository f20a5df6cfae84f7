package host_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"go.opentelemetry.io/otel/trace"

	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/metrics"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/plugins"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// reloading is a server with a model whose configuration lives in a file that tests
// rewrite and reload.
type reloading struct {
	*running
	file    string // the configuration file
	module  string // the redact hook's module file
	live    *generation.Live
	metrics *metrics.Metrics
}

// redactConfig is a configuration whose "redacted" pipeline masks runs of @ with mask,
// through the redact plugin loaded from module (listening where tests listen).
func redactConfig(module, mask string) string { return redactConfigAt(module, mask, "127.0.0.1:0") }

func redactConfigAt(module, mask, listen string) string {
	return fmt.Sprintf(`server:
  listen: %s
plugins:
  - id: redact
    module: %s
    pool_size: 4
    config:
      patterns: [{name: ats, regex: "@@+"}]
      mask: %q
pipelines:
  - name: default
  - name: redacted
    hooks: [redact]
`, listen, module, mask)
}

func startReloading(t testing.TB, mask string) *reloading {
	return startReloadingDrain(t, mask, time.Minute)
}

// startReloadingDrain is startReloading with retired generations drained for drain.
func startReloadingDrain(t testing.TB, mask string, drain time.Duration) *reloading {
	t.Helper()
	return startReloadingWith(t, drain, func(module string) string { return redactConfig(module, mask) }, nil)
}

// startReloadingWith starts a reloading server whose first configuration file is
// configText(module), with its metrics in s.metrics, tracing with tp when not nil.
func startReloadingWith(t testing.TB, drain time.Duration, configText func(module string) string, tp trace.TracerProvider) *reloading {
	t.Helper()
	return startReloadingShelf(t, drain, configText, tp, plugin.NewShelf(4, time.Minute))
}

// startReloadingShelf is startReloadingWith with the plugin shelf given (nil: none) and
// extra options.
func startReloadingShelf(t testing.TB, drain time.Duration, configText func(module string) string, tp trace.TracerProvider, shelf *plugin.Shelf, extra ...host.Option) *reloading {
	t.Helper()
	dir := t.TempDir()
	module := filepath.Join(dir, "redact.wasm")
	require.NoError(t, os.WriteFile(module, plugins.Builtins()["redact"], 0o600))
	file := filepath.Join(dir, "ulan.yaml")
	require.NoError(t, os.WriteFile(file, []byte(configText(module)), 0o600))
	src := config.Sources{File: file}
	cfg, err := config.Load(src)
	require.NoError(t, err)

	r, tok := tinyRunner(t)

	mx := metrics.New()
	deps := generation.Deps{Builtins: plugins.Builtins(), InitTimeout: time.Minute, Cache: compiled, Shelf: shelf,
		Logger: quietLogger(), Observer: mx.PluginObserver, Forget: mx.ForgetPlugin}
	gen, err := generation.Build(context.Background(), cfg, deps)
	require.NoError(t, err)
	live := generation.NewLive(gen, drain, quietLogger())
	t.Cleanup(func() {
		require.NoError(t, live.Close(context.Background()))
		if shelf != nil {
			require.NoError(t, shelf.Close(context.Background()))
		}
	})
	p := pipeline.New(pipeline.Model{Name: "tiny", Format: "gguf", Backend: "cpu", Runner: r, Tokenizer: tok, Live: live, Metrics: mx, Tracer: tp})
	t.Cleanup(p.Close)
	opts := []host.Option{host.WithInference(p), host.WithGeneration(gen, deps), host.WithReload(src, live, nil), host.WithMetrics(mx)}
	if tp != nil {
		opts = append(opts, host.WithTracing(tp))
	}
	opts = append(opts, extra...)
	return &reloading{
		running: start(t, cfg, opts...),
		file:    file, module: module, live: live, metrics: mx,
	}
}

// write replaces the configuration file the way editors do: a temporary file renamed
// over it.
func (s *reloading) write(t *testing.T, text string) {
	t.Helper()
	tmp := s.file + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(text), 0o600))
	require.NoError(t, os.Rename(tmp, s.file))
}

// masked generates six @ through the redacted pipeline: the text is the mask of the
// generation the request ran on, which it returns too.
func masked(t *testing.T, c ulanv1connect.InferenceServiceClient, at []uint32) (string, uint64, error) {
	s, err := c.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "Mail",
		Sampling: &ulanv1.SamplingParams{AllowedTokenIds: at, MaxTokens: i32(6)},
		Plugins:  &ulanv1.PluginSelection{Pipeline: "redacted"}}))
	if err != nil {
		return "", 0, err
	}
	defer s.Close()
	var text string
	var gen uint64
	var fin *ulanv1.Finished
	for s.Receive() {
		m := s.Msg()
		if st := m.GetStarted(); st != nil {
			gen = st.ConfigGeneration
		}
		text += m.GetDelta().GetContent()
		if f := m.GetFinished(); f != nil {
			fin = f
		}
	}
	if err := s.Err(); err != nil {
		return "", 0, err
	}
	if fin.GetFinishReason() != ulanv1.FinishReason_FINISH_REASON_LENGTH {
		return text, gen, fmt.Errorf("finished %v: %s", fin.GetFinishReason(), fin.GetMessage())
	}
	return text, gen, nil
}

func atToken(t *testing.T, c ulanv1connect.InferenceServiceClient) []uint32 {
	t.Helper()
	tok, err := c.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: "@"}))
	require.NoError(t, err)
	require.Len(t, tok.Msg.TokenIds, 1)
	return tok.Msg.TokenIds
}

// TestReloadSwapsAndRefuses: a valid change is swapped in for the next request, and the
// generation number says so; a broken file, a missing module and a change only a
// restart can apply each leave the current generation serving, with the reason in
// GetStatus.
func TestReloadSwapsAndRefuses(t *testing.T) {
	s := startReloading(t, "<one>")
	c := clients(s.url)["connect+proto/h2c"]
	pc := ulanv1connect.NewPluginServiceClient(http.DefaultClient, s.url)
	ctx := context.Background()
	at := atToken(t, c)

	text, gen, err := masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<one>", text)
	require.Equal(t, uint64(1), gen)

	s.write(t, redactConfig(s.module, "<two>"))
	res, err := pc.Reload(ctx, connect.NewRequest(&ulanv1.ReloadRequest{}))
	require.NoError(t, err)
	require.True(t, res.Msg.Result.Ok, "%v", res.Msg.Result.Problems)
	require.Equal(t, uint64(2), res.Msg.Result.Generation)
	require.Equal(t, "rpc", res.Msg.Result.Trigger)
	text, gen, err = masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<two>", text)
	require.Equal(t, uint64(2), gen)

	for name, tc := range map[string]struct {
		text    string
		problem string // a key or message part
		restart []string
	}{
		"syntax":         {text: "plugins: [\n", problem: "yaml"},
		"missing module": {text: redactConfig(s.module+".gone", "<three>"), problem: "plugins[0].module"},
		"restart":        {text: redactConfigAt(s.module, "<three>", "127.0.0.1:1"), restart: []string{"server.listen"}},
	} {
		s.write(t, tc.text)
		got := s.srv.Reload(ctx, "watch")
		require.False(t, got.Ok, name)
		require.Equal(t, uint64(2), got.Generation, name)
		require.Equal(t, tc.restart, got.RestartRequired, name)
		if tc.problem != "" {
			require.Contains(t, fmt.Sprint(got.Problems), tc.problem, name)
		}
		st, err := pc.GetStatus(ctx, connect.NewRequest(&ulanv1.GetStatusRequest{}))
		require.NoError(t, err)
		require.Equal(t, uint64(2), st.Msg.Generation, name)
		require.False(t, st.Msg.LastReload.Ok, name)
		require.Equal(t, "watch", st.Msg.LastReload.Trigger, name)
		text, gen, err = masked(t, c, at)
		require.NoError(t, err, name)
		require.Equal(t, "<two>", text, "%s: the old generation keeps serving", name)
		require.Equal(t, uint64(2), gen, name)
	}

	// An unchanged plugin is carried over; its generation serves the new number.
	s.write(t, redactConfig(s.module, "<two>"))
	got := s.srv.Reload(ctx, "signal")
	require.True(t, got.Ok)
	require.Equal(t, uint64(3), got.Generation)
	require.True(t, s.live.Current().Carried("redact"))
}

// TestReloadSoak: clients stream without pause while the configuration is rewritten
// again and again, valid and broken in turn, and the plugin's module file is replaced:
// no response fails or mixes generations (each one's text is the mask of the
// generation it reports), every request that starts after a swap runs on it or a
// later one, and every broken version is refused without changing anything. Set
// ULAN_RELOAD_SOAK=1 for a longer run.
func TestReloadSoak(t *testing.T) {
	// Each stream holds a redact instance from open to end, so the clients are
	// fewer than the pool's 4 instances: a client waiting past the call
	// timeout for an instance would fail by design, not because of a reload.
	clientsN, rewrites := 3, 6
	if os.Getenv("ULAN_RELOAD_SOAK") != "" {
		rewrites = 40
	}
	s := startReloading(t, "<g1>")
	c := clients(s.url)["connect+proto/h2c"]
	ctx := context.Background()
	at := atToken(t, c)

	var masks sync.Map // generation → its mask
	masks.Store(uint64(1), "<g1>")
	var floor atomic.Uint64 // the newest generation swapped in
	floor.Store(1)
	stop := make(chan struct{})
	var served atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clientsN)
	for range clientsN {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				least := floor.Load()
				text, gen, err := masked(t, c, at)
				if err != nil {
					errs <- err
					return
				}
				want, ok := masks.Load(gen)
				switch {
				case gen < least:
					errs <- fmt.Errorf("a request that started after generation %d was swapped in ran on %d", least, gen)
					return
				case !ok || text != want:
					errs <- fmt.Errorf("generation %d answered %q, want %v", gen, text, want)
					return
				}
				served.Add(1)
			}
		})
	}
	gen := uint64(1)
	for i := range rewrites {
		switch {
		case i%2 == 1:
			s.write(t, "plugins: {broken\n")
			res := s.srv.Reload(ctx, "watch")
			require.False(t, res.Ok)
			require.Equal(t, gen, res.Generation)
		case i%4 == 2:
			// The module file replaced (same plugin, other bytes: a custom section
			// appended), under an unchanged configuration.
			writeModule(t, s.module, i)
			fallthrough
		default:
			mask := fmt.Sprintf("<g%d>", gen+1)
			masks.Store(gen+1, mask)
			s.write(t, redactConfig(s.module, mask))
			res := s.srv.Reload(ctx, "watch")
			require.True(t, res.Ok, "%v", res.Problems)
			gen++
			require.Equal(t, gen, res.Generation)
			floor.Store(gen)
		}
		// Let some requests run on this version before the next.
		for start := served.Load(); served.Load() < start+int64(clientsN); {
			select {
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(time.Millisecond):
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	require.Eventually(t, func() bool { return len(s.live.Retired()) == 0 }, 10*time.Second, 10*time.Millisecond,
		"every retired generation closes once its requests end")
	t.Logf("%d responses over %d generations", served.Load(), gen)
}

// TestReloadDrainTimeoutCancels: a stream still running on a retired generation when the
// drain time runs out ends with FINISH_REASON_CANCELLED and a message that says why.
func TestReloadDrainTimeoutCancels(t *testing.T) {
	s := startReloadingDrain(t, "<one>", 20*time.Millisecond)
	c := clients(s.url)["grpc/h2c"]
	ctx := context.Background()
	st, err := c.Generate(ctx, connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "Once upon a time",
		Sampling: &ulanv1.SamplingParams{MaxTokens: i32(100000), IgnoreEos: true}}))
	require.NoError(t, err)
	defer st.Close()
	require.True(t, st.Receive())
	require.NotNil(t, st.Msg().GetStarted())
	s.write(t, redactConfig(s.module, "<two>"))
	require.True(t, s.srv.Reload(ctx, "rpc").Ok)
	var fin *ulanv1.Finished
	for st.Receive() {
		if f := st.Msg().GetFinished(); f != nil {
			fin = f
		}
	}
	require.NoError(t, st.Err())
	require.NotNil(t, fin)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_CANCELLED, fin.FinishReason, fin.Message)
	require.Contains(t, fin.Message, "reloaded")
	require.Eventually(t, func() bool { return len(s.live.Retired()) == 0 }, 10*time.Second, 10*time.Millisecond)
}
