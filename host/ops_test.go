package host_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// scrape returns the metric lines of /metrics that start with prefix, read with key
// (none when empty).
func scrape(t *testing.T, url, key, prefix string) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var lines []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestMetricsOfServingAndReloads: /metrics counts the calls by procedure and code, the
// tokens, the latencies, the plugin's calls under the generation that loaded it, the
// reloads by result and the current generation.
func TestMetricsOfServingAndReloads(t *testing.T) {
	s := startReloading(t, "<one>")
	c := clients(s.url)["connect+proto/h2c"]
	at := atToken(t, c)
	_, _, err := masked(t, c, at)
	require.NoError(t, err)
	_, err = c.Detokenize(context.Background(), connect.NewRequest(&ulanv1.DetokenizeRequest{TokenIds: []uint32{1 << 30}}))
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))

	gen := ulanv1connect.InferenceServiceGenerateProcedure
	require.Contains(t, scrape(t, s.url, "", "ulan_requests_total"), fmt.Sprintf(`ulan_requests_total{code="ok",procedure=%q} 1`, gen))
	require.Contains(t, scrape(t, s.url, "", "ulan_requests_total"),
		fmt.Sprintf(`ulan_requests_total{code="invalid_argument",procedure=%q} 1`, ulanv1connect.InferenceServiceDetokenizeProcedure))
	require.Contains(t, scrape(t, s.url, "", "ulan_generated_tokens_total"), "ulan_generated_tokens_total 6")
	require.Contains(t, scrape(t, s.url, "", "ulan_time_to_first_token_seconds_count"), "ulan_time_to_first_token_seconds_count 1")
	require.Contains(t, scrape(t, s.url, "", "ulan_inter_token_latency_seconds_count"), "ulan_inter_token_latency_seconds_count 5")
	calls := scrape(t, s.url, "", `ulan_plugin_calls_total{generation="1",plugin="redact"}`)
	require.Len(t, calls, 1)
	require.NotEqual(t, `ulan_plugin_calls_total{generation="1",plugin="redact"} 0`, calls[0])
	require.Contains(t, scrape(t, s.url, "", "ulan_plugin_pool_instances"), `ulan_plugin_pool_instances{generation="1",plugin="redact"} 4`)
	require.Contains(t, scrape(t, s.url, "", "ulan_config_generation"), "ulan_config_generation 1")

	s.write(t, "plugins: [\n")
	require.False(t, s.srv.Reload(context.Background(), "rpc").Ok)
	s.write(t, redactConfig(s.module, "<two>"))
	require.True(t, s.srv.Reload(context.Background(), "rpc").Ok)
	reloads := scrape(t, s.url, "", "ulan_reloads_total")
	require.Contains(t, reloads, `ulan_reloads_total{result="ok"} 1`)
	require.Contains(t, reloads, `ulan_reloads_total{result="invalid"} 1`)
	require.Contains(t, scrape(t, s.url, "", "ulan_config_generation"), "ulan_config_generation 2")
	_, _, err = masked(t, c, at)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		// The config changed: generation 2 loaded its own redact, and generation 1's
		// series went with it once it closed.
		return len(scrape(t, s.url, "", `ulan_plugin_pool_instances{generation="1"`)) == 0 &&
			len(scrape(t, s.url, "", `ulan_plugin_pool_instances{generation="2",plugin="redact"} 4`)) == 1
	}, 10*time.Second, 10*time.Millisecond)
}

// keyed adds an Authorization header to every call.
func keyed(key string) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+key)
			return next(ctx, req)
		}
	}))
}

// TestAPIKeys: with keys configured, a call without one is Unauthenticated, an API key
// may infer but not reload (PermissionDenied), the admin key may do both and read
// /metrics, and a reload that changes the keys applies to the next call.
func TestAPIKeys(t *testing.T) {
	const (
		userKey  = "user-key-0123456789"
		adminKey = "admin-key-0123456789"
		newKey   = "rotated-key-0123456789"
	)
	// The auth block goes into the server section redactConfig starts with.
	cfgText := func(module, key string) string {
		return strings.Replace(redactConfig(module, "<m>"), "server:\n", fmt.Sprintf("server:\n  auth:\n    api_keys: [%s]\n    admin_keys: [%s]\n", key, adminKey), 1)
	}
	s := startReloadingWith(t, time.Minute, func(module string) string { return cfgText(module, userKey) }, nil)
	ctx := context.Background()
	tok := func(key string) error {
		var opts []connect.ClientOption
		if key != "" {
			opts = append(opts, keyed(key))
		}
		c := ulanv1connect.NewInferenceServiceClient(http.DefaultClient, s.url, opts...)
		_, err := c.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{Text: "hi"}))
		return err
	}
	reload := func(key string) error {
		pc := ulanv1connect.NewPluginServiceClient(http.DefaultClient, s.url, keyed(key))
		_, err := pc.Reload(ctx, connect.NewRequest(&ulanv1.ReloadRequest{}))
		return err
	}
	require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(tok("")))
	require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(tok("not-a-key-0123456789")))
	require.NoError(t, tok(userKey))
	require.NoError(t, tok(adminKey))
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(reload(userKey)))

	res, err := http.Get(s.url + "/metrics")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.NotEmpty(t, scrape(t, s.url, adminKey, "ulan_requests_total"))

	s.write(t, cfgText(s.module, newKey))
	require.NoError(t, reload(adminKey))
	require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(tok(userKey)), "the old key is gone")
	require.NoError(t, tok(newKey))
}

// TestTracing: a Generate call makes its RPC span, with the pipeline's spans inside it
// (tokenize, prefill, decode and a sampled decode step) and the hook plugin's calls.
func TestTracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	withSampler := func(module string) string {
		text := strings.Replace(redactConfig(module, "<m>"), "pipelines:\n",
			"  - {id: standard, module: \"builtin:standard\", pool_size: 1}\npipelines:\n", 1)
		return strings.Replace(text, "    hooks: [redact]\n", "    hooks: [redact]\n    sampler: standard\n", 1)
	}
	s := startReloadingWith(t, time.Minute, withSampler, tp)
	c := clients(s.url)["connect+proto/h2c"]
	at := atToken(t, c)
	_, _, err := masked(t, c, at)
	require.NoError(t, err)
	require.NoError(t, tp.ForceFlush(context.Background()))

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, sp := range rec.Ended() {
		byName[sp.Name()] = append(byName[sp.Name()], sp)
	}
	rpcs := byName[strings.TrimPrefix(ulanv1connect.InferenceServiceGenerateProcedure, "/")]
	require.Len(t, rpcs, 1, "one span for the Generate call; have %v", keys(byName))
	rpc := rpcs[0].SpanContext()
	child := func(name string, parent trace.SpanContext) sdktrace.ReadOnlySpan {
		t.Helper()
		require.Len(t, byName[name], 1, "%s; have %v", name, keys(byName))
		sp := byName[name][0]
		require.Equal(t, parent.SpanID(), sp.Parent().SpanID(), "%s's parent", name)
		require.Equal(t, rpc.TraceID(), sp.SpanContext().TraceID(), name)
		return sp
	}
	child("ulan.tokenize", rpc)
	child("ulan.prefill", rpc)
	decode := child("ulan.decode", rpc)
	step := child("ulan.decode_step", decode.SpanContext())
	require.Contains(t, step.Attributes(), attribute.Int("ulan.token_index", 2))
	require.Contains(t, decode.Attributes(), attribute.Int("ulan.generated_tokens", 6))
	hooks := 0
	for name, spans := range byName {
		if strings.HasPrefix(name, "plugin redact ") {
			for _, sp := range spans {
				require.Equal(t, rpc.TraceID(), sp.SpanContext().TraceID(), name)
				hooks++
			}
		}
	}
	require.NotZero(t, hooks, "the hook's calls have spans; have %v", keys(byName))
	// The sampler plugin's calls run in the scheduler's batched steps: smp_open and
	// the step that draws the first token (one in sampling.TraceEvery) go under the
	// request's span (a step the plugin asks to widen is called again: a span each).
	child("plugin standard smp_open", rpc)
	require.NotEmpty(t, byName["plugin standard smp_step"], "have %v", keys(byName))
	for _, sp := range byName["plugin standard smp_step"] {
		require.Equal(t, rpc.SpanID(), sp.Parent().SpanID(), "smp_step's parent")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
