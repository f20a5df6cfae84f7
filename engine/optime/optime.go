// Package optime times the operations of an engine.Backend's contexts: New
// wraps a backend so that every context it makes records, per operation,
// the wall time its calls took and how many there were. A CPU profile of a
// decode step spreads an operation over the backend's goroutines and
// kernels; this says how long each operation of the architecture held the
// step, which is where a step's time goes on an eager backend (the CPU's,
// which computes each op when it is called). On a backend that records ops
// and computes them at Compute, the times are the recording's, and
// Compute's holds the rest.
//
// Products are keyed by their weight's shape and type ("MatMul [129280
// 128] q8_0"), every other operation by its name. The wrapper's own cost is
// two clock readings and a map update per call.
package optime

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ulan-ai/ulan/engine"
)

// Backend is an engine.Backend whose contexts time their operations.
type Backend struct {
	engine.Backend

	mu   sync.Mutex
	ops  map[string]*Op
	keys sync.Map // engine.Tensor → its MatMul key
}

// Op is what one operation took since the last Reset.
type Op struct {
	// Name is the operation, with the weight's shape and type for MatMul.
	Name string
	// Calls is how many times it was called.
	Calls int
	// Time is the wall time those calls took, together.
	Time time.Duration
}

// New returns b with its contexts timed.
func New(b engine.Backend) *Backend {
	return &Backend{Backend: b, ops: map[string]*Op{}}
}

// NewContext returns a timed context of the wrapped backend.
func (b *Backend) NewContext() engine.Context {
	return &context{Context: b.Backend.NewContext(), b: b}
}

// Reset forgets what was recorded.
func (b *Backend) Reset() {
	b.mu.Lock()
	clear(b.ops)
	b.mu.Unlock()
}

// Ops returns what was recorded since the last Reset, the longest first
// (ties by name).
func (b *Backend) Ops() []Op {
	b.mu.Lock()
	out := make([]Op, 0, len(b.ops))
	for _, op := range b.ops {
		out = append(out, *op)
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y Op) int {
		if c := cmp.Compare(y.Time, x.Time); c != 0 {
			return c
		}
		return cmp.Compare(x.Name, y.Name)
	})
	return out
}

// since records a call of op that started at start.
func (b *Backend) since(op string, start time.Time) {
	d := time.Since(start)
	b.mu.Lock()
	o := b.ops[op]
	if o == nil {
		o = &Op{Name: op}
		b.ops[op] = o
	}
	o.Calls++
	o.Time += d
	b.mu.Unlock()
}

// matMulKey names a product by its weight, once per weight.
func (c *context) matMulKey(w engine.Tensor) string {
	if w == nil {
		return "MatMul"
	}
	if k, ok := c.b.keys.Load(w); ok {
		return k.(string)
	}
	k := fmt.Sprintf("MatMul %v %v", w.Shape(), w.DType())
	c.b.keys.Store(w, k)
	return k
}

// context is a timed engine.Context; the methods that do no work (Input,
// Slice, Reshape, Floats, TileMaxima, Close) are the wrapped context's
// own.
type context struct {
	engine.Context
	b *Backend
}
