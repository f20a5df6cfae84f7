package auth_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/auth"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	tests := map[string]auth.Level{
		ulanv1connect.InferenceServiceGenerateProcedure:    auth.AnyKey,
		ulanv1connect.InferenceServiceChatProcedure:        auth.AnyKey,
		ulanv1connect.InferenceServiceTokenizeProcedure:    auth.AnyKey,
		ulanv1connect.InferenceServiceDetokenizeProcedure:  auth.AnyKey,
		ulanv1connect.InferenceServiceCancelProcedure:      auth.AnyKey,
		ulanv1connect.ModelServiceGetModelProcedure:        auth.AnyKey,
		ulanv1connect.PluginServiceListPluginsProcedure:    auth.AnyKey,
		ulanv1connect.PluginServiceGetStatusProcedure:      auth.AnyKey,
		ulanv1connect.PluginServiceReloadProcedure:         auth.AdminKey,
		ulanv1connect.PluginServiceValidateConfigProcedure: auth.AdminKey,
		auth.MetricsPath:                                                 auth.AdminKey,
		"/grpc.health.v1.Health/Check":                                   auth.Open,
		"/grpc.health.v1.Health/Watch":                                   auth.Open,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      auth.AnyKey,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": auth.AnyKey,
		"/grpc.health.v1.HealthX/Check":                                  auth.AnyKey,
		"/":                                                              auth.AnyKey,
		"/ulan.v1.InferenceService/NotYetWritten":                        auth.AnyKey,
		"/metrics/x":                                                     auth.AnyKey,
	}
	for proc, want := range tests {
		require.Equal(t, want, auth.DefaultPolicy(proc), proc)
	}
}

// stub serves the procedures the tests call and reports the Principal it saw in the
// response headers X-Key-Id and X-Admin (absent without one).
type stub struct {
	ulanv1connect.UnimplementedInferenceServiceHandler
	ulanv1connect.UnimplementedPluginServiceHandler
}

func seen(ctx context.Context, h http.Header) {
	if p, ok := auth.FromContext(ctx); ok {
		h.Set("X-Key-Id", p.KeyID)
		h.Set("X-Admin", strconv.FormatBool(p.Admin))
	}
}

func (stub) Tokenize(ctx context.Context, _ *connect.Request[ulanv1.TokenizeRequest]) (*connect.Response[ulanv1.TokenizeResponse], error) {
	res := connect.NewResponse(&ulanv1.TokenizeResponse{TokenIds: []uint32{1}})
	seen(ctx, res.Header())
	return res, nil
}

func (stub) Generate(ctx context.Context, _ *connect.Request[ulanv1.GenerateRequest], out *connect.ServerStream[ulanv1.GenerateResponse]) error {
	seen(ctx, out.ResponseHeader())
	for range 2 {
		if err := out.Send(&ulanv1.GenerateResponse{}); err != nil {
			return err
		}
	}
	return nil
}

func (stub) ListPlugins(ctx context.Context, _ *connect.Request[ulanv1.ListPluginsRequest]) (*connect.Response[ulanv1.ListPluginsResponse], error) {
	res := connect.NewResponse(&ulanv1.ListPluginsResponse{})
	seen(ctx, res.Header())
	return res, nil
}

func (stub) Reload(ctx context.Context, _ *connect.Request[ulanv1.ReloadRequest]) (*connect.Response[ulanv1.ReloadResponse], error) {
	res := connect.NewResponse(&ulanv1.ReloadResponse{})
	seen(ctx, res.Header())
	return res, nil
}

// serve starts an HTTP/2 TLS server with the stub's services, gRPC health and a
// /metrics route, guarded by s either through the interceptor (the way "interceptor")
// or through the middleware ("middleware", with /metrics behind RequireAdmin in
// both).
func serve(t *testing.T, s *auth.Store, way string) *httptest.Server {
	t.Helper()
	var opts []connect.HandlerOption
	if way == "interceptor" {
		opts = append(opts, connect.WithInterceptors(s.Interceptor(nil)))
	}
	mux := http.NewServeMux()
	mux.Handle(ulanv1connect.NewInferenceServiceHandler(stub{}, opts...))
	mux.Handle(ulanv1connect.NewPluginServiceHandler(stub{}, opts...))
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker())) // as host/api mounts it: no interceptor
	mux.Handle(auth.MetricsPath, s.RequireAdmin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen(r.Context(), w.Header())
		_, _ = io.WriteString(w, "ulan_up 1\n")
	})))
	var h http.Handler = mux
	if way == "middleware" {
		h = s.Middleware(nil, mux)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// call makes one call of kind ("unary", "stream", "admin" or "list") with the given
// Authorization header ("" sends none) and returns the principal headers and error.
func call(t *testing.T, srv *httptest.Server, kind, authorization string, opts ...connect.ClientOption) (http.Header, error) {
	t.Helper()
	ctx := context.Background()
	setAuth := func(h http.Header) {
		if authorization != "" {
			h.Set("Authorization", authorization)
		}
	}
	inf := ulanv1connect.NewInferenceServiceClient(srv.Client(), srv.URL, opts...)
	plugins := ulanv1connect.NewPluginServiceClient(srv.Client(), srv.URL, opts...)
	switch kind {
	case "unary":
		req := connect.NewRequest(&ulanv1.TokenizeRequest{Text: "x"})
		setAuth(req.Header())
		res, err := inf.Tokenize(ctx, req)
		if err != nil {
			return nil, err
		}
		return res.Header(), nil
	case "stream":
		req := connect.NewRequest(&ulanv1.GenerateRequest{})
		setAuth(req.Header())
		stream, err := inf.Generate(ctx, req)
		if err != nil {
			return nil, err
		}
		defer stream.Close()
		n := 0
		for stream.Receive() {
			n++
		}
		if err := stream.Err(); err != nil {
			return nil, err
		}
		require.Equal(t, 2, n)
		return stream.ResponseHeader(), nil
	case "list":
		req := connect.NewRequest(&ulanv1.ListPluginsRequest{})
		setAuth(req.Header())
		res, err := plugins.ListPlugins(ctx, req)
		if err != nil {
			return nil, err
		}
		return res.Header(), nil
	case "admin":
		req := connect.NewRequest(&ulanv1.ReloadRequest{})
		setAuth(req.Header())
		res, err := plugins.Reload(ctx, req)
		if err != nil {
			return nil, err
		}
		return res.Header(), nil
	}
	t.Fatalf("unknown call kind %q", kind)
	return nil, nil
}

func TestStoreChecksCalls(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, []string{apiKey, apiKey2}, []string{adminKey})
	type want struct {
		code  connect.Code // 0: success
		msg   string       // part of the error message
		keyID string       // on success: the principal the handler saw ("" for none)
		admin bool
	}
	tests := []struct {
		name          string
		keys          *auth.Keys
		kind          string
		authorization string
		want          want
	}{
		{name: "no keys: open", keys: nil, kind: "unary"},
		{name: "no keys: stream open", keys: nil, kind: "stream"},
		{name: "no keys: admin open", keys: nil, kind: "admin"},
		{name: "no keys: a token is ignored", keys: nil, kind: "unary", authorization: "Bearer whatever"},
		{name: "empty keys: open", keys: mustKeys(t, nil, nil), kind: "admin"},

		{name: "missing header", keys: keys, kind: "unary",
			want: want{code: connect.CodeUnauthenticated, msg: "a bearer token is required: send the header Authorization: Bearer KEY"}},
		{name: "missing header on a stream", keys: keys, kind: "stream",
			want: want{code: connect.CodeUnauthenticated, msg: "a bearer token is required"}},
		{name: "wrong scheme", keys: keys, kind: "unary", authorization: "Basic " + apiKey,
			want: want{code: connect.CodeUnauthenticated, msg: "the Authorization header must use the Bearer scheme"}},
		{name: "scheme alone", keys: keys, kind: "unary", authorization: "Bearer",
			want: want{code: connect.CodeUnauthenticated, msg: "the Authorization header holds no bearer token"}},
		{name: "wrong key", keys: keys, kind: "unary", authorization: "Bearer " + apiKey + "-not",
			want: want{code: connect.CodeUnauthenticated, msg: "the bearer token is not a valid API key"}},
		{name: "wrong key on a stream", keys: keys, kind: "stream", authorization: "Bearer not-a-key-0123456789",
			want: want{code: connect.CodeUnauthenticated, msg: "the bearer token is not a valid API key"}},
		{name: "wrong key on an admin procedure", keys: keys, kind: "admin", authorization: "Bearer not-a-key-0123456789",
			want: want{code: connect.CodeUnauthenticated}},

		{name: "api key", keys: keys, kind: "unary", authorization: "Bearer " + apiKey,
			want: want{keyID: keyID(apiKey)}},
		{name: "scheme is case-insensitive", keys: keys, kind: "unary", authorization: "bearer  " + apiKey2,
			want: want{keyID: keyID(apiKey2)}},
		{name: "api key on a stream", keys: keys, kind: "stream", authorization: "Bearer " + apiKey,
			want: want{keyID: keyID(apiKey)}},
		{name: "api key lists plugins", keys: keys, kind: "list", authorization: "Bearer " + apiKey,
			want: want{keyID: keyID(apiKey)}},
		{name: "api key on an admin procedure", keys: keys, kind: "admin", authorization: "Bearer " + apiKey,
			want: want{code: connect.CodePermissionDenied, msg: "/ulan.v1.PluginService/Reload needs an admin key; key " + keyID(apiKey) + " is an API key"}},
		{name: "api key on an admin procedure without admin keys", keys: mustKeys(t, []string{apiKey}, nil), kind: "admin",
			authorization: "Bearer " + apiKey, want: want{keyID: keyID(apiKey)}},

		{name: "admin key", keys: keys, kind: "unary", authorization: "Bearer " + adminKey,
			want: want{keyID: keyID(adminKey), admin: true}},
		{name: "admin key on a stream", keys: keys, kind: "stream", authorization: "Bearer " + adminKey,
			want: want{keyID: keyID(adminKey), admin: true}},
		{name: "admin key on an admin procedure", keys: keys, kind: "admin", authorization: "Bearer " + adminKey,
			want: want{keyID: keyID(adminKey), admin: true}},
	}
	protocols := map[string][]connect.ClientOption{
		"connect":  nil,
		"grpc":     {connect.WithGRPC()},
		"grpc-web": {connect.WithGRPCWeb()},
	}
	for _, way := range []string{"interceptor", "middleware"} {
		t.Run(way, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					srv := serve(t, auth.NewStore(tt.keys), way)
					for proto, opts := range protocols {
						h, err := call(t, srv, tt.kind, tt.authorization, opts...)
						if tt.want.code != 0 {
							require.Error(t, err, proto)
							require.Equal(t, tt.want.code, connect.CodeOf(err), "%s: %v", proto, err)
							require.Contains(t, err.Error(), tt.want.msg, proto)
							if tok, ok := strings.CutPrefix(tt.authorization, "Bearer "); ok {
								require.NotContains(t, err.Error(), tok, "%s: the token is never echoed", proto)
							}
							var ce *connect.Error
							require.True(t, errors.As(err, &ce))
							// gRPC sends error metadata as HTTP trailers, and net/http
							// may not send WWW-Authenticate as one (httpguts.ValidTrailerHeader).
							if proto != "grpc" {
								require.True(t, strings.HasPrefix(ce.Meta().Get("WWW-Authenticate"), "Bearer"), "%s %v", proto, ce.Meta())
							}
							continue
						}
						require.NoError(t, err, proto)
						require.Equal(t, tt.want.keyID, h.Get("X-Key-Id"), proto)
						if tt.want.keyID != "" {
							require.Equal(t, strconv.FormatBool(tt.want.admin), h.Get("X-Admin"), proto)
						}
					}
				})
			}
		})
	}
}

// get makes a plain HTTP request to path with an Authorization header ("" for none).
func get(t *testing.T, srv *httptest.Server, method, path, authorization string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
	require.NoError(t, err)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func TestHealthStaysOpen(t *testing.T) {
	t.Parallel()
	s := auth.NewStore(mustKeys(t, []string{apiKey}, []string{adminKey}))
	for _, way := range []string{"interceptor", "middleware"} {
		srv := serve(t, s, way)
		res := get(t, srv, http.MethodPost, "/grpc.health.v1.Health/Check", "")
		require.Equal(t, http.StatusOK, res.StatusCode, way)
	}
}

func TestRequireAdmin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		keys          *auth.Keys
		authorization string
		status        int
		challenge     string
	}{
		{name: "no keys", status: http.StatusOK},
		{name: "missing", keys: mustKeys(t, []string{apiKey}, []string{adminKey}),
			status: http.StatusUnauthorized, challenge: `Bearer realm="ulan"`},
		{name: "wrong key", keys: mustKeys(t, []string{apiKey}, []string{adminKey}), authorization: "Bearer nope-0123456789abcdef",
			status: http.StatusUnauthorized, challenge: `Bearer realm="ulan", error="invalid_token"`},
		{name: "two headers' worth in one", keys: mustKeys(t, []string{apiKey}, []string{adminKey}), authorization: "Bearer " + adminKey + ", Bearer " + adminKey,
			status: http.StatusUnauthorized, challenge: `Bearer realm="ulan", error="invalid_token"`},
		{name: "api key", keys: mustKeys(t, []string{apiKey}, []string{adminKey}), authorization: "Bearer " + apiKey,
			status: http.StatusForbidden, challenge: `Bearer realm="ulan", error="insufficient_scope"`},
		{name: "api key without admin keys", keys: mustKeys(t, []string{apiKey}, nil), authorization: "Bearer " + apiKey,
			status: http.StatusOK},
		{name: "admin key", keys: mustKeys(t, []string{apiKey}, []string{adminKey}), authorization: "Bearer " + adminKey,
			status: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Through RequireAdmin alone, and through the middleware, whose policy
			// also makes /metrics an admin route.
			for _, way := range []string{"interceptor", "middleware"} {
				srv := serve(t, auth.NewStore(tt.keys), way)
				res := get(t, srv, http.MethodGet, auth.MetricsPath, tt.authorization)
				require.Equal(t, tt.status, res.StatusCode, way)
				require.Equal(t, tt.challenge, res.Header.Get("WWW-Authenticate"), way)
			}
		})
	}
}

func TestMiddlewareCleansPaths(t *testing.T) {
	t.Parallel()
	s := auth.NewStore(mustKeys(t, []string{apiKey}, []string{adminKey}))
	var reached bool
	h := s.Middleware(nil, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	req := httptest.NewRequest(http.MethodPost, "/grpc.health.v1.Health/../../ulan.v1.PluginService/Reload", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.False(t, reached, "a health prefix must not open another route")
	require.Equal(t, http.StatusForbidden, rec.Code)
}

// TestMiddlewareNonCanonicalPaths: a path that is not canonical is judged by the
// stricter of its readings and is never open, whatever the router behind makes of it.
// A CONNECT request's path, which net/http's ServeMux does not clean, once passed as
// the health check its cleaned form names.
func TestMiddlewareNonCanonicalPaths(t *testing.T) {
	t.Parallel()
	s := auth.NewStore(mustKeys(t, []string{apiKey}, []string{adminKey}))
	var reached []string
	h := s.Middleware(nil, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		reached = append(reached, r.URL.Path)
	}))
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/grpc.health.v1.Health/Check", http.StatusOK},
		{http.MethodConnect, "/ulan.v1.InferenceService/Tokenize/../../grpc.health.v1.Health/Check", http.StatusUnauthorized},
		{http.MethodPost, "/ulan.v1.InferenceService/Tokenize/../../grpc.health.v1.Health/Check", http.StatusUnauthorized},
		{http.MethodPost, "//grpc.health.v1.Health/Check", http.StatusUnauthorized},
		{http.MethodPost, "/grpc.health.v1.Health/./Check", http.StatusUnauthorized},
		{http.MethodPost, "/grpc.health.v1.Health/Check/", http.StatusUnauthorized},
		{http.MethodPost, "/ulan.v1.PluginService/Reload/", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		reached = nil
		req := httptest.NewRequest(tt.method, "/", nil)
		req.URL.Path = tt.path
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tt.want, rec.Code, "%s %s", tt.method, tt.path)
		if tt.want == http.StatusOK {
			require.Equal(t, []string{tt.path}, reached)
		} else {
			require.Empty(t, reached, "%s %s reached the handler without a key", tt.method, tt.path)
		}
	}
}

// TestReflectionNeedsAKey: with keys configured, gRPC reflection is closed to callers
// without one (health alone stays open for probes); without keys it is open.
func TestReflectionNeedsAKey(t *testing.T) {
	t.Parallel()
	const path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	s := auth.NewStore(mustKeys(t, []string{apiKey}, nil))
	h := s.Middleware(nil, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, key := range []string{"", apiKey} {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		req.Header.Set("Content-Type", "application/grpc")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if key == "" {
			require.Equal(t, "16", rec.Header().Get("Grpc-Status"), "Unauthenticated, in gRPC")
		} else {
			require.Empty(t, rec.Header().Get("Grpc-Status"))
		}
	}
	s.Swap(nil)
	req := httptest.NewRequest(http.MethodPost, path, nil)
	req.Header.Set("Content-Type", "application/grpc")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Empty(t, rec.Header().Get("Grpc-Status"), "open without keys")
}

func TestSwap(t *testing.T) {
	t.Parallel()
	s := &auth.Store{} // the zero value: no keys
	require.False(t, s.Enabled())
	srv := serve(t, s, "interceptor")

	_, err := call(t, srv, "unary", "")
	require.NoError(t, err, "open without keys")

	old := s.Swap(mustKeys(t, []string{apiKey}, nil))
	require.Nil(t, old)
	require.True(t, s.Enabled())
	_, err = call(t, srv, "unary", "")
	require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err), "the next call needs a key")
	h, err := call(t, srv, "unary", "Bearer "+apiKey)
	require.NoError(t, err)
	require.Equal(t, keyID(apiKey), h.Get("X-Key-Id"))

	// A reload that replaces the key: the old one stops working at once.
	s.Swap(mustKeys(t, []string{apiKey2}, []string{adminKey}))
	_, err = call(t, srv, "unary", "Bearer "+apiKey)
	require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err))
	_, err = call(t, srv, "stream", "Bearer "+apiKey2)
	require.NoError(t, err)
	_, err = call(t, srv, "admin", "Bearer "+apiKey2)
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "admin procedures now need the admin key")

	// Keys removed: open again, with no Principal.
	s.Swap(nil)
	h, err = call(t, srv, "admin", "")
	require.NoError(t, err)
	require.Empty(t, h.Get("X-Key-Id"))
}

func TestLevelString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "open", auth.Open.String())
	require.Equal(t, "any key", auth.AnyKey.String())
	require.Equal(t, "admin key", auth.AdminKey.String())
}
