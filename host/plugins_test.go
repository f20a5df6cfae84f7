package host_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// pluginModule writes host/generation's test module with a manifest of the given kind
// into dir and returns its path.
func pluginModule(t *testing.T, dir, name string, kind plugin.Kind) string {
	t.Helper()
	wasm, err := os.ReadFile("generation/testdata/any.wasm")
	require.NoError(t, err)
	wasm, err = plugin.EmbedManifest(wasm, fmt.Appendf(nil, `{"abi":1,"name":"test-%s","version":"0.1.0","kind":%q}`, name, kind))
	require.NoError(t, err)
	path := filepath.Join(dir, name+".wasm")
	require.NoError(t, os.WriteFile(path, wasm, 0o600))
	return path
}

func TestPluginService(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok := pluginModule(t, dir, "tok", plugin.KindTokenizer)
	hook := pluginModule(t, dir, "pii", plugin.KindHook)
	cfg := config.Default()
	cfg.Plugins = []config.Plugin{
		{ID: "tok", Module: tok, FailurePolicy: "fallback", PoolSize: 1},
		{ID: "pii", Module: hook},
	}
	cfg.Pipelines = []config.Pipeline{
		{Name: "default", Tokenizer: "tok", Hooks: []string{"pii"}},
		{Name: "plain"},
	}
	deps := generation.Deps{Logger: quietLogger()}
	gen, err := generation.Build(context.Background(), cfg, deps)
	require.NoError(t, err)
	t.Cleanup(func() { _ = gen.Close(context.Background()) })
	r := start(t, cfg, host.WithGeneration(gen, deps))
	c := ulanv1connect.NewPluginServiceClient(http.DefaultClient, r.url)
	ctx := context.Background()

	list, err := c.ListPlugins(ctx, connect.NewRequest(&ulanv1.ListPluginsRequest{}))
	require.NoError(t, err)
	require.Equal(t, uint64(1), list.Msg.Generation)
	require.Len(t, list.Msg.Plugins, 2)
	p := list.Msg.Plugins[0]
	require.Equal(t, "tok", p.Id)
	require.Equal(t, ulanv1.PluginKind_PLUGIN_KIND_TOKENIZER, p.Kind)
	require.Equal(t, "test-tok", p.Name)
	require.Equal(t, "0.1.0", p.Version)
	require.Equal(t, uint32(1), p.AbiVersion)
	require.Len(t, p.Sha256, 64)
	require.Equal(t, ulanv1.FailurePolicy_FAILURE_POLICY_FALLBACK, p.FailurePolicy)
	require.Equal(t, uint32(1), p.PoolSize)
	p = list.Msg.Plugins[1]
	require.Equal(t, ulanv1.PluginKind_PLUGIN_KIND_HOOK, p.Kind)
	require.Equal(t, ulanv1.FailurePolicy_FAILURE_POLICY_FAIL_CLOSED, p.FailurePolicy, "the default")
	require.Equal(t, uint32(2), p.PoolSize, "the default")
	require.Len(t, list.Msg.Pipelines, 2)
	require.Equal(t, "default", list.Msg.Pipelines[0].Name)
	require.Equal(t, "tok", list.Msg.Pipelines[0].Tokenizer)
	require.Empty(t, list.Msg.Pipelines[0].Sampler)
	require.Equal(t, []string{"pii"}, list.Msg.Pipelines[0].Hooks)
	require.True(t, list.Msg.Pipelines[0].Default, "the pipeline named default is the default")
	require.False(t, list.Msg.Pipelines[1].Default)

	status, err := c.GetStatus(ctx, connect.NewRequest(&ulanv1.GetStatusRequest{}))
	require.NoError(t, err)
	require.Equal(t, uint64(1), status.Msg.Generation)
	require.Equal(t, gen.BuiltAt().UnixNano(), status.Msg.GenerationSince.AsTime().UnixNano())
	require.True(t, status.Msg.LastReload.Ok)
	require.Equal(t, "startup", status.Msg.LastReload.Trigger)
	require.Equal(t, gen.Took(), status.Msg.LastReload.Took.AsDuration())

	_, err = c.Reload(ctx, connect.NewRequest(&ulanv1.ReloadRequest{}))
	require.Equal(t, connect.CodeUnimplemented, connect.CodeOf(err))
	require.Contains(t, err.Error(), "restart")

	validate := func(yaml string) *ulanv1.ValidateConfigResponse {
		t.Helper()
		res, err := c.ValidateConfig(ctx, connect.NewRequest(&ulanv1.ValidateConfigRequest{Yaml: yaml}))
		require.NoError(t, err)
		return res.Msg
	}
	// A file that adds a plugin and changes a key that needs a restart: the dry run
	// loads the plugin, and plugins are live keys.
	res := validate(fmt.Sprintf("server:\n  listen: 127.0.0.1:0\nlog:\n  level: debug\nplugins:\n  - {id: pii, module: %q, failure_policy: fail_open}\n", hook))
	require.Empty(t, res.Problems)
	require.True(t, res.Valid)
	require.Equal(t, []string{"log.level"}, res.RestartRequired)

	// Problems that only loading finds, each keyed.
	res = validate(fmt.Sprintf("plugins:\n  - {id: a, module: %q, failure_policy: fallback}\n  - {id: b, module: %q}\n"+
		"pipelines:\n  - {name: p, sampler: a}\n", hook, filepath.Join(dir, "missing.wasm")))
	require.False(t, res.Valid)
	var keys []string
	for _, p := range res.Problems {
		keys = append(keys, p.Key)
	}
	require.Equal(t, []string{"plugins[0].failure_policy", "plugins[1].module", "pipelines[0].sampler"}, keys)
	require.Contains(t, res.Problems[1].Message, "no such file or directory")

	// Problems the parser finds, before anything loads.
	res = validate("plugins:\n  - {id: a, modul: a.wasm}\n")
	require.False(t, res.Valid)
	require.Equal(t, "plugins[0].modul", res.Problems[0].Key)
	require.Empty(t, res.RestartRequired)
}

func TestNewWithPluginsNeedsAGeneration(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Plugins = []config.Plugin{{ID: "a", Module: "a.wasm"}}
	_, err := host.New(cfg, host.WithLogger(quietLogger()))
	require.ErrorContains(t, err, "WithGeneration")

	// Pipelines of built-ins need no plugins, and no generation from the caller.
	cfg = config.Default()
	cfg.Pipelines = []config.Pipeline{{Name: "default"}}
	r := start(t, cfg)
	c := ulanv1connect.NewPluginServiceClient(http.DefaultClient, r.url)
	list, err := c.ListPlugins(context.Background(), connect.NewRequest(&ulanv1.ListPluginsRequest{}))
	require.NoError(t, err)
	require.Empty(t, list.Msg.Plugins)
	require.Len(t, list.Msg.Pipelines, 1)
	require.True(t, list.Msg.Pipelines[0].Default)
}
