package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"google.golang.org/protobuf/proto"

	"github.com/ulan-ai/ulan/engine"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv3"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/host/scheduler"
	"github.com/ulan-ai/ulan/host/tokenizer"
	"github.com/ulan-ai/ulan/plugins"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// modelFile is TinyV3 with DeepSeek-V3's tokenizer, written once per test
// binary.
var modelFile = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-serving-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tiny.gguf")
	return path, testmodel.TinyV3().WriteFile(path, 7)
})

// compiled is shared by every test's generation, so that each Go-built
// plugin compiles once per test binary (seconds each, more under -race).
var compiled = wazero.NewCompilationCache()

// serving is a server with a model, its pipeline and a generation of
// plugins.
type serving struct {
	*running
	p *pipeline.Pipeline
}

// trapSampler writes the host/plugin test sampler that traps from position
// 1 on, with a manifest, for a generation to load.
func trapSampler(t *testing.T) string {
	raw, err := os.ReadFile("plugin/testdata/trapsmp.wasm")
	require.NoError(t, err)
	wasm, err := plugin.EmbedManifest(raw, []byte(`{"abi":1,"name":"trapsmp","version":"0.1.0","kind":"sampler","needs":{"memory_pages":2}}`))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "trapsmp.wasm")
	require.NoError(t, os.WriteFile(path, wasm, 0o600))
	return path
}

// tinyRunner loads the test model on the CPU backend, with its runner and tokenizer.
func tinyRunner(t testing.TB) (*engine.Runner, *hf.Tokenizer) {
	t.Helper()
	path, err := modelFile()
	require.NoError(t, err)
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	b := cpu.New(cpu.WithThreads(2))
	m, err := engine.LoadGGUF(f, b)
	require.NoError(t, err)
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: 64 << 20})
	require.NoError(t, err)
	tok, err := tokenizer.FromGGUF(f)
	require.NoError(t, err)
	return r, tok
}

func startServing(t *testing.T, sched scheduler.Config) *serving {
	t.Helper()
	r, tok := tinyRunner(t)

	cfg := config.Default()
	trap := trapSampler(t)
	cfg.Plugins = []config.Plugin{
		// A generous deadline: the test compares draws with the built-in's, and a
		// busy -race run can take a default second over one step.
		{ID: "standard", Module: "builtin:standard", FailurePolicy: "fallback", PoolSize: 1,
			Grants: config.Grants{CallTimeout: 30 * time.Second}},
		// A hook session holds an instance for its whole stream: three, for
		// TestSeveralChoices's three choices, so that no choice waits on another
		// for an instance (a wait bounded by the call timeout, which a busy -race
		// run can pass).
		{ID: "redact", Module: "builtin:redact", PoolSize: 3, Config: map[string]any{
			"patterns": []any{map[string]any{"name": "ats", "regex": "@@+"}}}},
		{ID: "trap-fallback", Module: trap, FailurePolicy: "fallback", PoolSize: 1},
		{ID: "trap-closed", Module: trap, PoolSize: 1},
	}
	cfg.Pipelines = []config.Pipeline{
		{Name: "default"},
		{Name: "plugged", Sampler: "standard"},
		{Name: "redacted", Hooks: []string{"redact"}},
	}
	deps := generation.Deps{Builtins: plugins.Builtins(), InitTimeout: time.Minute, Cache: compiled}
	gen, err := generation.Build(context.Background(), cfg, deps)
	require.NoError(t, err)
	t.Cleanup(func() { gen.Close(context.Background()) })
	p := pipeline.New(pipeline.Model{Name: "tiny", Format: "gguf", Backend: "cpu", Runner: r, Tokenizer: tok,
		Generation: gen, Scheduler: sched})
	t.Cleanup(p.Close)
	return &serving{running: start(t, cfg, host.WithInference(p), host.WithGeneration(gen, deps)), p: p}
}

// result is one streamed choice.
type result struct {
	id       string
	text     string
	tokens   []uint32
	finished *ulanv1.Finished
}

// collect reads a Generate or Chat stream to its end.
func collect[T any](t *testing.T, s interface {
	Receive() bool
	Msg() *T
	Err() error
	Close() error
}, started func(*T) *ulanv1.Started, delta func(*T) *ulanv1.Delta, finished func(*T) *ulanv1.Finished) (result, error) {
	t.Helper()
	defer s.Close()
	var r result
	for s.Receive() {
		m := s.Msg()
		if st := started(m); st != nil {
			r.id = st.GenerationId
		}
		if d := delta(m); d != nil {
			r.text += d.Content
			r.tokens = append(r.tokens, d.TokenIds...)
		}
		if f := finished(m); f != nil {
			r.finished = f
		}
	}
	return r, s.Err()
}

func generate(t *testing.T, c ulanv1connect.InferenceServiceClient, req *ulanv1.GenerateRequest) (result, error) {
	s, err := c.Generate(context.Background(), connect.NewRequest(req))
	if err != nil {
		return result{}, err
	}
	return collect(t, s, (*ulanv1.GenerateResponse).GetStarted, (*ulanv1.GenerateResponse).GetDelta, (*ulanv1.GenerateResponse).GetFinished)
}

func chat(t *testing.T, c ulanv1connect.InferenceServiceClient, req *ulanv1.ChatRequest) (result, error) {
	s, err := c.Chat(context.Background(), connect.NewRequest(req))
	if err != nil {
		return result{}, err
	}
	return collect(t, s, (*ulanv1.ChatResponse).GetStarted, (*ulanv1.ChatResponse).GetDelta, (*ulanv1.ChatResponse).GetFinished)
}

func f32(v float32) *float32 { return &v }
func i32(v int32) *int32     { return &v }
func u64(v uint64) *uint64   { return &v }

func TestChatStreamsOnEveryProtocolAndSeedsReproduce(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	req := &ulanv1.ChatRequest{
		Messages: []*ulanv1.Message{{Role: ulanv1.Role_ROLE_USER, Content: "hello"}},
		Sampling: &ulanv1.SamplingParams{Seed: u64(11), MaxTokens: i32(12), Temperature: f32(0.8)},
	}
	var first *result
	for name, c := range clients(s.url) {
		r, err := chat(t, c, req)
		require.NoError(t, err, name)
		require.NotEmpty(t, r.id, name)
		require.NotNil(t, r.finished, name)
		require.Equal(t, uint32(12), r.finished.Usage.CompletionTokens, "%s: %v", name, r.finished)
		require.Equal(t, ulanv1.FinishReason_FINISH_REASON_LENGTH, r.finished.FinishReason, name)
		require.Len(t, r.tokens, 12, name)
		if first == nil {
			first = &r
			continue
		}
		require.Equal(t, first.tokens, r.tokens, "%s: the same seed gives the same tokens", name)
		require.Equal(t, first.text, r.text, name)
	}
}

func TestPluginSamplerMatchesTheBuiltIn(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	c := clients(s.url)["connect+proto/h2c"]
	for _, sp := range []*ulanv1.SamplingParams{
		{Seed: u64(3), MaxTokens: i32(16), Temperature: f32(0.9), TopP: f32(0.9)},
		{Seed: u64(4), MaxTokens: i32(16), TopK: i32(20), MinP: f32(0.05)},
		{Seed: u64(5), MaxTokens: i32(8)}, // no truncation: the whole vocabulary
	} {
		native, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: "The sea", Sampling: sp})
		require.NoError(t, err)
		plugged, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: "The sea", Sampling: sp,
			Plugins: &ulanv1.PluginSelection{Pipeline: "plugged"}})
		require.NoError(t, err)
		require.Equal(t, native.tokens, plugged.tokens, "%v", sp)
		require.Empty(t, plugged.finished.Annotations)
	}
}

func TestStopStrings(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	c := clients(s.url)["connect+proto/h2c"]
	base := &ulanv1.SamplingParams{Temperature: f32(0), MaxTokens: i32(40)}
	full, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: "Once", Sampling: base})
	require.NoError(t, err)
	runes := []rune(full.text)
	require.Greater(t, len(runes), 12, "greedy output: %q", full.text)
	stop := string(runes[6:9])
	want := full.text[:strings.Index(full.text, stop)]
	for _, include := range []bool{false, true} {
		sp := &ulanv1.SamplingParams{Temperature: f32(0), MaxTokens: i32(40), Stop: []string{stop}, IncludeStop: include}
		r, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: "Once", Sampling: sp})
		require.NoError(t, err)
		w := want
		if include {
			w += stop
		}
		require.Equal(t, w, r.text)
		require.Equal(t, ulanv1.FinishReason_FINISH_REASON_STOP, r.finished.FinishReason)
		require.Equal(t, stop, r.finished.Stop)
	}
}

func TestRedactionHook(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	c := clients(s.url)["grpc-web/http1"]
	tok, err := c.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: "@"}))
	require.NoError(t, err)
	require.Len(t, tok.Msg.TokenIds, 1)
	sp := &ulanv1.SamplingParams{AllowedTokenIds: tok.Msg.TokenIds, MaxTokens: i32(6)}
	plain, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: "Mail", Sampling: sp})
	require.NoError(t, err)
	require.Equal(t, "@@@@@@", plain.text)
	r, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: "Mail", Sampling: sp,
		Plugins: &ulanv1.PluginSelection{Pipeline: "redacted"}})
	require.NoError(t, err)
	require.NotContains(t, r.text, "@")
	require.Contains(t, r.text, "REDACTED")
	require.Len(t, r.finished.Annotations, 1)
	require.Equal(t, ulanv1.AnnotationKind_ANNOTATION_KIND_REDACTION, r.finished.Annotations[0].Kind)
}

func TestSixteenConcurrentStreams(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	c := clients(s.url)["connect+proto/h2c"]
	req := func(i int) *ulanv1.GenerateRequest {
		return &ulanv1.GenerateRequest{Prompt: fmt.Sprintf("Story %d:", i),
			Sampling: &ulanv1.SamplingParams{Seed: u64(uint64(i)), MaxTokens: i32(int32(8 + i))}}
	}
	want := make([]result, 16)
	for i := range want {
		var err error
		want[i], err = generate(t, c, req(i))
		require.NoError(t, err)
	}
	got := make([]result, 16)
	errs := make([]error, 16)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], errs[i] = generate(t, c, req(i)) })
	}
	wg.Wait()
	for i := range got {
		require.NoError(t, errs[i])
		require.Equal(t, want[i].tokens, got[i].tokens, "stream %d", i)
		require.Equal(t, want[i].text, got[i].text, "stream %d", i)
		require.Len(t, got[i].tokens, 8+i)
	}
	require.Eventually(t, func() bool { return s.p.Stats().CacheUsed == 0 }, 5*time.Second, 10*time.Millisecond)
}

// TestSeveralChoices: n choices stream side by side, each delta and
// Finished naming its choice; choice 0 is the request's single choice with
// the same seed, the others draw from other streams of it, over the plain
// and the hooked pipeline, and the cache empties afterwards.
func TestSeveralChoices(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	c := clients(s.url)["connect+proto/h2c"]
	for _, pipe := range []string{"default", "redacted"} {
		sp := &ulanv1.SamplingParams{Seed: u64(5), MaxTokens: i32(10), Temperature: f32(1.2), IgnoreEos: true}
		req := func(n int32) *ulanv1.GenerateRequest {
			p := proto.Clone(sp).(*ulanv1.SamplingParams)
			p.N = n
			return &ulanv1.GenerateRequest{Prompt: "Once upon a time", Sampling: p, Plugins: &ulanv1.PluginSelection{Pipeline: pipe}}
		}
		one, err := generate(t, c, req(1))
		require.NoError(t, err)
		st, err := c.Generate(context.Background(), connect.NewRequest(req(3)))
		require.NoError(t, err)
		tokens := make([][]uint32, 3)
		texts := make([]string, 3)
		finished := make([]*ulanv1.Finished, 3)
		starts := 0
		for st.Receive() {
			m := st.Msg()
			if m.GetStarted() != nil {
				starts++
			}
			if d := m.GetDelta(); d != nil {
				require.Less(t, d.Index, uint32(3))
				require.Nil(t, finished[d.Index], "%s: a delta after choice %d finished", pipe, d.Index)
				tokens[d.Index] = append(tokens[d.Index], d.TokenIds...)
				texts[d.Index] += d.Content
			}
			if f := m.GetFinished(); f != nil {
				require.Less(t, f.Index, uint32(3))
				require.Nil(t, finished[f.Index], "%s: choice %d finished twice", pipe, f.Index)
				finished[f.Index] = f
			}
		}
		require.NoError(t, st.Err())
		st.Close()
		require.Equal(t, 1, starts)
		for i, f := range finished {
			require.NotNil(t, f, "%s: choice %d", pipe, i)
			require.Equal(t, ulanv1.FinishReason_FINISH_REASON_LENGTH, f.FinishReason, "%s: choice %d: %s", pipe, i, f.Message)
			require.Equal(t, uint32(10), f.Usage.CompletionTokens)
			require.Len(t, tokens[i], 10)
		}
		require.Equal(t, one.tokens, tokens[0], "%s: choice 0 is the single choice of the same seed", pipe)
		require.Equal(t, one.text, texts[0], pipe)
		require.NotEqual(t, tokens[0], tokens[1], "%s: choices draw from different streams", pipe)
		require.NotEqual(t, tokens[1], tokens[2], pipe)
	}
	require.Eventually(t, func() bool { return s.p.Stats().CacheUsed == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestCancelMidStreamFreesTheCache(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	c := clients(s.url)["grpc/h2c"]
	st, err := c.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "Long",
		Sampling: &ulanv1.SamplingParams{MaxTokens: i32(3000), IgnoreEos: true}}))
	require.NoError(t, err)
	defer st.Close()
	var id string
	deltas := 0
	var fin *ulanv1.Finished
	for st.Receive() {
		m := st.Msg()
		if m.GetStarted() != nil {
			id = m.GetStarted().GenerationId
		}
		if m.GetDelta() != nil {
			if deltas++; deltas == 3 {
				require.Greater(t, s.p.Stats().CacheUsed, 0)
				_, err := c.Cancel(context.Background(), connect.NewRequest(&ulanv1.CancelRequest{GenerationId: id}))
				require.NoError(t, err)
			}
		}
		if m.GetFinished() != nil {
			fin = m.GetFinished()
		}
	}
	require.NoError(t, st.Err())
	require.NotNil(t, fin)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_CANCELLED, fin.FinishReason)
	require.Eventually(t, func() bool { return s.p.Stats().CacheUsed == 0 && s.p.Stats().Running == 0 }, 5*time.Second, 10*time.Millisecond)
}

// TestTimingsReportTheQueue: a request's timings report its wait in the
// admission queue, within its time to first token and its total.
func TestTimingsReportTheQueue(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	c := clients(s.url)["connect+proto/h2c"]
	r, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: "The sea", Sampling: &ulanv1.SamplingParams{MaxTokens: i32(3)}})
	require.NoError(t, err)
	tm := r.finished.GetTimings()
	require.NotNil(t, tm.GetQueue(), "queue is reported")
	require.LessOrEqual(t, tm.GetQueue().AsDuration(), tm.GetTimeToFirstToken().AsDuration())
	require.LessOrEqual(t, tm.GetTimeToFirstToken().AsDuration(), tm.GetTotal().AsDuration())
}

func TestFullAdmissionQueueIsResourceExhausted(t *testing.T) {
	s := startServing(t, scheduler.Config{MaxRunning: 1, MaxQueue: 1})
	c := clients(s.url)["connect+proto/h2c"]
	long := &ulanv1.GenerateRequest{Prompt: "Long", Sampling: &ulanv1.SamplingParams{MaxTokens: i32(4000), IgnoreEos: true}}
	short := &ulanv1.GenerateRequest{Prompt: "Long", Sampling: &ulanv1.SamplingParams{MaxTokens: i32(1)}}
	// One long stream runs and one waits; a third request then meets a
	// full queue. The tiny model can finish a long stream within seconds
	// on a fast machine, freeing the slot before the check: that attempt
	// is retried, not failed.
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithCancel(context.Background())
		var streams []*connect.ServerStreamForClient[ulanv1.GenerateResponse]
		full := true
		for range 2 {
			st, err := c.Generate(ctx, connect.NewRequest(long))
			require.NoError(t, err)
			streams = append(streams, st)
			n := len(streams)
			if !waitFor(func() bool { st := s.p.Stats(); return st.Running+st.Queued == n }, 5*time.Second) {
				full = false
				break
			}
		}
		var err error
		if full {
			_, err = generate(t, c, short)
		}
		cancel()
		for _, st := range streams {
			st.Close()
		}
		if full && connect.CodeOf(err) == connect.CodeResourceExhausted {
			require.ErrorContains(t, err, "queue")
			return
		}
		require.Less(t, attempt, 5, "the queue was never seen full with a long stream running (last error %v)", err)
		require.Eventually(t, func() bool { st := s.p.Stats(); return st.Running+st.Queued == 0 }, 10*time.Second, 5*time.Millisecond)
	}
}

// waitFor reports whether cond holds within d, polling every 5 ms.
func waitFor(cond func() bool, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestUnknownNamesAreInvalidArguments(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	c := clients(s.url)["connect+json/http1"]
	for _, sel := range []*ulanv1.PluginSelection{
		{Pipeline: "nope"},
		{Sampler: "nope"},
		{Sampler: "redact"}, // a hook, not a sampler
		{Hooks: []string{"redact", "nope"}},
	} {
		_, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: "x", Plugins: sel})
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v: %v", sel, err)
		require.ErrorContains(t, err, "plugins.")
	}
	for _, req := range []*ulanv1.GenerateRequest{
		{Prompt: "x", Model: "other"},
		{PromptTokenIds: []uint32{1, 129280}},
		{Prompt: "x", Sampling: &ulanv1.SamplingParams{BannedTokenIds: []uint32{200000}}},
	} {
		_, err := generate(t, c, req)
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v: %v", req, err)
	}
}

func TestTrappingSamplerFollowsItsPolicy(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	c := clients(s.url)["connect+proto/h2c"]
	sp := &ulanv1.SamplingParams{Seed: u64(1), MaxTokens: i32(5)}
	// Under fallback the built-in sampler takes over at the failed step
	// and the response says so.
	r, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: "x", Sampling: sp, Plugins: &ulanv1.PluginSelection{Sampler: "trap-fallback"}})
	require.NoError(t, err)
	require.Len(t, r.tokens, 5)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_LENGTH, r.finished.FinishReason)
	require.Len(t, r.finished.Annotations, 1)
	require.Equal(t, ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_FALLBACK, r.finished.Annotations[0].Kind)
	// Under fail_closed the choice ends with an error naming the plugin.
	r, err = generate(t, c, &ulanv1.GenerateRequest{Prompt: "x", Sampling: sp, Plugins: &ulanv1.PluginSelection{Sampler: "trap-closed"}})
	require.NoError(t, err)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_ERROR, r.finished.FinishReason)
	require.Contains(t, r.finished.Message, "trap-closed")
	require.Len(t, r.tokens, 1, "the first token was the plugin's")
}
