package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

// writeFile writes a config file into a fresh directory and returns its path.
func writeFile(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ulan.yaml")
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
	return p
}

// flags returns a flag set like the CLI's, parsed from args, and its key mapping.
func flags(t *testing.T, args ...string) (*pflag.FlagSet, map[string]string) {
	t.Helper()
	def := config.Default()
	fs := pflag.NewFlagSet("ulan", pflag.ContinueOnError)
	fs.String("listen", def.Server.Listen, "")
	fs.Duration("drain-timeout", def.Server.DrainTimeout, "")
	fs.String("log-level", def.Log.Level, "")
	fs.StringSlice("cors-origin", nil, "")
	fs.Int("max-tokens", def.Limits.MaxTokens, "")
	fs.Int64("max-request-bytes", int64(def.Limits.MaxRequestBytes), "")
	require.NoError(t, fs.Parse(args))
	return fs, map[string]string{
		"listen":            "server.listen",
		"drain-timeout":     "server.drain_timeout",
		"log-level":         "log.level",
		"cors-origin":       "server.cors.allowed_origins",
		"max-tokens":        "limits.max_tokens",
		"max-request-bytes": "limits.max_request_bytes",
	}
}

func problems(t *testing.T, err error) config.Problems {
	t.Helper()
	var ps config.Problems
	require.ErrorAs(t, err, &ps)
	return ps
}

func TestLoadNothingGivesDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.Sources{})
	require.NoError(t, err)
	require.Equal(t, config.Default(), c)
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
server:
  listen: 127.0.0.1:1111      # file, env and flag: the flag wins
  drain_timeout: 1s           # file and env: env wins
  idle_timeout: 1m            # file only
log:
  level: debug                # file, and a flag left at its default: the file wins
`)
	env := []string{
		"ULAN_SERVER_LISTEN=127.0.0.1:2222",
		"ULAN_SERVER_DRAIN_TIMEOUT=2s",
		"ULAN_LIMITS_MAX_TOKENS=4096",
		"HOME=/root", // not ours: ignored
	}
	fs, keys := flags(t, "--listen", "127.0.0.1:3333")

	c, err := config.Load(config.Sources{File: file, Env: env, Flags: fs, FlagKeys: keys})
	require.NoError(t, err)
	want := config.Default()
	want.Server.Listen = "127.0.0.1:3333"
	want.Server.DrainTimeout = 2 * time.Second
	want.Server.IdleTimeout = time.Minute
	want.Log.Level = "debug"
	want.Limits.MaxTokens = 4096
	require.Equal(t, want, c)
}

func TestLoadTypedFlags(t *testing.T) {
	t.Parallel()
	// Flags arrive typed (time.Duration, int, int64, []string) where the file and the
	// environment give strings; StrictMerge must accept both.
	file := writeFile(t, "server:\n  drain_timeout: 5s\n  cors:\n    allowed_origins: [https://a.example.com]\n")
	env := []string{"ULAN_LIMITS_MAX_TOKENS=10", "ULAN_LIMITS_MAX_REQUEST_BYTES=8MiB"}
	fs, keys := flags(t, "--drain-timeout=1m", "--max-tokens=20", "--max-request-bytes=67108864",
		"--cors-origin=https://b.example.com,https://c.example.com")

	c, err := config.Load(config.Sources{File: file, Env: env, Flags: fs, FlagKeys: keys})
	require.NoError(t, err)
	require.Equal(t, time.Minute, c.Server.DrainTimeout)
	require.Equal(t, 20, c.Limits.MaxTokens)
	require.Equal(t, 64*config.MiB, c.Limits.MaxRequestBytes)
	require.Equal(t, []string{"https://b.example.com", "https://c.example.com"}, c.Server.CORS.AllowedOrigins)
}

func TestLoadEnvList(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "server:\n  cors:\n    allowed_origins: [https://a.example.com]\n")
	tests := []struct {
		name, value string
		want        []string
	}{
		{name: "comma separated", value: "https://b.example.com, http://localhost:3000",
			want: []string{"https://b.example.com", "http://localhost:3000"}},
		{name: "one", value: "*", want: []string{"*"}},
		{name: "empty clears the file's list", value: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(config.Sources{File: file, Env: []string{"ULAN_SERVER_CORS_ALLOWED_ORIGINS=" + tt.value}})
			require.NoError(t, err)
			require.Equal(t, tt.want, c.Server.CORS.AllowedOrigins)
		})
	}
}

func TestLoadProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string // YAML; "" reads no file
		env  []string
		args []string
		want config.Problems
	}{
		{
			name: "bad duration names the key",
			file: "server:\n  drain_timeout: abc\n",
			want: config.Problems{{"server.drain_timeout", `"abc" is not a duration (use a value such as 30s, 2m or 1h30m)`}},
		},
		{
			name: "duration without unit",
			file: "server:\n  idle_timeout: 30\n",
			want: config.Problems{{"server.idle_timeout", `"30" is not a duration (use a value such as 30s, 2m or 1h30m)`}},
		},
		{
			name: "bad size names the key",
			file: "limits:\n  max_request_bytes: 12XB\n",
			want: config.Problems{{"limits.max_request_bytes", `"12XB" is not a size (use bytes or a unit such as 64KiB, 32MiB)`}},
		},
		{
			name: "integer where a list belongs",
			file: "server:\n  cors:\n    allowed_origins: {a: 1}\n",
			want: config.Problems{{"server.cors.allowed_origins", "expected a list of strings, got a mapping"}},
		},
		{
			name: "fraction where an integer belongs",
			file: "limits:\n  max_tokens: 1.5\n",
			want: config.Problems{{"limits.max_tokens", "1.5 is not an integer"}},
		},
		{
			name: "list where a string belongs",
			file: "log:\n  level: [debug]\n",
			want: config.Problems{{"log.level", "expected a string, got a list"}},
		},
		{
			name: "section given a value",
			file: "log: debug\n",
			want: config.Problems{{"log", "expected a mapping of keys, got a string"}},
		},
		{
			name: "unknown key with a typo",
			file: "server:\n  listn: 127.0.0.1:80\n",
			want: config.Problems{{"server.listn", "unknown key (did you mean server.listen?)"}},
		},
		{
			name: "unknown key in the wrong section",
			file: "listen: 127.0.0.1:80\n",
			want: config.Problems{{"listen", "unknown key (did you mean server.listen?)"}},
		},
		{
			name: "unknown key far from any",
			file: "routing:\n  sampler: x\n",
			want: config.Problems{{"routing.sampler", "unknown key"}},
		},
		{
			name: "unknown environment variable",
			env:  []string{"ULAN_SERVER_LISTN=:80", "ULAN_SERVER=x"},
			want: config.Problems{
				{"ULAN_SERVER", "unknown environment variable (no such configuration key)"},
				{"ULAN_SERVER_LISTN", "unknown environment variable (no such configuration key)"},
			},
		},
		{
			name: "bad environment value says where it came from",
			env:  []string{"ULAN_LIMITS_MAX_TOKENS=many", "ULAN_LOG_LEVEL=loud"},
			want: config.Problems{
				{"limits.max_tokens", `"many" is not an integer (from ULAN_LIMITS_MAX_TOKENS)`},
				{"log.level", `"loud" is not one of debug, info, warn, error (from ULAN_LOG_LEVEL)`},
			},
		},
		{
			name: "bad flag value says where it came from",
			args: []string{"--listen=nowhere"},
			want: config.Problems{{"server.listen", `"nowhere" is not host:port, such as 127.0.0.1:8080 or :8080 (from --listen)`}},
		},
		{
			name: "yaml syntax error",
			file: "server:\n  listen: [\n",
			want: config.Problems{{"", "FILE: yaml: line 2: did not find expected node content"}},
		},
		{
			name: "not a mapping",
			file: "- a\n- b\n",
			want: config.Problems{{"", "FILE: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into map[string]interface {}"}},
		},
		{
			name: "every problem reported",
			file: `
server:
  listen: localhost
  drain_timeout: abc
  listn: x
limits:
  max_request_bytes: 2GiB
  max_prompt_bytes: 12XB
log:
  level: verbose
`,
			env: []string{"ULAN_NOPE=1", "ULAN_LOG_FORMAT=xml"},
			want: config.Problems{
				{"server.listn", "unknown key (did you mean server.listen?)"},
				{"ULAN_NOPE", "unknown environment variable (no such configuration key)"},
				{"server.drain_timeout", `"abc" is not a duration (use a value such as 30s, 2m or 1h30m)`},
				{"limits.max_prompt_bytes", `"12XB" is not a size (use bytes or a unit such as 64KiB, 32MiB)`},
				{"server.listen", `"localhost" is not host:port, such as 127.0.0.1:8080 or :8080`},
				{"limits.max_request_bytes", "2GiB must be between 1KiB and 1GiB"},
				{"log.level", `"verbose" is not one of debug, info, warn, error`},
				{"log.format", `"xml" is not one of text, json (from ULAN_LOG_FORMAT)`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := config.Sources{Env: tt.env}
			if tt.file != "" {
				src.File = writeFile(t, tt.file)
			}
			if tt.args != nil {
				src.Flags, src.FlagKeys = flags(t, tt.args...)
			}
			want := make(config.Problems, len(tt.want))
			for i, p := range tt.want {
				if p.Key == "" {
					p.Message = src.File + p.Message[len("FILE"):]
				}
				want[i] = p
			}
			c, err := config.Load(src)
			require.Equal(t, want, problems(t, err))
			require.Equal(t, config.Config{}, c)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := config.Load(config.Sources{File: p, Env: []string{"ULAN_LOG_LEVEL=verbose"}})
	require.Equal(t, config.Problems{
		{"", "config file " + p + " does not exist"},
		{"log.level", `"verbose" is not one of debug, info, warn, error (from ULAN_LOG_LEVEL)`},
	}, problems(t, err))
}

func TestLoadUnknownFlagKey(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("ulan", pflag.ContinueOnError)
	fs.String("addr", "", "")
	require.NoError(t, fs.Parse([]string{"--addr=:1"}))
	_, err := config.Load(config.Sources{Flags: fs, FlagKeys: map[string]string{"addr": "server.addr"}})
	require.Equal(t, config.Problems{{"server.addr", "unknown key (from --addr)"}}, problems(t, err))
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       func(*config.Config)
	}{
		{name: "empty", yaml: "", want: func(*config.Config) {}},
		{name: "comments only", yaml: "# nothing\n", want: func(*config.Config) {}},
		{name: "empty sections keep defaults", yaml: "server:\n  tls:\n  cors: {}\nlog:\n", want: func(*config.Config) {}},
		{name: "null value keeps default", yaml: "log:\n  level: ~\n", want: func(*config.Config) {}},
		{name: "size as integer", yaml: "limits:\n  max_request_bytes: 1048576\n  max_prompt_bytes: 1024\n",
			want: func(c *config.Config) { c.Limits.MaxRequestBytes, c.Limits.MaxPromptBytes = config.MiB, config.KiB }},
		{name: "size with space", yaml: "limits:\n  max_prompt_bytes: 4 MiB\n",
			want: func(c *config.Config) { c.Limits.MaxPromptBytes = 4 * config.MiB }},
		{name: "integer in float form", yaml: "limits:\n  max_tokens: 1e3\n",
			want: func(c *config.Config) { c.Limits.MaxTokens = 1000 }},
		{name: "zero duration without unit", yaml: "server:\n  drain_timeout: 0\n",
			want: func(c *config.Config) { c.Server.DrainTimeout = 0 }},
		{name: "list as comma string", yaml: "server:\n  cors:\n    allowed_origins: https://a.example.com, https://b.example.com\n",
			want: func(c *config.Config) {
				c.Server.CORS.AllowedOrigins = []string{"https://a.example.com", "https://b.example.com"}
			}},
		{name: "dotted key", yaml: "server.cors.max_age: 10m\n",
			want: func(c *config.Config) { c.Server.CORS.MaxAge = 10 * time.Minute }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse([]byte(tt.yaml))
			require.NoError(t, err)
			want := config.Default()
			tt.want(&want)
			require.Equal(t, want, c)
		})
	}
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	_, err := config.Parse([]byte("server:\n  listen: :1\n  listen:\n    host: x\n"))
	// A repeated key is a YAML error; the message carries the line but no file path.
	require.Equal(t, config.Problems{{"", `yaml: unmarshal errors:` + "\n" + `  line 3: mapping key "listen" already defined at line 2`}}, problems(t, err))

	_, err = config.Parse([]byte("server:\n  listen:\n    host: x\n    port: 1\n"))
	require.Equal(t, config.Problems{{"server.listen", "expected a string, got a mapping"}}, problems(t, err))
}
