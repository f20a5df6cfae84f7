package engine

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ulan-ai/ulan/engine/kvcache"
)

// DefaultBlockSize is the number of tokens per KV-cache block.
const DefaultBlockSize = 16

// RunnerConfig sizes a Runner.
type RunnerConfig struct {
	// CacheBytes is the KV-cache budget; the cache holds as many blocks as
	// fit in it. Required.
	CacheBytes int64
	// BlockSize is the tokens per block; 0 means DefaultBlockSize.
	BlockSize int
}

// Runner runs a model over sequences that share one KV cache: it creates
// sequences, gives them cache blocks as they grow, and runs steps that mix
// prefill chunks and decode tokens of many sequences, reading each weight
// once per step. Steps run one at a time.
type Runner struct {
	model  Model
	b      Backend
	pool   *kvcache.Pool
	caches []Tensor
	rowB   int64 // cache bytes per token, all layers

	mu  sync.Mutex
	ctx Context // the previous step's context, closed by the next
}

// ErrContextLength means a sequence would grow past the model's context.
var ErrContextLength = errors.New("engine: sequence longer than the model's context")

// NewRunner allocates the KV cache for m on b.
func NewRunner(m Model, b Backend, cfg RunnerConfig) (*Runner, error) {
	bs := cfg.BlockSize
	if bs <= 0 {
		bs = DefaultBlockSize
	}
	var rowB int64
	for _, w := range m.CacheWidths() {
		rowB += int64(w) * 4
	}
	blocks := cfg.CacheBytes / (rowB * int64(bs))
	if blocks < 1 {
		return nil, fmt.Errorf("engine: a KV-cache budget of %d bytes holds no block of %d tokens (%d bytes per token)", cfg.CacheBytes, bs, rowB)
	}
	pool, err := kvcache.NewPool(int(blocks), bs)
	if err != nil {
		return nil, err
	}
	r := &Runner{model: m, b: b, pool: pool, rowB: rowB}
	for l, w := range m.CacheWidths() {
		c, err := b.Cache(int(blocks)*bs, w, F32)
		if err != nil {
			return nil, fmt.Errorf("engine: cache of layer %d: %w", l, err)
		}
		r.caches = append(r.caches, c)
	}
	return r, nil
}

// Model returns the model the runner runs.
func (r *Runner) Model() Model { return r.model }

// CacheTokens is the number of tokens the whole cache holds.
func (r *Runner) CacheTokens() int { return r.pool.Blocks() * r.pool.BlockSize() }

// FreeTokens is the number of tokens the free blocks hold.
func (r *Runner) FreeTokens() int { return r.pool.Free() * r.pool.BlockSize() }

// CacheBytesPerToken is the KV-cache size of one token over all layers.
func (r *Runner) CacheBytesPerToken() int64 { return r.rowB }

// Sequence is one token stream's state in the cache.
type Sequence struct {
	blocks []int32
	n      int // tokens in the cache
	freed  bool
}

// Len is the number of tokens the sequence holds.
func (s *Sequence) Len() int { return s.n }

// NewSequence starts an empty sequence.
func (r *Runner) NewSequence() *Sequence { return &Sequence{} }

// Free returns a sequence's blocks to the pool. The sequence cannot be used
// afterwards; freeing twice is harmless.
func (r *Runner) Free(s *Sequence) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.freed {
		return
	}
	r.pool.Release(s.blocks)
	s.blocks, s.freed = nil, true
}

// Work is one sequence's part of a step: tokens to append (a prefill chunk,
// or the one token of a decode step).
type Work struct {
	Seq    *Sequence
	Tokens []int32
	// AllLogits asks for the logits of every token, not just the last.
	AllLogits bool
}

// Step appends each Work's tokens to its sequence and runs them through the
// model in one forward pass. It returns, per Work, the logits of its last
// token (or of all its tokens with AllLogits), as rows of vocabulary size.
// The rows alias backend memory and stay valid until the next Step.
//
// Cache blocks are taken before anything runs: if they do not fit, Step
// fails with kvcache.ErrNoSpace and changes nothing.
func (r *Runner) Step(work []Work) ([][]float32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx != nil {
		r.ctx.Close()
		r.ctx = nil
	}
	b := &Batch{BlockSize: r.pool.BlockSize()}
	ctxLen := r.model.Info().Context
	need := 0
	for i, w := range work {
		switch {
		case w.Seq == nil || w.Seq.freed:
			return nil, fmt.Errorf("engine: work %d: sequence is freed", i)
		case len(w.Tokens) == 0:
			return nil, fmt.Errorf("engine: work %d: no tokens", i)
		case ctxLen > 0 && w.Seq.n+len(w.Tokens) > ctxLen:
			return nil, fmt.Errorf("%w: %d + %d tokens, context %d", ErrContextLength, w.Seq.n, len(w.Tokens), ctxLen)
		}
		for j := range i {
			if work[j].Seq == w.Seq {
				return nil, fmt.Errorf("engine: work %d: sequence appears twice in one step", i)
			}
		}
		need += r.pool.BlocksFor(w.Seq.n+len(w.Tokens)) - len(w.Seq.blocks)
	}
	fresh, err := r.pool.Alloc(need)
	if err != nil {
		return nil, err
	}
	for s, w := range work {
		grow := r.pool.BlocksFor(w.Seq.n+len(w.Tokens)) - len(w.Seq.blocks)
		w.Seq.blocks = append(w.Seq.blocks, fresh[:grow]...)
		fresh = fresh[grow:]
		b.Seqs = append(b.Seqs, BatchSeq{Blocks: w.Seq.blocks})
		for j, tok := range w.Tokens {
			pos := w.Seq.n + j
			b.Tokens = append(b.Tokens, tok)
			b.Positions = append(b.Positions, int32(pos))
			b.Seq = append(b.Seq, int32(s))
			b.Slots = append(b.Slots, int32(b.Slot(s, pos)))
			if w.AllLogits || j == len(w.Tokens)-1 {
				b.Outputs = append(b.Outputs, len(b.Tokens)-1)
			}
		}
	}
	ctx := r.b.NewContext()
	logits := r.model.Forward(ctx, b, r.caches)
	if err := ctx.Compute(logits); err != nil {
		ctx.Close()
		return nil, err
	}
	vals, err := ctx.Floats(logits)
	if err != nil {
		ctx.Close()
		return nil, err
	}
	r.ctx = ctx
	for _, w := range work {
		w.Seq.n += len(w.Tokens)
	}
	vocab := len(vals) / len(b.Outputs)
	rows := make([][]float32, 0, len(work))
	k := 0
	for _, w := range work {
		n := 1
		if w.AllLogits {
			n = len(w.Tokens)
		}
		rows = append(rows, vals[k*vocab:(k+n)*vocab])
		k += n
	}
	return rows, nil
}
