package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDerive: a derived plugin runs the same compiled module with its own config and
// pool; a config the schema refuses, or a change of grants, is not derived; the
// runtime outlives whichever of the two closes first.
func TestDerive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := loadKind(withManifest(t, "hook", hookManifest), KindHook, `{"patterns": ["\\d+"]}`, nil)
	require.NoError(t, err)

	cfg := p.cfg
	cfg.PluginConfig = json.RawMessage(`{"patterns": ["[a-z]+"]}`)
	cfg.PoolSize = 3
	q, err := p.Derive(ctx, cfg)
	require.NoError(t, err)
	require.Same(t, p.compiled, q.compiled, "the same compiled module")
	require.Equal(t, 3, q.Stats().Size)
	require.Equal(t, 1, p.Stats().Size, "the parent's pool is its own")

	bad := cfg
	bad.PluginConfig = json.RawMessage(`{"patterns": 7}`)
	_, err = p.Derive(ctx, bad)
	require.ErrorContains(t, err, "config", "checked against the manifest's schema")

	other := cfg
	other.Grants.Clock = true
	_, err = p.Derive(ctx, other)
	require.True(t, errors.Is(err, ErrNotDerivable))

	require.NoError(t, p.Close(ctx))
	res, err := q.Call(ctx, "hook_open", 0, 0)
	require.NoError(t, err, "the derived plugin runs on after its parent closed")
	require.Equal(t, uint64(7), res[0])
	require.NoError(t, q.Close(ctx))
	_, err = q.Call(ctx, "hook_open", 0, 0)
	require.Error(t, err, "the runtime closed with the last plugin")
	_, err = p.Derive(ctx, cfg)
	require.ErrorContains(t, err, "closed plugin", "nothing derives from a closed runtime")
}

const rehookManifest = `{
  "abi": 1, "name": "rehook", "version": "0.1.0", "kind": "hook",
  "config_schema": {"type": "object"},
  "needs": {"memory_pages": 64, "call_timeout_ms": 5, "trust": "sandboxed"}
}`

// TestDeriveReconfigures: a module that exports ulan_reconfigure has its idle
// instances take the new config in place; the parent replaces the instances it
// lent only when it misses them; a refusal fails the derivation and leaves the
// parent serving its own config; StatusUnsupported gives the instances back
// unchanged, and the module is not asked again; DeriveFresh takes nothing.
func TestDeriveReconfigures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	module := withManifest(t, "rehook", rehookManifest)
	// mark | inits<<8 | reconfigures<<16, as rehook.wat's hook_open returns it.
	state := func(mark byte, inits, reconfs uint64) uint64 { return uint64(mark) | inits<<8 | reconfs<<16 }
	opens := func(p *Plugin, n int) map[uint64]int {
		seen := map[uint64]int{}
		for range n { // the pool is a queue: n calls visit n instances in turn
			res, err := p.Call(ctx, "hook_open", 0, 0)
			require.NoError(t, err)
			seen[res[0]]++
		}
		return seen
	}
	p, err := loadKind(module, KindHook, `{"a": 1}`, func(c *Config) { c.PoolSize = 2 })
	require.NoError(t, err)
	defer p.Close(ctx)
	require.Equal(t, map[uint64]int{state('a', 1, 0): 2}, opens(p, 2))

	cfg := p.cfg
	cfg.PluginConfig = json.RawMessage(`{"b": 1}`)
	cfg.PoolSize = 3
	q, err := p.Derive(ctx, cfg)
	require.NoError(t, err)
	defer q.Close(ctx)
	require.Equal(t, map[uint64]int{state('b', 1, 1): 2, state('b', 1, 0): 1}, opens(q, 3),
		"the parent's two idle instances reconfigured, one new")
	require.Equal(t, 0, p.Stats().Idle, "both lent")
	require.Equal(t, map[uint64]int{state('a', 1, 0): 1}, opens(p, 1), "the parent replaces one when it misses it")
	require.Equal(t, 1, p.Stats().Replacements)

	refused := cfg
	refused.PluginConfig = json.RawMessage(`{"r": 1}`)
	_, err = q.Derive(ctx, refused)
	require.ErrorContains(t, err, "ulan_reconfigure refused the config: status 1")
	require.Equal(t, map[uint64]int{state('b', 1, 0): 1}, opens(q, 1), "q serves on, with a new instance of its own config")

	fresh, err := q.DeriveFresh(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, map[uint64]int{state('b', 1, 0): 3}, opens(fresh, 3))
	require.NoError(t, fresh.Close(ctx))

	require.Equal(t, map[uint64]int{state('b', 1, 0): 1}, opens(q, 1), "before: q's one idle instance")
	unsupported := cfg
	unsupported.PluginConfig = json.RawMessage(`{"u": 1}`)
	u, err := q.Derive(ctx, unsupported)
	require.NoError(t, err)
	defer u.Close(ctx)
	require.Equal(t, map[uint64]int{state('u', 1, 0): 3}, opens(u, 3), "new instances, through ulan_init")
	require.Equal(t, 1, q.Stats().Idle, "q's instance came back")
	require.True(t, q.shared.noReconfigure.Load())
	c := cfg
	c.PluginConfig = json.RawMessage(`{"c": 1}`)
	w, err := q.Derive(ctx, c)
	require.NoError(t, err)
	defer w.Close(ctx)
	require.Equal(t, 1, q.Stats().Idle, "not asked again")
	require.Equal(t, map[uint64]int{state('c', 1, 0): 3}, opens(w, 3))
}

// TestGiveBackAfterRefill: an instance given back after a checkout has already
// started its replacement is closed, so the pool never holds more than its size.
func TestGiveBackAfterRefill(t *testing.T) {
	t.Parallel()
	p, _ := load(t, "ok", Config{PoolSize: 1})
	lent := p.pool.lend(2)
	require.Len(t, lent, 1)
	m, err := p.pool.checkout(context.Background()) // misses it: its replacement
	require.NoError(t, err)
	p.pool.giveBack(lent[0])
	require.True(t, lent[0].mod.IsClosed())
	p.pool.put(m)
	require.Equal(t, 1, p.Stats().Idle)
}
