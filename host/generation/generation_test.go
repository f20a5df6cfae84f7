package generation_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// module writes testdata/any.wasm with the manifest of a plugin of the given kind into
// dir, under name, and returns its path and SHA-256. needs is the manifest's needs
// object; "" means none.
func module(t *testing.T, dir, name string, kind plugin.Kind, needs string) (string, string) {
	t.Helper()
	wasm, err := os.ReadFile("testdata/any.wasm")
	require.NoError(t, err)
	if needs == "" {
		needs = "{}"
	}
	man := fmt.Sprintf(`{"abi":1,"name":"test-%s","version":"1.2.3","kind":%q,"needs":%s,`+
		`"config_schema":{"type":"object","properties":{"refuse":{"type":"boolean"},"n":{"type":"integer"}},"additionalProperties":false}}`,
		name, kind, needs)
	wasm, err = plugin.EmbedManifest(wasm, []byte(man))
	require.NoError(t, err)
	path := filepath.Join(dir, name+".wasm")
	require.NoError(t, os.WriteFile(path, wasm, 0o600))
	sum := sha256.Sum256(wasm)
	return path, hex.EncodeToString(sum[:])
}

func problems(t *testing.T, err error) config.Problems {
	t.Helper()
	var ps config.Problems
	require.ErrorAs(t, err, &ps)
	return ps
}

func TestBuild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok, tokSum := module(t, dir, "tok", plugin.KindTokenizer, "")
	smp, _ := module(t, dir, "smp", plugin.KindSampler, `{"memory_pages":4,"call_timeout_ms":20,"imports":["log","clock"]}`)
	hook, hookSum := module(t, dir, "hook", plugin.KindHook, `{"trust":"trusted"}`)

	cfg := config.Default()
	cfg.Plugins = []config.Plugin{
		{ID: "tok", Module: tok, SHA256: tokSum, FailurePolicy: "fallback", Config: map[string]any{"n": 3}},
		{ID: "smp", Module: smp, PoolSize: 1, Grants: config.Grants{MemoryPages: 4, CallTimeout: 20 * time.Millisecond, Imports: []string{"clock"}}},
		{ID: "pii", Module: hook, FailurePolicy: "fail_open", PoolSize: 3, Grants: config.Grants{Trust: "trusted"}},
	}
	cfg.Pipelines = []config.Pipeline{
		{Name: "default", Hooks: []string{"pii"}},
		{Name: "full", Tokenizer: "tok", Sampler: "smp", Hooks: []string{"pii"}, Default: true},
		{Name: "bare"},
	}
	g, err := generation.Build(context.Background(), cfg, generation.Deps{Number: 3, Logger: quiet})
	require.NoError(t, err)
	defer g.Close(context.Background())

	require.Equal(t, uint64(3), g.Number())
	require.False(t, g.BuiltAt().IsZero())
	require.GreaterOrEqual(t, g.Took(), time.Duration(0))

	ps := g.Plugins()
	require.Len(t, ps, 3)
	require.Equal(t, []string{"tok", "smp", "pii"}, []string{ps[0].ID, ps[1].ID, ps[2].ID})
	require.Equal(t, plugin.KindTokenizer, ps[0].Kind())
	require.Equal(t, plugin.KindSampler, ps[1].Kind())
	require.Equal(t, plugin.KindHook, ps[2].Kind())
	require.Equal(t, tokSum, ps[0].SHA256)
	require.Equal(t, hookSum, ps[2].SHA256, "the hash is computed when none is configured")
	require.Equal(t, "test-hook", ps[2].Manifest.Name)
	require.Equal(t, "1.2.3", ps[2].Manifest.Version)
	require.Equal(t, 1, ps[2].Manifest.ABI)
	require.Equal(t, []generation.Policy{generation.Fallback, generation.FailClosed, generation.FailOpen},
		[]generation.Policy{ps[0].Policy, ps[1].Policy, ps[2].Policy})
	require.Equal(t, []int{2, 1, 3}, []int{ps[0].PoolSize, ps[1].PoolSize, ps[2].PoolSize})
	require.Equal(t, 3, ps[2].Runtime.Stats().Size, "the pool is warm")

	// The plugins run: the hook opens a session.
	res, err := ps[2].Runtime.Call(context.Background(), "hook_open", 0, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{0}, res)

	full, ok := g.Pipeline("full")
	require.True(t, ok)
	require.Same(t, ps[0], full.Tokenizer)
	require.Same(t, ps[1], full.Sampler)
	require.Equal(t, []*generation.Plugin{ps[2]}, full.Hooks)
	require.Same(t, full, g.Default(), "the pipeline marked default wins over the one named default")
	bare, ok := g.Pipeline("bare")
	require.True(t, ok)
	require.Nil(t, bare.Tokenizer)
	require.Nil(t, bare.Sampler)
	require.Empty(t, bare.Hooks)
	require.Len(t, g.Pipelines(), 3)
	p, ok := g.Plugin("smp")
	require.True(t, ok)
	require.Same(t, ps[1], p)
	_, ok = g.Plugin("nope")
	require.False(t, ok)

	require.NoError(t, g.Close(context.Background()))
	require.NoError(t, g.Close(context.Background()), "Close twice")
}

func TestBuildDefaultPipeline(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	g, err := generation.Build(context.Background(), cfg, generation.Deps{})
	require.NoError(t, err, "no plugins is valid")
	require.Equal(t, uint64(1), g.Number())
	require.Empty(t, g.Plugins())
	require.Empty(t, g.Pipelines())
	require.Nil(t, g.Default())
	require.NoError(t, g.Close(context.Background()))

	cfg.Pipelines = []config.Pipeline{{Name: "other"}, {Name: "default"}}
	g, err = generation.Build(context.Background(), cfg, generation.Deps{})
	require.NoError(t, err, "pipelines of built-ins only need no plugins")
	require.Equal(t, "default", g.Default().Name, "without a pipeline marked default, the one named default")
	require.NoError(t, g.Close(context.Background()))

	cfg.Pipelines = []config.Pipeline{{Name: "other"}}
	g, err = generation.Build(context.Background(), cfg, generation.Deps{})
	require.NoError(t, err)
	require.Nil(t, g.Default())
}

func TestBuildProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok, _ := module(t, dir, "tok", plugin.KindTokenizer, "")
	smp, _ := module(t, dir, "smp", plugin.KindSampler, "")
	hook, _ := module(t, dir, "hook", plugin.KindHook, "")
	needy, _ := module(t, dir, "needy", plugin.KindHook,
		`{"memory_pages":2048,"call_timeout_ms":5000,"imports":["clock","metric"],"trust":"trusted"}`)
	bare := filepath.Join(dir, "bare.wasm") // no manifest
	raw, err := os.ReadFile("testdata/any.wasm")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bare, raw, 0o600))
	notWasm := filepath.Join(dir, "text.wasm")
	require.NoError(t, os.WriteFile(notWasm, []byte("hello, world"), 0o600))
	missing := filepath.Join(dir, "missing.wasm")
	wrongSum := strings.Repeat("ab", 32)

	cfg := config.Default()
	cfg.Plugins = []config.Plugin{
		{ID: "missing", Module: missing},
		{ID: "changed", Module: tok, SHA256: wrongSum},
		{ID: "bare", Module: bare},
		{ID: "text", Module: notWasm, SHA256: wrongSum},
		{ID: "dir", Module: dir},
		{ID: "needy", Module: needy},
		{ID: "refuses", Module: hook, Config: map[string]any{"refuse": true}},
		{ID: "schema", Module: hook, Config: map[string]any{"colour": "red"}},
		{ID: "tok-open", Module: tok, FailurePolicy: "fail_open"},
		{ID: "smp-open", Module: smp, FailurePolicy: "fail_open"},
		{ID: "hook-fallback", Module: hook, FailurePolicy: "fallback"},
		{ID: "tok", Module: tok},
		{ID: "hook", Module: hook},
	}
	cfg.Pipelines = []config.Pipeline{
		{Name: "mixed-up", Tokenizer: "hook", Sampler: "tok", Hooks: []string{"hook", "tok", "missing"}},
	}
	_, err = generation.Build(context.Background(), cfg, generation.Deps{Logger: quiet})
	got := problems(t, err)
	want := config.Problems{
		{Key: "plugins[0].module", Message: "cannot read " + missing + ": no such file or directory"},
		{Key: "plugins[1].sha256", Message: tok + " has SHA-256 "},
		{Key: "plugins[2].module", Message: bare + " has no ulan.manifest section, so its kind is unknown: build it with `ulan plugin build`, which embeds the manifest"},
		{Key: "plugins[3].module", Message: notWasm + " is not a WebAssembly binary"},
		{Key: "plugins[4].module", Message: dir + " is not a regular file"},
		{Key: "plugins[5].grants.memory_pages", Message: "the plugin needs 2048 pages of 64KiB, and 1024 are granted"},
		{Key: "plugins[5].grants.call_timeout", Message: "the plugin needs calls of up to 5s, and 1s is granted"},
		{Key: "plugins[5].grants.imports", Message: `the plugin needs the "clock" import: add clock to grant it`},
		{Key: "plugins[5].grants.imports", Message: `the plugin needs the "metric" import, which this host does not provide`},
		{Key: "plugins[5].grants.trust", Message: "the plugin asks for the trusted tier (no deadline interruption): grant it with trust: trusted"},
		{Key: "plugins[6]", Message: hook + " did not load: plugin refuses: ulan_init refused the config: status 1: the test plugin refuses this config"},
		{Key: "plugins[7]", Message: hook + " did not load: plugin schema: config: at /: "},
		{Key: "plugins[8].failure_policy", Message: "fail_open is not allowed for a tokenizer: text cannot pass untokenized (use fail_closed or fallback)"},
		{Key: "plugins[9].failure_policy", Message: "fail_open is not allowed for a sampler: use fallback, which samples that step with the built-in sampler"},
		{Key: "plugins[10].failure_policy", Message: "fallback is not allowed for a hook: there is no built-in hook to fall back to (use fail_closed or fail_open)"},
		{Key: "pipelines[0].tokenizer", Message: `plugin "hook" is a hook, not a tokenizer`},
		{Key: "pipelines[0].sampler", Message: `plugin "tok" is a tokenizer, not a sampler`},
		{Key: "pipelines[0].hooks[1]", Message: `plugin "tok" is a tokenizer, not a hook`},
	}
	require.Len(t, got, len(want), "%v", got)
	for i, w := range want {
		require.Equal(t, w.Key, got[i].Key, "problem %d: %v", i, got[i])
		// Messages that carry text from elsewhere (a hash, the schema validator's
		// wording) are checked by their start.
		require.True(t, strings.HasPrefix(got[i].Message, w.Message), "problem %d:\n got %q\nwant %q…", i, got[i].Message, w.Message)
	}
	require.Contains(t, got[11].Message, "colour", "the schema problem names the field")
}

func TestBuildRefusesAnInvalidConfig(t *testing.T) {
	t.Parallel()
	// Build checks what Validate checks of the plugin keys before it touches a file.
	cfg := config.Default()
	cfg.Plugins = []config.Plugin{{ID: "a", Module: "/nonexistent/a.wasm", FailurePolicy: "sometimes"}}
	cfg.Pipelines = []config.Pipeline{{Name: "p", Hooks: []string{"b"}}}
	_, err := generation.Build(context.Background(), cfg, generation.Deps{})
	require.Equal(t, config.Problems{
		{Key: "plugins[0].failure_policy", Message: `"sometimes" is not one of fail_closed, fail_open, fallback`},
		{Key: "pipelines[0].hooks[0]", Message: `no plugin has id "b"`},
	}, problems(t, err))
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hook, _ := module(t, dir, "hook", plugin.KindHook, "")
	cfg := config.Default()
	cfg.Plugins = []config.Plugin{{ID: "pii", Module: hook, PoolSize: 1}}
	require.NoError(t, generation.DryRun(context.Background(), cfg, generation.Deps{Logger: quiet}))

	cfg.Plugins[0].Config = map[string]any{"refuse": true}
	require.Equal(t, "plugins[0]", problems(t, generation.DryRun(context.Background(), cfg, generation.Deps{Logger: quiet}))[0].Key)
}

func TestBuildWithCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hook, _ := module(t, dir, "hook", plugin.KindHook, "")
	cacheDir := filepath.Join(dir, "cache")
	cache, err := plugin.OpenCache(cacheDir)
	require.NoError(t, err)
	defer cache.Close(context.Background())
	cfg := config.Default()
	cfg.Plugins = []config.Plugin{{ID: "pii", Module: hook, PoolSize: 1}}
	for range 2 { // the second build reads the compilation back
		g, err := generation.Build(context.Background(), cfg, generation.Deps{Cache: cache, Logger: quiet})
		require.NoError(t, err)
		require.NoError(t, g.Close(context.Background()))
	}
	entries, err := os.ReadDir(cacheDir)
	require.NoError(t, err)
	require.NotEmpty(t, entries, "the compilation went to the on-disk cache")
}

// TestNamesMatchThePluginRuntime keeps config's lists of names in step with what
// host/plugin and this package accept.
func TestNamesMatchThePluginRuntime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, imp := range config.ImportNames {
		path, _ := module(t, dir, "needs-"+imp, plugin.KindHook, fmt.Sprintf(`{"imports":[%q]}`, imp))
		cfg := config.Default()
		cfg.Plugins = []config.Plugin{{ID: "p", Module: path, PoolSize: 1, Grants: config.Grants{Imports: []string{imp}}}}
		g, err := generation.Build(context.Background(), cfg, generation.Deps{Logger: quiet})
		require.NoError(t, err, "import %s: granting it satisfies a plugin that needs it", imp)
		require.NoError(t, g.Close(context.Background()))
	}
	for _, tr := range config.TrustLevels {
		path, _ := module(t, dir, "trust-"+tr, plugin.KindHook, fmt.Sprintf(`{"trust":%q}`, tr))
		cfg := config.Default()
		cfg.Plugins = []config.Plugin{{ID: "p", Module: path, PoolSize: 1, Grants: config.Grants{Trust: tr}}}
		g, err := generation.Build(context.Background(), cfg, generation.Deps{Logger: quiet})
		require.NoError(t, err, "trust %s", tr)
		require.NoError(t, g.Close(context.Background()))
	}
	for _, name := range config.FailurePolicies {
		p, err := generation.ParsePolicy(name)
		require.NoError(t, err)
		require.Equal(t, name, p.String())
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	p, err := generation.ParsePolicy("")
	require.NoError(t, err)
	require.Equal(t, generation.FailClosed, p, "the default")
	_, err = generation.ParsePolicy("fail_opn")
	require.EqualError(t, err, `"fail_opn" is not a failure policy (fail_closed, fail_open or fallback)`)

	allowed := map[generation.Policy][]plugin.Kind{
		generation.FailClosed: {plugin.KindTokenizer, plugin.KindSampler, plugin.KindHook},
		generation.FailOpen:   {plugin.KindHook},
		generation.Fallback:   {plugin.KindTokenizer, plugin.KindSampler},
	}
	for policy, kinds := range allowed {
		for _, k := range []plugin.Kind{plugin.KindTokenizer, plugin.KindSampler, plugin.KindHook} {
			err := policy.Allows(k)
			if slices.Contains(kinds, k) {
				require.NoError(t, err, "%v for a %s", policy, k)
			} else {
				require.Error(t, err, "%v for a %s", policy, k)
			}
		}
	}
	require.Error(t, generation.Policy(0).Allows(plugin.KindHook))
	require.Equal(t, "Policy(9)", generation.Policy(9).String())
}

func TestBuildIsCancellable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hook, _ := module(t, dir, "hook", plugin.KindHook, "")
	cfg := config.Default()
	cfg.Plugins = []config.Plugin{{ID: "pii", Module: hook}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := generation.Build(ctx, cfg, generation.Deps{Logger: quiet})
	ps := problems(t, err)
	require.Len(t, ps, 1)
	require.Equal(t, "plugins[0]", ps[0].Key)
	require.True(t, errors.Is(ctx.Err(), context.Canceled))
}

// TestBuiltinModules: "builtin:NAME" loads the module the server embeds under
// NAME, and an unknown name is a problem naming it.
func TestBuiltinModules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, _ := module(t, dir, "tok", plugin.KindTokenizer, "")
	wasm, err := os.ReadFile(path)
	require.NoError(t, err)
	deps := generation.Deps{Logger: quiet, Builtins: map[string][]byte{"tokenizer": wasm}}
	g, err := generation.Build(context.Background(), config.Config{Plugins: []config.Plugin{{ID: "tok", Module: "builtin:tokenizer"}}}, deps)
	require.NoError(t, err)
	defer g.Close(context.Background())
	p, ok := g.Plugin("tok")
	require.True(t, ok)
	require.Equal(t, plugin.KindTokenizer, p.Kind())
	_, err = generation.Build(context.Background(), config.Config{Plugins: []config.Plugin{{ID: "x", Module: "builtin:nope"}}}, deps)
	require.Equal(t, config.Problems{{Key: "plugins[0].module", Message: `there is no built-in plugin "nope"`}}, problems(t, err))
}
