package cpu

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunEveryPieceOnce runs sections of every size on 1–4 workers, from
// several goroutines at once (one holds the team, the others spawn) and
// nested (a piece that runs a section of its own), and checks that each
// piece ran exactly once before run returned.
func TestRunEveryPieceOnce(t *testing.T) {
	check := func(workers, n int) {
		counts := make([]atomic.Int32, n)
		run(workers, n, func(i int) { counts[i].Add(1) })
		for i := range counts {
			if c := counts[i].Load(); c != 1 {
				t.Errorf("%d workers, %d pieces: piece %d ran %d times", workers, n, i, c)
			}
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for n := range 70 {
				check(1+(g+n)%4, n)
			}
		})
	}
	wg.Wait()

	var inner atomic.Int32
	run(2, 8, func(int) { run(2, 5, func(int) { inner.Add(1) }) })
	require.Equal(t, int32(40), inner.Load())
}

// TestParallelCoversTheRange checks that parallel's chunks cover [0, n)
// exactly, in multiples of the grain but for the last.
func TestParallelCoversTheRange(t *testing.T) {
	b := New(WithThreads(3))
	for _, grain := range []int{1, 16, 100} {
		for _, n := range []int{0, 1, 15, 16, 17, 1000, 4099} {
			seen := make([]atomic.Int32, n)
			b.parallel(n, grain, func(lo, hi int) {
				if lo%grain != 0 || (hi != n && hi%grain != 0) {
					t.Errorf("n %d grain %d: chunk [%d, %d)", n, grain, lo, hi)
				}
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
			})
			for i := range seen {
				require.Equal(t, int32(1), seen[i].Load(), "n %d grain %d: index %d", n, grain, i)
			}
		}
	}
}
