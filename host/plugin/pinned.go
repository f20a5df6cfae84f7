package plugin

import (
	"context"
	"errors"
	"fmt"
)

// pinned is an instance one caller holds across calls — a hook session or a
// sampler batch, whose handles live in that instance's memory — with an
// input arena allocated through ulan_alloc. Any failed call gives the
// instance up (it is discarded and replaced); release returns a healthy one.
type pinned struct {
	p     *Plugin
	inst  *instance
	arena uint32
	cap   uint32
	dead  bool
}

var errSessionDead = errors.New("the session's instance failed")

// pin checks out an instance of a plugin of the given kind (pool.pin: an
// idle one, else an extra one), waiting at most the call timeout.
func (p *Plugin) pin(ctx context.Context, kind Kind, export string) (*pinned, error) {
	if p.cfg.Kind != kind {
		return nil, fmt.Errorf("plugin %s: not a %s plugin", p.cfg.ID, kind)
	}
	if err := p.breaker.allow(); err != nil {
		return nil, &CallError{Plugin: p.cfg.ID, Export: export, Kind: KindUnhealthy, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	inst, err := p.pool.pin(ctx)
	if err != nil {
		return nil, &CallError{Plugin: p.cfg.ID, Export: export, Kind: KindTimeout, Err: fmt.Errorf("no instance free before the deadline: %w", err)}
	}
	return &pinned{p: p, inst: inst}, nil
}

// call calls an export on the pinned instance.
func (x *pinned) call(ctx context.Context, export string, params ...uint64) ([]uint64, error) {
	if x.dead {
		return nil, errSessionDead
	}
	res, err := x.p.callOn(ctx, x.inst, export, params)
	if err != nil {
		x.fail()
	}
	return res, err
}

// reserve makes the arena at least size bytes (8-byte aligned).
func (x *pinned) reserve(ctx context.Context, size uint32) error {
	if x.dead {
		return fmt.Errorf("plugin %s: %w", x.p.cfg.ID, errSessionDead)
	}
	if size <= x.cap {
		return nil
	}
	if x.arena != 0 {
		if _, err := x.call(ctx, "ulan_free", uint64(x.arena)); err != nil {
			return err
		}
	}
	size = max(size, 4096)
	res, err := x.call(ctx, "ulan_alloc", uint64(size))
	if err != nil {
		return err
	}
	if res[0] == 0 || res[0]%8 != 0 {
		return x.reject(fmt.Errorf("plugin %s: ulan_alloc(%d) gave %d, not an 8-byte aligned buffer", x.p.cfg.ID, size, res[0]))
	}
	x.arena, x.cap = uint32(res[0]), size
	return nil
}

// write puts a and b one after the other in the arena and returns the
// address of a.
func (x *pinned) write(ctx context.Context, a, b []byte) (uint32, error) {
	if err := x.reserve(ctx, uint32(len(a)+len(b))); err != nil {
		return 0, err
	}
	mem := x.inst.mod.Memory()
	if !mem.Write(x.arena, a) || !mem.Write(x.arena+uint32(len(a)), b) {
		return 0, x.reject(fmt.Errorf("plugin %s: its arena is outside its memory", x.p.cfg.ID))
	}
	return x.arena, nil
}

// ok records a call whose outputs passed the host's checks (or that
// reported an error status, as the ABI lets it) for the circuit breaker.
func (x *pinned) ok() { x.p.breaker.success() }

// reject gives up the instance after it broke the ABI's contract (see
// Plugin.broke) and returns err, marked as a refused output (KindInvalid).
func (x *pinned) reject(err error) error {
	if !x.dead {
		x.p.broke(err)
	}
	x.fail()
	return refused{err}
}

// fail gives up the instance after an error.
func (x *pinned) fail() {
	if !x.dead && x.inst != nil {
		x.p.pool.discard(x.inst)
	}
	x.dead, x.inst = true, nil
}

// statusError reports a non-zero status with the plugin's error text.
func (x *pinned) statusError(export string, status int64) error {
	msg := ""
	if x.inst != nil {
		msg = x.p.takeError(x.inst)
	}
	if msg == "" {
		msg = "no message"
	}
	return &StatusError{Plugin: x.p.cfg.ID, Export: export, Status: status, Message: msg}
}

// release frees the arena and returns the instance to the pool. It returns
// ulan_free's error, after which the instance is given up instead.
func (x *pinned) release(ctx context.Context) error {
	if x.dead || x.inst == nil {
		return nil
	}
	if x.arena != 0 {
		ctx, cancel := context.WithTimeout(ctx, x.p.cfg.CallTimeout)
		defer cancel()
		if _, err := x.call(ctx, "ulan_free", uint64(x.arena)); err != nil {
			return err
		}
	}
	x.p.pool.put(x.inst)
	x.inst = nil
	return nil
}
