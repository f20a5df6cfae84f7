package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	unaryProcedure  = "/test.v1.TestService/Unary"
	streamProcedure = "/test.v1.TestService/Stream"
)

// testServer serves a unary and a server-streaming procedure through m's
// interceptor; each fails with the code its request names ("" succeeds).
func testServer(t *testing.T, m *Metrics) *httptest.Server {
	t.Helper()
	fail := func(code string) error {
		if code == "" {
			return nil
		}
		var c connect.Code
		require.NoError(t, c.UnmarshalText([]byte(code)))
		return connect.NewError(c, errors.New("asked to fail"))
	}
	opts := connect.WithInterceptors(m.Interceptor())
	mux := http.NewServeMux()
	mux.Handle(unaryProcedure, connect.NewUnaryHandler(unaryProcedure,
		func(_ context.Context, req *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
			if err := fail(req.Msg.GetValue()); err != nil {
				return nil, err
			}
			return connect.NewResponse(wrapperspb.String("hi")), nil
		}, opts))
	mux.Handle(streamProcedure, connect.NewServerStreamHandler(streamProcedure,
		func(_ context.Context, req *connect.Request[wrapperspb.StringValue], s *connect.ServerStream[wrapperspb.StringValue]) error {
			for range 2 {
				if err := s.Send(wrapperspb.String("tok")); err != nil {
					return err
				}
			}
			return fail(req.Msg.GetValue())
		}, opts))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestInterceptor: unary and server-streaming handlers are counted by
// procedure and final code; the same interceptor on a client counts
// nothing.
func TestInterceptor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := New()
	srv := testServer(t, m)
	clientOpts := connect.WithInterceptors(m.Interceptor())
	unary := connect.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](srv.Client(), srv.URL+unaryProcedure, clientOpts)
	stream := connect.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](srv.Client(), srv.URL+streamProcedure, clientOpts)

	for _, code := range []string{"", "", "invalid_argument"} {
		_, err := unary.CallUnary(ctx, connect.NewRequest(wrapperspb.String(code)))
		if code == "" {
			require.NoError(t, err)
		} else {
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
		}
	}
	for _, code := range []string{"", "resource_exhausted"} {
		s, err := stream.CallServerStream(ctx, connect.NewRequest(wrapperspb.String(code)))
		require.NoError(t, err)
		n := 0
		for s.Receive() {
			n++
		}
		require.Equal(t, 2, n)
		if code == "" {
			require.NoError(t, s.Err())
		} else {
			require.Equal(t, connect.CodeResourceExhausted, connect.CodeOf(s.Err()))
		}
		require.NoError(t, s.Close())
	}

	requests := func(procedure, code string) float64 {
		return testutil.ToFloat64(m.requests.WithLabelValues(procedure, code))
	}
	require.Equal(t, 2.0, requests(unaryProcedure, "ok"))
	require.Equal(t, 1.0, requests(unaryProcedure, "invalid_argument"))
	require.Equal(t, 1.0, requests(streamProcedure, "ok"))
	require.Equal(t, 1.0, requests(streamProcedure, "resource_exhausted"))
	require.Equal(t, 4, testutil.CollectAndCount(m.requests), "nothing else, nothing client-side")
	require.Contains(t, scrape(t, m), `ulan_requests_total{code="resource_exhausted",procedure="/test.v1.TestService/Stream"} 1`)
}

func TestCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{connect.NewError(connect.CodeNotFound, errors.New("x")), "not_found"},
		{fmt.Errorf("wrapped: %w", connect.NewError(connect.CodeUnavailable, errors.New("x"))), "unavailable"},
		{fmt.Errorf("step: %w", context.Canceled), "canceled"},
		{context.DeadlineExceeded, "deadline_exceeded"},
		{connect.NewError(connect.CodeInternal, context.Canceled), "internal"},
		{errors.New("boom"), "unknown"},
	} {
		require.Equal(t, tc.want, code(tc.err), "%v", tc.err)
	}
}
