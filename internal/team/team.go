// Package team runs parallel sections on a team of long-lived goroutines
// that spin for a short while after each section, ready for the next, and
// park when none comes. The CPU backend's operations and the sampling
// stage's per-row passes share it: the sampling of a decode step's rows
// comes right after the step's last operation, and finds the helpers still
// spinning.
package team

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// A decode step of a small model is a few hundred operations of tens of
// microseconds each. Starting a goroutine per operation and waiting for it
// costs a wake-up of an idle thread each time (several microseconds, more
// on a virtual machine), paid on the step's critical path even when the
// new goroutine finds nothing left to do. So the parallel sections run
// on a team of long-lived helper goroutines that spin for a
// short while after each section, ready for the next, and park when none
// comes (see RATIONALE.md, "Why does the CPU backend keep a team of
// helper goroutines?").

// section is one parallel section: pieces [0, n) of do, taken in turn by
// whoever runs work, and a count of the pieces done.
type section struct {
	n    int64
	do   func(i int)
	next atomic.Int64
	done atomic.Int64
	// panicked is the first piece's panic, which Run raises again on its
	// caller once every piece is done.
	panicked atomic.Pointer[PanicError]

	// The caller parks on finished when others still run pieces after a
	// short spin; the last piece closes it.
	mu       sync.Mutex
	parked   bool
	finished chan struct{}
}

// work runs pieces until none is left.
func (s *section) work() {
	for {
		i := s.next.Add(1) - 1
		if i >= s.n {
			return
		}
		s.run(int(i))
		if s.done.Add(1) == s.n {
			s.mu.Lock()
			if s.parked {
				close(s.finished)
			}
			s.mu.Unlock()
		}
	}
}

// run runs piece i, keeping its panic (the first of the section's) for Run
// to raise on its caller: on a helper goroutine nothing could recover it,
// and the piece must still count as done, or the caller would wait for it
// for ever.
func (s *section) run(i int) {
	defer func() {
		if p := recover(); p != nil {
			s.panicked.CompareAndSwap(nil, &PanicError{Value: p, Stack: debug.Stack()})
		}
	}()
	s.do(i)
}

// PanicError is what Run panics with when a piece panicked: the piece's
// panic value and the stack of the goroutine it ran on (a helper's, maybe).
type PanicError struct {
	Value any
	Stack []byte
}

// Error gives the panic value and the piece's stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("team: a piece panicked: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// raise panics with the section's first panic, if a piece panicked.
func (s *section) raise() {
	if p := s.panicked.Load(); p != nil {
		panic(p)
	}
}

// wait returns when every piece is done: at once when they are, after a
// short spin when the last ones finish soon (the usual case: another
// goroutine is finishing its piece on another core), parked otherwise
// (that goroutine's thread was descheduled).
func (s *section) wait() {
	start := time.Now()
	for i := 0; s.done.Load() < s.n; i++ {
		if i%64 == 63 && time.Since(start) > waitSpin {
			s.mu.Lock()
			if s.done.Load() == s.n {
				s.mu.Unlock()
				return
			}
			s.parked, s.finished = true, make(chan struct{})
			s.mu.Unlock()
			<-s.finished
			return
		}
	}
}

// waitSpin is how long a section's caller spins for the pieces others are
// finishing before it parks.
const waitSpin = 20 * time.Microsecond

// helper is a long-lived goroutine of the team: it runs the section it is
// given, then waits for the next (spinning, then parked).
type helper struct {
	gen      atomic.Uint64           // bumped for each section given
	sec      atomic.Pointer[section] // the last section given
	sleeping atomic.Bool             // parked on wake
	wake     chan struct{}           // buffered 1
}

// team is the package's helpers, shared by every caller; mu is held by
// the one section that uses them at a time (others spawn goroutines).
var team struct {
	mu      sync.Mutex
	helpers []*helper
}

// spinFor is how long a helper stays ready after a section before it
// parks: longer than the serial gap between two operations of a step
// (their own serial work included), short enough that an idle server
// does not burn a core. On the demo model's decode step (2 threads, a
// quiet machine) 100 µs gave 2.7 ms a step against 3.1 ms for none.
const spinFor = 100 * time.Microsecond

// Run runs do(i) for every i in [0, n) on up to workers goroutines, this
// one among them, and returns when all are done. One section at a time
// has the team; another (another caller's, or one nested in a piece)
// starts goroutines of its own, so Run never waits on the team. When a
// piece panics, the others still run, and Run then panics on its caller:
// with a *PanicError (the first piece's value and stack, whichever
// goroutine ran it) when the section was shared, as the piece itself
// would when one worker runs them all.
func Run(workers, n int, do func(i int)) {
	if n <= 0 {
		return
	}
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			do(i)
		}
		return
	}
	s := &section{n: int64(n), do: do}
	if !team.mu.TryLock() {
		// Another section (another context, or a nested one) has the
		// team: new goroutines it is.
		var wg sync.WaitGroup
		for range workers - 1 {
			wg.Go(s.work)
		}
		s.work()
		wg.Wait()
		s.raise()
		return
	}
	for len(team.helpers) < workers-1 {
		h := &helper{wake: make(chan struct{}, 1)}
		team.helpers = append(team.helpers, h)
		go h.loop()
	}
	for _, h := range team.helpers[:workers-1] {
		h.give(s)
	}
	s.work()
	s.wait() // the pieces others took may still be running
	team.mu.Unlock()
	s.raise()
}

// give hands h the section s.
func (h *helper) give(s *section) {
	h.sec.Store(s)
	h.gen.Add(1)
	if h.sleeping.CompareAndSwap(true, false) {
		h.wake <- struct{}{}
	}
}

// loop runs each section h is given. A helper that comes to a section
// late finds its pieces taken and returns at once; sections hold no
// resources, so a stale one is harmless.
func (h *helper) loop() {
	var seen uint64
	for {
		seen = h.await(seen)
		h.sec.Load().work()
	}
}

// await returns the generation after seen, spinning for spinFor (yielding
// to other goroutines as it goes) and then parking.
func (h *helper) await(seen uint64) uint64 {
	start := time.Now()
	for i := 0; ; i++ {
		if g := h.gen.Load(); g != seen {
			return g
		}
		if i%64 == 63 {
			if time.Since(start) > spinFor {
				break
			}
			runtime.Gosched()
		}
	}
	h.sleeping.Store(true)
	if g := h.gen.Load(); g != seen && h.sleeping.CompareAndSwap(true, false) {
		return g
	}
	<-h.wake
	return h.gen.Load()
}
