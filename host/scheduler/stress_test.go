package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/kvcache"
	"github.com/ulan-ai/ulan/host/scheduler"
)

// countVocab and countContext size countModel.
const (
	countVocab   = 64
	countContext = 96
)

// countModel is a model that costs nothing and checks itself: its next
// token after token t at position p is (t + p) mod countVocab, so a
// sequence's tokens follow from its prompt alone (expected), and a token
// fed at a wrong position or handed to the wrong sequence shows. Its cache
// has V4's kinds (rows every 4 tokens, and a state per sequence, which
// costs a block), and Forward checks that no two sequences of a step share
// a block or a state slot. It panics once when panics is set.
type countModel struct {
	steps  atomic.Int64 // Forward calls
	panics atomic.Bool
	mu     sync.Mutex
	bad    []string // what the checks found
}

func (m *countModel) Info() engine.Info {
	return engine.Info{Architecture: "count", Vocab: countVocab, Context: countContext}
}

func (m *countModel) Cache() engine.CacheLayout {
	return engine.CacheLayout{
		Paged: []engine.PagedCache{{Every: 4, Width: 2}},
		State: []engine.StateCache{{Rows: 2, Width: 2}},
	}
}

func (m *countModel) Forward(ctx engine.Context, b *engine.Batch, _ []engine.Tensor) engine.Tensor {
	m.steps.Add(1)
	if m.panics.CompareAndSwap(true, false) {
		panic("count model: injected panic")
	}
	blocks, slots := map[int32]bool{}, map[int32]bool{}
	for i, s := range b.Seqs {
		if slots[s.State] {
			m.fail("step %d: state slot %d shared", m.steps.Load(), s.State)
		}
		slots[s.State] = true
		for _, blk := range s.Blocks {
			if blocks[blk] {
				m.fail("step %d: block %d shared (sequence %d)", m.steps.Load(), blk, i)
			}
			blocks[blk] = true
		}
	}
	vals := make([]float32, len(b.Outputs)*countVocab)
	for i, o := range b.Outputs {
		vals[i*countVocab+int((b.Tokens[o]+b.Positions[o])%countVocab)] = 1
	}
	return ctx.Input(vals, len(b.Outputs), countVocab)
}

func (m *countModel) fail(format string, args ...any) {
	m.mu.Lock()
	m.bad = append(m.bad, fmt.Sprintf(format, args...))
	m.mu.Unlock()
}

// check fails the test if Forward found a shared block or slot.
func (m *countModel) check(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	require.Empty(t, m.bad)
}

// expected is what countModel generates after p, n tokens.
func expected(p []int32, n int) []int32 {
	if n == 0 {
		return nil // as collect gives none
	}
	out := make([]int32, n)
	tok, pos := p[len(p)-1], int32(len(p)-1)
	for i := range out {
		tok = (tok + pos) % countVocab
		out[i] = tok
		pos++
	}
	return out
}

// countPrompt returns n token ids of countModel's vocabulary.
func countPrompt(g *rand.Rand, n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(g.IntN(countVocab))
	}
	return p
}

// faultBackend runs fail before each Compute, if set, and fails the
// Compute with its error.
type faultBackend struct {
	engine.Backend
	fail func() error
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
		if err := c.b.fail(); err != nil {
			return err
		}
	}
	return c.Context.Compute(outputs...)
}

var errInjected = errors.New("injected device error")

// newCountRunner is a runner of a countModel whose cache holds seqs
// sequences of tokens tokens, states included; fail, if not nil, is
// faultBackend's.
func newCountRunner(t *testing.T, seqs, tokens int, fail func() error) (*engine.Runner, *countModel) {
	t.Helper()
	m := &countModel{}
	b := &faultBackend{Backend: cpu.New(cpu.WithThreads(1)), fail: fail}
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, seqs, tokens, 0)})
	require.NoError(t, err)
	return r, m
}

// maxGen is how many tokens a request of a prompt of p tokens and
// maxTokens generates when nothing ends it early.
func maxGen(p, maxTokens, context int) int {
	n := context - p + 1
	if maxTokens > 0 {
		n = min(n, maxTokens)
	}
	return n
}

// watchStats reads s.Stats as fast as it can until stop is closed and
// reports the first snapshot that breaks an invariant.
func watchStats(s *scheduler.Scheduler, cfg scheduler.Config, stop <-chan struct{}) <-chan string {
	out := make(chan string, 1)
	go func() {
		defer close(out)
		for {
			st := s.Stats()
			var bad string
			switch {
			case st.CacheUsed+st.CacheFree != st.CacheTokens:
				bad = "used + free != total"
			case st.CacheUsed > st.CacheReserved:
				bad = "more cache used than reserved"
			case st.CacheReserved > st.CacheTokens:
				bad = "more cache reserved than there is"
			case st.Running < 0 || st.Running > cfg.MaxRunning:
				bad = "running outside [0, MaxRunning]"
			case st.Queued < 0 || st.Queued > cfg.MaxQueue:
				bad = "queued outside [0, MaxQueue]"
			}
			if bad != "" {
				out <- fmt.Sprintf("%s: %+v", bad, st)
				return
			}
			select {
			case <-stop:
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	return out
}

// goroutinesSettle waits until no more than n goroutines run.
func goroutinesSettle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The ways a stress client ends its request.
const (
	actRead         = iota // read to the end
	actCtxBefore           // its context is done before Submit
	actCancelAtOnce        // Cancel right after Submit: mostly still queued
	actCtxLater            // its context is done after a while: queued, prefilling or decoding
	actCancelMid           // Cancel after some tokens
	actCancelAtLast        // Cancel once all tokens but the last are in: right as it finishes
	actStopMid             // Stop after some tokens
	actDisconnect          // never reads; its context is done after a while
	actions
)

// client is one stress request.
type client struct {
	prompt    []int32
	maxTokens int
	maxGen    int
	action    int
	asked     atomic.Bool // Cancel, Stop or the context's end was asked (set before)
	seq       atomic.Pointer[scheduler.Seq]

	// Written by the loop (SampleFunc), read after the final event.
	steps []int64 // the step of each row it got
}

// stressConfig is one stress run.
type stressConfig struct {
	clients int
	sched   scheduler.Config
	seqs    int // the cache holds this many sequences of the context
	// faults, in 1000ths of the steps: a Compute error or a model panic.
	faults int
}

// stress runs clients that submit requests of random sizes at random
// moments and end them in every way (actions), while the SampleFunc also
// cancels random sequences from inside the loop. Afterwards every request
// has had exactly one end, its tokens are the model's, the cache is empty
// and the scheduler idle; while it runs the stats stay consistent.
func stress(t *testing.T, sc stressConfig) {
	var fail func() error
	var faultRand *rand.Rand
	var m *countModel
	var faulty atomic.Bool
	faulty.Store(sc.faults > 0)
	if sc.faults > 0 {
		faultRand = rand.New(rand.NewPCG(3, 3))
		fail = func() error { // from the loop only
			if !faulty.Load() {
				return nil
			}
			switch n := faultRand.IntN(1000); {
			case n < sc.faults/2:
				return errInjected
			case n < sc.faults:
				m.panics.Store(true) // the next step's Forward: this one has run
			}
			return nil
		}
	}
	r, m := newCountRunner(t, sc.seqs, countContext, fail)
	cfg := sc.sched
	loopRand := rand.New(rand.NewPCG(2, 2))
	var live sync.Map // *client → struct{}, the submitted ones
	var sampled atomic.Int64
	sample := func(rows []scheduler.Row) []scheduler.Decision {
		sampled.Add(1)
		step := m.steps.Load()
		for _, row := range rows {
			c := row.State.(*client)
			c.steps = append(c.steps, step)
		}
		// Now and then, cancel a sequence wherever it is: queued,
		// prefilling, decoding, or on its last token.
		if loopRand.IntN(8) == 0 {
			live.Range(func(k, _ any) bool {
				c := k.(*client)
				if loopRand.IntN(16) == 0 {
					if q := c.seq.Load(); q != nil {
						c.asked.Store(true)
						q.Cancel()
						return false
					}
				}
				return true
			})
		}
		return greedy(rows)
	}
	s := scheduler.New(r, sample, cfg)
	defer s.Close()
	stop := make(chan struct{})
	bad := watchStats(s, cfg, stop)

	var wg sync.WaitGroup
	var refused, ended atomic.Int64
	var mu sync.Mutex
	ends := map[scheduler.FinishReason]int{}
	for i := range sc.clients {
		g := rand.New(rand.NewPCG(uint64(i), 11))
		p := countPrompt(g, 1+g.IntN(countContext))
		if g.IntN(4) != 0 { // mostly short ones
			p = p[:1+g.IntN(min(len(p), 24))]
		}
		c := &client{prompt: p, maxTokens: g.IntN(24), action: g.IntN(actions)}
		c.maxGen = maxGen(len(p), c.maxTokens, countContext)
		arrive := time.Duration(g.IntN(80)) * time.Millisecond
		later := time.Duration(g.IntN(30)) * time.Millisecond
		after := g.IntN(max(1, c.maxGen))
		wg.Go(func() {
			time.Sleep(arrive)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.action == actCtxBefore {
				cancel()
			}
			q, err := s.Submit(ctx, scheduler.Request{Prompt: c.prompt, MaxTokens: c.maxTokens, State: c})
			switch {
			case c.action == actCtxBefore:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Submit with a done context: %v", err)
				}
				return
			case errors.Is(err, scheduler.ErrQueueFull):
				if want := fmt.Sprintf("admission queue full: %d requests waiting", cfg.MaxQueue); err.Error() != want {
					t.Errorf("got %q, want %q", err, want)
				}
				refused.Add(1)
				return
			case err != nil:
				t.Errorf("Submit: %v", err)
				return
			}
			c.seq.Store(q)
			live.Store(c, struct{}{})
			defer live.Delete(c)
			switch c.action {
			case actCancelAtOnce:
				c.asked.Store(true)
				q.Cancel()
			case actCtxLater, actDisconnect:
				time.AfterFunc(later, func() {
					c.asked.Store(true)
					cancel()
				})
			}
			if c.action == actDisconnect {
				<-ctx.Done() // reads nothing until the client is gone
			}
			var toks []int32
			rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer rcancel()
			for {
				switch {
				case c.action == actCancelMid && len(toks) == after,
					c.action == actCancelAtLast && len(toks) == c.maxGen-1:
					c.asked.Store(true)
					q.Cancel()
				case c.action == actStopMid && len(toks) == after:
					c.asked.Store(true)
					q.Stop()
				}
				ev, err := q.Recv(rctx)
				if err != nil {
					t.Errorf("Recv after %d tokens: %v (a hang?)", len(toks), err)
					return
				}
				if ev.Finish == "" {
					toks = append(toks, ev.Token)
					continue
				}
				if _, err := q.Recv(rctx); err != io.EOF {
					t.Errorf("Recv after the final event: %v, want io.EOF", err)
				}
				ended.Add(1)
				mu.Lock()
				ends[ev.Finish]++
				mu.Unlock()
				checkEnd(t, c, toks, ev, sc.faults > 0)
				return
			}
		})
	}
	waitTimeout(t, &wg, time.Minute)
	close(stop)
	if msg, ok := <-bad; ok {
		t.Error(msg)
	}
	t.Logf("ends %v, refused %d, steps %d, sampled %d", ends, refused.Load(), m.steps.Load(), sampled.Load())
	m.check(t)
	idle(t, s, r)
	// Later requests are served as usual.
	faulty.Store(false)
	m.panics.Store(false)
	for i := range 4 {
		p := countPrompt(rand.New(rand.NewPCG(uint64(i), 99)), 5)
		c := &client{prompt: p, maxTokens: 3, maxGen: 3}
		q, err := s.Submit(context.Background(), scheduler.Request{Prompt: p, MaxTokens: 3, State: c})
		require.NoError(t, err)
		toks, end := collect(t, q)
		require.Equal(t, scheduler.Event{Finish: scheduler.FinishLength}, end)
		require.Equal(t, expected(p, 3), toks)
	}
	idle(t, s, r)
}

// checkEnd checks a stress client's tokens and end.
func checkEnd(t *testing.T, c *client, toks []int32, ev scheduler.Event, faults bool) {
	t.Helper()
	if len(toks) > c.maxGen {
		t.Errorf("%d tokens, at most %d", len(toks), c.maxGen)
		return
	}
	if want := expected(c.prompt, len(toks)); !slicesEqual(toks, want) {
		t.Errorf("prompt of %d: tokens %v, want %v", len(c.prompt), toks, want)
	}
	for i := 1; i < len(c.steps); i++ {
		if c.steps[i] != c.steps[i-1]+1 {
			t.Errorf("a decoding sequence skipped steps: its rows came at steps %v", c.steps)
			break
		}
	}
	switch ev.Finish {
	case scheduler.FinishLength:
		if len(toks) != c.maxGen {
			t.Errorf("length after %d of %d tokens (action %d, asked %v)", len(toks), c.maxGen, c.action, c.asked.Load())
		}
	case scheduler.FinishCancelled:
		if !c.asked.Load() {
			t.Errorf("cancelled, never asked to")
		}
	case scheduler.FinishStop:
		if !c.asked.Load() || c.action != actStopMid {
			t.Errorf("stop, never asked to (action %d)", c.action)
		}
	case scheduler.FinishError:
		if !faults || !(errors.Is(ev.Err, errInjected) || strings.Contains(ev.Err.Error(), "injected panic")) {
			t.Errorf("error: %v", ev.Err)
		}
	default:
		t.Errorf("finish %q", ev.Finish)
	}
	if ev.Finish != scheduler.FinishError && ev.Err != nil {
		t.Errorf("finish %q with error %v", ev.Finish, ev.Err)
	}
	if !c.asked.Load() && ev.Finish != scheduler.FinishLength && ev.Finish != scheduler.FinishError {
		t.Errorf("finish %q without being asked", ev.Finish)
	}
}

func slicesEqual(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStressCancelAnywhere: hundreds of requests of random sizes, ended in
// every way at every moment; afterwards the cache is empty, the scheduler
// idle and its goroutines gone. Not parallel, so that the goroutine count
// is its own.
func TestStressCancelAnywhere(t *testing.T) {
	clients := 400
	if testing.Short() {
		clients = 100
	}
	before := runtime.NumGoroutine()
	stress(t, stressConfig{
		clients: clients, seqs: 6,
		sched: scheduler.Config{MaxQueue: 24, MaxRunning: 8, StepTokens: 24},
	})
	goroutinesSettle(t, before)
}

// TestStressFaults: the same with the engine failing now and then (an error
// from the backend, a panic in the model): the sequences of a failed step
// end with its error, the others go on, and nothing leaks.
func TestStressFaults(t *testing.T) {
	clients := 300
	if testing.Short() {
		clients = 80
	}
	before := runtime.NumGoroutine()
	stress(t, stressConfig{
		clients: clients, seqs: 4, faults: 40,
		sched: scheduler.Config{MaxQueue: 64, MaxRunning: 6, StepTokens: 16},
	})
	goroutinesSettle(t, before)
}

// TestCancelAsItFinishes: Cancel or Stop asked while the loop is deciding
// a sequence's last token (from SampleFunc, so exactly then) wins: the
// token is dropped and the end is the one asked for, not "length" after
// fewer tokens than MaxTokens, which it used to be.
func TestCancelAsItFinishes(t *testing.T) {
	t.Parallel()
	r, m := newCountRunner(t, 2, countContext, nil)
	const maxTokens = 5
	sample := func(rows []scheduler.Row) []scheduler.Decision {
		d := greedy(rows)
		for i, row := range rows {
			c := row.State.(*client)
			if row.Generated == maxTokens-1 {
				switch c.action {
				case actCancelAtLast:
					row.Seq.Cancel()
				case actStopMid:
					row.Seq.Stop()
				}
			}
			if row.Generated == 1 && c.action == actRead {
				d[i].Err = errBad // and a sampling error after a Cancel is the Cancel
				row.Seq.Cancel()
			}
		}
		return d
	}
	s := scheduler.New(r, sample, scheduler.Config{MaxRunning: 1})
	defer s.Close()
	p := countPrompt(rand.New(rand.NewPCG(1, 1)), 7)
	for _, tc := range []struct {
		action int
		want   scheduler.FinishReason
		toks   int
	}{
		{actCancelAtLast, scheduler.FinishCancelled, maxTokens - 1},
		{actStopMid, scheduler.FinishStop, maxTokens - 1},
		{actRead, scheduler.FinishCancelled, 1},
	} {
		c := &client{action: tc.action}
		q, err := s.Submit(context.Background(), scheduler.Request{Prompt: p, MaxTokens: maxTokens, State: c})
		require.NoError(t, err)
		toks, end := collect(t, q)
		require.Equal(t, scheduler.Event{Finish: tc.want}, end, "action %d", tc.action)
		// Tokens not yet received when Cancel came are dropped too.
		require.LessOrEqual(t, len(toks), tc.toks)
		require.Equal(t, expected(p, len(toks)), toks)
	}
	m.check(t)
	idle(t, s, r)
}

// stepCounter is a model that counts its steps.
type stepCounter struct {
	engine.Model
	steps atomic.Int64
}

func (m *stepCounter) Forward(ctx engine.Context, b *engine.Batch, caches []engine.Tensor) engine.Tensor {
	m.steps.Add(1)
	return m.Model.Forward(ctx, b, caches)
}

// TestLongPromptAmidShortStreams: a request that needs nearly the whole
// cache, while short ones keep coming. Neither starves: the long one is
// admitted once the shorts ahead of it end (admission is first in, first
// out, so later shorts wait behind it), and while it prefills, in chunks,
// a short one beside it gets a token every step.
func TestLongPromptAmidShortStreams(t *testing.T) {
	t.Parallel()
	b := cpu.New(cpu.WithThreads(1))
	inner, err := engine.LoadGGUF(modelFile(t, testModel()), b)
	require.NoError(t, err)
	m := &stepCounter{Model: inner}
	// Seven blocks: the long request takes six to its end (88 + 4 − 1
	// tokens), a short one (3 + 12 − 1) one.
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, 1, 112, 0)})
	require.NoError(t, err)
	require.Equal(t, 7, r.Blocks())

	// Owned by the loop until the long request has ended.
	var (
		admittedAt, firstAt int64                          // steps: the long one's first chunk, its first token
		shortDuring         int                            // short tokens in between
		shortSteps          = map[*scheduler.Seq][]int64{} // each short one's steps
	)
	var s *scheduler.Scheduler
	sample := func(rows []scheduler.Row) []scheduler.Decision {
		step := m.steps.Load()
		// Six blocks reserved: only the long one reserves so many (four
		// short ones, one each, at most).
		if admittedAt == 0 && s.Stats().CacheReserved >= 6*r.BlockSize() {
			admittedAt = step
		}
		for _, row := range rows {
			switch row.State {
			case "long":
				if row.Generated == 0 {
					firstAt = step
				}
			case "short":
				if admittedAt != 0 && firstAt == 0 {
					shortDuring++
				}
				shortSteps[row.Seq] = append(shortSteps[row.Seq], step)
			}
		}
		return greedy(rows)
	}
	s = scheduler.New(r, sample, scheduler.Config{MaxRunning: 4, StepTokens: 8})
	defer s.Close()
	ctx := context.Background()

	stopShorts := make(chan struct{})
	started := make(chan struct{}, 3)
	var wg sync.WaitGroup
	var shorts atomic.Int64
	for i := range 3 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stopShorts:
					return
				default:
				}
				q, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(uint64(10*i+n), 3), MaxTokens: 12, State: "short"})
				if !assertNoError(t, err) {
					return
				}
				for k := 0; ; k++ {
					ev, err := q.Recv(ctx)
					if !assertNoError(t, err) {
						return
					}
					if k == 0 {
						select {
						case started <- struct{}{}:
						default:
						}
					}
					if ev.Finish != "" {
						if ev.Finish != scheduler.FinishLength || k != 12 {
							t.Errorf("a short request ended with %q after %d tokens", ev.Finish, k)
						}
						shorts.Add(1)
						break
					}
				}
			}
		})
	}
	<-started
	q, err := s.Submit(ctx, scheduler.Request{Prompt: prompt(7, 88), MaxTokens: 4, State: "long"})
	require.NoError(t, err)
	toks, end := collect(t, q)
	close(stopShorts)
	wg.Wait()
	require.Len(t, toks, 4)
	require.Equal(t, scheduler.FinishLength, end.Finish)

	prefill := firstAt - admittedAt + 1
	t.Logf("long prefill: steps %d to %d; %d short tokens meanwhile; %d short requests", admittedAt, firstAt, shortDuring, shorts.Load())
	require.GreaterOrEqual(t, prefill, int64(88/8), "the prompt went in chunks (8 tokens a step at most)")
	require.GreaterOrEqual(t, int64(shortDuring), prefill/2, "short requests kept getting tokens")
	for q, steps := range shortSteps {
		for i := 1; i < len(steps); i++ {
			require.Equal(t, steps[i-1]+1, steps[i], "short sequence %p got a token every step: %v", q, steps)
		}
	}
	idle(t, s, r)
}

// TestCacheRunsOutMidDecode: admission reserves every sequence's blocks to
// its end, so with the scheduler as the runner's only user a step never
// lacks cache (TestReservationFillsTheCache). Should it anyway, here
// because someone else takes the free blocks mid-decode, the step fails:
// every sequence in it ends with FinishError wrapping kvcache.ErrNoSpace,
// its blocks free, and later requests are served. Nothing is preempted.
func TestCacheRunsOutMidDecode(t *testing.T) {
	t.Parallel()
	r, m := newCountRunner(t, 3, 32, nil) // 9 blocks
	require.Equal(t, 9, r.Blocks())
	thief := r.NewSequence()
	g := newGate()
	sample := func(rows []scheduler.Row) []scheduler.Decision {
		d := g.sample(rows)
		if rows[0].Generated == 3 && thief.Len() == 0 {
			// Both sequences hold a state block and one of 16 tokens, and
			// need a second one at token 16: take all five free blocks.
			_, err := r.Step([]engine.Work{{Seq: thief, Tokens: make([]int32, 4*16)}})
			assertNoError(t, err)
		}
		return d
	}
	s := scheduler.New(r, sample, scheduler.Config{MaxRunning: 2})
	defer s.Close()
	p := countPrompt(rand.New(rand.NewPCG(5, 5)), 10)
	blocker, err := s.Submit(context.Background(), scheduler.Request{Prompt: p[:1], MaxTokens: 1})
	require.NoError(t, err)
	<-g.entered // the loop waits: the two below are admitted together, and go in step
	var seqs []*scheduler.Seq
	for range 2 {
		q, err := s.Submit(context.Background(), scheduler.Request{Prompt: p, MaxTokens: 20})
		require.NoError(t, err)
		seqs = append(seqs, q)
	}
	close(g.open)
	collect(t, blocker)
	for _, q := range seqs {
		toks, end := collect(t, q)
		require.Equal(t, scheduler.FinishError, end.Finish)
		require.ErrorIs(t, end.Err, kvcache.ErrNoSpace)
		require.Equal(t, expected(p, len(toks)), toks)
		require.Len(t, toks, 16-len(p)+1, "the last token that fit its first block")
	}
	st := s.Stats()
	require.Zero(t, st.Running)
	require.Zero(t, st.CacheReserved)
	require.Equal(t, 5*16, st.CacheUsed, "only the thief's blocks")
	r.Free(thief)
	q, err := s.Submit(context.Background(), scheduler.Request{Prompt: p, MaxTokens: 20})
	require.NoError(t, err)
	toks, end := collect(t, q)
	require.Equal(t, scheduler.FinishLength, end.Finish)
	require.Equal(t, expected(p, 20), toks)
	m.check(t)
	idle(t, s, r)
}

// TestReservationFillsTheCache: requests that each need a quarter of the
// cache run four at a time and fill it to the last block, without a step
// ever lacking one.
func TestReservationFillsTheCache(t *testing.T) {
	t.Parallel()
	r, m := newCountRunner(t, 4, 48, nil) // 4 × (a state block + 3)
	var mu sync.Mutex
	var peak scheduler.Stats
	var s *scheduler.Scheduler
	sample := func(rows []scheduler.Row) []scheduler.Decision {
		st := s.Stats()
		mu.Lock()
		peak.CacheUsed = max(peak.CacheUsed, st.CacheUsed)
		peak.CacheReserved = max(peak.CacheReserved, st.CacheReserved)
		peak.Running = max(peak.Running, st.Running)
		mu.Unlock()
		return greedy(rows)
	}
	cfg := scheduler.Config{MaxQueue: 16, MaxRunning: 8, StepTokens: 64}
	s = scheduler.New(r, sample, cfg)
	defer s.Close()
	stop := make(chan struct{})
	bad := watchStats(s, cfg, stop)
	var wg sync.WaitGroup
	for i := range 12 {
		p := countPrompt(rand.New(rand.NewPCG(uint64(i), 4)), 20)
		q, err := s.Submit(context.Background(), scheduler.Request{Prompt: p, MaxTokens: 29}) // 48 tokens
		require.NoError(t, err)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var toks []int32
			for {
				ev, err := q.Recv(ctx)
				if !assertNoError(t, err) {
					return
				}
				if ev.Finish != "" {
					if ev.Finish != scheduler.FinishLength || !slicesEqual(toks, expected(p, 29)) {
						t.Errorf("request %d: %v after %d tokens", i, ev, len(toks))
					}
					return
				}
				toks = append(toks, ev.Token)
			}
		})
	}
	wg.Wait()
	close(stop)
	if msg, ok := <-bad; ok {
		t.Error(msg)
	}
	require.Equal(t, 4, peak.Running, "the cache, not MaxRunning, held them to four")
	require.Equal(t, r.CacheTokens(), peak.CacheReserved)
	require.Equal(t, r.CacheTokens(), peak.CacheUsed)
	m.check(t)
	idle(t, s, r)
}

// TestQueueFullUnderConcurrentSubmits: of many Submits at once behind a
// busy loop, exactly MaxQueue wait; each of the others is refused with
// ErrQueueFull saying how many wait (the server's ResourceExhausted).
func TestQueueFullUnderConcurrentSubmits(t *testing.T) {
	t.Parallel()
	r, m := newCountRunner(t, 2, countContext, nil)
	g := newGate()
	const maxQueue = 10
	s := scheduler.New(r, g.sample, scheduler.Config{MaxQueue: maxQueue, MaxRunning: 1})
	defer s.Close()
	ctx := context.Background()
	p := countPrompt(rand.New(rand.NewPCG(1, 2)), 4)
	first, err := s.Submit(ctx, scheduler.Request{Prompt: p, MaxTokens: 2})
	require.NoError(t, err)
	<-g.entered
	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted []*scheduler.Seq
	refused := 0
	start := make(chan struct{})
	for range 100 {
		wg.Go(func() {
			<-start
			q, err := s.Submit(ctx, scheduler.Request{Prompt: p, MaxTokens: 2})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted = append(accepted, q)
			case errors.Is(err, scheduler.ErrQueueFull):
				refused++
				if err.Error() != "admission queue full: 10 requests waiting" {
					t.Errorf("message %q", err)
				}
			default:
				t.Errorf("Submit: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	require.Len(t, accepted, maxQueue)
	require.Equal(t, 100-maxQueue, refused)
	require.Equal(t, maxQueue, s.Stats().Queued)
	close(g.open)
	for _, q := range append(accepted, first) {
		toks, end := collect(t, q)
		require.Equal(t, scheduler.FinishLength, end.Finish)
		require.Equal(t, expected(p, 2), toks)
	}
	m.check(t)
	idle(t, s, r)
}

// TestCloseWhileRunning: Close, from several goroutines at once, while
// clients submit and read and the loop is in a step. By the time Close
// returns every sequence has ended, its blocks free: with the end it
// reached, or FinishError and ErrClosed; Submit fails with ErrClosed after,
// and no goroutine is left. An anchor request, live throughout, holds the
// loop in SampleFunc until Close has begun, so Close surely catches some
// sequences. Not parallel, for the goroutine count.
func TestCloseWhileRunning(t *testing.T) {
	before := runtime.NumGoroutine()
	r, m := newCountRunner(t, 4, countContext, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	sample := func(rows []scheduler.Row) []scheduler.Decision {
		for _, row := range rows {
			if row.State == "anchor" && row.Generated == 5 {
				close(entered)
				<-release
			}
		}
		return greedy(rows)
	}
	s := scheduler.New(r, sample, scheduler.Config{MaxQueue: 16, MaxRunning: 4, StepTokens: 16})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ends := map[string]int{}
	// run submits a request and reads it to its end, which must be the
	// one it reached or ErrClosed. It returns false once Submit fails with
	// ErrClosed.
	run := func(p []int32, maxTokens int, state any) bool {
		for {
			q, err := s.Submit(context.Background(), scheduler.Request{Prompt: p, MaxTokens: maxTokens, State: state})
			switch {
			case errors.Is(err, scheduler.ErrClosed):
				return false
			case errors.Is(err, scheduler.ErrQueueFull):
				time.Sleep(time.Millisecond)
				continue
			case !assertNoError(t, err):
				return false
			}
			want := maxGen(len(p), maxTokens, countContext)
			var toks []int32
			for {
				ev, err := q.Recv(context.Background())
				if !assertNoError(t, err) {
					return false
				}
				if ev.Finish == "" {
					toks = append(toks, ev.Token)
					continue
				}
				switch {
				case ev.Finish == scheduler.FinishLength && len(toks) == want:
				case ev.Finish == scheduler.FinishError && errors.Is(ev.Err, scheduler.ErrClosed):
				default:
					t.Errorf("end %v after %d of %d tokens", ev, len(toks), want)
				}
				if !slicesEqual(toks, expected(p, len(toks))) {
					t.Errorf("tokens %v", toks)
				}
				mu.Lock()
				ends[string(ev.Finish)]++
				mu.Unlock()
				return true
			}
		}
	}
	anchor := countPrompt(rand.New(rand.NewPCG(9, 9)), 4)
	wg.Go(func() { run(anchor, 0, "anchor") }) // up to the context: 93 tokens
	for i := range 40 {
		wg.Go(func() {
			g := rand.New(rand.NewPCG(uint64(i), 8))
			for run(countPrompt(g, 1+g.IntN(30)), 1+g.IntN(20), nil) {
			}
		})
	}
	<-entered
	var closers sync.WaitGroup
	for range 3 {
		closers.Go(s.Close)
	}
	// Once Submit fails with ErrClosed, Close has begun: let the step end.
	for {
		_, err := s.Submit(context.Background(), scheduler.Request{Prompt: []int32{1}, MaxTokens: 1})
		if errors.Is(err, scheduler.ErrClosed) {
			break
		}
		require.True(t, err == nil || errors.Is(err, scheduler.ErrQueueFull), "Submit: %v", err)
		runtime.Gosched()
	}
	close(release)
	closers.Wait()
	// Every sequence has ended and freed its blocks by now; the clients
	// read their final events at their pace.
	idle(t, s, r)
	waitTimeout(t, &wg, 30*time.Second)
	t.Logf("ends %v", ends)
	require.Positive(t, ends[string(scheduler.FinishError)], "Close caught the anchor at least")
	_, err := s.Submit(context.Background(), scheduler.Request{Prompt: []int32{1}, MaxTokens: 1})
	require.ErrorIs(t, err, scheduler.ErrClosed)
	m.check(t)
	idle(t, s, r)
	goroutinesSettle(t, before)
}

// waitTimeout waits for wg, failing the test if that takes longer than d
// (a client that hangs).
func waitTimeout(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		t.Fatalf("clients still running after %v:\n%s", d, buf[:runtime.Stack(buf, true)])
	}
}

// TestStepFailureEndsItsStep: when the engine fails a step (an error from
// the backend, or a panic in the model, which the runner returns as an
// error), every sequence in that step ends with FinishError and the error,
// its blocks freed; a sequence the step's budget left out goes on, and so
// do later requests. Here four sequences decode and two long prompts take
// turns at the budget's last two tokens, so the failed step holds the four
// and one of the two.
func TestStepFailureEndsItsStep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		msg  string
	}{
		{"error", "scheduler: step of 5 sequences: injected device error"},
		{"panic", "scheduler: step of 5 sequences: engine: a step of 5 sequences panicked: count model: injected panic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var armed atomic.Bool
			r, m := newCountRunner(t, 7, countContext, func() error {
				if tc.name == "error" && armed.CompareAndSwap(true, false) {
					return errInjected
				}
				return nil
			})
			g := newGate()
			sample := func(rows []scheduler.Row) []scheduler.Decision {
				for _, row := range rows {
					if row.State == "decode" && row.Generated == 3 && !armed.Load() && !m.panics.Load() {
						if tc.name == "error" {
							armed.Store(true)
						} else {
							m.panics.Store(true)
						}
					}
				}
				return g.sample(rows)
			}
			s := scheduler.New(r, sample, scheduler.Config{MaxRunning: 6, StepTokens: 6})
			defer s.Close()
			ctx := context.Background()
			p := countPrompt(rand.New(rand.NewPCG(6, 6)), 60)
			blocker, err := s.Submit(ctx, scheduler.Request{Prompt: p[:1], MaxTokens: 1})
			require.NoError(t, err)
			<-g.entered // the loop waits: the six below are admitted together
			var decoders, longs []*scheduler.Seq
			for i := range 4 {
				q, err := s.Submit(ctx, scheduler.Request{Prompt: p[i : i+2], MaxTokens: 40, State: "decode"})
				require.NoError(t, err)
				decoders = append(decoders, q)
			}
			for range 2 {
				q, err := s.Submit(ctx, scheduler.Request{Prompt: p, MaxTokens: 2, State: "long"})
				require.NoError(t, err)
				longs = append(longs, q)
			}
			close(g.open)
			collect(t, blocker)
			for i, q := range decoders {
				toks, end := collect(t, q)
				require.Equal(t, scheduler.FinishError, end.Finish)
				require.EqualError(t, end.Err, tc.msg)
				if tc.name == "error" {
					require.ErrorIs(t, end.Err, errInjected)
				}
				require.Equal(t, expected(p[i:i+2], len(toks)), toks)
			}
			failed := 0
			for _, q := range longs {
				toks, end := collect(t, q)
				if end.Finish == scheduler.FinishError {
					failed++
					require.EqualError(t, end.Err, tc.msg)
					continue
				}
				require.Equal(t, scheduler.Event{Finish: scheduler.FinishLength}, end)
				require.Equal(t, expected(p, 2), toks, "the long prompt left out of the failed step")
			}
			require.Equal(t, 1, failed)
			idle(t, s, r)
			q, err := s.Submit(ctx, scheduler.Request{Prompt: p[:5], MaxTokens: 3})
			require.NoError(t, err)
			toks, end := collect(t, q)
			require.Equal(t, scheduler.Event{Finish: scheduler.FinishLength}, end)
			require.Equal(t, expected(p[:5], 3), toks)
			m.check(t)
			idle(t, s, r)
		})
	}
}

// TestStressTinyV3: requests on the real test model, cancelled and
// stopped at random moments beside each other; what each one received is
// a prefix of its solo run (the whole run where nothing ended it early), so
// freeing one sequence's blocks mid-flight never disturbs another's cache.
func TestStressTinyV3(t *testing.T) {
	t.Parallel()
	n := 20
	if testing.Short() {
		n = 10
	}
	ref := newRunner(t, testModel(), 256)
	type req struct {
		prompt    []int32
		maxTokens int
		action    int
		after     int
		want      []int32
	}
	reqs := make([]req, n)
	for i := range reqs {
		g := rand.New(rand.NewPCG(uint64(i), 21))
		q := req{prompt: prompt(uint64(500+i), 1+g.IntN(40)), maxTokens: 1 + g.IntN(12), action: g.IntN(4)}
		q.after = g.IntN(q.maxTokens)
		q.want = solo(t, ref, q.prompt, q.maxTokens)
		reqs[i] = q
	}
	r := newRunner(t, testModel(), 256)
	s := scheduler.New(r, greedy, scheduler.Config{MaxQueue: n, MaxRunning: 6, StepTokens: 24})
	defer s.Close()
	var wg sync.WaitGroup
	for i, q := range reqs {
		wg.Go(func() {
			time.Sleep(time.Duration(i%8) * 5 * time.Millisecond)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			seq, err := s.Submit(ctx, scheduler.Request{Prompt: q.prompt, MaxTokens: q.maxTokens})
			if !assertNoError(t, err) {
				return
			}
			var toks []int32
			for {
				if len(toks) == q.after {
					switch q.action {
					case 1:
						seq.Cancel()
					case 2:
						cancel()
					case 3:
						seq.Stop()
					}
				}
				ev, err := seq.Recv(context.Background())
				if !assertNoError(t, err) {
					return
				}
				if ev.Finish == "" {
					toks = append(toks, ev.Token)
					continue
				}
				if len(toks) > len(q.want) || !slicesEqual(toks, q.want[:len(toks)]) {
					t.Errorf("request %d: got %v, its solo run %v", i, toks, q.want)
				}
				switch {
				case ev.Finish == scheduler.FinishLength && len(toks) == len(q.want):
				case ev.Finish == scheduler.FinishCancelled && (q.action == 1 || q.action == 2):
				case ev.Finish == scheduler.FinishStop && q.action == 3:
				default:
					t.Errorf("request %d (action %d): %v after %d of %d tokens", i, q.action, ev, len(toks), len(q.want))
				}
				return
			}
		})
	}
	waitTimeout(t, &wg, time.Minute)
	idle(t, s, r)
}
