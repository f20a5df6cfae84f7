package kvcache

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPool(t *testing.T) {
	t.Parallel()
	p, err := NewPool(4, 16)
	require.NoError(t, err)
	require.Equal(t, 2, p.BlocksFor(17))
	a, err := p.Alloc(3)
	require.NoError(t, err)
	require.Equal(t, []int32{0, 1, 2}, a)
	_, err = p.Alloc(2)
	require.ErrorIs(t, err, ErrNoSpace)
	require.Equal(t, 1, p.Free(), "a refused request takes nothing")
	p.Release(a)
	require.Equal(t, 4, p.Free())
	require.Panics(t, func() { p.Release([]int32{0}) })
	_, err = NewPool(0, 16)
	require.Error(t, err)
}

// TestPoolHammer takes and returns blocks from many goroutines and checks no
// block is ever held twice.
func TestPoolHammer(t *testing.T) {
	t.Parallel()
	p, err := NewPool(64, 8)
	require.NoError(t, err)
	var held sync.Map
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				b, err := p.Alloc(1 + (g+i)%5)
				if err != nil {
					continue
				}
				for _, x := range b {
					if _, dup := held.LoadOrStore(x, true); dup {
						t.Errorf("block %d handed out twice", x)
					}
				}
				for _, x := range b {
					held.Delete(x)
				}
				p.Release(b)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 64, p.Free())
}

// TestPoolRefusesABlockNotHeld: releasing a block twice panics even while
// other blocks are out (the pool's count alone would not show it), and
// leaves the pool as it was, so no block is ever handed out twice.
func TestPoolRefusesABlockNotHeld(t *testing.T) {
	t.Parallel()
	p, err := NewPool(4, 16)
	require.NoError(t, err)
	a, err := p.Alloc(2)
	require.NoError(t, err)
	b, err := p.Alloc(1)
	require.NoError(t, err)
	p.Release(a)
	require.PanicsWithValue(t, "kvcache: block 0 released but not held (4 blocks in the pool)", func() { p.Release(a[:1]) })
	require.Panics(t, func() { p.Release([]int32{b[0], b[0]}) }, "the same block twice in one call")
	require.Panics(t, func() { p.Release([]int32{4}) }, "outside the pool")
	require.Panics(t, func() { p.Release([]int32{-1}) })
	require.Equal(t, 3, p.Free(), "a refused release changes nothing")
	all, err := p.Alloc(3)
	require.NoError(t, err)
	all = append(all, b...)
	require.ElementsMatch(t, []int32{0, 1, 2, 3}, all, "every block once")
	p.Release(all)
	require.Equal(t, 4, p.Free())
}
