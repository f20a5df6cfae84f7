package scheduler

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ulan-ai/ulan/engine"
)

// FinishReason says why a sequence ended.
type FinishReason string

// The finish reasons.
const (
	// FinishStop: SampleFunc's Decision.Stop, or Seq.Stop.
	FinishStop FinishReason = "stop"
	// FinishLength: MaxTokens generated, or the model's context is full.
	FinishLength FinishReason = "length"
	// FinishCancelled: Seq.Cancel, or the Submit context is done.
	FinishCancelled FinishReason = "cancelled"
	// FinishError: the engine step, SampleFunc or Close failed the
	// sequence; Event.Err says how.
	FinishError FinishReason = "error"
)

// Event is one token of a sequence, or its end. A sequence's events come in
// order and the last one, and only it, has a Finish reason.
type Event struct {
	// Token is a generated token; not set on the final event.
	Token int32
	// Finish is set on the final event.
	Finish FinishReason
	// Err is why the sequence failed, with FinishError.
	Err error
}

// Seq is a submitted request's sequence. Its events wait in an unbounded
// buffer until Recv takes them, so a slow reader never holds up the step
// loop (nor the other sequences).
type Seq struct {
	s         *Scheduler
	prompt    []int32
	state     any
	maxGen    int // tokens to generate at most (MaxTokens and context)
	blocks    int // cache blocks reserved at admission
	stopWatch func() bool
	submitted time.Time // when Submit queued it

	// queued is the time from submitted to admission, set by the loop when
	// it admits the sequence; admitted says it is set.
	queued   atomic.Int64
	admitted atomic.Bool

	mu     sync.Mutex
	events []Event       // not yet received
	ready  chan struct{} // capacity 1: events arrived
	ask    FinishReason  // set by Cancel or Stop: end at the next step
	over   bool          // the final event is queued
	gone   bool          // the final event is received

	// Owned by the loop.
	eng       *engine.Sequence // nil while queued and once ended
	fed       int              // prompt tokens in the cache
	generated int
	next      int32    // the last generated token, fed in the next decode
	one       [1]int32 // next, as a decode step's tokens
}

// Recv returns the sequence's next event, waiting until there is one or ctx
// is done (then it returns ctx's error and the sequence goes on). After the
// final event it returns io.EOF. The final event comes only once the
// sequence's cache blocks are free.
func (q *Seq) Recv(ctx context.Context) (Event, error) {
	for {
		q.mu.Lock()
		if len(q.events) > 0 {
			ev := q.events[0]
			q.events[0] = Event{}
			q.events = q.events[1:]
			if ev.Finish != "" {
				q.gone = true
			}
			more := len(q.events) > 0 || q.gone
			q.mu.Unlock()
			if more { // for another reader waiting
				q.notify()
			}
			return ev, nil
		}
		gone := q.gone
		q.mu.Unlock()
		if gone {
			return Event{}, io.EOF
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Queued returns how long the sequence waited in the admission queue: from
// Submit to its admission, when its first step was scheduled. ok is false
// while it waits, and for a sequence that left the queue without being
// admitted (cancelled, or the scheduler closed). It is safe to call from
// any goroutine.
func (q *Seq) Queued() (d time.Duration, ok bool) {
	if !q.admitted.Load() {
		return 0, false
	}
	return time.Duration(q.queued.Load()), true
}

// Cancel ends the sequence with FinishCancelled at the next step (or takes
// it out of the queue) and frees its cache blocks. Tokens not yet received
// are dropped: Recv's next event is the final one, FinishCancelled even
// when the sequence reached its end in the meantime. Cancel once the final
// event is queued does nothing.
func (q *Seq) Cancel() { q.stop(FinishCancelled) }

// Stop is Cancel with FinishStop, for a caller that found the end itself (a
// stop string in the detokenized text).
func (q *Seq) Stop() { q.stop(FinishStop) }

func (q *Seq) stop(reason FinishReason) {
	q.mu.Lock()
	if q.over || q.ask != "" {
		q.mu.Unlock()
		return
	}
	q.ask = reason
	clear(q.events)
	q.events = q.events[:0]
	q.mu.Unlock()
	q.s.signal()
}

// asked returns the reason Cancel or Stop gave, or "".
func (q *Seq) asked() FinishReason {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ask
}

// push queues a token event, unless the sequence was asked to end.
func (q *Seq) push(ev Event) {
	q.mu.Lock()
	if q.ask != "" {
		q.mu.Unlock()
		return
	}
	q.events = append(q.events, ev)
	q.mu.Unlock()
	q.notify()
}

// finish queues the final event. A sequence asked to end by Cancel or Stop
// ends as asked, whatever ended it in the meantime: the tokens since were
// dropped, so "length" (fewer tokens than MaxTokens reached the client) or
// a sampling error would misstate its end.
func (q *Seq) finish(reason FinishReason, err error) {
	q.stopWatch()
	q.mu.Lock()
	if q.ask != "" {
		reason, err = q.ask, nil
	}
	q.events = append(q.events, Event{Finish: reason, Err: err})
	q.over = true
	q.mu.Unlock()
	q.notify()
}

func (q *Seq) notify() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
