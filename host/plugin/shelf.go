package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Shelf keeps the compiled runtimes of closed plugins for a while, so that loading
// one of their modules again — a rollback, a module file switched back, a reload
// after a dry run — skips compiling it. A compilation cache alone does not: wazero
// decodes, validates and hashes a module even when the cache has its machine code,
// about 100 ms for a 4 MB Go plugin. A shelved runtime holds no instances, only the
// compiled module; the shelf keeps the most recent few, each for a limited time.
// Plugins share a shelf through Config.Shelf; it is safe for concurrent use.
type Shelf struct {
	max int
	ttl time.Duration

	mu      sync.Mutex
	entries []*shelved // oldest first
	closed  bool
}

// shelved is one runtime on the shelf, with the last plugin that ran on it, from
// which the next is built.
type shelved struct {
	key   shelfKey
	base  *Plugin
	timer *time.Timer
}

// shelfKey is what a runtime is built for: a plugin can run on a shelved runtime
// exactly when Derive could make it from a plugin on that runtime.
type shelfKey struct {
	sum    [sha256.Size]byte
	id     string
	tier   Tier
	pages  uint32
	grants Grants
	kind   Kind
}

// NewShelf returns a shelf of at most max runtimes, each kept at most ttl.
func NewShelf(max int, ttl time.Duration) *Shelf {
	return &Shelf{max: max, ttl: ttl}
}

// Len reports how many runtimes are on the shelf.
func (s *Shelf) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Close closes every shelved runtime; later plugins close theirs instead of
// shelving them.
func (s *Shelf) Close(ctx context.Context) error {
	s.mu.Lock()
	entries := s.entries
	s.entries, s.closed = nil, true
	s.mu.Unlock()
	var first error
	for _, e := range entries {
		e.timer.Stop()
		if err := e.base.rt.Close(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// put shelves p's runtime, which no plugin uses any more, evicting the oldest
// when the shelf is full; it reports false, having kept nothing, when the shelf
// is closed or holds nothing.
func (s *Shelf) put(p *Plugin) bool {
	if s == nil || s.max <= 0 {
		return false
	}
	e := &shelved{key: keyOf(p.sum, &p.cfg), base: p}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	var evicted []*shelved
	for len(s.entries) >= s.max {
		evicted = append(evicted, s.entries[0])
		s.entries = s.entries[1:]
	}
	s.entries = append(s.entries, e)
	e.timer = time.AfterFunc(s.ttl, func() { s.expire(e) })
	s.mu.Unlock()
	for _, old := range evicted {
		old.timer.Stop()
		_ = old.base.rt.Close(context.Background())
	}
	return true
}

// take removes and returns the base plugin of a runtime shelved for key, or nil.
func (s *Shelf) take(key shelfKey) *Plugin {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.entries {
		if e.key == key && e.timer.Stop() {
			s.entries = append(s.entries[:i], s.entries[i+1:]...)
			return e.base
		}
	}
	return nil
}

// expire closes e's runtime when its time on the shelf is up.
func (s *Shelf) expire(e *shelved) {
	s.mu.Lock()
	for i, x := range s.entries {
		if x == e {
			s.entries = append(s.entries[:i], s.entries[i+1:]...)
			s.mu.Unlock()
			_ = e.base.rt.Close(context.Background())
			return
		}
	}
	s.mu.Unlock()
}

func keyOf(sum [sha256.Size]byte, cfg *Config) shelfKey {
	return shelfKey{sum: sum, id: cfg.ID, tier: cfg.Tier, pages: cfg.MemoryPages, grants: cfg.Grants, kind: cfg.Kind}
}

// moduleSum is the module's SHA-256: cfg.ModuleSHA256 when it is given.
func moduleSum(wasm []byte, cfg *Config) [sha256.Size]byte {
	var sum [sha256.Size]byte
	if b, err := hex.DecodeString(cfg.ModuleSHA256); err == nil && len(b) == sha256.Size {
		copy(sum[:], b)
		return sum
	}
	return sha256.Sum256(wasm)
}
