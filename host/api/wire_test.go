package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/api/apitest"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// stalled starts no stream: it waits for its call to end.
type stalled struct{ apitest.Echo }

func (*stalled) Generate(ctx context.Context, _ *ulanv1.GenerateRequest, _ api.Stream) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestStreamDeadlineIsDeadlineExceeded: a Connect-Timeout-Ms (or grpc-timeout)
// shorter than the generation ends the stream with DeadlineExceeded after a
// Finished message that says why, and so does one that passes before the stream
// started; a client that sets the header alone (a browser) sees it in the status.
func TestStreamDeadlineIsDeadlineExceeded(t *testing.T) {
	t.Parallel()
	for name, inf := range map[string]api.Inference{"mid-stream": &apitest.Echo{Delay: 30 * time.Millisecond}, "before start": &stalled{}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, opt := range []connect.ClientOption{connect.WithProtoJSON(), connect.WithGRPCWeb()} {
				a := api.New(api.Config{Inference: inf, Limits: testLimits})
				srv := httptest.NewServer(a)
				t.Cleanup(srv.Close)
				c := ulanv1connect.NewInferenceServiceClient(srv.Client(), srv.URL, opt)
				req := connect.NewRequest(generate(strings.Repeat("w ", 100), nil))
				req.Header().Set("Connect-Timeout-Ms", "200")
				req.Header().Set("Grpc-Timeout", "200m")
				st, err := c.Generate(context.Background(), req)
				require.NoError(t, err)
				var fin *ulanv1.Finished
				for st.Receive() {
					if f := st.Msg().GetFinished(); f != nil {
						fin = f
					}
				}
				require.Equal(t, connect.CodeDeadlineExceeded, connect.CodeOf(st.Err()), "%v", st.Err())
				require.Contains(t, st.Err().Error(), "deadline")
				if name == "mid-stream" {
					require.Equal(t, ulanv1.FinishReason_FINISH_REASON_CANCELLED, fin.GetFinishReason())
					require.Contains(t, fin.GetMessage(), "deadline")
				}
			}
		})
	}
}

// TestGzipBombStopsAtTheLimit: a gzip body that expands past MaxRequestBytes is
// ResourceExhausted once it passes the limit, not decompressed to its end (nor,
// on the health service, which had no limit, into memory).
func TestGzipBombStopsAtTheLimit(t *testing.T) {
	t.Parallel()
	a := api.New(api.Config{Inference: &apitest.Echo{}, Limits: api.Limits{MaxRequestBytes: 64 << 10, MaxPromptBytes: 32 << 10, MaxTokens: 16}})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	var member bytes.Buffer
	zw := gzip.NewWriter(&member)
	_, err := zw.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	bomb := bytes.Repeat(member.Bytes(), (60<<10)/member.Len()) // under the limit compressed, about 60 MiB of zeros
	for _, path := range []string{ulanv1connect.InferenceServiceTokenizeProcedure, "/grpc.health.v1.Health/Check"} {
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(bomb))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/proto")
		req.Header.Set("Content-Encoding", "gzip")
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode, "%s: %s", path, body)
		require.Contains(t, string(body), "resource_exhausted", path)
		require.Contains(t, string(body), "stopped decompressing past 65536 bytes", path)
	}
}

// TestHealthSpeaksTheStandardSchema: the health service's JSON is that of gRPC's
// health.proto, which reflection describes ("SERVING", not connect's renamed
// "SERVING_STATUS_SERVING", which a standard JSON client reads as UNKNOWN).
func TestHealthSpeaksTheStandardSchema(t *testing.T) {
	t.Parallel()
	a := api.New(api.Config{Limits: testLimits})
	a.SetServing(true)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	for service, want := range map[string]string{"": `{"status":"SERVING"}`, ulanv1connect.ModelServiceName: `{"status":"SERVING"}`} {
		res, err := srv.Client().Post(srv.URL+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{"service":"`+service+`"}`))
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
		require.JSONEq(t, want, string(body))
	}
	a.SetServing(false)
	res, err := srv.Client().Post(srv.URL+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.JSONEq(t, `{"status":"NOT_SERVING"}`, string(body))
}
