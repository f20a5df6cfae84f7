package team

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
		Run(workers, n, func(i int) { counts[i].Add(1) })
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
	Run(2, 8, func(int) { Run(2, 5, func(int) { inner.Add(1) }) })
	require.Equal(t, int32(40), inner.Load())
}
