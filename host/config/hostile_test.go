package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

// laughs is a "billion laughs" document: levels of aliases, each listing the one before
// ten times, under key (a top-level key, or a plugin's config).
func laughs(levels int, inPlugin bool) string {
	var sb strings.Builder
	ind := "  "
	if inPlugin {
		sb.WriteString("plugins:\n  - id: a\n    module: a.wasm\n    config:\n")
		ind = "      "
	} else {
		sb.WriteString("lol:\n")
	}
	sb.WriteString(ind + "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		p := fmt.Sprintf("*a%d", i-1)
		fmt.Fprintf(&sb, "%sa%d: &a%d [%s]\n", ind, i, i, strings.Repeat(p+", ", 9)+p)
	}
	return sb.String()
}

// bigMapping is a plugin config holding one mapping of n keys.
func bigMapping(n int) string {
	var sb strings.Builder
	sb.WriteString("plugins:\n  - id: a\n    module: a.wasm\n    config: {")
	for i := range n {
		fmt.Fprintf(&sb, "k%d: 1, ", i)
	}
	sb.WriteString("z: 1}\n")
	return sb.String()
}

// TestParseHostile: files an operator might break, or an attacker craft, each get a
// problem that says what is wrong, quickly and without a panic; none is accepted with
// part of it silently dropped.
func TestParseHostile(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 1<<20)
	tests := []struct {
		name, yaml string
		want       string // a part of the problems; "" means the file is valid
	}{
		{"empty", "", ""},
		{"blank lines", "\n\n   \n", ""},
		{"document marker only", "---\n", ""},
		{"one document with markers", "---\nlog: {level: debug}\n...\n", ""},
		{"trailing empty document", "log: {level: debug}\n---\n", ""},
		{"byte order mark", "\ufefflog: {level: debug}\n", ""},
		{"two documents", "log: {level: debug}\n---\nlog: {level: warn}\n", "more than one YAML document (another begins at line 3)"},
		{"a broken second document", "log: {level: debug}\n---\nlog: [\n", "more than one YAML document"},
		{"unknown key", "server:\n  lisen: :1\n", "server.lisen: unknown key (did you mean server.listen?)"},
		{"unknown plugin field", "plugins:\n  - {id: a, module: a.wasm, pool: 2}\n", "plugins[0].pool: unknown key"},
		{"wrong type", "model:\n  threads: many\n", `model.threads: "many" is not an integer`},
		{"wrong shape", "server: [a, b]\n", "server: expected a mapping of keys, got a list"},
		{"timestamp for a string", "log:\n  level: 2025-01-02\n", "a timestamp (quote it to make it a string)"},
		{"duplicate key", "log:\n  level: debug\n  level: warn\n", `mapping key "level" already defined at line 2`},
		{"duplicate section", "log: {level: debug}\nlog: {format: json}\n", `mapping key "log" already defined`},
		{"duplicate plugin field", "plugins:\n  - id: a\n    id: b\n    module: a.wasm\n", `mapping key "id" already defined`},
		{"huge integer", "model:\n  threads: 99999999999999999999999999\n", "model.threads: 1e+26 is not an integer"},
		{"huge duration", "server:\n  drain_timeout: 99999999999h\n", "is not a duration"},
		{"huge size", "model:\n  kv_cache: 99999999999PiB\n", "is not a size"},
		{"huge pool", "plugins:\n  - {id: a, module: a.wasm, pool_size: 1e30}\n", "plugins[0].pool_size: 1e+30 is not an integer"},
		{"huge string is clipped", "log:\n  level: " + huge + "\n", `log.level: "xxxxxxxxxx`},
		{"huge key is clipped", "? " + huge + "\n: 1\n", "xxxxx…: unknown key"},
		{"not UTF-8", "log:\n  level: \xff\xfe\n", "invalid leading UTF-8 octet"},
		{"NUL byte", "log:\n  level: de\x00bug\n", "control characters are not allowed"},
		{"tab indentation", "log:\n\tlevel: debug\n", "found character that cannot start any token"},
		{"a scalar document", "hello\n", "cannot unmarshal"},
		{"a list document", "- a\n- b\n", "cannot unmarshal"},
		{"billion laughs", laughs(9, false), "the file holds 12345679024 values (aliases counted each time they are used)"},
		{"billion laughs in a plugin's config", laughs(9, true), "a configuration may hold at most 1000000"},
		{"fewer laughs", laughs(4, false), "excessive aliasing"},
		{"nested past the parser's bound", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "exceeded max depth"},
		{"deeply nested mappings", strings.Repeat("a: {", 5000) + "b: 1" + strings.Repeat("}", 5000) + "\n",
			"line 1: a.a.a.a"},
		{"deeply nested plugin config", "plugins:\n  - id: a\n    module: a.wasm\n    config: {x: " +
			strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "}\n",
			"line 4: plugins[0].config.x[0][0]"},
		{"nested through aliases", "plugins:\n  - id: a\n    module: a.wasm\n    config:\n" +
			"      a: &a " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n" +
			"      b: " + strings.Repeat("[", 30) + "*a" + strings.Repeat("]", 30) + "\n",
			"nests mappings and lists more than 64 levels deep"},
		{"a mapping too large to check", bigMapping(100000), "a mapping of 100001 keys"},
		// yaml.v3 drops an entry whose key is null without a word.
		{"a null key", "log:\n  ~: debug\n", `line 2: a mapping key is null ("~")`},
		{"an empty key", "plugins:\n  - id: a\n    module: a.wasm\n    config:\n      ?\n      : 2\n", "line 5: a mapping key is null"},
		{"a null key in a plugin's config", "plugins:\n  - id: a\n    module: a.wasm\n    config:\n      null: 2\n", `line 5: a mapping key is null ("null")`},
		{"a quoted null is a name", "plugins:\n  - id: a\n    module: a.wasm\n    config:\n      \"~\": 2\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			c, err := config.Parse([]byte(tt.yaml))
			took := time.Since(start)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Equal(t, config.Config{}, c)
			require.Contains(t, err.Error(), tt.want)
			require.Less(t, len(err.Error()), 4096, "problems quote what is wrong, not all of it")
			t.Logf("%s: %v", tt.name, took) // a quadratic case would hang until the test's timeout
		})
	}
}

// TestParseShapeBounds: a plugin config just inside the bounds loads, so that they
// refuse only what no configuration needs.
func TestParseShapeBounds(t *testing.T) {
	t.Parallel()
	deep := "plugins:\n  - id: a\n    module: a.wasm\n    config: {x: " +
		strings.Repeat("[", config.MaxDepth-5) + strings.Repeat("]", config.MaxDepth-5) + "}\n"
	_, err := config.Parse([]byte(deep))
	require.NoError(t, err)
	_, err = config.Parse([]byte(bigMapping(10000)))
	require.NoError(t, err)
}

// TestLoadRefusesHugeFiles: a file past MaxFileBytes (a model renamed over the
// configuration, say) is refused without being read.
func TestLoadRefusesHugeFiles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ulan.yaml")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(int64(config.MaxFileBytes)+1)) // sparse: no disk used
	require.NoError(t, f.Close())
	_, err = config.Load(config.Sources{File: path})
	require.Equal(t, config.Problems{{"", fmt.Sprintf("config file %s is %d bytes; a configuration file may be at most 64MiB",
		path, int64(config.MaxFileBytes)+1)}}, problems(t, err))
}

// TestLoadFollowsSymlinks: a ConfigMap's file is a symlink to a regular file, which is
// read.
func TestLoadFollowsSymlinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "real.yaml"), []byte("log: {level: debug}\n"), 0o600))
	require.NoError(t, os.Symlink("real.yaml", filepath.Join(dir, "ulan.yaml")))
	c, err := config.Load(config.Sources{File: filepath.Join(dir, "ulan.yaml")})
	require.NoError(t, err)
	require.Equal(t, "debug", c.Log.Level)
}

// TestLoadText: LoadText reads the text given in place of the file, with the
// environment and flags layered on top as Load does.
func TestLoadText(t *testing.T) {
	t.Parallel()
	src := config.Sources{File: filepath.Join(t.TempDir(), "absent.yaml"), Env: []string{"ULAN_LOG_FORMAT=json"}}
	c, err := config.LoadText(src, []byte("log: {level: debug, format: text}\n"))
	require.NoError(t, err)
	require.Equal(t, "debug", c.Log.Level)
	require.Equal(t, "json", c.Log.Format, "the environment overrides the text")
	_, err = config.LoadText(src, []byte("log: [\n"))
	require.Error(t, err)
}

// TestParseTooManyValues: a file past the bound on values (lowered here, so
// that the file is small; not parallel, as it changes the bound) is refused,
// naming the count and the bound.
func TestParseTooManyValues(t *testing.T) {
	defer config.SetMaxNodes(1000)()
	yaml := "plugins:\n  - id: a\n    module: a.wasm\n    config: {x: [" + strings.Repeat("1,", 1100) + "1]}\n"
	_, err := config.Parse([]byte(yaml))
	require.ErrorContains(t, err, "a configuration may hold at most 1000")
	_, err = config.Parse([]byte("plugins:\n  - id: a\n    module: a.wasm\n    config: {x: [" + strings.Repeat("1,", 900) + "1]}\n"))
	require.NotContains(t, fmt.Sprint(err), "a configuration may hold at most")
}
