package host_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/api/apitest"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// running is a server on a loopback port.
type running struct {
	srv  *host.Server
	addr string
	url  string
	stop context.CancelFunc // starts the drain
	done chan error         // Serve's result
}

func start(t testing.TB, cfg config.Config, opts ...host.Option) *running {
	t.Helper()
	cfg.Server.Listen = "127.0.0.1:0"
	opts = append([]host.Option{host.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	srv, err := host.New(cfg, opts...)
	require.NoError(t, err)
	ln, err := srv.Listen()
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	r := &running{srv: srv, addr: ln.Addr().String(), url: "http://" + ln.Addr().String(), stop: stop, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		_ = srv.Close()
	})
	return r
}

// clients returns the same InferenceService client over every protocol the
// server speaks, each on the HTTP version it is used with in the wild.
func clients(url string) map[string]ulanv1connect.InferenceServiceClient {
	h1 := new(http.Protocols)
	h1.SetHTTP1(true)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	http1 := &http.Client{Transport: &http.Transport{Protocols: h1}}
	http2 := &http.Client{Transport: &http.Transport{Protocols: h2c}}
	return map[string]ulanv1connect.InferenceServiceClient{
		"connect+json/http1": ulanv1connect.NewInferenceServiceClient(http1, url, connect.WithProtoJSON()),
		"connect+proto/h2c":  ulanv1connect.NewInferenceServiceClient(http2, url),
		"grpc/h2c":           ulanv1connect.NewInferenceServiceClient(http2, url, connect.WithGRPC()),
		"grpc-web/http1":     ulanv1connect.NewInferenceServiceClient(http1, url, connect.WithGRPCWeb()),
	}
}

func TestEveryProtocolOnOnePort(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{}))
	for name, c := range clients(r.url) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := c.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: "hé"}))
			require.NoError(t, err)
			require.Equal(t, []uint32{'h', 0xc3, 0xa9}, res.Msg.TokenIds)
			require.NotEmpty(t, res.Header().Get("X-Request-Id"))

			stream, err := c.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "a b c"}))
			require.NoError(t, err)
			var text string
			var finish ulanv1.FinishReason
			for stream.Receive() {
				text += stream.Msg().GetDelta().GetContent()
				if f := stream.Msg().GetFinished(); f != nil {
					finish = f.FinishReason
				}
			}
			require.NoError(t, stream.Err())
			require.Equal(t, "a b c", text)
			require.Equal(t, ulanv1.FinishReason_FINISH_REASON_STOP, finish)
			require.NotEmpty(t, stream.ResponseHeader().Get(api.GenerationIDHeader))

			_, err = c.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: "x", Pipeline: "NO"}))
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
		})
	}
}

func TestNoModelOnEveryProtocol(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default())
	for name, c := range clients(r.url) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			stream, err := c.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "hello"}))
			require.NoError(t, err)
			require.False(t, stream.Receive())
			require.Equal(t, connect.CodeUnavailable, connect.CodeOf(stream.Err()))
			require.Contains(t, stream.Err().Error(), "no model is loaded")
		})
	}
}

// TestGRPCGoClient talks to the server with grpc-go, an implementation
// independent of connect-go: a unary call, a server stream, health and
// reflection.
func TestGRPCGoClient(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{}))
	conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx := context.Background()

	res := &ulanv1.TokenizeResponse{}
	require.NoError(t, conn.Invoke(ctx, "/ulan.v1.InferenceService/Tokenize", &ulanv1.TokenizeRequest{Text: "ok"}, res))
	require.Equal(t, []uint32{'o', 'k'}, res.TokenIds)

	err = conn.Invoke(ctx, "/ulan.v1.InferenceService/Cancel", &ulanv1.CancelRequest{}, &ulanv1.CancelResponse{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "generation_id")

	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/ulan.v1.InferenceService/Generate")
	require.NoError(t, err)
	require.NoError(t, s.SendMsg(&ulanv1.GenerateRequest{Prompt: "x y"}))
	require.NoError(t, s.CloseSend())
	var n int
	for {
		m := &ulanv1.GenerateResponse{}
		if err := s.RecvMsg(m); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		n++
	}
	require.Equal(t, 4, n, "started, two deltas, finished")

	for _, svc := range []string{"", ulanv1connect.InferenceServiceName, ulanv1connect.ModelServiceName, ulanv1connect.PluginServiceName} {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, h.Status, svc)
	}

	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	require.NoError(t, err)
	require.NoError(t, rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	lr, err := rs.Recv()
	require.NoError(t, err)
	var names []string
	for _, s := range lr.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	require.Subset(t, names, []string{ulanv1connect.InferenceServiceName, ulanv1connect.ModelServiceName, ulanv1connect.PluginServiceName, "grpc.health.v1.Health"})
	require.NoError(t, rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: ulanv1connect.InferenceServiceName}}))
	fr, err := rs.Recv()
	require.NoError(t, err)
	require.NotEmpty(t, fr.GetFileDescriptorResponse().GetFileDescriptorProto())
}

// TestConnectJSONWithPlainHTTP is what the README's curl example does.
func TestConnectJSONWithPlainHTTP(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default())
	res, err := http.Post(r.url+"/ulan.v1.InferenceService/Tokenize", "application/json", strings.NewReader(`{"text":"hello"}`))
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.JSONEq(t, `{"code":"unavailable","message":"no model is loaded on this server"}`, string(body))

	res, err = http.Post(r.url+"/ulan.v1.PluginService/GetStatus", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ = io.ReadAll(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	require.Contains(t, string(body), `"generation":"1"`)
}

func TestCORS(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Server.CORS.AllowedOrigins = []string{"https://app.example.com"}
	r := start(t, cfg)
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, r.url+"/ulan.v1.InferenceService/Generate", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "connect-protocol-version,content-type,x-grpc-web") // sorted and lower-case, as browsers send it (Fetch standard)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	res := preflight("https://app.example.com")
	require.Equal(t, "https://app.example.com", res.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")), "x-grpc-web")
	require.Equal(t, "7200", res.Header.Get("Access-Control-Max-Age"))
	require.Empty(t, preflight("https://evil.example.com").Header.Get("Access-Control-Allow-Origin"))

	req, _ := http.NewRequest(http.MethodPost, r.url+"/ulan.v1.InferenceService/Tokenize", strings.NewReader(`{"text":"a"}`))
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	exposed := strings.ToLower(res.Header.Get("Access-Control-Expose-Headers"))
	for _, h := range []string{"grpc-status", "grpc-message", "ulan-generation-id", "x-request-id"} {
		require.Contains(t, exposed, h)
	}
}

func TestRequestIDEchoed(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default())
	req, _ := http.NewRequest(http.MethodPost, r.url+"/ulan.v1.PluginService/ListPlugins", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "trace-42")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, "trace-42", res.Header.Get("X-Request-Id"))
}

// TestGracefulShutdownLetsStreamFinish: a stream in flight when the drain
// begins completes normally; new connections are refused meanwhile.
func TestGracefulShutdownLetsStreamFinish(t *testing.T) {
	t.Parallel()
	started := make(chan string, 1)
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{Delay: 40 * time.Millisecond, Started: started}))
	c := clients(r.url)["grpc/h2c"]
	stream, err := c.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: strings.Repeat("w ", 10)}))
	require.NoError(t, err)
	require.True(t, stream.Receive())
	<-started
	r.stop()
	var finish *ulanv1.Finished
	for stream.Receive() {
		if f := stream.Msg().GetFinished(); f != nil {
			finish = f
		}
	}
	require.NoError(t, stream.Err())
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_STOP, finish.GetFinishReason())
	require.NoError(t, <-r.done)
	_, err = net.DialTimeout("tcp", r.addr, time.Second)
	require.Error(t, err, "the listener is closed after the drain")
}

// TestDrainTimeoutCancelsStreams: a stream that outlives the drain time ends
// with FINISH_REASON_CANCELLED and says why.
func TestDrainTimeoutCancelsStreams(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Server.DrainTimeout = 200 * time.Millisecond
	started := make(chan string, 1)
	r := start(t, cfg, host.WithInference(&apitest.Echo{Delay: 50 * time.Millisecond, Started: started}))
	c := clients(r.url)["connect+proto/h2c"]
	stream, err := c.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: strings.Repeat("w ", 1000)}))
	require.NoError(t, err)
	require.True(t, stream.Receive())
	<-started
	begin := time.Now()
	r.stop()
	var finish *ulanv1.Finished
	for stream.Receive() {
		if f := stream.Msg().GetFinished(); f != nil {
			finish = f
		}
	}
	require.NoError(t, stream.Err())
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_CANCELLED, finish.GetFinishReason())
	require.Contains(t, finish.GetMessage(), "shutting down")
	require.NoError(t, <-r.done)
	require.Less(t, time.Since(begin), 10*time.Second)
}

// TestCloseForcesStop: Close (a second signal) ends a draining server at
// once, even with a long drain time.
func TestCloseForcesStop(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Server.DrainTimeout = time.Hour
	started := make(chan string, 1)
	r := start(t, cfg, host.WithInference(&apitest.Echo{Delay: 50 * time.Millisecond, Started: started}))
	c := clients(r.url)["grpc/h2c"]
	stream, err := c.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: strings.Repeat("w ", 1000)}))
	require.NoError(t, err)
	require.True(t, stream.Receive())
	<-started
	r.stop()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, r.srv.Close())
	select {
	case err := <-r.done:
		require.Error(t, err, "a forced stop is reported")
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the server")
	}
	for stream.Receive() {
	}
}

func TestHealthNotServingWhileDraining(t *testing.T) {
	t.Parallel()
	started := make(chan string, 1)
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{Delay: 50 * time.Millisecond, Started: started}))
	conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	health := healthpb.NewHealthClient(conn)
	_, err = health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	// Keep the connection busy so the drain has to wait, then ask again on
	// the same (already open) connection.
	stream, err := clients(r.url)["grpc/h2c"].Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: strings.Repeat("w ", 20)}))
	require.NoError(t, err)
	require.True(t, stream.Receive())
	<-started
	r.stop()
	require.Eventually(t, func() bool {
		h, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err != nil || h.Status == healthpb.HealthCheckResponse_NOT_SERVING
	}, 2*time.Second, 10*time.Millisecond)
	for stream.Receive() {
	}
}
