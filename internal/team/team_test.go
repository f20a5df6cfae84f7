package team

import (
	"errors"
	"io"
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

// TestRunPanic: a piece that panics on a helper or on the caller, in a
// section that holds the team or one that spawns goroutines, lets the other
// pieces run, makes Run panic on its caller with a *PanicError carrying the
// value and the piece's stack, and leaves the team usable.
func TestRunPanic(t *testing.T) {
	for _, nested := range []bool{false, true} {
		for bad := range 8 {
			var ran atomic.Int32
			section := func() {
				Run(2, 8, func(i int) {
					ran.Add(1)
					if i == bad {
						panic(io.ErrUnexpectedEOF)
					}
				})
			}
			var got any
			func() {
				defer func() { got = recover() }()
				if nested {
					// The outer section holds the team, so the inner one
					// spawns goroutines; the outer Run raises the inner's panic
					// again, wrapped.
					Run(2, 2, func(i int) {
						if i == 0 {
							section()
						}
					})
				} else {
					section()
				}
			}()
			require.Equal(t, int32(8), ran.Load(), "every piece ran")
			var pe *PanicError
			require.True(t, errors.As(asError(got), &pe), "nested %v, piece %d: got %v", nested, bad, got)
			require.ErrorIs(t, pe, io.ErrUnexpectedEOF)
			require.Contains(t, pe.Error(), "team_test.go", "the piece's stack")
		}
	}
	var after atomic.Int32
	Run(2, 16, func(int) { after.Add(1) })
	require.Equal(t, int32(16), after.Load(), "the team still runs sections")
}

// asError is v as an error (a nested Run's *PanicError may wrap the inner
// one's), or nil.
func asError(v any) error {
	err, _ := v.(error)
	return err
}
