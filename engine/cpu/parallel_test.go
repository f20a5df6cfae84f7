package cpu

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

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
