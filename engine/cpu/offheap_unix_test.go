//go:build unix

package cpu

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
)

// TestCacheOffHeap: a cache's rows are outside the Go heap (so that they
// do not pace the collector), zeroed and writable.
func TestCacheOffHeap(t *testing.T) {
	const rows, width = 1 << 14, 1 << 10 // 64 MiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := New(WithThreads(1)).Cache(rows, width, engine.F32)
	require.NoError(t, err)
	runtime.ReadMemStats(&after)
	require.Less(t, after.HeapAlloc, before.HeapAlloc+(1<<20), "the cache's 64 MiB are on the heap")
	f := c.(*tensor).f
	require.Len(t, f, rows*width)
	require.Zero(t, f[0])
	require.Zero(t, f[len(f)-1])
	f[0], f[len(f)-1] = 1, 2
	require.Equal(t, float32(2), f[len(f)-1])
	runtime.KeepAlive(c)
}
