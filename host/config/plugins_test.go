package config_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

const sha = "3b1f0a5c9e2d4b6a8c0e1f3a5b7d9c2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c"

func TestParsePlugins(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(`
plugins:
  - id: pii
    module: /etc/ulan/plugins/pii.wasm
    sha256: ` + sha + `
    config: {patterns: ["\\d{3}-\\d{2}-\\d{4}"], max: 3, ratio: 0.5, on: true, none: ~, nested: {a: [1, {b: c}]}}
    grants: {memory_pages: 128, call_timeout: 2ms, imports: [log, clock], trust: sandboxed}
    failure_policy: fail_open
    pool_size: 4
  - id: deepseek-tokenizer
    module: tok.wasm
    failure_policy: fallback
  - id: standard.v2
    module: smp.wasm
    grants:
pipelines:
  - name: default
    tokenizer: deepseek-tokenizer
    sampler: standard.v2
    hooks: [pii]
  - name: raw
    default: true
  - name: empty-hooks
    hooks: []
`))
	require.NoError(t, err)
	require.Equal(t, []config.Plugin{
		{
			ID: "pii", Module: "/etc/ulan/plugins/pii.wasm", SHA256: sha,
			Config: map[string]any{
				"patterns": []any{`\d{3}-\d{2}-\d{4}`}, "max": 3, "ratio": 0.5, "on": true, "none": nil,
				"nested": map[string]any{"a": []any{1, map[string]any{"b": "c"}}},
			},
			Grants:        config.Grants{MemoryPages: 128, CallTimeout: 2 * time.Millisecond, Imports: []string{"log", "clock"}, Trust: "sandboxed"},
			FailurePolicy: "fail_open",
			PoolSize:      4,
		},
		{ID: "deepseek-tokenizer", Module: "tok.wasm", FailurePolicy: "fallback"},
		{ID: "standard.v2", Module: "smp.wasm"},
	}, c.Plugins)
	require.Equal(t, []config.Pipeline{
		{Name: "default", Tokenizer: "deepseek-tokenizer", Sampler: "standard.v2", Hooks: []string{"pii"}},
		{Name: "raw", Default: true},
		{Name: "empty-hooks"},
	}, c.Pipelines)
}

func TestParsePluginsEmpty(t *testing.T) {
	t.Parallel()
	for _, yaml := range []string{"plugins: []\npipelines: []\n", "plugins:\npipelines: ~\n"} {
		c, err := config.Parse([]byte(yaml))
		require.NoError(t, err, yaml)
		require.Equal(t, config.Default(), c, yaml)
	}
}

func TestParsePluginProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       config.Problems
	}{
		{
			name: "not a list",
			yaml: "plugins: {id: a}\npipelines: x\n",
			want: config.Problems{
				{"pipelines", "expected a list of mappings, got a string"},
				{"plugins", "expected a list of mappings, got a mapping"},
			},
		},
		{
			name: "empty mapping where a list belongs",
			yaml: "plugins: {}\n",
			want: config.Problems{{"plugins", "expected a list of mappings, got a mapping"}},
		},
		{
			name: "element not a mapping",
			yaml: "plugins:\n  - a.wasm\n  -\n",
			want: config.Problems{
				{"plugins[0]", "expected a mapping of keys, got a string"},
				{"plugins[1]", "expected a mapping of keys, got nothing"},
			},
		},
		{
			name: "unknown keys in an element",
			yaml: "plugins:\n  - id: a\n    modul: a.wasm\n    grants: {trusted: yes}\n    colour: red\n",
			want: config.Problems{
				{"plugins[0].grants.trusted", "unknown key (did you mean plugins[0].grants.trust?)"},
				{"plugins[0].colour", "unknown key"},
				{"plugins[0].modul", "unknown key (did you mean plugins[0].module?)"},
				{"plugins[0].module", "is required: the path of the plugin's .wasm file"},
			},
		},
		{
			name: "wrong types name their field",
			yaml: `
plugins:
  - id: [a]
    module: a.wasm
    config: [1]
    grants: {memory_pages: lots, call_timeout: soon, imports: clock, trust: {}}
    pool_size: 1.5
  - id: b
    module: b.wasm
    grants: 4
    config: {x: .nan, y: [1, .inf]}
pipelines:
  - name: p
    hooks: [b, {x: 1}]
    default: "yes"
`,
			want: config.Problems{
				{"plugins[0].id", "expected a string, got a list"},
				{"plugins[0].config", "expected a mapping, got a list"},
				{"plugins[0].grants.memory_pages", `"lots" is not an integer`},
				{"plugins[0].grants.call_timeout", `"soon" is not a duration (use a value such as 30s, 2m or 1h30m)`},
				{"plugins[0].grants.imports", "expected a list of strings, got a string"},
				{"plugins[0].grants.trust", "expected a string, got a mapping"},
				{"plugins[0].pool_size", "1.5 is not an integer"},
				{"plugins[1].config.x", "NaN cannot be passed to a plugin as JSON"},
				{"plugins[1].config.y[1]", "+Inf cannot be passed to a plugin as JSON"},
				{"plugins[1].grants", "expected a mapping of keys, got a number"},
				{"pipelines[0].hooks[1]", "expected a string, got a mapping"},
				{"pipelines[0].default", "expected true or false, got a string"},
			},
		},
		{
			name: "values",
			yaml: `
plugins:
  - id: Pii
    module: ""
    sha256: 3B1F
    failure_policy: fail_opn
    pool_size: 65
    grants: {memory_pages: 16385, call_timeout: 2m, imports: [log, metric], trust: root}
  - module: b.wasm
    pool_size: -1
    grants: {memory_pages: -1, call_timeout: -1s}
  - id: c
    module: c.wasm
    sha256: ` + strings.ToUpper(sha) + `
  - id: c
    module: c2.wasm
`,
			want: config.Problems{
				{"plugins[0].id", `"Pii" is not a valid id (1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit)`},
				{"plugins[0].module", "is required: the path of the plugin's .wasm file"},
				{"plugins[0].sha256", `"3B1F" is not a SHA-256: use the 64 lowercase hex digits sha256sum prints`},
				{"plugins[0].failure_policy", `"fail_opn" is not one of fail_closed, fail_open, fallback`},
				{"plugins[0].pool_size", "65 must be between 0 (the default, 2) and 64"},
				{"plugins[0].grants.memory_pages", "16385 must be between 0 (the default, 1024 pages of 64KiB) and 16384 (1GiB)"},
				{"plugins[0].grants.call_timeout", "2m0s must be between 0 (the default, 1s) and 1m"},
				{"plugins[0].grants.imports[1]", `"metric" is not an import the host grants (clock, log, set_error)`},
				{"plugins[0].grants.trust", `"root" is not one of sandboxed, trusted`},
				{"plugins[1].id", "is required: the name pipelines use for the plugin"},
				{"plugins[1].pool_size", "-1 must be between 0 (the default, 2) and 64"},
				{"plugins[1].grants.memory_pages", "-1 must be between 0 (the default, 1024 pages of 64KiB) and 16384 (1GiB)"},
				{"plugins[1].grants.call_timeout", "-1s must be between 0 (the default, 1s) and 1m"},
				{"plugins[2].sha256", `"` + strings.ToUpper(sha) + `" is not a SHA-256: use the 64 lowercase hex digits sha256sum prints`},
				{"plugins[3].id", `"c" is already the id of plugins[2]`},
			},
		},
		{
			name: "pipelines",
			yaml: `
plugins:
  - {id: tok, module: tok.wasm}
  - {id: pii, module: pii.wasm}
pipelines:
  - name: default
    tokenizer: nope
    sampler: ""
    hooks: [pii, pii, "", Bad]
    default: true
  - name: default
    default: true
  - name: -x
  - tokenizer: tok
  - name: many
    hooks: [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17]
`,
			want: func() config.Problems {
				ps := config.Problems{
					{"pipelines[0].tokenizer", `no plugin has id "nope"`},
					{"pipelines[0].hooks[1]", `"pii" is already pipelines[0].hooks[0]; a hook runs once per pipeline`},
					{"pipelines[0].hooks[2]", "must name a plugin"},
					{"pipelines[0].hooks[3]", `"Bad" is not a valid plugin id (1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit)`},
					{"pipelines[1].name", `"default" is already the name of pipelines[0]`},
					{"pipelines[1].default", "pipelines[0] is already the default; at most one pipeline may be"},
					{"pipelines[2].name", `"-x" is not a valid name (1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit)`},
					{"pipelines[3].name", "is required: the name requests select the pipeline by"},
					{"pipelines[4].hooks", "has 17 hooks; at most 16"},
				}
				for i := 1; i <= 17; i++ {
					ps = append(ps, config.Problem{Key: "pipelines[4].hooks[" + strconv.Itoa(i-1) + "]", Message: `no plugin has id "a` + strconv.Itoa(i) + `"`})
				}
				return ps
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse([]byte(tt.yaml))
			require.Equal(t, tt.want, problems(t, err))
			require.Equal(t, config.Config{}, c)
		})
	}
}

func TestPluginsFromFileOnly(t *testing.T) {
	t.Parallel()
	fs, keys := flags(t)
	keys["plugins"] = "pipelines" // a flag mapped to a list key, which serve never does
	fs.String("plugins", "", "")
	require.NoError(t, fs.Parse([]string{"--plugins=x"}))
	_, err := config.Load(config.Sources{
		Env:   []string{"ULAN_PLUGINS=a.wasm", "ULAN_PIPELINES="},
		Flags: fs, FlagKeys: keys,
	})
	require.Equal(t, config.Problems{
		{"pipelines", "can be set only in the YAML file (--config), not from the environment or a flag (from ULAN_PIPELINES)"},
		{"plugins", "can be set only in the YAML file (--config), not from the environment or a flag (from ULAN_PLUGINS)"},
		{"pipelines", "can be set only in the YAML file (--config), not from the environment or a flag (from --plugins)"},
	}, problems(t, err))
}

func TestValidatePlugins(t *testing.T) {
	t.Parallel()
	// Zero values mean the defaults, so a Config built in Go needs only ids, modules
	// and names.
	c := config.Default()
	c.Plugins = []config.Plugin{{ID: "a", Module: "a.wasm"}, {ID: "b", Module: "b.wasm", Grants: config.Grants{Imports: []string{"clock"}}}}
	c.Pipelines = []config.Pipeline{{Name: "p", Tokenizer: "a", Sampler: "b", Hooks: []string{"a", "b"}, Default: true}}
	require.NoError(t, c.Validate())

	c.Pipelines = append(c.Pipelines, config.Pipeline{Name: "q", Sampler: "z", Default: true})
	require.Equal(t, config.Problems{
		{"pipelines[1].sampler", `no plugin has id "z"`},
		{"pipelines[1].default", "pipelines[0] is already the default; at most one pipeline may be"},
	}, problems(t, c.Validate()))
}

func TestNamePattern(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "0", "pii", "deepseek-tokenizer", "standard.v2", "a_b", strings.Repeat("x", 64)} {
		require.True(t, config.NamePattern.MatchString(ok), ok)
	}
	for _, bad := range []string{"", "A", "-a", ".a", "a b", "a/b", strings.Repeat("x", 65), "é"} {
		require.False(t, config.NamePattern.MatchString(bad), bad)
	}
}
