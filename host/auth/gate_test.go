package auth_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/auth"
)

// TestGateSwapsKeysAndCORSTogether: a request is judged by one configuration's keys
// and origins, never by one's keys and another's origins, while reloads swap them
// (the server once swapped the two through separate pointers).
func TestGateSwapsKeysAndCORSTogether(t *testing.T) {
	t.Parallel()
	const originA, originB = "https://a.example.com", "https://b.example.com"
	keysA := mustKeys(t, []string{apiKey}, nil)
	keysB := mustKeys(t, []string{apiKey2}, nil)
	g := auth.NewGate(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), nil, keysA,
		auth.CORSOptions{AllowedOrigins: []string{originA}, MaxAge: time.Minute})
	require.Same(t, keysA, g.Keys())

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			if i%2 == 0 {
				g.Swap(keysB, []string{originB}, time.Minute)
			} else {
				g.Swap(keysA, []string{originA}, time.Minute)
			}
		}
	})
	seen := map[int]int{}
	for range 2000 {
		req := httptest.NewRequest(http.MethodPost, "/ulan.v1.InferenceService/Tokenize", nil)
		req.Header.Set("Origin", originA)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		acao := rec.Header().Get("Access-Control-Allow-Origin")
		switch rec.Code {
		case http.StatusOK: // configuration A: its key and its origin
			require.Equal(t, originA, acao)
		case http.StatusUnauthorized: // configuration B: neither
			require.Empty(t, acao)
		default:
			t.Fatalf("status %d", rec.Code)
		}
		seen[rec.Code]++
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("outcomes by status: %v", seen)

	g.Swap(nil, nil, 0)
	require.Nil(t, g.Keys())
	req := httptest.NewRequest(http.MethodPost, "/ulan.v1.InferenceService/Tokenize", nil)
	req.Header.Set("Origin", originA)
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, "no keys: open")
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"), "no origins: no CORS")
}

// TestGatePreflightNeedsNoKey: browsers send preflights without credentials, so the
// gate answers them before the key check, for every path, and refuses to allow an
// origin, method or header that is not configured.
func TestGatePreflightNeedsNoKey(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	reached := false
	g := auth.NewGate(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }), nil,
		mustKeys(t, []string{apiKey}, []string{adminKey}),
		auth.CORSOptions{AllowedOrigins: []string{app}, MaxAge: time.Minute, AllowedHeaders: []string{"X-Request-Id"}})
	pre := func(path, origin, method, headers string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodOptions, path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", headers)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		return rec
	}
	for _, path := range []string{"/ulan.v1.InferenceService/Generate", "/ulan.v1.PluginService/Reload",
		"/grpc.health.v1.Health/Check", auth.MetricsPath} {
		rec := pre(path, app, http.MethodPost, "authorization,content-type,x-request-id")
		require.Equal(t, http.StatusNoContent, rec.Code, path)
		require.Equal(t, app, rec.Header().Get("Access-Control-Allow-Origin"), path)
		require.Empty(t, rec.Header().Get("Access-Control-Allow-Credentials"), path)
		require.Contains(t, rec.Header().Values("Vary"), "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	}
	for name, rec := range map[string]*httptest.ResponseRecorder{
		"origin": pre("/ulan.v1.InferenceService/Generate", "https://evil.example.com", http.MethodPost, "content-type"),
		"method": pre("/ulan.v1.InferenceService/Generate", app, http.MethodDelete, "content-type"),
		"header": pre("/ulan.v1.InferenceService/Generate", app, http.MethodPost, "content-type,x-evil"),
	} {
		require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"), name)
		require.Empty(t, rec.Header().Get("Access-Control-Allow-Methods"), name)
	}
	require.False(t, reached, "no preflight reaches the API")

	// An actual request from a disallowed origin gets no CORS headers but still says
	// the response depends on Origin, so no cache hands it to an allowed one.
	req := httptest.NewRequest(http.MethodPost, "/ulan.v1.InferenceService/Tokenize", nil)
	req.Header.Set("Origin", "https://evil.example.com")
	req.Header.Set("Authorization", "Bearer "+apiKey)
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
	require.Contains(t, rec.Header().Values("Vary"), "Origin")
}
