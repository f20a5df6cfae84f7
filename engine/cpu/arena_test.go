package cpu

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestArena: buffers come zeroed with their own capacity, a reset hands the
// same memory out again, a chunk that only some steps need stays, and
// chunks no step has needed for arenaIdleResets resets are let go.
func TestArena(t *testing.T) {
	var a arena
	x := a.floats(10)
	require.Len(t, x, 10)
	require.Equal(t, 10, cap(x), "an append must not run into the next buffer")
	for i := range x {
		x[i] = 1
	}
	y := a.floats(arenaChunk) // does not fit what is left: a second chunk
	require.Len(t, a.chunks, 2)
	y[0] = 2
	a.reset()
	x2 := a.floats(10)
	require.Equal(t, &x[0], &x2[0], "the same memory, reused")
	require.Equal(t, make([]float32, 10), x2, "and zeroed again")
	// Steps that need the second chunk now and then keep it.
	for i := range 3 * arenaIdleResets {
		a.reset()
		a.floats(10)
		if i%(arenaIdleResets/2) == 0 {
			require.Equal(t, &y[0], &a.floats(arenaChunk)[0], "reset %d: the second chunk, kept", i)
		}
	}
	require.Equal(t, &y[0], &a.floats(arenaChunk)[0])
	a.reset() // the second chunk was used
	// Steps that never need it let it go after arenaIdleResets of them.
	for i := range arenaIdleResets {
		require.Equal(t, 2, len(a.chunks), "%d resets without it", i)
		a.floats(10)
		a.reset()
	}
	require.Equal(t, 1, len(a.chunks))
	a.reset()
	big := a.floats(3 * arenaChunk)
	require.Len(t, big, 3*arenaChunk)
	require.Zero(t, big[0])
	require.Len(t, a.chunks, 2)

	// Past arenaMax, buffers come from the heap and the arena does not grow.
	huge := a.floats(arenaMax)
	require.Len(t, huge, arenaMax)
	require.Len(t, a.chunks, 2)
	require.Equal(t, 4*arenaChunk, a.held())
}

// TestContextReusesMemory: a closed context's buffers serve the next one,
// so a steady step allocates (almost) nothing.
func TestContextReusesMemory(t *testing.T) {
	b := New(WithThreads(1))
	step := func() {
		c := b.NewContext().(*context)
		y := c.newF32(64, 128)
		y.f[0] = 1
		c.Close()
	}
	step()
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	require.LessOrEqual(t, testing.AllocsPerRun(20, step), 3.0)
}
