package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

const (
	keyA = "aaaaaaaaaaaaaaaa0001"
	keyB = "bbbbbbbbbbbbbbbb0002"
	keyC = "c2VjcmV0LXNlY3JldC1rZXk=" // base64 with padding
)

func TestValidateAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		api, admin  []string
		want        []config.Problem // nil: valid
		wantAPI     []string
		wantAdmin   []string
		secretsKept []string // values no problem may quote
	}{
		{name: "none: open"},
		{name: "api and admin", api: []string{keyA, keyC}, admin: []string{keyB},
			wantAPI: []string{keyA, keyC}, wantAdmin: []string{keyB}},
		{name: "admin only", admin: []string{keyB}, wantAdmin: []string{keyB}},
		{name: "exactly 16", api: []string{"0123456789abcdef"}, wantAPI: []string{"0123456789abcdef"}},
		{name: "too short", api: []string{keyA, "short-key-15chr"},
			want:        []config.Problem{{"server.auth.api_keys[1]", "is shorter than 16 characters (make a key with openssl rand -hex 32)"}},
			secretsKept: []string{"short-key-15chr"}},
		{name: "empty entry", admin: []string{""},
			want: []config.Problem{{"server.auth.admin_keys[0]", "is empty"}}},
		{name: "whitespace", api: []string{"0123456789 abcdef"},
			want:        []config.Problem{{"server.auth.api_keys[0]", "is not a valid bearer token: use only A-Z, a-z, 0-9, '-', '.', '_', '~', '+', '/', and '=' at the end (no spaces or commas)"}},
			secretsKept: []string{"0123456789 abcdef"}},
		{name: "padding inside", api: []string{"0123456789=abcdef"},
			want: []config.Problem{{"server.auth.api_keys[0]", "is not a valid bearer token: use only A-Z, a-z, 0-9, '-', '.', '_', '~', '+', '/', and '=' at the end (no spaces or commas)"}}},
		{name: "duplicate across lists", api: []string{keyA, keyB}, admin: []string{keyB},
			want:        []config.Problem{{"server.auth.admin_keys[0]", "is the same key as server.auth.api_keys[1]; list each key once (an admin key also grants everything an API key does)"}},
			secretsKept: []string{keyB}},
		{name: "duplicate within a list", api: []string{keyA, keyA},
			want: []config.Problem{{"server.auth.api_keys[1]", "is the same key as server.auth.api_keys[0]; list each key once (an admin key also grants everything an API key does)"}}},
		{name: "bad env reference", api: []string{"env:1X"},
			want: []config.Problem{{"server.auth.api_keys[0]", `"env:1X" does not name an environment variable (use env:NAME, NAME being A-Z, a-z, 0-9 and _)`}}},
		{name: "ULAN_ variable", admin: []string{"env:ULAN_ADMIN_KEY"},
			want: []config.Problem{{"server.auth.admin_keys[0]", "env:ULAN_ADMIN_KEY: variables named ULAN_* set configuration keys; keep the key in another, such as env:ALICE_API_KEY"}}},
		{name: "every problem reported", api: []string{"x"}, admin: []string{"y y"},
			want: []config.Problem{
				{"server.auth.api_keys[0]", "is shorter than 16 characters (make a key with openssl rand -hex 32)"},
				{"server.auth.admin_keys[0]", "is not a valid bearer token: use only A-Z, a-z, 0-9, '-', '.', '_', '~', '+', '/', and '=' at the end (no spaces or commas)"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := config.Default()
			c.Server.Auth = config.Auth{APIKeys: tt.api, AdminKeys: tt.admin}
			err := c.Validate()
			api, admin, rerr := c.Server.Auth.Resolve()
			if tt.want == nil {
				require.NoError(t, err)
				require.NoError(t, rerr)
				require.Equal(t, tt.wantAPI, api)
				require.Equal(t, tt.wantAdmin, admin)
				return
			}
			require.Equal(t, config.Problems(tt.want), problems(t, err))
			require.Equal(t, config.Problems(tt.want), problems(t, rerr), "Resolve reports what Validate does")
			require.Nil(t, api)
			require.Nil(t, admin)
			for _, s := range tt.secretsKept {
				require.NotContains(t, err.Error(), s, "a problem must not quote a key")
			}
		})
	}
}

// TestValidateAuthEnv reads env:NAME entries from the process environment, so it
// cannot run in parallel.
func TestValidateAuthEnv(t *testing.T) {
	t.Setenv("TEST_ULAN_KEY_GOOD", keyA)
	t.Setenv("TEST_ULAN_KEY_SHORT", "tooshort")
	t.Setenv("TEST_ULAN_KEY_EMPTY", "")
	t.Setenv("TEST_ULAN_KEY_ADMIN", keyB)

	c := config.Default()
	c.Server.Auth = config.Auth{
		APIKeys:   []string{"env:TEST_ULAN_KEY_GOOD", keyC},
		AdminKeys: []string{"env:TEST_ULAN_KEY_ADMIN"},
	}
	require.NoError(t, c.Validate())
	api, admin, err := c.Server.Auth.Resolve()
	require.NoError(t, err)
	require.Equal(t, []string{keyA, keyC}, api)
	require.Equal(t, []string{keyB}, admin)

	c.Server.Auth = config.Auth{
		APIKeys:   []string{"env:TEST_ULAN_KEY_MISSING", "env:TEST_ULAN_KEY_SHORT", "env:TEST_ULAN_KEY_EMPTY"},
		AdminKeys: []string{"env:TEST_ULAN_KEY_GOOD", keyA},
	}
	err = c.Validate()
	require.Equal(t, config.Problems{
		{"server.auth.api_keys[0]", "environment variable TEST_ULAN_KEY_MISSING (env:TEST_ULAN_KEY_MISSING) is not set or empty"},
		{"server.auth.api_keys[1]", "env:TEST_ULAN_KEY_SHORT holds a key that is shorter than 16 characters (make a key with openssl rand -hex 32)"},
		{"server.auth.api_keys[2]", "environment variable TEST_ULAN_KEY_EMPTY (env:TEST_ULAN_KEY_EMPTY) is not set or empty"},
		{"server.auth.admin_keys[1]", "is the same key as server.auth.admin_keys[0]; list each key once (an admin key also grants everything an API key does)"},
	}, problems(t, err))
	require.NotContains(t, err.Error(), "tooshort")
	require.NotContains(t, err.Error(), keyA)
}

func TestLoadAuth(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
server:
  auth:
    api_keys: [`+keyA+`]
    admin_keys:
      - `+keyB+`
`)
	c, err := config.Load(config.Sources{File: file})
	require.NoError(t, err)
	require.Equal(t, config.Auth{APIKeys: []string{keyA}, AdminKeys: []string{keyB}}, c.Server.Auth)

	// The environment replaces the file's list; entries are comma-separated.
	c, err = config.Load(config.Sources{File: file, Env: []string{"ULAN_SERVER_AUTH_API_KEYS=" + keyC + ", " + keyA}})
	require.NoError(t, err)
	require.Equal(t, []string{keyC, keyA}, c.Server.Auth.APIKeys)

	// A problem with an element of a list from the environment names the variable.
	_, err = config.Load(config.Sources{Env: []string{"ULAN_SERVER_AUTH_ADMIN_KEYS=" + keyA + ",short"}})
	require.Equal(t, config.Problems{{
		"server.auth.admin_keys[1]",
		"is shorter than 16 characters (make a key with openssl rand -hex 32) (from ULAN_SERVER_AUTH_ADMIN_KEYS)",
	}}, problems(t, err))

	_, err = config.Parse([]byte("server:\n  auth:\n    api_key: [" + keyA + "]\n"))
	ps := problems(t, err)
	require.Len(t, ps, 1)
	require.Equal(t, "server.auth.api_key", ps[0].Key)
	require.True(t, strings.HasPrefix(ps[0].Message, "unknown key (did you mean server.auth.api_keys?)"), ps[0].Message)
}
