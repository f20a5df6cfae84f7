package generation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrRetired is the cause a request's context is cancelled with when a reload retired
// its generation and the request outlived the drain time.
var ErrRetired = errors.New("the configuration was reloaded and this request's generation ran out of drain time")

// Live is the generation requests start on now, and the generations a reload retired
// while requests still run on them. A request takes a Lease on the current
// generation and keeps it to its end, so it never sees a mix of two; Swap makes the
// next generation current for the requests that start after it, and closes the
// retired one once its last lease is released. A retired generation whose requests
// outlive the drain time gets their contexts cancelled (with cause ErrRetired), and
// closes when they have let go.
type Live struct {
	drain time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	cur     *tracked
	retired map[*tracked]bool
	closed  bool
	idle    *sync.Cond // signalled when a retired generation closes
}

// tracked is one generation and its leases.
type tracked struct {
	g      *Generation
	leases map[*Lease]bool
	gone   bool // retired: closes when leases is empty
	timer  *time.Timer
}

// Lease is a request's hold on the generation it started on.
type Lease struct {
	l      *Live
	t      *tracked
	ctx    context.Context
	cancel context.CancelCauseFunc
	once   sync.Once
}

// NewLive starts with g as the current generation (nil: no plugins or pipelines).
// Retired generations get drain to finish their requests (0 means no limit); log
// reports how their closing went.
func NewLive(g *Generation, drain time.Duration, log *slog.Logger) *Live {
	if log == nil {
		log = slog.Default()
	}
	l := &Live{drain: drain, log: log, cur: &tracked{g: g, leases: map[*Lease]bool{}}, retired: map[*tracked]bool{}}
	l.idle = sync.NewCond(&l.mu)
	return l
}

// Current returns the generation new requests start on.
func (l *Live) Current() *Generation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur.g
}

// Acquire leases the current generation for a request with context ctx. The lease's
// Context is ctx, cancelled with ErrRetired if the generation is retired and drains
// too long. Release the lease when the request ends.
func (l *Live) Acquire(ctx context.Context) *Lease {
	cctx, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	le := &Lease{l: l, t: l.cur, ctx: cctx, cancel: cancel}
	l.cur.leases[le] = true
	return le
}

// Generation is the leased generation (nil when the server has none).
func (le *Lease) Generation() *Generation { return le.t.g }

// Context is the request's context, cancelled when the lease's generation runs out of
// drain time.
func (le *Lease) Context() context.Context { return le.ctx }

// Release ends the lease; a retired generation closes with its last one. Later calls
// do nothing.
func (le *Lease) Release() {
	le.once.Do(func() {
		le.cancel(nil)
		l := le.l
		l.mu.Lock()
		delete(le.t.leases, le)
		done := le.t.gone && len(le.t.leases) == 0
		l.mu.Unlock()
		if done {
			l.finish(le.t)
		}
	})
}

// Swap makes next the current generation and retires the one before it, which closes
// once no lease holds it. It returns the retired generation.
func (l *Live) Swap(next *Generation) *Generation {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.closeGen(next)
		return nil
	}
	old := l.cur
	l.cur = &tracked{g: next, leases: map[*Lease]bool{}}
	old.gone = true
	l.retired[old] = true
	empty := len(old.leases) == 0
	if !empty && l.drain > 0 {
		old.timer = time.AfterFunc(l.drain, func() { l.expire(old) })
	}
	l.mu.Unlock()
	if empty {
		l.finish(old)
	}
	return old.g
}

// expire cancels the requests still running on a retired generation.
func (l *Live) expire(t *tracked) {
	l.mu.Lock()
	leases := make([]*Lease, 0, len(t.leases))
	for le := range t.leases {
		leases = append(leases, le)
	}
	l.mu.Unlock()
	if len(leases) > 0 {
		l.log.Warn("a retired plugin generation ran out of drain time; cancelling its requests",
			"generation", t.g.Number(), "requests", len(leases), "drain", l.drain)
	}
	for _, le := range leases {
		le.cancel(ErrRetired)
	}
}

// finish closes a retired generation that no lease holds any more.
func (l *Live) finish(t *tracked) {
	if t.timer != nil {
		t.timer.Stop()
	}
	l.closeGen(t.g)
	l.mu.Lock()
	delete(l.retired, t)
	l.idle.Broadcast()
	l.mu.Unlock()
}

func (l *Live) closeGen(g *Generation) {
	if g == nil {
		return
	}
	if err := g.Close(context.Background()); err != nil {
		l.log.Warn("closing a retired plugin generation", "generation", g.Number(), "err", err)
	}
}

// Generations returns the current generation and the retired ones that still have
// requests (for metrics of their plugins).
func (l *Live) Generations() []*Generation {
	l.mu.Lock()
	defer l.mu.Unlock()
	var gs []*Generation
	if l.cur.g != nil {
		gs = append(gs, l.cur.g)
	}
	for t := range l.retired {
		if t.g != nil {
			gs = append(gs, t.g)
		}
	}
	return gs
}

// Retired returns the numbers of the retired generations that still have requests.
func (l *Live) Retired() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ns []uint64
	for t := range l.retired {
		if t.g != nil {
			ns = append(ns, t.g.Number())
		}
	}
	return ns
}

// Close retires the current generation and waits until every generation has closed,
// or ctx is done. Swap after Close closes what it is given.
func (l *Live) Close(ctx context.Context) error {
	l.Swap(nil)
	l.mu.Lock()
	l.closed = true
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.idle.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	for len(l.retired) > 0 && ctx.Err() == nil {
		l.idle.Wait()
	}
	n := len(l.retired)
	l.mu.Unlock()
	if n > 0 {
		return fmt.Errorf("generation: %d retired generations still have requests: %w", n, context.Cause(ctx))
	}
	return nil
}
