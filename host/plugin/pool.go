package plugin

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// instance is one instantiated module with the functions looked up so far:
// wazero builds a new call engine on every ExportedFunction, so a hot path
// must not look exports up per call.
type instance struct {
	mod api.Module
	fns map[string]api.Function
	// extra marks an instance made beyond the pool's size for a caller that
	// pins one (see pool.pin): it is closed, not pooled, when it is given
	// back or fails.
	extra bool
}

func (i *instance) function(name string) api.Function {
	if f, ok := i.fns[name]; ok {
		return f
	}
	f := i.mod.ExportedFunction(name)
	if f != nil {
		i.fns[name] = f
	}
	return f
}

func (i *instance) Close(ctx context.Context) error { return i.mod.Close(ctx) }

// pool holds a plugin's warm instances. Checkout waits on a channel (never
// spins) until an instance is free or the deadline passes; a discarded
// instance is replaced in the background, with exponential backoff while
// instantiation keeps failing.
type pool struct {
	p    *Plugin
	idle chan *instance
	size int

	mu           sync.Mutex
	closed       bool
	extra        int // extra instances live (pool.pin)
	replacements int
	lent         int // instances lent to a derived plugin and not yet replaced
	backoff      time.Duration
	wg           sync.WaitGroup
	// stop ends replacements under way (an instantiation, or a backoff's
	// wait) when the pool closes: close waits for them, and must not wait
	// out a ulan_init that hangs until its deadline, again and again.
	stop   context.Context
	cancel context.CancelFunc
}

// maxInstances bounds a plugin's instances, pooled and extra: a server holds
// at most this many hooked streams (or sampler batches) at once beyond its
// pool, each with an instance of its own.
const maxInstances = 64

const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// newPool fills a pool of p.cfg.PoolSize with the ready instances and as many new
// ones as it lacks.
func newPool(ctx context.Context, p *Plugin, ready ...*instance) (*pool, error) {
	pl := &pool{p: p, idle: make(chan *instance, p.cfg.PoolSize), size: p.cfg.PoolSize, backoff: minBackoff}
	pl.stop, pl.cancel = context.WithCancel(context.Background())
	for _, m := range ready {
		pl.idle <- m
	}
	// Instances warm up side by side, one per CPU: a reload waits for the slowest
	// ulan_init, not for their sum.
	missing := pl.size - len(ready)
	errs := make([]error, max(missing, 0))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range missing {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			m, err := p.instantiate(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			pl.idle <- m
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			pl.close()
			return nil, err
		}
	}
	return pl, nil
}

func (pl *pool) checkout(ctx context.Context) (*instance, error) {
	// An idle instance is taken at once (and without an observer's report);
	// otherwise an instance lent away is replaced now that it is missed, and
	// the wait is timed and reported, however it ends.
	select {
	case m := <-pl.idle:
		return m, nil
	default:
	}
	pl.refill()
	obs := pl.p.obs
	if obs == nil || ctx.Err() != nil {
		select {
		case m := <-pl.idle:
			return m, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	start := time.Now()
	select {
	case m := <-pl.idle:
		obs.PoolWait(time.Since(start))
		return m, nil
	case <-ctx.Done():
		obs.PoolWait(time.Since(start))
		return nil, context.Cause(ctx)
	}
}

// pin checks out an instance for a caller that keeps it across calls (a
// hook session holds one for its whole stream): an idle one if there is
// one, else a new one beyond the pool's size while the plugin has fewer
// than maxInstances, else the first to come back before ctx ends. A
// pool's size then bounds its idle instances, not the streams it serves:
// with the default of 2, a third concurrent hooked stream would otherwise
// wait for one of the first two to end, and fail at the call timeout.
func (pl *pool) pin(ctx context.Context) (*instance, error) {
	select {
	case m := <-pl.idle:
		return m, nil
	default:
	}
	pl.mu.Lock()
	grow := !pl.closed && pl.size+pl.extra < maxInstances
	if grow {
		pl.extra++
	}
	pl.mu.Unlock()
	if grow {
		m, err := pl.p.instantiate(ctx)
		if err == nil {
			m.extra = true
			return m, nil
		}
		pl.mu.Lock()
		pl.extra--
		pl.mu.Unlock()
		pl.p.log.Warn("plugin instance beyond the pool could not be made; waiting for a pooled one", "err", err)
	}
	return pl.checkout(ctx)
}

// dropExtra closes an extra instance given back or failed.
func (pl *pool) dropExtra(m *instance) {
	pl.p.closeInstance(m)
	pl.mu.Lock()
	pl.extra--
	pl.mu.Unlock()
}

// put returns a healthy instance. One whose module was closed after all (a
// deadline that passed just as its last call returned closes the module
// behind the call's back) is discarded and replaced instead, so that the
// next caller does not meet a dead instance.
func (pl *pool) put(m *instance) {
	if m.extra {
		pl.dropExtra(m)
		return
	}
	if m.mod.IsClosed() {
		pl.p.log.Warn("plugin instance closed by a deadline as its call returned; replaced")
		pl.discard(m)
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		pl.p.closeInstance(m)
		return
	}
	pl.idle <- m
}

// lend takes up to n idle instances out of the pool, for a plugin derived from
// this one to reconfigure and keep. The pool replaces them only when a checkout
// misses them (see refill): a generation being retired keeps serving its last
// streams without instantiating for nothing.
func (pl *pool) lend(n int) []*instance {
	var out []*instance
	for len(out) < n {
		select {
		case m := <-pl.idle:
			out = append(out, m)
			continue
		default:
		}
		break
	}
	pl.mu.Lock()
	pl.lent += len(out)
	pl.mu.Unlock()
	return out
}

// giveBack returns a lent instance that was not changed; if a checkout has
// already started its replacement, it is closed instead.
func (pl *pool) giveBack(m *instance) {
	pl.mu.Lock()
	back := pl.lent > 0
	if back {
		pl.lent--
	}
	pl.mu.Unlock()
	if !back {
		pl.p.closeInstance(m)
		return
	}
	pl.put(m)
}

// refill starts the replacement of one lent instance, if any is still out.
func (pl *pool) refill() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.lent == 0 || pl.closed {
		return
	}
	pl.lent--
	pl.wg.Add(1)
	go pl.replace()
}

// discard closes a failed instance and starts its replacement.
func (pl *pool) discard(m *instance) {
	if m.extra {
		pl.dropExtra(m)
		return
	}
	pl.p.closeInstance(m)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		return
	}
	pl.wg.Add(1)
	go pl.replace()
}

func (pl *pool) replace() {
	defer pl.wg.Done()
	for {
		m, err := pl.p.instantiate(pl.stop)
		pl.mu.Lock()
		if pl.closed {
			pl.mu.Unlock()
			if m != nil {
				pl.p.closeInstance(m)
			}
			return
		}
		if err == nil {
			pl.replacements++
			pl.backoff = minBackoff
			pl.idle <- m
			pl.mu.Unlock()
			return
		}
		wait := pl.backoff
		pl.backoff = min(2*pl.backoff, maxBackoff)
		pl.mu.Unlock()
		pl.p.log.Warn("plugin instance could not be replaced; retrying", "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-pl.stop.Done():
			return
		}
	}
}

func (pl *pool) stats() (idle, size, replacements int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.idle), pl.size, pl.replacements
}

// close stops replacements and closes the idle instances; instances in use
// are closed when they come back.
func (pl *pool) close() {
	pl.mu.Lock()
	pl.closed = true
	pl.mu.Unlock()
	pl.cancel()
	pl.wg.Wait()
	for {
		select {
		case m := <-pl.idle:
			pl.p.closeInstance(m)
		default:
			return
		}
	}
}
