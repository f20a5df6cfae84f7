// Package sampler is the Go guest SDK for sampler plugins (sdk/ABI.md §6.2):
// implement Sampler and Sequence, call Register from an init function, and
// the package exports smp_open, smp_step and smp_close. Each step hands the
// plugin every row of the batch at once, with views straight into the
// host-written arena: no copies, no allocations on the hot path. TopK,
// Softmax and Draw call the host's primitives for the loops over a row's
// candidates.
package sampler

import (
	"sync"

	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

// Row is one sequence's candidates at one step. IDs and Logits are the
// candidate set after the host's own stages; a processor writes adjusted
// logits into Out (pre-filled with Logits; −Inf bans a candidate); a
// selector sets Token to the chosen id instead (−1, the default, means "the
// host draws from Out").
type Row struct {
	Position int32   // tokens generated so far
	U0, U1   float32 // uniforms in [0, 1) from the request's seeded generator
	LSE      float32 // log-sum-exp of the full row, for true probabilities
	IDs      []int32
	Logits   []float32
	Out      []float32
	Token    int32

	handle int64 // the host's name for the sequence, for History
}

// History returns the sequence's tokens so far — the prompt and every
// token chosen since, as the host recorded them — oldest first: the last
// max of them, or all when max ≤ 0. Penalties over a window and n-gram
// checks (DRY) read it instead of keeping their own copy.
func (r *Row) History(max int) ([]int32, error) { return history(r.handle, max) }

// Sampler opens a sequence per generated choice.
type Sampler interface {
	// Open starts a sequence; params are the request's sampling parameters
	// and the plugin's per-request params, as JSON.
	Open(params []byte) (Sequence, error)
}

// Sequence samples one choice.
type Sequence interface {
	// Step handles this sequence's row of the step.
	Step(r *Row) error
	// Close releases the sequence; it is always called.
	Close()
}

var (
	mu     sync.Mutex
	smp    Sampler
	seqs   = map[int64]Sequence{}
	nextID int64
)

// Register installs the plugin's sampler. Call it once, from init.
func Register(s Sampler) {
	mu.Lock()
	defer mu.Unlock()
	smp = s
}

func open(params []byte) (int64, error) {
	mu.Lock()
	s := smp
	mu.Unlock()
	if s == nil {
		return 0, errNoSampler
	}
	var q Sequence
	if err := ulan.Guard(func() (err error) { q, err = s.Open(params); return err }); err != nil {
		return 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	nextID++
	seqs[nextID] = q
	return nextID, nil
}

func lookup(h int64) Sequence {
	mu.Lock()
	defer mu.Unlock()
	return seqs[h]
}

func closeSeq(h int64) {
	mu.Lock()
	q := seqs[h]
	delete(seqs, h)
	mu.Unlock()
	if q != nil {
		_ = ulan.Guard(func() error { q.Close(); return nil })
	}
}

type sdkError string

func (e sdkError) Error() string { return string(e) }

const (
	errNoSampler = sdkError("sampler: no Sampler registered (call sampler.Register from init)")
	errNoSeq     = sdkError("sampler: unknown sequence handle")
	errArena     = sdkError("sampler: malformed step arena")
)
