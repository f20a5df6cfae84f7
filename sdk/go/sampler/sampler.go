// Package sampler is the Go guest SDK for sampler plugins (sdk/ABI.md §6.2):
// implement Sampler and Sequence, call Register from an init function, and
// the package exports smp_open, smp_step and smp_close. Each step hands the
// plugin every row of the batch at once, with views straight into the
// host-written arena: no copies, no allocations on the hot path. TopK,
// Softmax and Draw call the host's primitives for the loops over a row's
// candidates.
package sampler

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

// Row is one sequence's candidates at one step. IDs and Logits are the
// candidate set after the host's own stages: the row's best tokens, sorted
// by logit, largest first, ties to the lower id. A processor writes
// adjusted logits into Out (pre-filled with Logits; −Inf bans a
// candidate); a selector sets Token to the chosen id instead (−1, the
// default, means "the host draws from Out"). Either may call Widen, or
// KeepAll, instead.
type Row struct {
	Position int32   // tokens generated so far
	U0, U1   float32 // uniforms in [0, 1) from the request's seeded generator
	// LSE is the log-sum-exp of the full row, for true probabilities. A
	// plugin whose manifest declares "sampler": {"lse": "on_demand"} may
	// find it NaN (the host did not compute it): it reads it with FullLSE,
	// which asks the host then. Without that declaration it is always set.
	LSE    float32
	IDs    []int32
	Logits []float32
	Out    []float32
	Token  int32
	// LoadLSE is for native callers of a policy (the host's fallback):
	// when LSE is NaN, FullLSE calls it. Plugins leave it nil.
	LoadLSE func() float32

	handle  int64   // the host's name for the sequence, for History
	index   int32   // the row's index in the step arena, for row_lse
	keepAll bool    // the host accepts KeepAll's answer
	keepT   float32 // KeepAll's temperature
}

// FullLSE returns the log-sum-exp of the full row: LSE when the host wrote
// it, else what the host's row_lse import (or LoadLSE) gives. The host
// computes it once per row and step, over the whole vocabulary: a plugin
// that declares "lse": "on_demand" and calls FullLSE only when a policy
// needs true probabilities saves that pass on every other row. It is an
// error when the host cannot give it.
func (r *Row) FullLSE() (float32, error) {
	lse := r.LSE
	if lse != lse {
		if r.LoadLSE != nil {
			lse = r.LoadLSE()
		} else {
			lse = rowLSE(r.index)
		}
	}
	if lse != lse {
		return 0, errPrimitive("row_lse: the host gave no log-sum-exp for the row")
	}
	r.LSE = lse
	return lse, nil
}

// TokenKeepAll is the out_token that keeps the whole row at a temperature
// (sdk/ABI.md §6.2); KeepAll sets it.
const TokenKeepAll = -3

// KeepAll answers the row with "keep every token of the row — all of the
// vocabulary, not only these candidates — with its logit divided by t":
// the host draws from softmax(logits/t) over the whole row, natively,
// without widening the candidates. t must be positive and finite. Out is
// then ignored. It reports false, and answers nothing, when the host does
// not accept such answers (a host older than the answer): the policy then
// answers as it would otherwise (for a policy that keeps every token,
// Widen until the row holds the whole vocabulary).
func (r *Row) KeepAll(t float32) bool {
	if !r.keepAll || !(t > 0) || t > maxFloat32 {
		return false
	}
	r.Token, r.keepT = TokenKeepAll, t
	return true
}

const maxFloat32 = 3.40282346638528859811704183484516925440e+38

// TokenWiden is the out_token that asks the host for more candidates
// (sdk/ABI.md §6.2); Widen sets it.
const TokenWiden = -2

// Widen answers the row with "these candidates are too few for my policy":
// the host repeats this step for this row with a wider candidate set (up
// to the whole vocabulary), and draws nothing now. Out is then ignored.
// The policy must not advance the sequence's state for a widened answer:
// the same step comes again. A row that already holds the whole
// vocabulary (len(IDs) equal to the vocabulary size) must not be widened;
// the host treats that as the plugin's error.
func (r *Row) Widen() { r.Token = TokenWiden }

// History returns the sequence's tokens so far — the prompt and every
// token chosen since, as the host recorded them — oldest first: the last
// max of them, or all when max ≤ 0. Penalties over a window and n-gram
// checks (DRY) read it instead of keeping their own copy.
func (r *Row) History(max int) ([]int32, error) { return history(r.handle, max) }

// Sampler opens a sequence per generated choice.
type Sampler interface {
	// Open starts a sequence. params is smp_open's JSON (sdk/ABI.md §6.2):
	// the request's sampling parameters, the plugin's per-request params
	// and the vocabulary size; ParseOpen reads it.
	Open(params []byte) (Sequence, error)
}

// OpenRequest is smp_open's JSON (sdk/ABI.md §6.2):
//
//	{"sampling": {"temperature": 0.7, "top_p": 0.9, …},
//	 "params": {…}, "vocab_size": 129280}
//
// Sampling holds the request's SamplingParams as protobuf JSON with the
// proto's snake_case names; a field the request left unset is absent.
// Params holds the plugin's per-request parameters (absent when none).
// VocabSize is the model's vocabulary size, the most candidates a row can
// have; 0 when the host did not say.
type OpenRequest struct {
	Sampling  json.RawMessage `json:"sampling,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	VocabSize int             `json:"vocab_size,omitempty"`
}

// ParseOpen reads smp_open's JSON. Unknown fields are ignored; a negative
// vocab_size is an error.
func ParseOpen(raw []byte) (OpenRequest, error) {
	var o OpenRequest
	if err := json.Unmarshal(raw, &o); err != nil {
		return OpenRequest{}, fmt.Errorf("sampler: smp_open: %w", err)
	}
	if o.VocabSize < 0 {
		return OpenRequest{}, fmt.Errorf("sampler: smp_open: vocab_size %d", o.VocabSize)
	}
	return o, nil
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
