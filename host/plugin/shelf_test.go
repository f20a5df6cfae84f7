package plugin

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestShelf: a closed plugin's runtime waits on the shelf, and loading the same module
// with a compatible setup takes it instead of compiling (the same compiled module), with
// the new config; another setup or module compiles afresh; the shelf keeps at most its
// size, each runtime at most its time, and nothing once closed.
func TestShelf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	shelf := NewShelf(2, time.Hour)
	module := withManifest(t, "rehook", rehookManifest)
	load := func(config string, mod func(*Config)) *Plugin {
		t.Helper()
		p, err := loadKind(module, KindHook, config, func(c *Config) {
			c.Shelf = shelf
			if mod != nil {
				mod(c)
			}
		})
		require.NoError(t, err)
		return p
	}
	mark := func(p *Plugin) byte {
		res, err := p.Call(ctx, "hook_open", 0, 0)
		require.NoError(t, err)
		return byte(res[0])
	}

	p := load(`{"a": 1}`, nil)
	compiled := p.compiled
	require.NoError(t, p.Close(ctx))
	require.Equal(t, 1, shelf.Len())

	q := load(`{"b": 1}`, func(c *Config) { c.PoolSize = 2 })
	require.Same(t, compiled, q.compiled, "taken from the shelf, not compiled")
	require.Equal(t, 0, shelf.Len())
	require.Equal(t, byte('b'), mark(q))
	require.Equal(t, 2, q.Stats().Size)

	other := load(`{"c": 1}`, func(c *Config) { c.Grants.Clock = true })
	require.NotSame(t, compiled, other.compiled, "another setup compiles afresh")
	require.NoError(t, other.Close(ctx))
	require.NoError(t, q.Close(ctx))
	require.Equal(t, 2, shelf.Len())

	third := load(`{"d": 1}`, func(c *Config) { c.MemoryPages = 256 })
	require.NoError(t, third.Close(ctx))
	require.Equal(t, 2, shelf.Len(), "the oldest (the clock grant's) is evicted")
	_, err := loadKind(module, KindHook, `{"r": 1}`, func(c *Config) { c.Shelf = shelf })
	require.ErrorContains(t, err, "ulan_init refused the config")
	require.Equal(t, 2, shelf.Len(), "a refused config puts the runtime back")
	again := load(`{"e": 1}`, nil)
	require.Same(t, compiled, again.compiled)
	require.Equal(t, byte('e'), mark(again))

	require.NoError(t, shelf.Close(ctx))
	require.Equal(t, 0, shelf.Len())
	require.NoError(t, again.Close(ctx))
	require.Equal(t, 0, shelf.Len(), "a closed shelf keeps nothing")

	brief := NewShelf(4, 10*time.Millisecond)
	p, err = loadKind(module, KindHook, `{"a": 1}`, func(c *Config) { c.Shelf = brief })
	require.NoError(t, err)
	require.NoError(t, p.Close(ctx))
	require.Eventually(t, func() bool { return brief.Len() == 0 }, 10*time.Second, 5*time.Millisecond, "expired")
}
