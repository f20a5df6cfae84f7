package cpu

import (
	"flag"
	"sync"
	"testing"
)

// arena hands out the float32 buffers of one context's ops and takes them
// all back at once when the context closes, so that a decode step, which
// makes the same few dozen buffers every time, reuses the last step's
// memory instead of asking the garbage collector for megabytes (a small
// model's batched step spent a fifth of its time clearing fresh memory and
// collecting old). Buffers come zeroed, as make's do.
type arena struct {
	chunks [][]float32
	cur    int // the chunk being cut
	off    int // floats cut from it
	// idle counts the resets in a row that found chunks after the one
	// being cut unused.
	idle int
}

// arenaChunk is the smallest chunk an arena allocates, in floats (4 MiB).
const arenaChunk = 1 << 20

// arenaMax bounds an arena's chunks, in floats (64 MiB): a decode step fits, and the
// rest of a big step (a long prefill chunk's intermediates) comes from the heap as
// before, so that the collector can reuse what dies within the step instead of the
// arena holding all of it to the step's end.
const arenaMax = 16 << 20

// floats returns n zeroed floats whose capacity is n, so that an append
// cannot run into the next buffer.
func (a *arena) floats(n int) []float32 {
	s := a.dirty(n)
	clear(s)
	return s
}

// dirty is floats for a caller that writes every element: a reused buffer
// keeps what the last step left in it.
func (a *arena) dirty(n int) []float32 {
	for ; a.cur < len(a.chunks); a.cur, a.off = a.cur+1, 0 {
		if c := a.chunks[a.cur]; len(c)-a.off >= n {
			s := c[a.off : a.off+n : a.off+n]
			a.off += n
			return s
		}
	}
	size := max(n, arenaChunk)
	if a.held()+size > arenaMax {
		return make([]float32, n)
	}
	c := make([]float32, size)
	a.chunks = append(a.chunks, c)
	a.cur, a.off = len(a.chunks)-1, n
	return c[:n:n]
}

// held is the floats in the arena's chunks.
func (a *arena) held() int {
	n := 0
	for _, c := range a.chunks {
		n += len(c)
	}
	return n
}

// arenaIdleResets is how many resets in a row may find an arena's last
// chunks unused before it lets them go. A serving loop alternates steps
// of different sizes (a prefill chunk, a decode step of the whole batch,
// one of a batch a stream has left), and each chunk dropped after a
// smaller step was allocated and cleared again by the next bigger one: a
// decode step of eight streams on the demo model after a prefill step
// spent about 0.4 ms on its two fresh chunks, and the prefill step's
// logits about 0.5 ms on theirs. Sixty-four steps in a row without them
// still let one big step's memory go within a fraction of a second.
const arenaIdleResets = 64

// reset takes every buffer back. Chunks that went unused for
// arenaIdleResets resets in a row are dropped, so that one big step does
// not pin its memory for good.
func (a *arena) reset() {
	if poisonReset() {
		a.poison()
	}
	a.idle++
	if a.cur+1 >= len(a.chunks) {
		a.idle = 0
	}
	if a.idle >= arenaIdleResets {
		clear(a.chunks[a.cur+1:])
		a.chunks = a.chunks[:a.cur+1]
		a.idle = 0
	}
	a.cur, a.off = 0, 0
}

// poisonReset reports whether reset overwrites what the arena handed out,
// so that a test reading a tensor after its context closed fails every
// time instead of when another context happens to reuse the memory first.
// It is on in test binaries, except when they run benchmarks (-test.bench),
// whose figures the overwriting would spoil.
var poisonReset = sync.OnceValue(func() bool {
	if !testing.Testing() {
		return false
	}
	bench := flag.Lookup("test.bench")
	return bench == nil || bench.Value.String() == ""
})

// poison overwrites the buffers handed out since the last reset with huge
// values that differ from float to float (not NaN, which a tolerance check
// comparing two poisoned results would pass).
func (a *arena) poison() {
	for i := 0; i <= a.cur && i < len(a.chunks); i++ {
		used := a.chunks[i]
		if i == a.cur {
			used = used[:a.off]
		}
		for j := range used {
			used[j] = -1e9 * float32(i*len(used)+j+1)
		}
	}
}

// arenas recycles the arenas of closed contexts.
var arenas = sync.Pool{New: func() any { return new(arena) }}
