package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv3"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/kvcache"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/scheduler"
)

// testContext is the test model's context, small so that sequences reach it.
const testContext = 96

var (
	modelDir   string
	modelMu    sync.Mutex
	modelFiles = map[string]*gguf.File{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range modelFiles {
		f.Close()
	}
	if modelDir != "" {
		os.RemoveAll(modelDir)
	}
	os.Exit(code)
}

// modelFile writes a seeded model and opens it once per test binary; tests
// share the file (read only) and load it on backends of their own.
func modelFile(tb testing.TB, c testmodel.V3) *gguf.File {
	tb.Helper()
	modelMu.Lock()
	defer modelMu.Unlock()
	if f, ok := modelFiles[c.Name]; ok {
		return f
	}
	if modelDir == "" {
		dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-scheduler-")
		require.NoError(tb, err)
		modelDir = dir
	}
	p := filepath.Join(modelDir, c.Name+".gguf")
	require.NoError(tb, c.WriteFile(p, 1))
	f, err := gguf.Open(p)
	require.NoError(tb, err)
	modelFiles[c.Name] = f
	return f
}

// testModel is TinyV3 with a context of testContext tokens.
func testModel() testmodel.V3 {
	c := testmodel.TinyV3()
	c.Name = "ulan-test-scheduler"
	c.Context = testContext
	return c
}

// newRunner loads c on a one-thread CPU backend of its own (tests run in
// parallel), with a KV cache of cacheTokens tokens.
func newRunner(tb testing.TB, c testmodel.V3, cacheTokens int) *engine.Runner {
	return newRunnerThreads(tb, c, cacheTokens, 1)
}

func newRunnerThreads(tb testing.TB, c testmodel.V3, cacheTokens, threads int) *engine.Runner {
	tb.Helper()
	b := cpu.New(cpu.WithThreads(threads))
	m, err := engine.LoadGGUF(modelFile(tb, c), b)
	require.NoError(tb, err)
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, 1, cacheTokens, 0)})
	require.NoError(tb, err)
	require.Equal(tb, cacheTokens, r.CacheTokens())
	return r
}

func argmax(row []float32) int32 {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return int32(best)
}

func greedy(rows []scheduler.Row) []scheduler.Decision {
	d := make([]scheduler.Decision, len(rows))
	for i, r := range rows {
		d[i].Token = argmax(r.Logits)
	}
	return d
}

// solo is the reference: the runner alone, one sequence, the whole prompt in
// one step, then greedy decode steps until maxTokens (0: no limit) or the
// runner refuses the context.
func solo(t *testing.T, r *engine.Runner, prompt []int32, maxTokens int) []int32 {
	t.Helper()
	seq := r.NewSequence()
	defer r.Free(seq)
	var out []int32
	next := prompt
	for maxTokens == 0 || len(out) < maxTokens {
		rows, err := r.Step([]engine.Work{{Seq: seq, Tokens: next}})
		if errors.Is(err, engine.ErrContextLength) {
			break
		}
		require.NoError(t, err)
		tok := argmax(rows[0])
		out = append(out, tok)
		next = []int32{tok}
	}
	return out
}

// prompt returns n seeded token ids.
func prompt(seed uint64, n int) []int32 {
	g := rand.New(rand.NewPCG(seed, 7))
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(100 + g.IntN(20000))
	}
	return p
}

// collect receives a sequence's tokens and its final event.
func collect(t *testing.T, q *scheduler.Seq) ([]int32, scheduler.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var toks []int32
	for {
		ev, err := q.Recv(ctx)
		require.NoError(t, err)
		if ev.Finish != "" {
			_, err := q.Recv(ctx)
			require.ErrorIs(t, err, io.EOF, "nothing after the final event")
			return toks, ev
		}
		toks = append(toks, ev.Token)
	}
}

// idle checks every sequence has ended and every cache block is back.
func idle(t *testing.T, s *scheduler.Scheduler, r *engine.Runner) {
	t.Helper()
	st := s.Stats()
	require.Zero(t, st.Running)
	require.Zero(t, st.Queued)
	require.Zero(t, st.CacheUsed)
	require.Zero(t, st.CacheReserved)
	require.Equal(t, r.CacheTokens(), r.FreeTokens())
}

func TestOneRequestMatchesRunner(t *testing.T) {
	t.Parallel()
	p := prompt(1, 40)
	want := solo(t, newRunner(t, testModel(), 256), p, 12)
	require.Len(t, want, 12)

	r := newRunner(t, testModel(), 256)
	s := scheduler.New(r, greedy, scheduler.Config{MaxRunning: 4, StepTokens: 16}) // the prompt in three chunks
	defer s.Close()
	q, err := s.Submit(context.Background(), scheduler.Request{Prompt: p, MaxTokens: 12})
	require.NoError(t, err)
	got, end := collect(t, q)
	require.Equal(t, want, got)
	require.Equal(t, scheduler.Event{Finish: scheduler.FinishLength}, end)
	idle(t, s, r)
	st := s.Stats()
	require.Equal(t, uint64(40), st.PromptTokens)
	require.Equal(t, uint64(12), st.GeneratedTokens)
	require.Equal(t, uint64(3+11), st.Steps, "three prefill chunks, then a decode step per token but the first")
	require.Equal(t, 256, st.CacheTokens)
	require.Equal(t, 256, st.CacheFree)

	time.Sleep(20 * time.Millisecond)
	require.Equal(t, st.Steps, s.Stats().Steps, "an idle scheduler runs no steps")
}

// TestConcurrentRequestsMatchSoloRuns: 16 requests at once, more than may
// run (slots and cache both limit admission), each prompt prefilled in
// chunks beside the others' decodes, each result bit for bit its solo run.
func TestConcurrentRequestsMatchSoloRuns(t *testing.T) {
	t.Parallel()
	const n = 16
	ref := newRunner(t, testModel(), 256)
	prompts := make([][]int32, n)
	maxTokens := make([]int, n)
	want := make([][]int32, n)
	for i := range n {
		prompts[i] = prompt(uint64(100+i), 3+3*i)
		maxTokens[i] = 4 + i%9
		want[i] = solo(t, ref, prompts[i], maxTokens[i])
	}

	r := newRunner(t, testModel(), 256)
	s := scheduler.New(r, greedy, scheduler.Config{MaxQueue: n, MaxRunning: 8, StepTokens: 24})
	defer s.Close()
	got := make([][]int32, n)
	ends := make([]scheduler.Event, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			q, err := s.Submit(context.Background(), scheduler.Request{Prompt: prompts[i], MaxTokens: maxTokens[i]})
			if !assertNoError(t, err) {
				return
			}
			got[i], ends[i] = collect(t, q)
		})
	}
	wg.Wait()
	total := 0
	for i := range n {
		require.Equal(t, want[i], got[i], "request %d", i)
		require.Equal(t, scheduler.FinishLength, ends[i].Finish, "request %d", i)
		total += len(want[i])
	}
	idle(t, s, r)
	require.Equal(t, uint64(total), s.Stats().GeneratedTokens)
}

// assertNoError is require.NoError for other goroutines than the test's.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

// gate is a greedy SampleFunc that holds the loop in its first call until
// opened, so a test can line requests up behind a known state.
type gate struct {
	entered chan struct{}
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) sample(rows []scheduler.Row) []scheduler.Decision {
	g.once.Do(func() {
		close(g.entered)
		<-g.open
	})
	return greedy(rows)
}

func TestCancelFreesCache(t *testing.T) {
	t.Parallel()
	r := newRunner(t, testModel(), 256)
	s := scheduler.New(r, greedy, scheduler.Config{MaxRunning: 2, StepTokens: 16})
	defer s.Close()
	ctx := context.Background()

	for _, tc := range []struct {
		name string
		end  func(q *scheduler.Seq, cancel context.CancelFunc)
		want scheduler.FinishReason
	}{
		{"Cancel", func(q *scheduler.Seq, _ context.CancelFunc) { q.Cancel() }, scheduler.FinishCancelled},
		{"context", func(_ *scheduler.Seq, cancel context.CancelFunc) { cancel() }, scheduler.FinishCancelled},
		{"Stop", func(q *scheduler.Seq, _ context.CancelFunc) { q.Stop() }, scheduler.FinishStop},
	} {
		rctx, cancel := context.WithCancel(ctx)
		q, err := s.Submit(rctx, scheduler.Request{Prompt: prompt(3, 20)}) // up to the context: 77 tokens
		require.NoError(t, err)
		for range 3 {
			ev, err := q.Recv(ctx)
			require.NoError(t, err)
			require.Empty(t, ev.Finish)
		}
		require.Positive(t, s.Stats().CacheUsed, tc.name)
		tc.end(q, cancel)
		toks, end := collect(t, q)
		if tc.name != "context" { // a done context cancels from a goroutine of its own, a little later
			require.Empty(t, toks, "%s: tokens not received are dropped", tc.name)
		}
		require.Equal(t, scheduler.Event{Finish: tc.want}, end, tc.name)
		require.Equal(t, r.CacheTokens(), r.FreeTokens(), "%s: the final event comes once the blocks are free", tc.name)
		cancel()
	}

	// A request cancelled while it waits leaves the queue at once.
	a, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(4, 8)})
	require.NoError(t, err)
	b, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(5, 8)})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	c, err := s.Submit(rctx, scheduler.Request{Prompt: prompt(6, 8)})
	require.NoError(t, err)
	_, err = a.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, s.Stats().Queued)
	cancel()
	_, end := collect(t, c)
	require.Equal(t, scheduler.FinishCancelled, end.Finish)
	require.Zero(t, s.Stats().Queued)
	a.Cancel()
	b.Cancel()
	_, end = collect(t, a)
	require.Equal(t, scheduler.FinishCancelled, end.Finish)
	_, end = collect(t, b)
	require.Equal(t, scheduler.FinishCancelled, end.Finish)
	a.Cancel() // after the end: nothing
	idle(t, s, r)
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	r := newRunner(t, testModel(), 256)
	g := newGate()
	s := scheduler.New(r, g.sample, scheduler.Config{MaxQueue: 1, MaxRunning: 1})
	defer s.Close()
	ctx := context.Background()
	a, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(1, 4), MaxTokens: 2})
	require.NoError(t, err)
	<-g.entered // a runs; the loop waits in SampleFunc
	b, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(2, 4), MaxTokens: 2})
	require.NoError(t, err)
	st := s.Stats()
	require.Equal(t, 1, st.Running)
	require.Equal(t, 1, st.Queued)
	_, err = s.Submit(ctx, scheduler.Request{Prompt: prompt(3, 4), MaxTokens: 2})
	require.ErrorIs(t, err, scheduler.ErrQueueFull)
	require.EqualError(t, err, "admission queue full: 1 requests waiting")
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.Recv(done)
	require.ErrorIs(t, err, context.Canceled, "Recv gives up with its own context; the sequence goes on")
	close(g.open)
	for _, q := range []*scheduler.Seq{a, b} {
		toks, end := collect(t, q)
		require.Len(t, toks, 2)
		require.Equal(t, scheduler.FinishLength, end.Finish)
	}
	idle(t, s, r)
}

// TestQueuedIsTheAdmissionWait: Seq.Queued is unset while a sequence waits
// and for one cancelled in the queue; once admitted it is the time from
// Submit to admission, which here comes only after the running sequence
// is let go (so it is at least the time from Submit's return to then, and
// at most the time from Submit's call to the end). No clock is assumed
// beyond those orderings.
func TestQueuedIsTheAdmissionWait(t *testing.T) {
	t.Parallel()
	r := newRunner(t, testModel(), 256)
	g := newGate()
	s := scheduler.New(r, g.sample, scheduler.Config{MaxQueue: 2, MaxRunning: 1})
	defer s.Close()
	ctx := context.Background()
	a, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(1, 4), MaxTokens: 2})
	require.NoError(t, err)
	<-g.entered // a runs; the loop waits in SampleFunc
	_, ok := a.Queued()
	require.True(t, ok, "a was admitted")
	beforeB := time.Now()
	b, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(2, 4), MaxTokens: 2})
	require.NoError(t, err)
	afterB := time.Now()
	c, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(3, 4), MaxTokens: 2})
	require.NoError(t, err)
	_, ok = b.Queued()
	require.False(t, ok, "b waits")
	c.Cancel()
	opened := time.Now()
	close(g.open)
	for _, q := range []*scheduler.Seq{a, b, c} {
		collect(t, q)
	}
	end := time.Now()
	d, ok := b.Queued()
	require.True(t, ok)
	require.GreaterOrEqual(t, d, opened.Sub(afterB), "admitted only after the gate opened")
	require.LessOrEqual(t, d, end.Sub(beforeB))
	_, ok = c.Queued()
	require.False(t, ok, "cancelled while queued: never admitted")
	idle(t, s, r)
}

// TestLengthEnds: sequences end with "length" at MaxTokens or where the
// model has seen its whole context, never with engine.ErrContextLength, and
// admission reserves exactly what that takes.
func TestLengthEnds(t *testing.T) {
	t.Parallel()
	ref := newRunner(t, testModel(), 256)
	// A cache of exactly the context: a request that runs to the context's
	// end fits, and only one at a time.
	r := newRunner(t, testModel(), testContext)
	s := scheduler.New(r, greedy, scheduler.Config{MaxRunning: 4, StepTokens: 32})
	defer s.Close()
	for _, tc := range []struct {
		prompt, maxTokens, want int
	}{
		{90, 0, 7},  // the context ends it: 90 + 7 − 1 = 96 tokens seen
		{90, 50, 7}, // likewise
		{90, 3, 3},
		{testContext, 0, 1}, // a prompt of the whole context still gets its one token
	} {
		p := prompt(uint64(tc.prompt), tc.prompt)
		want := solo(t, ref, p, tc.maxTokens)
		require.Len(t, want, tc.want, "the runner alone")
		q, err := s.Submit(context.Background(), scheduler.Request{Prompt: p, MaxTokens: tc.maxTokens})
		require.NoError(t, err)
		got, end := collect(t, q)
		require.Equal(t, want, got, "prompt %d, max tokens %d", tc.prompt, tc.maxTokens)
		require.Equal(t, scheduler.Event{Finish: scheduler.FinishLength}, end)
	}
	idle(t, s, r)
}

func TestSubmitRefuses(t *testing.T) {
	t.Parallel()
	r := newRunner(t, testModel(), 48)
	s := scheduler.New(r, greedy, scheduler.Config{})
	defer s.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		req  scheduler.Request
		want error
		msg  string
	}{
		{scheduler.Request{Prompt: prompt(1, testContext+1)}, scheduler.ErrTooLarge, "request too large: a prompt of 97 tokens is longer than the model's context of 96"},
		{scheduler.Request{Prompt: prompt(1, 10), MaxTokens: 50}, scheduler.ErrTooLarge, "request too large: 10 prompt tokens and up to 50 new ones need 59 tokens of KV cache (30720 bytes); it holds 48 tokens (23040 bytes)"},
		{scheduler.Request{Prompt: prompt(1, 10)}, scheduler.ErrTooLarge, "request too large: 10 prompt tokens and up to 87 new ones need 96 tokens of KV cache (46080 bytes); it holds 48 tokens (23040 bytes)"},
		{scheduler.Request{}, scheduler.ErrInvalid, "invalid request: empty prompt"},
		{scheduler.Request{Prompt: []int32{5, 1 << 30}}, scheduler.ErrInvalid, "invalid request: prompt token 1 is 1073741824, outside the vocabulary of 129280"},
		{scheduler.Request{Prompt: []int32{-1}}, scheduler.ErrInvalid, "invalid request: prompt token 0 is -1, outside the vocabulary of 129280"},
		{scheduler.Request{Prompt: []int32{5}, MaxTokens: -1}, scheduler.ErrInvalid, "invalid request: max tokens -1"},
	} {
		_, err := s.Submit(ctx, tc.req)
		require.ErrorIs(t, err, tc.want)
		require.EqualError(t, err, tc.msg)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Submit(done, scheduler.Request{Prompt: []int32{5}, MaxTokens: 1})
	require.ErrorIs(t, err, context.Canceled)
	idle(t, s, r)
}

// TestPrefillFairness: a short prompt submitted after a long one finishes
// its prefill (gets its first token) long before the long one's, since
// prefill chunks take turns.
func TestPrefillFairness(t *testing.T) {
	t.Parallel()
	r := newRunner(t, testModel(), 256)
	g := newGate()
	var mu sync.Mutex
	var firsts []string // which sequences got their first token, in order
	sample := func(rows []scheduler.Row) []scheduler.Decision {
		mu.Lock()
		for _, row := range rows {
			if row.Generated == 0 {
				firsts = append(firsts, row.State.(string))
			}
		}
		mu.Unlock()
		return g.sample(rows)
	}
	s := scheduler.New(r, sample, scheduler.Config{MaxRunning: 4, StepTokens: 8})
	defer s.Close()
	ctx := context.Background()
	blocker, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(1, 2), MaxTokens: 1, State: "blocker"})
	require.NoError(t, err)
	<-g.entered
	long, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(2, 90), MaxTokens: 1, State: "long"})
	require.NoError(t, err)
	short, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(3, 5), MaxTokens: 1, State: "short"})
	require.NoError(t, err)
	close(g.open)
	for _, q := range []*scheduler.Seq{blocker, long, short} {
		_, end := collect(t, q)
		require.Equal(t, scheduler.FinishLength, end.Finish)
	}
	require.Equal(t, []string{"blocker", "short", "long"}, firsts)
	// One step for the blocker, then 8 tokens a step for 95 prompt tokens.
	require.Equal(t, uint64(1+12), s.Stats().Steps)
	idle(t, s, r)
}

var errBad = errors.New("bad sampler")

// TestSampleErrorEndsOnlyThatSequence: a Decision's error, or a token
// outside the vocabulary, ends its sequence; the others go on unchanged.
func TestSampleErrorEndsOnlyThatSequence(t *testing.T) {
	t.Parallel()
	ref := newRunner(t, testModel(), 256)
	r := newRunner(t, testModel(), 256)
	sample := func(rows []scheduler.Row) []scheduler.Decision {
		d := greedy(rows)
		for i, row := range rows {
			if row.Generated == 2 {
				switch row.State {
				case "error":
					d[i].Err = errBad
				case "outside":
					d[i].Token = 1 << 30
				case "stop":
					d[i].Stop = true
				}
			}
		}
		return d
	}
	s := scheduler.New(r, sample, scheduler.Config{MaxRunning: 4, StepTokens: 32})
	defer s.Close()
	states := []string{"ok", "error", "outside", "stop"}
	seqs := make([]*scheduler.Seq, len(states))
	want := make([][]int32, len(states))
	for i, st := range states {
		p := prompt(uint64(10+i), 6+i)
		want[i] = solo(t, ref, p, 6)
		var err error
		seqs[i], err = s.Submit(context.Background(), scheduler.Request{Prompt: p, MaxTokens: 6, State: st})
		require.NoError(t, err)
	}
	toks, end := collect(t, seqs[0])
	require.Equal(t, want[0], toks)
	require.Equal(t, scheduler.FinishLength, end.Finish)

	toks, end = collect(t, seqs[1])
	require.Equal(t, want[1][:2], toks)
	require.Equal(t, scheduler.FinishError, end.Finish)
	require.ErrorIs(t, end.Err, errBad)

	toks, end = collect(t, seqs[2])
	require.Equal(t, want[2][:2], toks)
	require.Equal(t, scheduler.FinishError, end.Finish)
	require.ErrorContains(t, end.Err, "sampled token 1073741824 is outside the vocabulary of 129280")

	toks, end = collect(t, seqs[3])
	require.Equal(t, want[3][:3], toks, "the stop token is delivered")
	require.Equal(t, scheduler.Event{Finish: scheduler.FinishStop}, end)
	idle(t, s, r)
}

// TestStepErrorEndsItsSequences: an engine error fails the sequences of
// its step, and the loop goes on. The test provokes one by taking the whole
// cache behind the scheduler's back, so the runner refuses the step
// (kvcache.ErrNoSpace).
func TestStepErrorEndsItsSequences(t *testing.T) {
	t.Parallel()
	r := newRunner(t, testModel(), 64)
	thief := r.NewSequence()
	_, err := r.Step([]engine.Work{{Seq: thief, Tokens: prompt(1, 64)}})
	require.NoError(t, err)
	s := scheduler.New(r, greedy, scheduler.Config{MaxRunning: 2, StepTokens: 16})
	defer s.Close()
	ctx := context.Background()
	var seqs []*scheduler.Seq
	for i := range 2 {
		q, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(uint64(i), 4), MaxTokens: 2})
		require.NoError(t, err)
		seqs = append(seqs, q)
	}
	for _, q := range seqs {
		toks, end := collect(t, q)
		require.Empty(t, toks)
		require.Equal(t, scheduler.FinishError, end.Finish)
		require.ErrorIs(t, end.Err, kvcache.ErrNoSpace)
	}
	r.Free(thief)
	q, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(3, 4), MaxTokens: 2})
	require.NoError(t, err)
	toks, end := collect(t, q)
	require.Len(t, toks, 2)
	require.Equal(t, scheduler.FinishLength, end.Finish)
	idle(t, s, r)
}

func TestSampleFuncWrongLength(t *testing.T) {
	t.Parallel()
	r := newRunner(t, testModel(), 64)
	s := scheduler.New(r, func([]scheduler.Row) []scheduler.Decision { return nil }, scheduler.Config{})
	defer s.Close()
	q, err := s.Submit(context.Background(), scheduler.Request{Prompt: prompt(1, 4), MaxTokens: 2})
	require.NoError(t, err)
	toks, end := collect(t, q)
	require.Empty(t, toks)
	require.Equal(t, scheduler.FinishError, end.Finish)
	require.EqualError(t, end.Err, "scheduler: SampleFunc returned 0 decisions for 1 rows")
	idle(t, s, r)
}

func TestSampleFuncPanicFailsItsStepOnly(t *testing.T) {
	t.Parallel()
	r := newRunner(t, testModel(), 64)
	var calls atomic.Int32
	s := scheduler.New(r, func(rows []scheduler.Row) []scheduler.Decision {
		if calls.Add(1) == 1 {
			panic("a bug in sampling")
		}
		return greedy(rows)
	}, scheduler.Config{})
	defer s.Close()
	q, err := s.Submit(context.Background(), scheduler.Request{Prompt: prompt(1, 4), MaxTokens: 2})
	require.NoError(t, err)
	_, end := collect(t, q)
	require.Equal(t, scheduler.FinishError, end.Finish)
	require.EqualError(t, end.Err, "scheduler: sampling panicked: a bug in sampling")
	// The loop goes on.
	q, err = s.Submit(context.Background(), scheduler.Request{Prompt: prompt(1, 4), MaxTokens: 2})
	require.NoError(t, err)
	toks, end := collect(t, q)
	require.Len(t, toks, 2)
	require.Equal(t, scheduler.FinishLength, end.Finish)
	idle(t, s, r)
}

func TestCloseEndsLiveSequences(t *testing.T) {
	t.Parallel()
	r := newRunner(t, testModel(), 256)
	s := scheduler.New(r, greedy, scheduler.Config{MaxRunning: 2, StepTokens: 16})
	ctx := context.Background()
	var seqs []*scheduler.Seq
	for i := range 3 {
		q, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(uint64(i), 10)})
		require.NoError(t, err)
		seqs = append(seqs, q)
	}
	_, err := seqs[0].Recv(ctx)
	require.NoError(t, err)
	s.Close()
	s.Close()
	for _, q := range seqs {
		_, end := collect(t, q)
		require.Equal(t, scheduler.FinishError, end.Finish)
		require.ErrorIs(t, end.Err, scheduler.ErrClosed)
	}
	_, err = s.Submit(ctx, scheduler.Request{Prompt: []int32{5}, MaxTokens: 1})
	require.ErrorIs(t, err, scheduler.ErrClosed)
	idle(t, s, r)
}

// TestHammer submits, reads, cancels, stops and abandons sequences from
// many goroutines at once (run it with -race); afterwards every sequence
// has ended and every block is back.
func TestHammer(t *testing.T) {
	t.Parallel()
	clients := 48
	if testing.Short() {
		clients = 12
	}
	r := newRunner(t, testModel(), 256)
	s := scheduler.New(r, greedy, scheduler.Config{MaxQueue: 24, MaxRunning: 6, StepTokens: 24})
	defer s.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ends := map[scheduler.FinishReason]int{}
	refused := 0
	for i := range clients {
		wg.Go(func() {
			g := rand.New(rand.NewPCG(uint64(i), 1))
			time.Sleep(time.Duration(g.IntN(300)) * time.Millisecond)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			q, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(uint64(i), 1+g.IntN(40)), MaxTokens: 1 + g.IntN(16)})
			if errors.Is(err, scheduler.ErrQueueFull) {
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			if !assertNoError(t, err) {
				return
			}
			action := g.IntN(5)
			after := g.IntN(4)
			for n := 0; ; n++ {
				if n == after {
					switch action {
					case 1:
						q.Cancel()
					case 2:
						cancel()
					case 3:
						q.Stop()
					case 4:
						time.Sleep(time.Duration(g.IntN(20)) * time.Millisecond) // a slow reader
					}
				}
				ev, err := q.Recv(context.Background())
				if !assertNoError(t, err) {
					return
				}
				if ev.Finish != "" {
					mu.Lock()
					ends[ev.Finish]++
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("ends %v, refused %d", ends, refused)
	require.Zero(t, ends[scheduler.FinishError])
	idle(t, s, r)
}

func ExampleScheduler() {
	var r *engine.Runner // over a loaded model: engine.NewRunner
	if r == nil {
		return
	}
	argmax := func(rows []scheduler.Row) []scheduler.Decision {
		d := make([]scheduler.Decision, len(rows))
		for i, row := range rows {
			for tok, v := range row.Logits {
				if v > row.Logits[d[i].Token] {
					d[i].Token = int32(tok)
				}
			}
			d[i].Stop = d[i].Token == 1 // EOS
		}
		return d
	}
	s := scheduler.New(r, argmax, scheduler.Config{})
	defer s.Close()
	q, err := s.Submit(context.Background(), scheduler.Request{Prompt: []int32{0, 19923}, MaxTokens: 16})
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		ev, err := q.Recv(context.Background())
		if err != nil {
			return
		}
		if ev.Finish != "" {
			fmt.Println("finish:", ev.Finish, ev.Err)
			return
		}
		fmt.Println(ev.Token)
	}
}
