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
