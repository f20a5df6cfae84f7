package host_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/api/apitest"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/metrics"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// The tests in this file hold the server's edge to its access control: keys on every
// protocol and route, nothing secret in logs, bounded headers, and trace context read
// with care.

const (
	edgeKey   = "edge-api-key-0123456789"
	edgeAdmin = "edge-admin-key-0123456789"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// bearerAll sends "Authorization: Bearer key" with every call, unary and streaming.
type bearerAll string

func (b bearerAll) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearerAll) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (bearerAll) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// keyedServer starts a server with an API key and an admin key, logging at debug level
// to the returned buffer.
func keyedServer(t *testing.T, opts ...host.Option) (*running, *syncBuffer) {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Auth.APIKeys = []string{edgeKey}
	cfg.Server.Auth.AdminKeys = []string{edgeAdmin}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := start(t, cfg, append([]host.Option{host.WithLogger(log), host.WithInference(&apitest.Echo{})}, opts...)...)
	return r, logs
}

// TestAuthOnEveryProtocol: with keys configured no inference, model or plugin call gets
// through without a valid key, over Connect (POST and GET), gRPC and gRPC-web; gRPC
// reflection needs a key too, and health alone stays open.
func TestAuthOnEveryProtocol(t *testing.T) {
	t.Parallel()
	r, logs := keyedServer(t)
	ctx := context.Background()
	http1, h2c := httpClients()
	protocols := map[string]struct {
		client *http.Client
		opts   []connect.ClientOption
	}{
		"connect/http1":     {http1, []connect.ClientOption{connect.WithProtoJSON()}},
		"connect-get/http1": {http1, []connect.ClientOption{connect.WithHTTPGet()}},
		"connect/h2c":       {h2c, nil},
		"grpc/h2c":          {h2c, []connect.ClientOption{connect.WithGRPC()}},
		"grpc-web/http1":    {http1, []connect.ClientOption{connect.WithGRPCWeb()}},
	}
	for name, p := range protocols {
		for _, key := range []string{"", "wrong-key-0123456789", edgeKey} {
			opts := p.opts
			if key != "" {
				opts = append(opts[:len(opts):len(opts)], connect.WithInterceptors(bearerAll(key)))
			}
			inf := ulanv1connect.NewInferenceServiceClient(p.client, r.url, opts...)
			model := ulanv1connect.NewModelServiceClient(p.client, r.url, opts...)
			plugins := ulanv1connect.NewPluginServiceClient(p.client, r.url, opts...)
			_, errTok := inf.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{Text: "hi"}))
			stream, err := inf.Generate(ctx, connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "x"}))
			require.NoError(t, err)
			for stream.Receive() {
			}
			errGen := stream.Err()
			_ = stream.Close()
			_, errModel := model.GetModel(ctx, connect.NewRequest(&ulanv1.GetModelRequest{}))
			_, errList := plugins.ListPlugins(ctx, connect.NewRequest(&ulanv1.ListPluginsRequest{}))
			_, errReload := plugins.Reload(ctx, connect.NewRequest(&ulanv1.ReloadRequest{}))
			for what, err := range map[string]error{"Tokenize": errTok, "Generate": errGen, "GetModel": errModel, "ListPlugins": errList} {
				if key == edgeKey {
					require.NotEqual(t, connect.CodeUnauthenticated, connect.CodeOf(err), "%s %s", name, what)
				} else {
					require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err), "%s %s with %q", name, what, key)
				}
			}
			want := connect.CodeUnauthenticated
			if key == edgeKey {
				want = connect.CodePermissionDenied
			}
			require.Equal(t, want, connect.CodeOf(errReload), "%s Reload with %q", name, key)
		}
	}

	conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "health is open to probes")
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, h.Status)
	reflect := func(ctx context.Context) error {
		rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			return err
		}
		// A refused stream may end before Send; Recv returns its status either way.
		_ = rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		_, err = rs.Recv()
		return err
	}
	rerr := reflect(ctx)
	require.Equal(t, codes.Unauthenticated, status.Code(rerr), "reflection needs a key: %v", rerr)
	require.NoError(t, reflect(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+edgeKey)))

	for _, secret := range []string{edgeKey, edgeAdmin, "wrong-key-0123456789", "Bearer"} {
		require.NotContains(t, logs.String(), secret, "the logs quote no key or Authorization header")
	}
}

// TestMetricsNeedTheAdminKey: /metrics is refused without a key (401) and with an API
// key (403), and its labels hold only procedures the server serves, whatever paths
// callers make up.
func TestMetricsNeedTheAdminKey(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Server.Auth.APIKeys = []string{edgeKey}
	cfg.Server.Auth.AdminKeys = []string{edgeAdmin}
	r := start(t, cfg, host.WithInference(&apitest.Echo{}), host.WithMetrics(metrics.New()))
	for key, want := range map[string]int{"": http.StatusUnauthorized, edgeKey: http.StatusForbidden} {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/metrics", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, want, res.StatusCode)
		require.NotContains(t, string(body), "ulan_", "no metrics leak in the refusal")
	}
	for i := range 50 {
		req, _ := http.NewRequest(http.MethodPost, r.url+"/ulan.v1.InferenceService/Made"+strings.Repeat("Up", i), strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+edgeKey)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
	}
	for _, l := range scrape(t, r.url, edgeAdmin, "ulan_requests_total") {
		require.NotContains(t, l, "MadeUp")
	}
}

// TestHeaderLimit: a request whose headers pass maxHeaderBytes (64 KiB) is refused
// before any handler runs, on HTTP/1.1 with 431 and on HTTP/2 as a failed request;
// net/http's default let 1 MiB through.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{}))
	http1, h2c := httpClients()
	call := func(c *http.Client, pad int) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, r.url+"/ulan.v1.InferenceService/Tokenize", strings.NewReader(`{"text":"a"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Pad", strings.Repeat("p", pad))
		res, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	code, err := call(http1, 32<<10)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "32 KiB of headers pass")
	code, err = call(http1, 100<<10)
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, code)
	code, err = call(h2c, 32<<10)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "32 KiB of headers pass on HTTP/2")
	code, err = call(h2c, 100<<10)
	if err == nil {
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, code)
	}
}

// TestTraceHeaders: a caller's valid traceparent links the call's span to the caller's
// trace without making it a child; malformed ones (bad version, zero ids, wrong
// lengths, huge, control characters) are ignored and the call still succeeds. Before,
// the server read trace context with the process-wide propagator, a no-op, and linked
// nothing.
func TestTraceHeaders(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{}), host.WithTracing(tp))
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	tests := map[string]string{
		"valid":           "00-" + traceID + "-" + spanID + "-01",
		"zero trace id":   "00-00000000000000000000000000000000-" + spanID + "-01",
		"zero span id":    "00-" + traceID + "-0000000000000000-01",
		"version ff":      "ff-" + traceID + "-" + spanID + "-01",
		"short":           "00-" + traceID[:30] + "-" + spanID + "-01",
		"not hex":         "00-" + strings.Repeat("z", 32) + "-" + spanID + "-01",
		"huge":            "00-" + traceID + "-" + spanID + "-01" + strings.Repeat("-x", 16<<10),
		"control in it":   "00-" + traceID + "\t-" + spanID + "-01",
		"upper-case hex":  "00-" + strings.ToUpper(traceID) + "-" + spanID + "-01",
		"extra fields v0": "00-" + traceID + "-" + spanID + "-01-extra",
	}
	for name, tp := range tests {
		req, _ := http.NewRequest(http.MethodPost, r.url+"/ulan.v1.InferenceService/Tokenize", strings.NewReader(`{"text":"a"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Traceparent", tp)
		req.Header.Set("Tracestate", "vendor="+name[:1])
		req.Header.Set("X-Request-Id", strings.ReplaceAll(name, " ", "-"))
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err, name)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, name)
	}
	require.NoError(t, tp.ForceFlush(context.Background()))
	spans := rec.Ended()
	require.Len(t, spans, len(tests))
	linked := 0
	for _, sp := range spans {
		require.False(t, sp.Parent().IsValid(), "a caller's context never becomes the parent")
		for _, l := range sp.Links() {
			require.Equal(t, traceID, l.SpanContext.TraceID().String())
			require.Equal(t, spanID, l.SpanContext.SpanID().String())
			require.NotEqual(t, traceID, sp.SpanContext().TraceID().String(), "a new trace")
			linked++
		}
	}
	require.Equal(t, 1, linked, "only the valid traceparent is linked")
}
