package engine

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
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
	// BlockSize is the least number of tokens per block; 0 means
	// DefaultBlockSize. The runner rounds it up to a multiple of every
	// paged tensor's Every (CacheLayout.BlockSize).
	BlockSize int
}

// Runner runs a model over sequences that share one KV cache: it creates
// sequences, gives them cache blocks as they grow, and runs steps that mix
// prefill chunks and decode tokens of many sequences, reading each weight
// once per step. Steps run one at a time.
//
// A model whose layout has state tensors (V4's window ring and compressor
// state) charges each live sequence StateBlocks blocks of the same pool for
// its state slot, so one budget bounds both kinds of memory. See
// RATIONALE.md, "Why does a sequence's fixed state cost blocks?".
type Runner struct {
	model  Model
	b      Backend
	layout CacheLayout
	pool   *kvcache.Pool
	caches []Tensor
	blockB int64 // bytes of one block over all paged tensors
	stateN int   // blocks charged for one sequence's state

	mu    sync.Mutex
	slots []int32     // free state slots
	ctx   Context     // the previous step's context, closed by the next
	tiles [][]float32 // the previous step's rows' tile maxima (TileMaxima)
}

// ErrContextLength means a sequence would grow past the model's context.
var ErrContextLength = errors.New("engine: sequence longer than the model's context")

// CacheBytes is the budget that holds seqs sequences of tokens tokens each
// for m, with blocks of at least blockSize tokens (0: DefaultBlockSize).
func CacheBytes(m Model, seqs, tokens, blockSize int) int64 {
	l := m.Cache()
	bs := l.BlockSize(cmp.Or(blockSize, DefaultBlockSize))
	blockB := l.BlockValues(bs) * 4
	if blockB == 0 {
		blockB = 4 * int64(bs)
	}
	stateN := ceilDiv(l.StateValues()*4, blockB)
	return int64(seqs) * (stateN + ceilDiv(int64(tokens), int64(bs))) * blockB
}

// NewRunner allocates the KV cache for m on b.
func NewRunner(m Model, b Backend, cfg RunnerConfig) (*Runner, error) {
	l := m.Cache()
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	bs := l.BlockSize(cmp.Or(cfg.BlockSize, DefaultBlockSize))
	blockB := l.BlockValues(bs) * 4
	if blockB == 0 {
		// Only state tensors: blocks are accounting units of a token's
		// worth of f32 per row.
		blockB = 4 * int64(bs)
	}
	stateN := ceilDiv(l.StateValues()*4, blockB)
	blocks := cfg.CacheBytes / blockB
	if blocks < 1+stateN {
		return nil, fmt.Errorf("engine: a KV-cache budget of %d bytes holds no sequence: one needs %d bytes of state and %d bytes per block of %d tokens",
			cfg.CacheBytes, stateN*blockB, blockB, bs)
	}
	pool, err := kvcache.NewPool(int(blocks), bs)
	if err != nil {
		return nil, err
	}
	r := &Runner{model: m, b: b, layout: l, pool: pool, blockB: blockB, stateN: int(stateN)}
	for i, p := range l.Paged {
		c, err := b.Cache(int(blocks)*(bs/p.Every), p.Width, F32)
		if err != nil {
			return nil, fmt.Errorf("engine: paged cache tensor %d: %w", i, err)
		}
		r.caches = append(r.caches, c)
	}
	if len(l.State) > 0 {
		// Every live sequence holds at least one block besides its state.
		n := int(blocks / (stateN + 1))
		for i, st := range l.State {
			c, err := b.Cache(n*st.Rows, st.Width, F32)
			if err != nil {
				return nil, fmt.Errorf("engine: state cache tensor %d: %w", i, err)
			}
			r.caches = append(r.caches, c)
		}
		for i := n - 1; i >= 0; i-- {
			r.slots = append(r.slots, int32(i))
		}
	}
	return r, nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// Model returns the model the runner runs.
func (r *Runner) Model() Model { return r.model }

// BlockSize is the number of tokens per cache block.
func (r *Runner) BlockSize() int { return r.pool.BlockSize() }

// Blocks is the size of the cache in blocks.
func (r *Runner) Blocks() int { return r.pool.Blocks() }

// BlocksFor is the number of blocks one sequence of n tokens takes,
// its state included.
func (r *Runner) BlocksFor(n int) int { return r.stateN + r.pool.BlocksFor(n) }

// CacheTokens is the number of tokens the whole cache holds (as blocks;
// sequences' state takes some of them).
func (r *Runner) CacheTokens() int { return r.pool.Blocks() * r.pool.BlockSize() }

// FreeTokens is the number of tokens the free blocks hold.
func (r *Runner) FreeTokens() int { return r.pool.Free() * r.pool.BlockSize() }

// CacheBytesPerToken is the average KV-cache size of one token over all
// layers in a full cache: the block bytes over the block's tokens.
func (r *Runner) CacheBytesPerToken() int64 { return r.blockB / int64(r.pool.BlockSize()) }

// CacheBytes is the size of the whole KV cache.
func (r *Runner) CacheBytes() int64 { return int64(r.pool.Blocks()) * r.blockB }

// CacheBytesAt is the KV-cache memory one sequence of n tokens takes, its
// state and whole blocks included.
func (r *Runner) CacheBytesAt(n int) int64 { return int64(r.BlocksFor(n)) * r.blockB }

// Sequence is one token stream's state in the cache.
type Sequence struct {
	blocks []int32
	state  []int32 // blocks charged for the state slot
	slot   int32   // state slot, valid while state != nil
	n      int     // tokens in the cache
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
	if s.state != nil {
		r.pool.Release(s.state)
		r.slots = append(r.slots, s.slot)
	}
	s.blocks, s.state, s.freed = nil, nil, true
}

// take checks work, gives its sequences the cache blocks (and state slots)
// they need, and builds the step's batch; undo gives them back, for a step
// that fails after. When the blocks do not fit it fails with
// kvcache.ErrNoSpace and changes nothing. The caller holds r.mu.
func (r *Runner) take(work []Work) (b *Batch, undo func(), err error) {
	b = &Batch{BlockSize: r.pool.BlockSize()}
	ctxLen := r.model.Info().Context
	need, slots := 0, 0
	for i, w := range work {
		switch {
		case w.Seq == nil || w.Seq.freed:
			return nil, nil, fmt.Errorf("engine: work %d: sequence is freed", i)
		case len(w.Tokens) == 0:
			return nil, nil, fmt.Errorf("engine: work %d: no tokens", i)
		case ctxLen > 0 && w.Seq.n+len(w.Tokens) > ctxLen:
			return nil, nil, fmt.Errorf("%w: %d + %d tokens, context %d", ErrContextLength, w.Seq.n, len(w.Tokens), ctxLen)
		}
		for j := range i {
			if work[j].Seq == w.Seq {
				return nil, nil, fmt.Errorf("engine: work %d: sequence appears twice in one step", i)
			}
		}
		if vocab := r.model.Info().Vocab; vocab > 0 {
			for j, tok := range w.Tokens {
				if tok < 0 || int(tok) >= vocab {
					return nil, nil, fmt.Errorf("engine: work %d: token %d: id %d outside the vocabulary of %d", i, j, tok, vocab)
				}
			}
		}
		need += max(0, r.pool.BlocksFor(w.Seq.n+len(w.Tokens))-len(w.Seq.blocks))
		if w.Seq.state == nil && len(r.layout.State) > 0 {
			need += r.stateN
			slots++
		}
	}
	if slots > len(r.slots) {
		return nil, nil, fmt.Errorf("%w: %d sequences need state, %d state slots free", kvcache.ErrNoSpace, slots, len(r.slots))
	}
	fresh, err := r.pool.Alloc(need)
	if err != nil {
		return nil, nil, err
	}
	taken := slices.Clone(fresh)
	had := make([]int, len(work))       // blocks each sequence held before
	newState := make([]bool, len(work)) // the sequence got its state slot here
	for s, w := range work {
		had[s] = len(w.Seq.blocks)
		if w.Seq.state == nil && len(r.layout.State) > 0 {
			w.Seq.state, fresh = fresh[:r.stateN:r.stateN], fresh[r.stateN:]
			w.Seq.slot, r.slots = r.slots[len(r.slots)-1], r.slots[:len(r.slots)-1]
			newState[s] = true
		}
		grow := max(0, r.pool.BlocksFor(w.Seq.n+len(w.Tokens))-len(w.Seq.blocks))
		w.Seq.blocks = append(w.Seq.blocks, fresh[:grow]...)
		fresh = fresh[grow:]
		b.Seqs = append(b.Seqs, BatchSeq{Blocks: w.Seq.blocks, State: w.Seq.slot})
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
	undo = func() {
		for s, w := range work {
			w.Seq.blocks = w.Seq.blocks[:had[s]]
			if newState[s] {
				r.slots = append(r.slots, w.Seq.slot)
				w.Seq.state = nil
			}
		}
		r.pool.Release(taken)
	}
	return b, undo, nil
}

// fillChunk is the most tokens Fill hands a model at once.
const fillChunk = 2048

// Fill appends n tokens of random but well-formed cache entries to an
// empty sequence (see CacheFiller), in chunks, taking its blocks like a
// step would. It fails with an error wrapping errors.ErrUnsupported for a
// model that is not a CacheFiller.
func (r *Runner) Fill(s *Sequence, n int, seed uint64) error {
	filler, ok := r.model.(CacheFiller)
	if !ok {
		return fmt.Errorf("engine: %s cannot fill a cache synthetically: %w", r.model.Info().Architecture, errors.ErrUnsupported)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for done := 0; done < n; {
		k := min(fillChunk, n-done)
		b, undo, err := r.take([]Work{{Seq: s, Tokens: make([]int32, k)}})
		if err != nil {
			return err
		}
		b.Outputs = nil
		ctx := r.b.NewContext()
		filler.FillCache(ctx, b, r.caches, seed+uint64(done))
		err = ctx.Compute()
		ctx.Close()
		if err != nil {
			undo()
			return fmt.Errorf("engine: filling the cache: %w", err)
		}
		s.n += k
		done += k
	}
	return nil
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
// The rows alias backend memory and stay valid until the next Step. A Step
// of no work does nothing and returns no rows.
//
// Cache blocks are taken before anything runs: if they do not fit, Step
// fails with kvcache.ErrNoSpace and changes nothing. When the model or the
// backend fails (an error, or a panic, which Step returns as an error), the
// blocks and state slots the step took go back and no sequence grows, but
// what the failed pass wrote in the sequences' cache rows and state is
// undefined: free them rather than step them again.
func (r *Runner) Step(work []Work) (rows [][]float32, err error) {
	if len(work) == 0 {
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx != nil {
		r.ctx.Close()
		r.ctx = nil
	}
	r.tiles = r.tiles[:0]
	b, undo, err := r.take(work)
	if err != nil {
		return nil, err
	}
	ctx := r.b.NewContext()
	done := false
	defer func() {
		if done {
			return
		}
		if v := recover(); v != nil {
			rows, err = nil, fmt.Errorf("engine: a step of %d sequences panicked: %v", len(work), v)
		}
		ctx.Close()
		undo()
		r.tiles = r.tiles[:0]
	}()
	logits := r.model.Forward(ctx, b, r.caches)
	if err := ctx.Compute(logits); err != nil {
		return nil, err
	}
	vals, err := ctx.Floats(logits)
	if err != nil {
		return nil, err
	}
	vocab := len(vals) / len(b.Outputs)
	if vocab == 0 || vocab*len(b.Outputs) != len(vals) {
		return nil, fmt.Errorf("engine: the model gave %d logits for %d outputs", len(vals), len(b.Outputs))
	}
	tiles := ctx.TileMaxima(logits)
	rows = make([][]float32, 0, len(work))
	k := 0
	for _, w := range work {
		n := 1
		if w.AllLogits {
			n = len(w.Tokens)
		}
		rows = append(rows, vals[k*vocab:(k+n)*vocab])
		var t []float32
		if n == 1 && len(tiles) == len(b.Outputs) {
			t = tiles[k]
		}
		r.tiles = append(r.tiles, t)
		k += n
	}
	for _, w := range work {
		w.Seq.n += len(w.Tokens)
	}
	r.ctx = ctx
	done = true
	return rows, nil
}

// TileMaxima returns the tile maxima of the rows the last Step returned,
// in the same order (Context.TileMaxima): for each row, the largest of
// every LogitTile consecutive logits, or nil where the backend made none,
// the row holds a value that is not finite, or the row is AllLogits'. They
// stay valid, like the rows, until the next Step; a sampler that changes
// a row's values must mend its maxima.
func (r *Runner) TileMaxima() [][]float32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tiles
}
