package generation_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"
)

// hookConfig is a configuration with one hook plugin, pii, whose config is n.
func hookConfig(t *testing.T, dir string, n int) config.Config {
	t.Helper()
	hook, _ := module(t, dir, "hook", plugin.KindHook, "")
	cfg := config.Default()
	cfg.Plugins = []config.Plugin{{ID: "pii", Module: hook, FailurePolicy: "fail_open", PoolSize: 1, Config: map[string]any{"n": n}}}
	cfg.Pipelines = []config.Pipeline{{Name: "default", Hooks: []string{"pii"}}}
	return cfg
}

// callable says whether the plugin's runtime still serves calls.
func callable(p *generation.Plugin) bool {
	_, err := p.Runtime.Call(context.Background(), "hook_open", 0, 0)
	return err == nil
}

// TestBuildCarriesUnchangedPlugins: a reload's build takes over a plugin whose module,
// config, grants, pool and policy are unchanged (the same instances), loads a changed
// one afresh, and a carried plugin outlives the generation it came from.
func TestBuildCarriesUnchangedPlugins(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	cfg := hookConfig(t, dir, 1)
	g1, err := generation.Build(ctx, cfg, generation.Deps{Logger: quiet})
	require.NoError(t, err)
	p1, _ := g1.Plugin("pii")

	g2, err := generation.Build(ctx, cfg, generation.Deps{Number: 2, Logger: quiet, Previous: g1})
	require.NoError(t, err)
	p2, _ := g2.Plugin("pii")
	require.Same(t, p1, p2, "unchanged: carried over")
	require.True(t, g2.Carried("pii"))
	require.False(t, g1.Carried("pii"))

	require.NoError(t, g1.Close(ctx))
	require.True(t, callable(p2), "the plugin g2 carried stays open when g1 closes")
	other := hookConfig(t, dir, 1)
	other.Plugins[0].Grants.MemoryPages = 2048
	g2b, err := generation.Build(ctx, other, generation.Deps{Number: 9, Logger: quiet, Previous: g2})
	require.NoError(t, err)
	p2b, _ := g2b.Plugin("pii")
	require.False(t, p2b.Runtime.SameRuntime(p2.Runtime), "another memory limit needs its own runtime")
	require.NoError(t, g2b.Close(ctx))

	changed := hookConfig(t, dir, 2)
	g3, err := generation.Build(ctx, changed, generation.Deps{Number: 3, Logger: quiet, Previous: g2})
	require.NoError(t, err)
	p3, _ := g3.Plugin("pii")
	require.NotSame(t, p2, p3, "its config changed: new instances")
	require.False(t, g3.Carried("pii"))
	require.True(t, p3.Runtime.SameRuntime(p2.Runtime), "…derived from the same compiled module")

	// A failed build lets go of what it carried: g2's plugin stays open for g2.
	bad := changed
	bad.Plugins = append(append([]config.Plugin(nil), changed.Plugins...), config.Plugin{ID: "gone", Module: dir + "/missing.wasm"})
	_, err = generation.Build(ctx, bad, generation.Deps{Number: 4, Logger: quiet, Previous: g3})
	require.Error(t, err)
	require.True(t, callable(p3))

	require.NoError(t, g2.Close(ctx))
	require.False(t, callable(p2), "closed with the last generation holding it")
	require.NoError(t, g3.Close(ctx))
	require.False(t, callable(p3))
}

// TestLiveSwap: a lease keeps the generation it started on through a swap; new leases
// get the new one; the retired generation closes with its last lease.
func TestLiveSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	g1, err := generation.Build(ctx, hookConfig(t, dir, 1), generation.Deps{Logger: quiet})
	require.NoError(t, err)
	g2, err := generation.Build(ctx, hookConfig(t, dir, 2), generation.Deps{Number: 2, Logger: quiet, Previous: g1})
	require.NoError(t, err)
	live := generation.NewLive(g1, time.Hour, quiet)

	old := live.Acquire(ctx)
	require.Same(t, g1, old.Generation())
	require.Same(t, g1, live.Swap(g2))
	require.Same(t, g2, live.Current())
	fresh := live.Acquire(ctx)
	require.Same(t, g2, fresh.Generation())
	require.Equal(t, []uint64{1}, live.Retired(), "g1 drains while its lease runs")

	p1, _ := g1.Plugin("pii")
	require.True(t, callable(p1), "still serving its request")
	old.Release()
	old.Release() // twice is harmless
	require.Empty(t, live.Retired())
	require.False(t, callable(p1), "closed with its last lease")
	require.Error(t, old.Context().Err(), "a released lease's context is done")
	fresh.Release()

	closed, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, live.Close(closed))
	p2, _ := g2.Plugin("pii")
	require.False(t, callable(p2))
}

// TestLiveDrainTimeout: requests on a retired generation that outlive the drain time
// get their contexts cancelled with ErrRetired; the generation closes once they let go.
func TestLiveDrainTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g1, err := generation.Build(ctx, hookConfig(t, t.TempDir(), 1), generation.Deps{Logger: quiet})
	require.NoError(t, err)
	live := generation.NewLive(g1, 10*time.Millisecond, quiet)
	le := live.Acquire(ctx)
	live.Swap(nil)
	select {
	case <-le.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the drain time passed and the request was not cancelled")
	}
	require.True(t, errors.Is(context.Cause(le.Context()), generation.ErrRetired))
	require.Equal(t, []uint64{1}, live.Retired(), "open until the request lets go")
	le.Release()
	require.Empty(t, live.Retired())
	require.NoError(t, live.Close(ctx))
}

// TestLiveCloseWaits: Close waits for the requests of every generation, up to its
// context's end.
func TestLiveCloseWaits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g1, err := generation.Build(ctx, hookConfig(t, t.TempDir(), 1), generation.Deps{Logger: quiet})
	require.NoError(t, err)
	live := generation.NewLive(g1, 0, quiet)
	le := live.Acquire(ctx)
	short, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorContains(t, live.Close(short), "1 retired generations still have requests")
	done := make(chan error)
	go func() { done <- live.Close(ctx) }()
	le.Release()
	require.NoError(t, <-done)
	after := live.Acquire(ctx)
	require.Nil(t, after.Generation(), "after Close, requests see no generation")
	after.Release()
}

// TestModuleChangeSeenDespiteTimes: the module cache does not hide a file rewritten in
// place with the same size and its modification time set back: the inode's change time
// (Linux), or its identity, gives it away, and the configured hash then refuses it.
func TestModuleChangeSeenDespiteTimes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	path, sum := module(t, dir, "hook", plugin.KindHook, "")
	cfg := hookConfig(t, dir, 1)
	cfg.Plugins[0].Module, cfg.Plugins[0].SHA256 = path, sum
	g, err := generation.Build(ctx, cfg, generation.Deps{Logger: quiet})
	require.NoError(t, err)
	defer g.Close(ctx)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[len(b)-1] ^= 1 // inside the manifest section: same size, other bytes
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(b, 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))

	_, err = generation.Build(ctx, cfg, generation.Deps{Number: 2, Logger: quiet, Previous: g})
	require.ErrorContains(t, err, "not the one configured")
}
