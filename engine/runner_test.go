package engine_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/kvcache"
)

// stateModel is a model with V4's kinds of cache: rows every 4 tokens and
// every 16 tokens, and a per-sequence state. Forward records the batches it
// was given and returns zero logits.
type stateModel struct {
	batches []*engine.Batch
}

func (m *stateModel) Info() engine.Info { return engine.Info{Vocab: 3, Context: 1000} }

func (m *stateModel) Cache() engine.CacheLayout {
	return engine.CacheLayout{
		Paged: []engine.PagedCache{{Every: 4, Width: 8}, {Every: 16, Width: 8}},
		State: []engine.StateCache{{Rows: 16, Width: 8}},
	}
}

func (m *stateModel) Forward(ctx engine.Context, b *engine.Batch, _ []engine.Tensor) engine.Tensor {
	m.batches = append(m.batches, b)
	return ctx.Input(make([]float32, 3*len(b.Outputs)), len(b.Outputs), 3)
}

func TestRunnerChargesState(t *testing.T) {
	m := &stateModel{}
	l := m.Cache()
	require.Equal(t, 16, l.BlockSize(1))
	require.Equal(t, 32, l.BlockSize(20))
	// A 16-token block: 4 rows of 8 and 1 row of 8 = 40 values, 160 bytes;
	// the state is 128 values, 512 bytes: 4 blocks.
	require.Equal(t, int64(40), l.BlockValues(16))
	require.Equal(t, int64(128), l.StateValues())
	// Two sequences of 20 tokens: 2 × (4 + 2) blocks.
	budget := engine.CacheBytes(m, 2, 20, 0)
	require.Equal(t, int64(2*6*160), budget)

	r, err := engine.NewRunner(m, cpu.New(cpu.WithThreads(1)), engine.RunnerConfig{CacheBytes: budget})
	require.NoError(t, err)
	require.Equal(t, 16, r.BlockSize())
	require.Equal(t, 12, r.Blocks())
	require.Equal(t, 6, r.BlocksFor(20))
	require.Equal(t, int64(6*160), r.CacheBytesAt(20))
	require.Equal(t, int64(10), r.CacheBytesPerToken())

	a, b, c := r.NewSequence(), r.NewSequence(), r.NewSequence()
	_, err = r.Step([]engine.Work{{Seq: a, Tokens: make([]int32, 20)}, {Seq: b, Tokens: make([]int32, 3)}})
	require.NoError(t, err)
	// a took 4 + 2 blocks, b 4 + 1.
	require.Equal(t, 16, r.FreeTokens())
	got := m.batches[0]
	require.NotEqual(t, got.Seqs[0].State, got.Seqs[1].State)
	require.Equal(t, int(got.Seqs[1].State)*16, got.StateRow(1, 16))
	// Position 17 of a is in its second block, row 0 of that block's 4.
	require.Equal(t, int(got.Seqs[0].Blocks[1])*4, got.PagedRow(0, 17, 4))
	require.Equal(t, int(got.Seqs[0].Blocks[1]), got.PagedRow(0, 17, 16))

	// A third sequence cannot get its state: refused, nothing taken.
	_, err = r.Step([]engine.Work{{Seq: c, Tokens: []int32{1}}})
	require.ErrorIs(t, err, kvcache.ErrNoSpace)
	require.Equal(t, 16, r.FreeTokens())
	require.Equal(t, 0, c.Len())

	// Freeing a returns its blocks and its state slot; c then fits.
	slot := got.Seqs[0].State
	r.Free(a)
	require.Equal(t, 16+6*16, r.FreeTokens())
	_, err = r.Step([]engine.Work{{Seq: c, Tokens: []int32{1}}, {Seq: b, Tokens: []int32{2}}})
	require.NoError(t, err)
	require.Equal(t, slot, m.batches[len(m.batches)-1].Seqs[0].State)
	require.Equal(t, 4, b.Len())
}

func TestRunnerRefusesABudgetWithoutRoomForState(t *testing.T) {
	m := &stateModel{}
	_, err := engine.NewRunner(m, cpu.New(cpu.WithThreads(1)), engine.RunnerConfig{CacheBytes: 4 * 160})
	require.ErrorContains(t, err, "holds no sequence")
	_, err = engine.NewRunner(m, cpu.New(cpu.WithThreads(1)), engine.RunnerConfig{CacheBytes: 5 * 160})
	require.NoError(t, err)
}

func TestCacheLayoutValidate(t *testing.T) {
	require.Error(t, engine.CacheLayout{}.Validate())
	require.ErrorContains(t, engine.CacheLayout{Paged: []engine.PagedCache{{Every: 0, Width: 1}}}.Validate(), "paged tensor 0")
	require.ErrorContains(t, engine.CacheLayout{State: []engine.StateCache{{Rows: 1, Width: -1}}}.Validate(), "state tensor 0")
}

func TestFillNeedsAFiller(t *testing.T) {
	m := &stateModel{}
	r, err := engine.NewRunner(m, cpu.New(cpu.WithThreads(1)), engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, 1, 16, 0)})
	require.NoError(t, err)
	require.ErrorIs(t, r.Fill(r.NewSequence(), 4, 1), errors.ErrUnsupported)
}

// faultBackend fails the contexts' Compute with fail while it is set.
type faultBackend struct {
	engine.Backend
	fail error
}

func (b *faultBackend) NewContext() engine.Context {
	return &faultContext{Context: b.Backend.NewContext(), b: b}
}

type faultContext struct {
	engine.Context
	b *faultBackend
}

func (c *faultContext) Compute(outputs ...engine.Tensor) error {
	if c.b.fail != nil {
		return c.b.fail
	}
	return c.Context.Compute(outputs...)
}

// panicModel is stateModel whose Forward panics while panics is set.
type panicModel struct {
	stateModel
	panics bool
}

func (m *panicModel) Forward(ctx engine.Context, b *engine.Batch, caches []engine.Tensor) engine.Tensor {
	if m.panics {
		panic("a bug in the model")
	}
	return m.stateModel.Forward(ctx, b, caches)
}

// TestRunnerFailedStepGivesBack: a step the backend fails, or the model
// panics in, gives back the blocks and state slots it took and grows no
// sequence, so the sequences can be stepped again with other tokens (which
// used to allocate a negative count of blocks and panic) and freeing them
// returns the whole cache.
func TestRunnerFailedStepGivesBack(t *testing.T) {
	m := &panicModel{}
	b := &faultBackend{Backend: cpu.New(cpu.WithThreads(1))}
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, 2, 20, 0)})
	require.NoError(t, err)
	all := r.FreeTokens()
	a, c := r.NewSequence(), r.NewSequence()
	_, err = r.Step([]engine.Work{{Seq: a, Tokens: make([]int32, 5)}})
	require.NoError(t, err)
	used := all - r.FreeTokens()

	errFail := errors.New("device lost")
	b.fail = errFail
	_, err = r.Step([]engine.Work{{Seq: a, Tokens: make([]int32, 15)}, {Seq: c, Tokens: make([]int32, 20)}})
	require.ErrorIs(t, err, errFail)
	require.Equal(t, all-used, r.FreeTokens(), "the failed step's blocks and c's state went back")
	require.Equal(t, 5, a.Len())
	require.Zero(t, c.Len())
	require.Empty(t, r.TileMaxima())
	b.fail = nil

	m.panics = true
	_, err = r.Step([]engine.Work{{Seq: c, Tokens: make([]int32, 20)}})
	require.EqualError(t, err, "engine: a step of 1 sequences panicked: a bug in the model")
	require.Equal(t, all-used, r.FreeTokens())
	m.panics = false

	rows, err := r.Step([]engine.Work{{Seq: a, Tokens: []int32{1}}, {Seq: c, Tokens: make([]int32, 3)}})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.Equal(t, 6, a.Len())
	require.Equal(t, 3, c.Len())
	r.Free(a)
	r.Free(c)
	require.Equal(t, all, r.FreeTokens())
}

// TestRunnerEmptyStep: a step of no work runs nothing (it used to divide
// by zero outputs).
func TestRunnerEmptyStep(t *testing.T) {
	m := &stateModel{}
	r, err := engine.NewRunner(m, cpu.New(cpu.WithThreads(1)), engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, 1, 16, 0)})
	require.NoError(t, err)
	rows, err := r.Step(nil)
	require.NoError(t, err)
	require.Empty(t, rows)
	require.Empty(t, m.batches)
}
