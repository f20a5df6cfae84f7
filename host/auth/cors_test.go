package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/auth"
)

// preflight sends a CORS preflight for a Connect call with an Authorization header
// from origin and returns the response.
func preflight(h http.Handler, origin string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodOptions, "/ulan.v1.InferenceService/Tokenize", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	// Sorted and in lower case, as browsers send it.
	req.Header.Set("Access-Control-Request-Headers", "authorization,connect-protocol-version,content-type,x-request-id")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestCORSSwap(t *testing.T) {
	t.Parallel()
	const app, other = "https://app.example.com", "https://other.example.com"
	var reached int
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached++
		w.Header().Set("Ulan-Generation-Id", "gen_x")
	})
	c := auth.NewCORS(next, auth.CORSOptions{
		MaxAge:         time.Hour,
		AllowedHeaders: []string{"X-Request-Id"},
		ExposedHeaders: []string{"Ulan-Generation-Id"},
	})

	// No origins: no CORS at all; the preflight reaches the API, which does not
	// allow it.
	rec := preflight(c, app)
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
	require.Equal(t, 1, reached)

	c.Swap([]string{app}, 10*time.Minute)
	rec = preflight(c, app)
	require.Equal(t, app, rec.Header().Get("Access-Control-Allow-Origin"))
	allowed := strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type", "connect-protocol-version", "x-request-id"} {
		require.Contains(t, allowed, h)
	}
	require.Equal(t, "600", rec.Header().Get("Access-Control-Max-Age"))
	require.Equal(t, 1, reached, "a preflight is answered by the CORS handler")
	require.Empty(t, preflight(c, other).Header().Get("Access-Control-Allow-Origin"), "other origins stay out")

	// An actual request from the origin exposes the API's headers.
	req := httptest.NewRequest(http.MethodPost, "/ulan.v1.InferenceService/Tokenize", nil)
	req.Header.Set("Origin", app)
	rec = httptest.NewRecorder()
	c.ServeHTTP(rec, req)
	require.Equal(t, app, rec.Header().Get("Access-Control-Allow-Origin"))
	exposed := strings.ToLower(rec.Header().Get("Access-Control-Expose-Headers"))
	for _, h := range []string{"ulan-generation-id", "grpc-status", "www-authenticate"} {
		require.Contains(t, exposed, h)
	}

	c.Swap([]string{other}, time.Hour)
	require.Empty(t, preflight(c, app).Header().Get("Access-Control-Allow-Origin"), "the old origin is gone")
	require.Equal(t, other, preflight(c, other).Header().Get("Access-Control-Allow-Origin"))

	c.Swap(nil, time.Hour)
	require.Empty(t, preflight(c, other).Header().Get("Access-Control-Allow-Origin"), "empty turns CORS off, not to *")
}

// TestCORSBeforeAuth shows the order the server stacks them in: CORS outside the
// key check, so that a preflight (which browsers send without credentials) is
// answered, and a refused call still carries the CORS headers a script needs to read
// the error.
func TestCORSBeforeAuth(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	s := auth.NewStore(mustKeys(t, []string{apiKey}, nil))
	h := auth.NewCORS(s.Middleware(nil, http.NotFoundHandler()), auth.CORSOptions{
		AllowedOrigins: []string{app},
		AllowedHeaders: []string{"X-Request-Id"},
	})

	rec := preflight(h, app)
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, app, rec.Header().Get("Access-Control-Allow-Origin"))

	req := httptest.NewRequest(http.MethodPost, "/ulan.v1.InferenceService/Tokenize", strings.NewReader("{}"))
	req.Header.Set("Origin", app)
	req.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Equal(t, app, rec.Header().Get("Access-Control-Allow-Origin"))
	require.Contains(t, rec.Body.String(), `"code":"unauthenticated"`)
}

// TestCrossOriginGET: a browser's cross-origin GET, which runs without a preflight,
// is refused unless its origin is allowed; same-origin pages, typed addresses and
// clients that are not browsers are served, and so is every POST (CORS's preflight
// judges those).
func TestCrossOriginGET(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	var reached int
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached++ })
	c := auth.NewCORS(next, auth.CORSOptions{})
	send := func(method string, header map[string]string) int {
		req := httptest.NewRequest(method, "http://127.0.0.1:8080/ulan.v1.PluginService/ValidateConfig?encoding=json&message=%7B%7D", nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		before := reached
		c.ServeHTTP(rec, req)
		if rec.Code == http.StatusForbidden {
			require.Equal(t, before, reached, "a refused request does not reach the API")
			require.Contains(t, rec.Body.String(), "server.cors.allowed_origins")
		}
		return rec.Code
	}
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
	fromApp := map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Origin": app}
	for name, tc := range map[string]struct {
		method string
		header map[string]string
		want   int
	}{
		"cross-site GET (an img or a no-cors fetch)": {http.MethodGet, crossSite, http.StatusForbidden},
		"cross-site HEAD":                             {http.MethodHead, crossSite, http.StatusForbidden},
		"same-site GET (another port of the host)":    {http.MethodGet, map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		"cross-site CORS GET from an unlisted origin": {http.MethodGet, fromApp, http.StatusForbidden},
		"old browser: Origin only, not the host's":    {http.MethodGet, map[string]string{"Origin": app}, http.StatusForbidden},
		"same-origin GET":                             {http.MethodGet, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		"typed address":                               {http.MethodGet, map[string]string{"Sec-Fetch-Site": "none"}, http.StatusOK},
		"old browser, same origin":                    {http.MethodGet, map[string]string{"Origin": "http://127.0.0.1:8080"}, http.StatusOK},
		"not a browser (curl, connect clients)":       {http.MethodGet, nil, http.StatusOK},
		"cross-site POST (preflighted by CORS)":       {http.MethodPost, crossSite, http.StatusOK},
	} {
		require.Equal(t, tc.want, send(tc.method, tc.header), name)
	}

	c.Swap([]string{app}, 0)
	require.Equal(t, http.StatusOK, send(http.MethodGet, fromApp), "an allowed origin may GET")
	require.Equal(t, http.StatusForbidden, send(http.MethodGet, crossSite), "a no-cors GET names no origin")
	c.Swap([]string{"*"}, 0)
	require.Equal(t, http.StatusOK, send(http.MethodGet, crossSite), "every origin is allowed")
	c.Swap(nil, 0)
	require.Equal(t, http.StatusForbidden, send(http.MethodGet, crossSite), "a reload takes the origins back")
}
