package reqid

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMiddleware(t *testing.T) {
	t.Parallel()
	var seen string
	h := Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen = FromContext(r.Context())
	}))
	tests := []struct {
		name, in string
		keep     bool
	}{
		{"caller's id kept", "abc-123", true},
		{"missing id made up", "", false},
		{"id with spaces replaced", "a b", false},
		{"control characters replaced", "a\x01", false},
		{"overlong id replaced", strings.Repeat("x", 129), false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		if tt.in != "" {
			req.Header.Set(Header, tt.in)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get(Header)
		require.Equal(t, seen, got, tt.name)
		if tt.keep {
			require.Equal(t, tt.in, got, tt.name)
		} else {
			require.Len(t, got, 16, tt.name)
			require.NotEqual(t, tt.in, got, tt.name)
		}
	}
}

func TestHandlerAddsRequestID(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(Handler{slog.NewTextHandler(&buf, nil)}).With("component", "test")
	log.InfoContext(WithID(context.Background(), "r-1"), "hello")
	log.InfoContext(context.Background(), "bare")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Contains(t, lines[0], "request_id=r-1")
	require.Contains(t, lines[0], "component=test")
	require.NotContains(t, lines[1], "request_id")
}
