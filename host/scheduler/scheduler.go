// Package scheduler serves many concurrent generation requests over one
// engine.Runner by continuous batching: each step decodes one token of every
// live sequence and fills the rest of a token budget with prefill chunks of
// the sequences admitted since, so the weights are read once per step for
// all of them (DESIGN.md, "Engine → Scheduler").
//
// A request is admitted only when the KV cache can hold it to its end, so a
// running sequence never fails a step for lack of cache space and nothing
// is ever preempted; the others wait, first in first out, in a bounded
// queue (so a long request is not passed over by later short ones).
//
// A step the engine fails ends every sequence in that step with
// FinishError and the step's error, its cache blocks freed: a model or
// backend error or panic (engine.Runner.Step returns a panic as an error),
// or kvcache.ErrNoSpace should the cache run out all the same, which only
// another user of the runner can cause. Sequences the step left out (a
// prefill the budget did not reach) and later requests go on.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ulan-ai/ulan/engine"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxQueue   = 256
	DefaultMaxRunning = 64
	DefaultStepTokens = 512
)

// Errors Submit returns, checked with errors.Is; the messages wrapping them
// name the counts involved and may be shown to the client.
var (
	// ErrQueueFull means MaxQueue requests already wait for admission.
	ErrQueueFull = errors.New("admission queue full")
	// ErrTooLarge means the request could never run: its prompt is longer
	// than the model's context, or it needs more KV cache than there is.
	ErrTooLarge = errors.New("request too large")
	// ErrInvalid means the request is malformed: an empty prompt, a token
	// outside the vocabulary or a negative MaxTokens.
	ErrInvalid = errors.New("invalid request")
	// ErrClosed means the scheduler is closed. Sequences still live at
	// Close end with FinishError and this error.
	ErrClosed = errors.New("scheduler closed")
)

// Config sizes a Scheduler. Zero fields take the defaults above.
type Config struct {
	// MaxQueue is how many requests may wait for admission; Submit fails
	// with ErrQueueFull beyond it. Default DefaultMaxQueue.
	MaxQueue int
	// MaxRunning is how many sequences may be live (prefilling or
	// decoding) at once. Default DefaultMaxRunning.
	MaxRunning int
	// StepTokens is the token budget of one step: a decode token for every
	// decoding sequence plus prefill chunks in what is left, so a long
	// prompt delays the others' next token by one chunk at most. It is
	// raised to MaxRunning where smaller, which keeps at least one token
	// for prefill whenever a sequence is prefilling (at most MaxRunning−1
	// others decode then). Default DefaultStepTokens.
	StepTokens int
}

// SampleFunc picks the next tokens. The scheduler calls it once per step,
// from its loop, with every sequence that got next-token logits in that
// step (a finished prefill or a decode token), so that sampling is batched
// across sequences; it returns one Decision per row, in order. It must not
// call Close.
type SampleFunc func(rows []Row) []Decision

// Row is one sequence's next-token logits in a step.
type Row struct {
	Seq *Seq
	// Logits has the vocabulary's size. It is valid only during the call.
	Logits []float32
	// Maxima are Logits' tile maxima (engine.Runner.TileMaxima), nil
	// when the engine gave none. A SampleFunc that changes Logits must
	// mend them, or drop them.
	Maxima []float32
	// State is the Request's State.
	State any
	// Generated is how many tokens the sequence has generated before this
	// one.
	Generated int
}

// Decision is what SampleFunc decided for one Row.
type Decision struct {
	// Token is the next token.
	Token int32
	// Stop says Token ends the sequence (EOS, a stop token); it is still
	// delivered, then the sequence ends with FinishStop.
	Stop bool
	// Err ends the sequence with FinishError and this error; Token is
	// ignored. The other sequences go on.
	Err error
}

// Request is one generation request.
type Request struct {
	// Prompt is the token ids to prefill; at least one, and no more than
	// the model's context.
	Prompt []int32
	// MaxTokens is the most tokens to generate; 0 means up to the model's
	// context. The sequence also ends, with FinishLength, once the model
	// has seen its whole context: prompt + generated − 1 tokens (the last
	// token is delivered but never fed back) never exceed it.
	MaxTokens int
	// State is handed back to SampleFunc in each Row (sampling parameters,
	// a seeded generator, …).
	State any
}

// Stats is a snapshot of the scheduler's state and counters.
type Stats struct {
	// Running and Queued count the live and the waiting sequences.
	Running, Queued int
	// CacheTokens is the size of the KV cache in tokens; CacheUsed the
	// tokens the live sequences' blocks hold now, CacheFree the rest.
	CacheTokens, CacheUsed, CacheFree int
	// CacheReserved is what admission has promised the running sequences
	// (each to its end), in tokens of whole blocks; CacheUsed never
	// exceeds it.
	CacheReserved int
	// Steps, PromptTokens and GeneratedTokens count since New: steps run,
	// prompt tokens prefilled, tokens generated.
	Steps, PromptTokens, GeneratedTokens uint64
}

// Scheduler runs the step loop over one Runner. It must be the runner's
// only user. Its methods are safe for concurrent use.
type Scheduler struct {
	r       *engine.Runner
	sample  SampleFunc
	cfg     Config
	vocab   int
	context int // tokens a sequence may hold in the cache
	blocks  int // blocks in the cache

	wake chan struct{} // capacity 1: something for the loop to look at
	done chan struct{} // closed when the loop has returned

	mu     sync.Mutex
	closed bool
	queue  []*Seq // waiting for admission, in order
	// gauges holds Running, Queued and CacheReserved as the loop last
	// published them; the loop updates them before a final event goes out,
	// so a caller who has seen one never sees its sequence counted.
	gauges Stats

	// Counters, incremented before the events they count go out.
	steps, promptTokens, generatedTokens atomic.Uint64

	// Owned by the loop.
	running  []*Seq // in admission order
	prefill  []*Seq // running sequences with prompt left, in round-robin order
	reserved int    // blocks promised to running sequences
}

// New starts a scheduler over r, which it must be the only user of; Close
// stops it. sample must not be nil.
func New(r *engine.Runner, sample SampleFunc, cfg Config) *Scheduler {
	if sample == nil {
		panic("scheduler: nil SampleFunc")
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.MaxRunning <= 0 {
		cfg.MaxRunning = DefaultMaxRunning
	}
	if cfg.StepTokens <= 0 {
		cfg.StepTokens = DefaultStepTokens
	}
	cfg.StepTokens = max(cfg.StepTokens, cfg.MaxRunning)
	info := r.Model().Info()
	s := &Scheduler{
		r: r, sample: sample, cfg: cfg, vocab: info.Vocab, context: info.Context,
		blocks: r.Blocks(),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if s.context <= 0 { // no limit of the model's own: the cache is one
		s.context = r.CacheTokens()
	}
	go s.loop()
	return s
}

// Submit queues a request and returns its sequence, whose tokens Seq.Recv
// gives. When ctx is done, the sequence is cancelled (Seq.Cancel). Submit
// fails with ErrInvalid, ErrTooLarge, ErrQueueFull or ErrClosed (wrapped),
// or ctx's error.
func (s *Scheduler) Submit(ctx context.Context, req Request) (*Seq, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := len(req.Prompt)
	switch {
	case p == 0:
		return nil, fmt.Errorf("%w: empty prompt", ErrInvalid)
	case req.MaxTokens < 0:
		return nil, fmt.Errorf("%w: max tokens %d", ErrInvalid, req.MaxTokens)
	case p > s.context:
		return nil, fmt.Errorf("%w: a prompt of %d tokens is longer than the model's context of %d", ErrTooLarge, p, s.context)
	}
	for i, t := range req.Prompt {
		if t < 0 || int(t) >= s.vocab {
			return nil, fmt.Errorf("%w: prompt token %d is %d, outside the vocabulary of %d", ErrInvalid, i, t, s.vocab)
		}
	}
	// The last generated token is never fed back, so the cache holds at most
	// p + maxGen − 1 tokens, and maxGen ends where that reaches the context.
	maxGen := s.context - p + 1
	if req.MaxTokens > 0 {
		maxGen = min(maxGen, req.MaxTokens)
	}
	need := p + maxGen - 1
	// Admission counts in the runner's blocks, a sequence's state included,
	// so a context of a million tokens is a budget checked here, never a
	// step that fails half-way.
	blocks := s.r.BlocksFor(need)
	if blocks > s.blocks {
		return nil, fmt.Errorf("%w: %d prompt tokens and up to %d new ones need %d tokens of KV cache (%d bytes); it holds %d tokens (%d bytes)",
			ErrTooLarge, p, maxGen, need, s.r.CacheBytesAt(need), s.blocks*s.r.BlockSize(), s.r.CacheBytes())
	}
	q := &Seq{
		s:      s,
		prompt: slices.Clone(req.Prompt),
		state:  req.State,
		maxGen: maxGen,
		blocks: blocks,
		ready:  make(chan struct{}, 1),
	}
	q.stopWatch = context.AfterFunc(ctx, q.Cancel)
	q.submitted = time.Now()
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		q.stopWatch()
		return nil, ErrClosed
	case len(s.queue) >= s.cfg.MaxQueue:
		n := len(s.queue)
		s.mu.Unlock()
		q.stopWatch()
		return nil, fmt.Errorf("%w: %d requests waiting", ErrQueueFull, n)
	}
	s.queue = append(s.queue, q)
	s.gauges.Queued = len(s.queue)
	s.mu.Unlock()
	s.signal()
	return q, nil
}

// Close stops the loop after the step in progress. Sequences still live or
// queued end with FinishError and ErrClosed, their cache blocks freed;
// Submit fails with ErrClosed afterwards. Close is idempotent.
func (s *Scheduler) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.signal()
	<-s.done
}

// Stats returns the current figures.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	st := s.gauges
	// The cache is read with the gauges, under s.mu: the loop raises the
	// reservation (under s.mu) before a step takes blocks for it, and frees
	// blocks before it lowers the reservation, so a snapshot taken whole
	// never shows more cache used than reserved, nor blocks of sequences it
	// does not count.
	st.CacheFree = s.r.FreeTokens()
	s.mu.Unlock()
	st.Steps, st.PromptTokens, st.GeneratedTokens = s.steps.Load(), s.promptTokens.Load(), s.generatedTokens.Load()
	st.CacheTokens = s.r.CacheTokens()
	st.CacheUsed = st.CacheTokens - st.CacheFree
	return st
}

// signal wakes the loop if it sleeps, or makes its next sleep return at once.
func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loop admits, steps and ends sequences until Close. It sleeps on s.wake
// while no sequence is live.
func (s *Scheduler) loop() {
	defer close(s.done)
	for {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			s.shutdown()
			return
		}
		for _, q := range s.running {
			if reason := q.asked(); reason != "" {
				s.end(q, reason, nil)
			}
		}
		s.sweep()
		s.admit()
		if len(s.running) == 0 {
			<-s.wake
			continue
		}
		s.step()
		s.sweep()
	}
}

// admit moves requests from the queue to the running set, in order, while
// a slot is free and the cache can hold the head to its end; requests
// cancelled while waiting leave the queue wherever they are.
func (s *Scheduler) admit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.queue[:0]
	var now time.Time
	for _, q := range s.queue {
		if reason := q.asked(); reason != "" {
			q.finish(reason, nil)
			continue
		}
		if len(kept) == 0 && len(s.running) < s.cfg.MaxRunning && s.reserved+q.blocks <= s.blocks {
			if now.IsZero() {
				now = time.Now()
			}
			q.queued.Store(int64(now.Sub(q.submitted)))
			q.admitted.Store(true)
			q.eng = s.r.NewSequence()
			s.reserved += q.blocks
			s.running = append(s.running, q)
			s.prefill = append(s.prefill, q)
			continue
		}
		kept = append(kept, q)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.publishLocked()
}

// step runs one engine step: a decode token for every decoding sequence,
// then prefill chunks round robin in the budget left; the sequences that got
// next-token logits go to decide.
func (s *Scheduler) step() {
	budget := s.cfg.StepTokens
	var work []engine.Work
	var seqs []*Seq // work[i] is seqs[i]'s
	for _, q := range s.running {
		if q.fed == len(q.prompt) {
			q.one[0] = q.next
			work = append(work, engine.Work{Seq: q.eng, Tokens: q.one[:]})
			seqs = append(seqs, q)
			budget--
		}
	}
	// Round robin: the sequences served go to the back of the line, the
	// one the budget cut short too, so that a long prompt takes its turn
	// like the others instead of holding the front.
	served, prompt := 0, 0
	for ; served < len(s.prefill) && budget > 0; served++ {
		q := s.prefill[served]
		n := min(len(q.prompt)-q.fed, budget)
		work = append(work, engine.Work{Seq: q.eng, Tokens: q.prompt[q.fed : q.fed+n]})
		seqs = append(seqs, q)
		budget -= n
		prompt += n
	}
	s.prefill = slices.Concat(s.prefill[served:], s.prefill[:served])

	rows, err := s.r.Step(work)
	s.steps.Add(1)
	if err != nil {
		for _, q := range seqs {
			s.end(q, FinishError, fmt.Errorf("scheduler: step of %d sequences: %w", len(seqs), err))
		}
		return
	}
	s.promptTokens.Add(uint64(prompt))
	tiles := s.r.TileMaxima()
	var out []Row
	for i, q := range seqs {
		if q.fed < len(q.prompt) {
			q.fed += len(work[i].Tokens)
			if q.fed < len(q.prompt) {
				continue // a prefill chunk short of the prompt's end: its logits are not wanted
			}
		}
		if q.asked() != "" {
			continue // ends at the next step; no token is delivered any more
		}
		row := Row{Seq: q, Logits: rows[i], State: q.state, Generated: q.generated}
		if len(tiles) == len(rows) {
			row.Maxima = tiles[i]
		}
		out = append(out, row)
	}
	if len(out) > 0 {
		s.decide(out)
	}
}

// decide calls SampleFunc once for the step's rows and delivers each
// sequence's token, or ends it.
func (s *Scheduler) decide(rows []Row) {
	decisions, err := s.sampleSafely(rows)
	if err == nil && len(decisions) != len(rows) {
		err = fmt.Errorf("scheduler: SampleFunc returned %d decisions for %d rows", len(decisions), len(rows))
	}
	if err != nil {
		for _, row := range rows {
			s.end(row.Seq, FinishError, err)
		}
		return
	}
	for i, row := range rows {
		q, d := row.Seq, decisions[i]
		switch {
		case d.Err != nil:
			s.end(q, FinishError, fmt.Errorf("scheduler: sampling: %w", d.Err))
			continue
		case d.Token < 0 || int(d.Token) >= s.vocab:
			s.end(q, FinishError, fmt.Errorf("scheduler: sampled token %d is outside the vocabulary of %d", d.Token, s.vocab))
			continue
		}
		q.generated++
		s.generatedTokens.Add(1)
		q.next = d.Token
		q.push(Event{Token: d.Token})
		switch {
		case d.Stop:
			s.end(q, FinishStop, nil)
		case q.generated >= q.maxGen:
			s.end(q, FinishLength, nil)
		}
	}
}

// end frees a running sequence's cache blocks and its reservation, and
// queues its final event; sweep then drops it from the running set.
func (s *Scheduler) end(q *Seq, reason FinishReason, err error) {
	if q.eng == nil {
		return // already ended in this step
	}
	s.r.Free(q.eng)
	q.eng = nil
	s.reserved -= q.blocks
	s.mu.Lock()
	s.gauges.Running--
	s.gauges.CacheReserved = s.reserved * s.r.BlockSize()
	s.mu.Unlock()
	q.finish(reason, err)
}

// sweep drops the sequences end has ended from the running and prefill sets.
func (s *Scheduler) sweep() {
	s.running = slices.DeleteFunc(s.running, func(q *Seq) bool { return q.eng == nil })
	s.prefill = slices.DeleteFunc(s.prefill, func(q *Seq) bool { return q.eng == nil || q.fed == len(q.prompt) })
	s.mu.Lock()
	s.publishLocked()
	s.mu.Unlock()
}

// publishLocked copies the loop's state into the stats; s.mu is held.
func (s *Scheduler) publishLocked() {
	s.gauges.Running = len(s.running)
	s.gauges.Queued = len(s.queue)
	s.gauges.CacheReserved = s.reserved * s.r.BlockSize()
}

// shutdown ends every live and queued sequence with ErrClosed, or with the
// reason Cancel or Stop gave.
func (s *Scheduler) shutdown() {
	reason := func(q *Seq) (FinishReason, error) {
		if r := q.asked(); r != "" {
			return r, nil
		}
		return FinishError, ErrClosed
	}
	for _, q := range s.running {
		r, err := reason(q)
		s.end(q, r, err)
	}
	s.running, s.prefill = nil, nil
	s.mu.Lock()
	for _, q := range s.queue {
		q.finish(reason(q))
	}
	s.queue = nil
	s.publishLocked()
	s.mu.Unlock()
}

// sampleSafely calls the SampleFunc; a panic in it fails the step's
// sequences instead of the server.
func (s *Scheduler) sampleSafely(rows []Row) (decisions []Decision, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("scheduler: sampling panicked: %v", v)
		}
	}()
	return s.sample(rows), nil
}
