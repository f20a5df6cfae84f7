package deepseekv4

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
)

// TestKVBytes checks the cache one sequence costs against spec §4.2's
// accounting, and that a runner admits a million-token sequence only
// within its budget. Per token, a CSA layer stores a compressed entry
// (head_dim values) and an indexer key (index_head_dim) every 4 tokens,
// an HCA layer an entry every 128, a window-only layer nothing; every
// layer's window ring and the compressors' pending rows are a fixed part.
// All in f32.
func TestKVBytes(t *testing.T) {
	t.Parallel()
	c := tiny()
	file, _, _ := c.build(t, 1)
	m := loadTiny(t, file, 1)

	var perToken float64 // bytes, averaged over a block
	var state int64      // bytes
	for _, r := range c.Ratios {
		state += int64(c.Window * c.HD * 4)
		switch r {
		case 4:
			perToken += float64((c.HD+c.DI)*4) / 4
			state += int64(8*2*(2*c.HD)*4) + int64(8*2*(2*c.DI)*4) // kv and gate of two windows
		case 128:
			perToken += float64(c.HD*4) / 128
			state += int64(128 * 2 * c.HD * 4)
		}
	}
	const bs = 128 // the HCA ratio sets the block
	block := int64(perToken * bs)
	stateBlocks := (state + block - 1) / block
	for _, n := range []int{1, 1000, 1 << 10, 1 << 16, 1 << 20} {
		want := (stateBlocks + int64((n+bs-1)/bs)) * block
		require.Equal(t, want, engine.CacheBytes(m, 1, n, 0), "n=%d", n)
	}
	// At a million tokens the fixed part is noise: bytes per token are the
	// paged ones, 194 here against V3's 576 values (2304 bytes) per layer.
	require.InDelta(t, perToken, float64(engine.CacheBytes(m, 1, 1<<20, 0))/(1<<20), 0.1)
	require.Equal(t, 194.0, perToken)

	// A budget for one million-token sequence holds it; one block less
	// does not, and the runner says so before anything runs.
	b := cpu.New(cpu.WithThreads(1))
	budget := engine.CacheBytes(m, 1, 1<<20, 0)
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: budget})
	require.NoError(t, err)
	require.Equal(t, r.Blocks(), r.BlocksFor(1<<20))
	require.Equal(t, budget, r.CacheBytesAt(1<<20))
	small, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: budget - block})
	require.NoError(t, err)
	require.Greater(t, small.BlocksFor(1<<20), small.Blocks())
}
