package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	require.NoError(t, config.Default().Validate())
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	key := filepath.Join(dir, "key.pem")
	for _, p := range []string{cert, key} {
		require.NoError(t, os.WriteFile(p, []byte("pem"), 0o600))
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name   string
		change func(*config.Config)
		want   []config.Problem // nil: valid
	}{
		{name: "defaults", change: func(*config.Config) {}},

		{name: "listen any interface", change: func(c *config.Config) { c.Server.Listen = ":8080" }},
		{name: "listen IPv6", change: func(c *config.Config) { c.Server.Listen = "[::1]:0" }},
		{name: "listen highest port", change: func(c *config.Config) { c.Server.Listen = "localhost:65535" }},
		{name: "listen without port", change: func(c *config.Config) { c.Server.Listen = "localhost" },
			want: []config.Problem{{"server.listen", `"localhost" is not host:port, such as 127.0.0.1:8080 or :8080`}}},
		{name: "listen empty", change: func(c *config.Config) { c.Server.Listen = "" },
			want: []config.Problem{{"server.listen", `"" is not host:port, such as 127.0.0.1:8080 or :8080`}}},
		{name: "listen port too high", change: func(c *config.Config) { c.Server.Listen = "localhost:65536" },
			want: []config.Problem{{"server.listen", `"localhost:65536" has port "65536", which is not a number from 0 to 65535`}}},
		{name: "listen named port", change: func(c *config.Config) { c.Server.Listen = "localhost:http" },
			want: []config.Problem{{"server.listen", `"localhost:http" has port "http", which is not a number from 0 to 65535`}}},

		{name: "drain zero", change: func(c *config.Config) { c.Server.DrainTimeout = 0 }},
		{name: "drain negative", change: func(c *config.Config) { c.Server.DrainTimeout = -time.Second },
			want: []config.Problem{{"server.drain_timeout", "-1s must not be negative"}}},
		{name: "read header zero", change: func(c *config.Config) { c.Server.ReadHeaderTimeout = 0 },
			want: []config.Problem{{"server.read_header_timeout", "0s must be greater than 0"}}},
		{name: "idle negative", change: func(c *config.Config) { c.Server.IdleTimeout = -time.Minute },
			want: []config.Problem{{"server.idle_timeout", "-1m0s must be greater than 0"}}},

		{name: "origins", change: func(c *config.Config) {
			c.Server.CORS.AllowedOrigins = []string{"*", "https://app.example.com", "http://localhost:3000", "https://[::1]:8443"}
		}},
		{name: "origin with path", change: func(c *config.Config) { c.Server.CORS.AllowedOrigins = []string{"https://a.example.com/app"} },
			want: []config.Problem{{"server.cors.allowed_origins", `"https://a.example.com/app" is not "*" or an origin such as https://app.example.com (scheme and host, no path)`}}},
		{name: "origin with trailing slash", change: func(c *config.Config) { c.Server.CORS.AllowedOrigins = []string{"https://a.example.com/"} },
			want: []config.Problem{{"server.cors.allowed_origins", `"https://a.example.com/" is not "*" or an origin such as https://app.example.com (scheme and host, no path)`}}},
		{name: "bad origins each reported", change: func(c *config.Config) {
			c.Server.CORS.AllowedOrigins = []string{"app.example.com", "ftp://a.example.com", "https://", "https://a.example.com?x", "https://u@a.example.com", "https://*.example.com", ""}
		}, want: []config.Problem{
			{"server.cors.allowed_origins", `"app.example.com" is not "*" or an origin such as https://app.example.com (scheme and host, no path)`},
			{"server.cors.allowed_origins", `"ftp://a.example.com" is not "*" or an origin such as https://app.example.com (scheme and host, no path)`},
			{"server.cors.allowed_origins", `"https://" is not "*" or an origin such as https://app.example.com (scheme and host, no path)`},
			{"server.cors.allowed_origins", `"https://a.example.com?x" is not "*" or an origin such as https://app.example.com (scheme and host, no path)`},
			{"server.cors.allowed_origins", `"https://u@a.example.com" is not "*" or an origin such as https://app.example.com (scheme and host, no path)`},
			{"server.cors.allowed_origins", `"https://*.example.com" is not "*" or an origin such as https://app.example.com (scheme and host, no path)`},
			{"server.cors.allowed_origins", `"" is not "*" or an origin such as https://app.example.com (scheme and host, no path)`},
		}},
		{name: "max age zero", change: func(c *config.Config) { c.Server.CORS.MaxAge = 0 }},
		{name: "max age negative", change: func(c *config.Config) { c.Server.CORS.MaxAge = -time.Second },
			want: []config.Problem{{"server.cors.max_age", "-1s must not be negative"}}},
		{name: "max age fraction", change: func(c *config.Config) { c.Server.CORS.MaxAge = 1500 * time.Millisecond },
			want: []config.Problem{{"server.cors.max_age", "1.5s must be a whole number of seconds"}}},

		{name: "tls both", change: func(c *config.Config) { c.Server.TLS = config.TLS{CertFile: cert, KeyFile: key} }},
		{name: "tls cert only", change: func(c *config.Config) { c.Server.TLS.CertFile = cert },
			want: []config.Problem{{"server.tls.key_file", "must be set when server.tls.cert_file is"}}},
		{name: "tls key only", change: func(c *config.Config) { c.Server.TLS.KeyFile = key },
			want: []config.Problem{{"server.tls.cert_file", "must be set when server.tls.key_file is"}}},
		{name: "tls missing file", change: func(c *config.Config) { c.Server.TLS = config.TLS{CertFile: missing, KeyFile: key} },
			want: []config.Problem{{"server.tls.cert_file", "cannot read " + missing + ": no such file or directory"}}},
		{name: "tls directory", change: func(c *config.Config) { c.Server.TLS = config.TLS{CertFile: cert, KeyFile: dir} },
			want: []config.Problem{{"server.tls.key_file", dir + " is not a regular file"}}},

		{name: "request smallest", change: func(c *config.Config) {
			c.Limits.MaxRequestBytes, c.Limits.MaxPromptBytes = config.KiB, config.KiB
		}},
		{name: "request largest", change: func(c *config.Config) { c.Limits.MaxRequestBytes = config.GiB }},
		{name: "request too small", change: func(c *config.Config) {
			c.Limits.MaxRequestBytes, c.Limits.MaxPromptBytes = 512, 512
		}, want: []config.Problem{{"limits.max_request_bytes", "512B must be between 1KiB and 1GiB"}}},
		{name: "request too large", change: func(c *config.Config) { c.Limits.MaxRequestBytes = 2 * config.GiB },
			want: []config.Problem{{"limits.max_request_bytes", "2GiB must be between 1KiB and 1GiB"}}},
		{name: "prompt zero", change: func(c *config.Config) { c.Limits.MaxPromptBytes = 0 },
			want: []config.Problem{{"limits.max_prompt_bytes", "0B must be greater than 0"}}},
		{name: "prompt above request", change: func(c *config.Config) { c.Limits.MaxPromptBytes = 64 * config.MiB },
			want: []config.Problem{{"limits.max_prompt_bytes", "64MiB must not exceed limits.max_request_bytes (32MiB)"}}},
		{name: "tokens smallest", change: func(c *config.Config) { c.Limits.MaxTokens = 1 }},
		{name: "tokens largest", change: func(c *config.Config) { c.Limits.MaxTokens = 1 << 24 }},
		{name: "tokens zero", change: func(c *config.Config) { c.Limits.MaxTokens = 0 },
			want: []config.Problem{{"limits.max_tokens", "0 must be between 1 and 16777216"}}},
		{name: "tokens too many", change: func(c *config.Config) { c.Limits.MaxTokens = 1<<24 + 1 },
			want: []config.Problem{{"limits.max_tokens", "16777217 must be between 1 and 16777216"}}},

		{name: "every level", change: func(c *config.Config) { c.Log.Level = "debug" }},
		{name: "level unknown", change: func(c *config.Config) { c.Log.Level = "verbose" },
			want: []config.Problem{{"log.level", `"verbose" is not one of debug, info, warn, error`}}},
		{name: "level is case-sensitive", change: func(c *config.Config) { c.Log.Level = "INFO" },
			want: []config.Problem{{"log.level", `"INFO" is not one of debug, info, warn, error`}}},
		{name: "format json", change: func(c *config.Config) { c.Log.Format = "json" }},
		{name: "format unknown", change: func(c *config.Config) { c.Log.Format = "xml" },
			want: []config.Problem{{"log.format", `"xml" is not one of text, json`}}},

		{name: "every problem reported", change: func(c *config.Config) {
			c.Server.Listen = "nope"
			c.Limits.MaxTokens = -1
			c.Log.Level = ""
		}, want: []config.Problem{
			{"server.listen", `"nope" is not host:port, such as 127.0.0.1:8080 or :8080`},
			{"limits.max_tokens", "-1 must be between 1 and 16777216"},
			{"log.level", `"" is not one of debug, info, warn, error`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := config.Default()
			tt.change(&c)
			err := c.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			var ps config.Problems
			require.ErrorAs(t, err, &ps)
			require.Equal(t, config.Problems(tt.want), ps)
		})
	}
}

func TestProblemsError(t *testing.T) {
	t.Parallel()
	ps := config.Problems{
		{Key: "", Message: "yaml: line 2: did not find expected key"},
		{Key: "log.level", Message: `"verbose" is not one of debug, info, warn, error`},
	}
	require.Equal(t, "yaml: line 2: did not find expected key\n"+
		`log.level: "verbose" is not one of debug, info, warn, error`, ps.Error())

	var err error = ps
	var got config.Problems
	require.True(t, errors.As(err, &got))
	require.Equal(t, ps, got)
}
