package config_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

// structLeaves lists Config's keys from its koanf tags, independently of the package's
// own walk, descending into every struct that is not a leaf type.
func structLeaves(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		key := prefix + f.Tag.Get("koanf")
		if f.Type.Kind() == reflect.Struct {
			out = append(out, structLeaves(f.Type, key+".")...)
			continue
		}
		out = append(out, key)
	}
	return out
}

func keyNames() []string {
	var out []string
	for _, k := range config.Keys() {
		out = append(out, k.Key)
	}
	return out
}

func TestKeys(t *testing.T) {
	t.Parallel()
	require.Equal(t, structLeaves(reflect.TypeFor[config.Config](), ""), keyNames(),
		"Keys must list every leaf of Config, in struct order")

	envNames := map[string]string{}
	for _, k := range config.Keys() {
		require.NotEmpty(t, k.Description, "key %s needs a description", k.Key)
		require.False(t, strings.HasSuffix(k.Description, "."), "key %s: descriptions are lines, not sentences", k.Key)
		// The plugin configuration (DESIGN.md, "Configuration"), the API keys and the
		// CORS origins are hot-reloadable; the rest needs a restart.
		require.Equal(t, liveKeys[k.Key], k.Live, "key %s: live", k.Key)

		name := "ULAN_" + strings.ToUpper(strings.ReplaceAll(k.Key, ".", "_"))
		require.NotContains(t, envNames, name, "keys %s and %s share an environment variable", envNames[name], k.Key)
		envNames[name] = k.Key
	}
}

// liveKeys are the keys a running server picks up without a restart.
var liveKeys = map[string]bool{
	"plugins":                     true,
	"pipelines":                   true,
	"server.auth.api_keys":        true,
	"server.auth.admin_keys":      true,
	"server.cors.allowed_origins": true,
	"server.cors.max_age":         true,
}

func TestKeysDefaults(t *testing.T) {
	t.Parallel()
	got := map[string]string{}
	var yamlText strings.Builder
	for _, k := range config.Keys() {
		got[k.Key] = k.Default
		yamlText.WriteString(k.Key + ": " + k.Default + "\n")
	}
	require.Equal(t, "127.0.0.1:8080", got["server.listen"])
	require.Equal(t, "2m", got["server.idle_timeout"])
	require.Equal(t, "2h", got["server.cors.max_age"])
	require.Equal(t, "[]", got["server.cors.allowed_origins"])
	require.Equal(t, `""`, got["server.tls.cert_file"])
	require.Equal(t, "32MiB", got["limits.max_request_bytes"])
	require.Equal(t, "1048576", got["limits.max_tokens"])

	// Each default is written as YAML would have it, so the lot parses back to Default.
	c, err := config.Parse([]byte(yamlText.String()))
	require.NoError(t, err)
	require.Equal(t, config.Default(), c)
}

func TestRestartRequired(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*config.Config)
		want   []string
	}{
		{name: "same", change: func(*config.Config) {}},
		{name: "nil and empty lists are the same", change: func(c *config.Config) { c.Server.CORS.AllowedOrigins = []string{} }},
		{name: "one key", change: func(c *config.Config) { c.Log.Level = "debug" }, want: []string{"log.level"}},
		{name: "sorted", change: func(c *config.Config) {
			c.Log.Format = "json"
			c.Server.Listen = ":1"
			c.Limits.MaxTokens = 5
			c.Server.CORS.AllowedOrigins = []string{"*"}
			c.Server.TLS.KeyFile = "k"
			c.Server.CORS.MaxAge = time.Second
			c.Server.Auth.APIKeys = []string{"0123456789abcdef"} // live: not listed
		}, want: []string{"limits.max_tokens", "log.format", "server.listen", "server.tls.key_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next := config.Default()
			tt.change(&next)
			require.Equal(t, tt.want, config.RestartRequired(config.Default(), next))
			require.Equal(t, tt.want, config.RestartRequired(next, config.Default()))
		})
	}
}

func TestRestartRequiredCoversEveryKey(t *testing.T) {
	t.Parallel()
	// A key left out of the comparison would let a change slip through unreported.
	a, b := config.Config{}, config.Config{}
	v := reflect.ValueOf(&b).Elem()
	var setAll func(v reflect.Value)
	setAll = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Struct:
				setAll(f)
			case reflect.String:
				f.SetString("x")
			case reflect.Int, reflect.Int64:
				f.SetInt(1)
			case reflect.Slice:
				if f.Type().Elem().Kind() == reflect.Struct {
					f.Set(reflect.MakeSlice(f.Type(), 1, 1))
					continue
				}
				f.Set(reflect.ValueOf([]string{"x"}))
			}
		}
	}
	setAll(v)
	got := config.RestartRequired(a, b)
	var want []string
	for _, k := range config.Keys() {
		if !k.Live {
			want = append(want, k.Key)
		}
	}
	slices.Sort(want)
	require.Equal(t, want, got)
}

func TestRestartRequiredIgnoresLiveKeys(t *testing.T) {
	t.Parallel()
	next := config.Default()
	next.Plugins = []config.Plugin{{ID: "a", Module: "a.wasm"}}
	next.Pipelines = []config.Pipeline{{Name: "p", Hooks: []string{"a"}}}
	require.Empty(t, config.RestartRequired(config.Default(), next))
	next.Server.CORS.AllowedOrigins = []string{"https://app.example.com"}
	next.Server.CORS.MaxAge = time.Minute
	next.Server.Auth.APIKeys = []string{"env:ULAN_KEY"}
	next.Server.Auth.AdminKeys = []string{"0123456789abcdef"}
	require.Empty(t, config.RestartRequired(config.Default(), next))
	next.Log.Level = "debug"
	require.Equal(t, []string{"log.level"}, config.RestartRequired(config.Default(), next))
}

func TestExampleFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("ulan.example.yaml")
	require.NoError(t, err)

	c, err := config.Parse(b)
	require.NoError(t, err, "the example must stay valid")
	require.Equal(t, config.Default(), c, "the example shows the defaults")

	k := koanf.New(".")
	require.NoError(t, k.Load(rawbytes.Provider(b), yaml.Parser()))
	require.ElementsMatch(t, keyNames(), k.Keys(), "the example must set every key")
	live := 0
	for _, k := range config.Keys() {
		if k.Live {
			live++
		}
	}
	require.Equal(t, len(keyNames())-live, strings.Count(string(b), "Restart required."),
		"each key's comment says whether it needs a restart")
	require.Equal(t, live, strings.Count(string(b), "Changes apply without a restart"),
		"each key's comment says whether it needs a restart")
}
