package sampling

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/host/plugin/primitive"
	"github.com/ulan-ai/ulan/host/sampling/internal/expsum"
	"github.com/ulan-ai/ulan/internal/team"
	"github.com/ulan-ai/ulan/sdk/go/sampler"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
	"go.opentelemetry.io/otel/trace"
)

// firstK is the candidate count a row starts with when the request's top_k
// does not say how many the policy keeps.
const firstK = 64

// widenBy is the factor the candidate set grows by when a policy asks for
// more.
const widenBy = 16

// Result is one choice's outcome of a step.
type Result struct {
	// Token is the chosen token.
	Token int32
	// Logprob is its natural log probability under the sampling
	// distribution (set when the request asked for logprobs).
	Logprob float32
	// Top are the most likely tokens of the sampling distribution, most
	// likely first (top_logprobs of them).
	Top []Alt
	// Err is set when the choice cannot go on; Token is then meaningless.
	Err error
}

// Alt is a token with its log probability.
type Alt struct {
	Token   int32
	Logprob float32
}

// Stage samples the choices of a step. It keeps one instance of each
// sampler plugin in use pinned across steps (a plugin.SamplerBatch), so a
// step calls each plugin once for all the choices it serves. It is safe
// for concurrent use; steps run one at a time.
type Stage struct {
	mu      sync.Mutex
	batches map[*generation.Plugin]*batch
}

// batch is a pinned plugin instance and the choices open in it.
type batch struct {
	b    *plugin.SamplerBatch
	seqs map[*Seq]bool
}

// NewStage returns an empty stage.
func NewStage() *Stage { return &Stage{batches: map[*generation.Plugin]*batch{}} }

// row is one choice's work in a step.
type row struct {
	s        *Seq
	logits   []float32 // the full row after the native stage
	maxima   []float32 // its tile maxima (engine.LogitTile), nil for none
	seen     []uint64  // the tiles selectTiled scanned again, a bit each
	finite   int       // tokens of non-zero probability
	lse      float32
	u0, u1   float32
	k        int // candidates wanted
	ids      []int32
	cand     []float32
	out      []float32
	sorted   []int32 // the row's ids by logit, once a set is widened
	whole    bool    // the policy's logits are the whole row, in logits
	max      float64 // the row's largest logit (the native stage's)
	wholeMax float32 // the whole row's largest logit, once scaled
	temp     float32 // a keep-all row's temperature, not yet applied to logits (0: none)
	hasLSE   bool
	plugged  bool // a plugin samples the row
	res      Result
	token    int32 // a selector's choice; −1: draw
	done     bool  // the policy has answered
	err      error
}

// Step samples one token for each choice from its logits row (vocabulary
// wide; the stage writes to it). Each choice's chosen token is appended to
// its history. A choice that cannot go on gets a Result with Err; the
// others are not affected.
func (st *Stage) Step(ctx context.Context, seqs []*Seq, logits [][]float32) []Result {
	return st.StepTiled(ctx, seqs, logits, nil)
}

// StepTiled is Step for rows whose tile maxima the engine took
// (engine.Runner.TileMaxima; maxima[i] is logits[i]'s, nil where there are
// none, and maxima itself may be nil): a row's first candidates then come
// from the tiles that can hold them, not from a pass over the whole row.
// The stage mends the maxima of the tiles its native stage changes. The
// answers are Step's, bit for bit.
func (st *Stage) StepTiled(ctx context.Context, seqs []*Seq, logits, maxima [][]float32) []Result {
	st.mu.Lock()
	defer st.mu.Unlock()
	rows := make([]*row, len(seqs))
	for i, s := range seqs {
		rows[i] = &row{s: s, logits: logits[i], token: -1, plugged: s.plugin != nil && !s.fallback}
		if i < len(maxima) {
			rows[i].maxima = maxima[i]
		}
		rows[i].u0, rows[i].u1 = s.uniforms()
	}
	// The loops over whole rows run in parallel; the plugin calls, one per
	// plugin for all its rows, and the histories do not.
	forEach(rows, (*row).prepare)
	plugged := map[*generation.Plugin][]*row{}
	for _, r := range rows {
		if r.plugged && r.err == nil {
			plugged[r.s.plugin] = append(plugged[r.s.plugin], r)
		}
	}
	for p, rs := range plugged {
		st.runPlugin(ctx, p, rs)
	}
	forEach(rows, func(r *row) {
		if r.err == nil && !r.done {
			r.runNative()
		}
		r.res = r.draw()
	})
	res := make([]Result, len(rows))
	for i, r := range rows {
		res[i] = r.res
		if r.res.Err == nil {
			r.s.Append(r.res.Token)
			st.record(ctx, r.s, r.res.Token)
		}
	}
	return res
}

// forEach runs fn on every row, on up to GOMAXPROCS goroutines, this one
// among them: the team of the CPU backend, whose helpers are still
// spinning from the engine step that made the rows. A goroutine started
// here instead sat in this one's run queue while a spinning helper held
// the other processor, and the rows ran one after another.
func forEach(rows []*row, fn func(*row)) {
	team.Run(runtime.GOMAXPROCS(0), len(rows), func(i int) { fn(rows[i]) })
}

// prepare runs the native stage on the row and, for a plugin, computes the
// row's log-sum-exp and its first candidates.
func (r *row) prepare() {
	s := r.s
	if len(r.logits) != s.vocab {
		r.err = fmt.Errorf("sampling: a logits row of %d for a vocabulary of %d", len(r.logits), s.vocab)
		return
	}
	if r.err = s.shape(r.logits); r.err != nil {
		return
	}
	r.k = s.firstK()
	// A row whose policy starts from a top-k set scans the row in the
	// top-k's pass (scanSelect); the others scan it on their own.
	_, keepsAll := s.native.KeepsAll()
	if fused := r.k <= topKMax && len(r.logits) >= topKMin && (r.plugged || !keepsAll); fused {
		if !r.selectTiled() {
			r.scanSelect()
		}
	} else if r.max, r.finite, r.err = scan(r.logits); r.err == nil && r.plugged {
		r.select_()
	}
	if r.err != nil {
		return
	}
	if r.plugged {
		// A plugin that reads the log-sum-exp on demand gets it ahead only
		// once it has asked for this choice's: a policy that needs it needs
		// it at most steps, and here the rows compute it in parallel.
		if !s.plugin.Runtime.LSEOnDemand() || s.readsLSE {
			r.ensureLSE()
		}
	}
}

// scanSelect is scan and select_ in one pass over the row (topK with a
// scanner): the row's first r.k candidates, cut to its finite tokens —
// the k best hold all of them, then −Inf ones, when fewer are finite.
func (r *row) scanSelect() {
	var sc expsum.Scanner
	sc.Reset()
	r.ids = slices.Grow(r.ids[:0], r.k)[:r.k]
	r.cand = slices.Grow(r.cand[:0], r.k)[:r.k]
	n, err := topK(r.logits, r.k, r.ids, r.cand, &sc)
	mx, finite, ok := sc.Result()
	if r.max, r.finite, r.err = scanResult(r.logits, mx, finite, ok); r.err != nil {
		return
	}
	if err != nil {
		r.err = fmt.Errorf("sampling: %w", err)
		return
	}
	k := min(n, r.finite)
	r.ids, r.cand = r.ids[:k], r.cand[:k]
	r.out = slices.Grow(r.out[:0], k)[:k]
	copy(r.out, r.cand)
}

// selectTiled is scanSelect from the row's tile maxima (topKTiles): the
// tiles the native stage changed are scanned again, and the rest are as
// the engine left them, every value finite. It reports false, leaving the
// choice to scanSelect, when the maxima cannot answer: there are none,
// allowed_token_ids masks the whole row, a changed tile holds a NaN or
// +Inf (scanSelect names it), or fewer than r.k values are finite.
func (r *row) selectTiled() bool {
	const tile = engine.LogitTile
	s, mx, n := r.s, r.maxima, len(r.logits)
	if _, forced := s.forced(); mx == nil || len(mx) != (n+tile-1)/tile || len(mx) < r.k || s.allowed != nil || forced {
		return false
	}
	negInf, ok := 0, true
	s.eachShaped(func(id int32) {
		j := int(id) / tile
		if !ok || r.mended(j) {
			return
		}
		m := float32(math.Inf(-1))
		for _, v := range r.logits[j*tile : min((j+1)*tile, n)] {
			switch {
			case v != v || math.IsInf(float64(v), 1):
				ok = false
			case math.IsInf(float64(v), -1):
				negInf++
			}
			m = max(m, v)
		}
		mx[j] = m
	})
	if !ok || n-negInf < r.k {
		return false
	}
	r.ids = slices.Grow(r.ids[:0], r.k)[:r.k]
	r.cand = slices.Grow(r.cand[:0], r.k)[:r.k]
	topKTiles(r.logits, mx, tile, r.k, r.ids, r.cand, &s.tileScratch)
	// The best candidate is the row's largest value, and finite.
	r.max, r.finite = float64(r.cand[0]+0), n-negInf // +0: −0 becomes +0, as Scan's
	r.out = slices.Grow(r.out[:0], r.k)[:r.k]
	copy(r.out, r.cand)
	return true
}

// mended reports whether tile j was scanned again in this step, and
// marks it so.
func (r *row) mended(j int) bool {
	w, bit := j/64, uint64(1)<<(j%64)
	if w >= len(r.seen) {
		r.seen = slices.Grow(r.seen, w+1-len(r.seen))[:w+1]
	}
	if r.seen[w]&bit != 0 {
		return true
	}
	r.seen[w] |= bit
	return false
}

// ensureLSE computes the row's log-sum-exp, once.
func (r *row) ensureLSE() {
	if !r.hasLSE {
		r.lse, r.hasLSE = logSumExp(r.logits, r.max), true
	}
}

// knownLSE is the row's log-sum-exp if it was computed, NaN if not.
func (r *row) knownLSE() float32 {
	if !r.hasLSE {
		return float32(math.NaN())
	}
	return r.lse
}

// loadLSE computes the log-sum-exp when a policy asks for it, and marks
// the choice as one whose policy reads it.
func (r *row) loadLSE() float32 {
	r.ensureLSE()
	r.s.readsLSE = true
	return r.lse
}

// keepAll makes the policy's answer the whole row with its logits divided
// by t: the draw takes it whole, unsorted (draw's order is the ids', so an
// answer over the sorted row would draw the same token).
func (r *row) keepAll(t float32) {
	// The division waits for the draw, which fuses it with the exps
	// (drawWhole) unless it needs the scaled row (byID).
	r.temp = t
	// Division by t > 0 never reverses an order, so the largest scaled
	// logit is the largest logit scaled.
	r.wholeMax = float32(r.max) / t
	r.whole, r.done = true, true
}

// eachShaped calls fn with every token whose logit shape may change,
// allowed_token_ids' aside (it may change any): logit_bias's, the banned
// tokens, EOS and the stop tokens before min_tokens, and the tokens of the
// penalty window. It must follow shape.
func (s *Seq) eachShaped(fn func(id int32)) {
	for id := range s.bias {
		fn(id)
	}
	for _, id := range s.banned {
		fn(id)
	}
	if s.Generated() < s.minTokens {
		for id := range s.eos {
			fn(id)
		}
		for id := range s.stops {
			fn(id)
		}
	}
	if s.repetition != 1 || s.presence != 0 || s.frequency != 0 {
		for id := range s.counts {
			fn(id)
		}
	}
}

// shape applies the native stage to a row in place: logit_bias, allowed
// and banned tokens, min_tokens, then the penalties over the window; on a
// forced step (Forcing) only the forced token's logit is left.
// eachShaped names the tokens it may change.
func (s *Seq) shape(l []float32) error {
	for id, b := range s.bias {
		l[id] += b
	}
	if s.allowed != nil {
		for i, ok := range s.allowed {
			if !ok {
				l[i] = float32(math.Inf(-1))
			}
		}
	}
	for _, id := range s.banned {
		l[id] = float32(math.Inf(-1))
	}
	if s.Generated() < s.minTokens {
		for id := range s.eos {
			l[id] = float32(math.Inf(-1))
		}
		for id := range s.stops {
			l[id] = float32(math.Inf(-1))
		}
	}
	if s.repetition != 1 || s.presence != 0 || s.frequency != 0 {
		for id, c := range s.counts {
			v := l[id]
			if s.repetition != 1 {
				if v > 0 {
					v /= s.repetition
				} else {
					v *= s.repetition
				}
			}
			l[id] = v - float32(c)*s.frequency - s.presence
		}
	}
	if id, ok := s.forced(); ok {
		v := l[id]
		if math.IsInf(float64(v), -1) {
			v = 0 // forcing outranks a ban: the token is the only one left
		}
		for i := range l {
			l[i] = float32(math.Inf(-1))
		}
		l[id] = v
	}
	return nil
}

// scan returns the row's largest value and how many of its values are
// finite (expsum's kernel). A NaN, +Inf or a row with nothing left to
// sample is an error.
func scan(l []float32) (float64, int, error) {
	mx, finite, ok := expsum.Scan(l)
	return scanResult(l, mx, finite, ok)
}

// scanResult is scan's answer from the row's expsum.Scan result.
func scanResult(l []float32, mx float32, finite int, ok bool) (float64, int, error) {
	if !ok {
		return 0, 0, scanError(l)
	}
	if finite == 0 {
		return 0, 0, errors.New("sampling: no token can be sampled: allowed_token_ids, banned_token_ids, logit_bias and min_tokens leave none")
	}
	return float64(mx), finite, nil
}

// scanError names the first NaN or +Inf of a row.
func scanError(l []float32) error {
	for i, v := range l {
		switch {
		case v != v:
			return fmt.Errorf("sampling: the model gave a NaN logit for token %d", i)
		case math.IsInf(float64(v), 1):
			return fmt.Errorf("sampling: logit of token %d is +Inf", i)
		}
	}
	return nil
}

// logSumExp returns log Σ exp(l) over a row whose largest value is mx,
// with expsum's kernel: the same bits on every machine.
func logSumExp(l []float32, mx float64) float32 {
	return float32(mx + math.Log(expsum.Sum(l, float32(mx))))
}

// firstK is the number of candidates a row starts with: top_k when the
// request sets one, else firstK; never fewer than top_logprobs.
func (s *Seq) firstK() int {
	k := firstK
	if t := int(s.p.GetTopK()); t > 0 {
		k = t
	}
	if s.p.Temperature != nil && s.p.GetTemperature() == 0 {
		k = 1
	}
	return min(max(k, s.topLogprobs, 1), s.vocab)
}

// select_ fills the row's candidates: its r.k best tokens (all finite
// ones when fewer), best first, ties to the lower id. The first set of a
// step comes from a heap; a widened one from the row sorted once.
func (r *row) select_() {
	k := min(r.k, r.finite)
	if r.k >= r.s.vocab {
		k = r.s.vocab // the whole vocabulary, −Inf included
	}
	r.ids = slices.Grow(r.ids[:0], k)[:k]
	r.cand = slices.Grow(r.cand[:0], k)[:k]
	r.out = slices.Grow(r.out[:0], k)[:k]
	if r.sorted == nil && k <= firstK*4 {
		if _, err := topK(r.logits, k, r.ids, r.cand, nil); err != nil {
			r.err = fmt.Errorf("sampling: %w", err)
		}
	} else {
		if r.sorted == nil {
			r.sorted = sortedIDs(r.logits)
		}
		copy(r.ids, r.sorted)
		for i, id := range r.ids {
			r.cand[i] = r.logits[id]
		}
	}
	copy(r.out, r.cand)
}

// sortedIDs orders a row's token ids by logit, largest first, ties to the
// lower id: primitive.TopK's order, which is total, so both give the same
// candidates.
func sortedIDs(vals []float32) []int32 {
	idx := make([]int32, len(vals))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		switch va, vb := vals[a], vals[b]; {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return int(a - b)
	})
	return idx
}

// complete reports whether the row's candidates hold every token of
// non-zero probability.
func (r *row) complete() bool { return len(r.ids) >= r.finite }

// widen grows the candidate set; false when it already holds the whole
// vocabulary.
func (r *row) widen() bool {
	if r.k >= r.s.vocab {
		return false
	}
	if r.complete() {
		r.k = r.s.vocab
	} else {
		r.k = min(r.k*widenBy, r.s.vocab)
	}
	r.select_()
	return r.err == nil
}

// sdkRow is the row as a policy sees it.
func (r *row) sdkRow() *sampler.Row {
	return &sampler.Row{Position: int32(r.s.Generated()), U0: r.u0, U1: r.u1, LSE: r.knownLSE(), LoadLSE: r.loadLSE,
		IDs: r.ids, Logits: r.cand, Out: r.out, Token: -1}
}

// runNative runs the built-in standard policy, widening until it is
// satisfied. Tokens outside a row's finite set have probability 0 under
// the standard policy, so once the candidates hold all of them the row
// counts as complete. A policy that keeps every token only scales the
// row (keepAll). The policy reads the log-sum-exp on demand (sdkRow).
func (r *row) runNative() {
	if t, all := r.s.native.KeepsAll(); all {
		r.keepAll(t)
		return
	}
	if r.ids == nil {
		r.select_()
		if r.err != nil {
			return
		}
	}
	for {
		vocab := r.s.vocab
		if r.complete() {
			vocab = len(r.ids)
		}
		copy(r.out, r.cand)
		widen, err := r.s.native.Apply(r.sdkRow(), vocab)
		if err != nil {
			r.err = fmt.Errorf("sampling: the standard policy: %w", err)
			return
		}
		if !widen {
			r.done = true
			return
		}
		if !r.widen() {
			r.err = errors.New("sampling: the standard policy asked for more than the whole vocabulary")
			return
		}
	}
}

// runPlugin runs one sampler plugin over its rows, widening the rows it
// asks to widen. When the plugin fails, each row's choice follows the
// plugin's failure policy: the standard policy serves it from then on
// (annotated), or the choice ends.
func (st *Stage) runPlugin(ctx context.Context, p *generation.Plugin, rows []*row) {
	// A choice whose sequence went with an instance that failed since its
	// last step follows the policy now, as the rows of the failed call did.
	rows = slices.DeleteFunc(rows, func(r *row) bool {
		if r.s.lost == nil {
			return false
		}
		r.pluginFailed(p, r.s.lost)
		return true
	})
	if len(rows) == 0 {
		return
	}
	b, err := st.batch(ctx, p)
	if err == nil {
		err = b.openAll(ctx, rows)
	}
	for err == nil && len(rows) > 0 {
		in := make([]plugin.SamplerRow, len(rows))
		for i, r := range rows {
			in[i] = plugin.SamplerRow{Handle: r.s.handle, Position: int32(r.s.Generated()), U0: r.u0, U1: r.u1,
				LSE: r.knownLSE(), LoadLSE: r.loadLSE, IDs: r.ids, Logits: r.cand, Span: r.s.stepSpan()}
		}
		var outs []plugin.SamplerOutput
		if outs, err = b.b.Step(ctx, in); err != nil {
			break
		}
		// A row that holds the whole vocabulary cannot widen: asking is the
		// plugin's failure (sdk/ABI.md §6.2), which its policy answers for
		// the step's rows, as for an answer Step refuses.
		for i, r := range rows {
			if outs[i].Widen && r.k >= r.s.vocab {
				err = b.b.Refuse(fmt.Errorf("plugin %s: smp_step: row %d: asked to widen a row that holds the whole vocabulary of %d tokens", p.ID, i, r.s.vocab))
				break
			}
		}
		if err != nil {
			break
		}
		var again []*row
		for i, r := range rows {
			o := outs[i]
			if o.Widen {
				if r.widen() {
					again = append(again, r)
				}
				continue
			}
			if o.KeepAll {
				r.keepAll(o.Temperature)
				continue
			}
			copy(r.out, o.Logits)
			r.token, r.done = o.Token, true
		}
		rows = again
	}
	if err == nil {
		return
	}
	for _, r := range rows {
		r.pluginFailed(p, err)
	}
	st.drop(ctx, p, err)
}

// pluginFailed applies the plugin's failure policy to one row.
func (r *row) pluginFailed(p *generation.Plugin, err error) {
	r.s.handle, r.s.opened, r.s.lost = 0, false, nil
	if p.Policy != generation.Fallback {
		r.err = fmt.Errorf("sampler plugin %s failed (fail_closed): %w", p.ID, err)
		return
	}
	r.s.fallback = true
	r.s.notes = append(r.s.notes, Note{Kind: ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_FALLBACK, Source: p.ID,
		Message: fmt.Sprintf("sampler plugin %s failed at token %d (%v); the built-in standard sampler served the rest", p.ID, r.s.Generated(), err)})
	r.k = r.s.firstK()
	r.select_()
}

// batch returns the plugin's pinned instance, opening one if needed.
func (st *Stage) batch(ctx context.Context, p *generation.Plugin) (*batch, error) {
	if b := st.batches[p]; b != nil {
		return b, nil
	}
	sb, err := p.Runtime.OpenSamplerBatch(ctx)
	if err != nil {
		return nil, err
	}
	b := &batch{b: sb, seqs: map[*Seq]bool{}}
	st.batches[p] = b
	return b, nil
}

// openAll opens the rows' sequences the plugin has not seen yet, handing
// each its history.
func (b *batch) openAll(ctx context.Context, rows []*row) error {
	for _, r := range rows {
		if r.s.opened {
			continue
		}
		octx := ctx
		if r.s.trace != nil {
			octx = trace.ContextWithSpan(ctx, r.s.trace) // smp_open's span goes under the request's
		}
		h, err := b.b.Open(octx, r.s.openJSON)
		if err != nil {
			return err
		}
		r.s.handle, r.s.opened = h, true
		b.seqs[r.s] = true
		if err := b.b.Record(h, r.s.history...); err != nil {
			return err
		}
	}
	return nil
}

// drop gives up a plugin's instance; its choices lose their sequences. When
// the instance failed (err is not nil), each choice still open in it
// follows the plugin's failure policy at its next step (Seq.lost): its
// state in the plugin went with the instance, and a sequence opened afresh
// would carry on without it, unannounced.
func (st *Stage) drop(ctx context.Context, p *generation.Plugin, err error) {
	b := st.batches[p]
	if b == nil {
		return
	}
	delete(st.batches, p)
	for s := range b.seqs {
		if s.opened && err != nil && !s.fallback {
			s.lost = err
		}
		s.handle, s.opened = 0, false
	}
	b.b.Close(ctx)
}

// record tells a choice's plugin the token the host chose.
func (st *Stage) record(ctx context.Context, s *Seq, tok int32) {
	if !s.opened || s.plugin == nil {
		return
	}
	b := st.batches[s.plugin]
	if b == nil {
		return
	}
	if err := b.b.Record(s.handle, tok); err != nil {
		// The plugin can no longer see this choice's history: the choice
		// follows the policy at its next step; the batch's others go on.
		h := s.handle
		delete(b.seqs, s)
		s.handle, s.opened, s.lost = 0, false, err
		if b.b.CloseSequence(ctx, h) != nil {
			st.drop(ctx, s.plugin, err)
		} else if len(b.seqs) == 0 {
			delete(st.batches, s.plugin)
			b.b.Close(ctx)
		}
	}
}

// Release ends a choice: its plugin sequence is closed, and an instance
// that serves no choice any more goes back to its pool.
func (st *Stage) Release(ctx context.Context, s *Seq) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s.plugin == nil {
		return
	}
	b := st.batches[s.plugin]
	if b == nil || !b.seqs[s] {
		return
	}
	delete(b.seqs, s)
	if s.opened {
		s.opened = false
		if err := b.b.CloseSequence(ctx, s.handle); err != nil {
			st.drop(ctx, s.plugin, err)
			return
		}
		s.handle = 0
	}
	if len(b.seqs) == 0 {
		delete(st.batches, s.plugin)
		b.b.Close(ctx)
	}
}

// Close releases every pinned instance.
func (st *Stage) Close(ctx context.Context) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for p := range st.batches {
		st.drop(ctx, p, nil)
	}
}

// draw picks the token: the selector's choice, or a draw with u0 from
// the softmax of the policy's logits (weights), by inverse CDF in token-id order —
// an order that does not depend on how many candidates the policy saw,
// so the whole-row draw and a draw over the sorted candidates agree — with
// the log probabilities asked for.
func (r *row) draw() Result {
	if r.err != nil {
		return Result{Err: r.err}
	}
	if r.whole && !r.s.logprobs && !math.IsInf(float64(r.wholeMax), 0) {
		// Only a temperature below 1 can take a finite logit to −Inf.
		dense := r.finite == len(r.logits) && (r.temp == 0 || r.temp >= 1)
		i, err := drawWhole(r.logits, r.temp, r.wholeMax, r.u0, dense)
		if err != nil {
			return Result{Err: err}
		}
		return Result{Token: int32(i)}
	}
	if r.temp != 0 && r.temp != 1 {
		expsum.Divide(r.logits, r.temp)
	}
	r.temp = 0
	ids, vals := r.byID()
	probs, err := weights(vals)
	if err != nil {
		return Result{Err: err}
	}
	i := -1
	if r.token >= 0 {
		i = slices.Index(ids, r.token)
	}
	if i < 0 {
		if i, err = primitive.Draw(probs, r.u0); err != nil {
			return Result{Err: fmt.Errorf("sampling: %w", err)}
		}
	}
	res := Result{Token: tokenAt(ids, i)}
	if !r.s.logprobs {
		return res
	}
	var total float64 // summed in order, as Draw sums it
	for _, p := range probs {
		total += float64(p)
	}
	logTotal := math.Log(total)
	res.Logprob = float32(math.Log(float64(probs[i])) - logTotal)
	if n := min(r.s.topLogprobs, len(probs)); n > 0 {
		idx := make([]int32, n)
		top := make([]float32, n)
		n, _ = primitive.TopK(probs, n, idx, top)
		for j := range n {
			if top[j] <= 0 {
				break
			}
			res.Top = append(res.Top, Alt{Token: tokenAt(ids, int(idx[j])), Logprob: float32(math.Log(float64(top[j])) - logTotal)})
		}
	}
	return res
}

// weights returns exp(v − max) of each of the policy's logits (0 for
// −Inf), with expsum's exp: the same value for a token whatever else is in
// the slice, so a draw over the whole row and over its finite part agree.
func weights(vals []float32) ([]float32, error) {
	mx := float32(math.Inf(-1))
	banned := false
	for _, v := range vals {
		switch {
		case v != v:
			return nil, errors.New("sampling: the policy gave a NaN logit")
		case math.IsInf(float64(v), -1):
			banned = true
		}
		mx = max(mx, v)
	}
	if math.IsInf(float64(mx), 0) {
		return nil, fmt.Errorf("sampling: the policy left no token to draw (its best logit is %v)", mx)
	}
	w := make([]float32, len(vals))
	expsum.Exps(vals, mx, w)
	if banned {
		for i, v := range vals {
			if math.IsInf(float64(v), -1) {
				w[i] = 0
			}
		}
	}
	return w, nil
}

// tokenAt is the token at index i of byID's order (ids nil: i itself).
func tokenAt(ids []int32, i int) int32 {
	if ids == nil {
		return int32(i)
	}
	return ids[i]
}

// byID returns the policy's logits in token-id order: the whole row as it
// is (ids nil), or the candidates sorted by id — scattered over the
// vocabulary when they are many, which adds only tokens of probability 0.
func (r *row) byID() ([]int32, []float32) {
	if r.whole {
		return nil, r.logits
	}
	if len(r.ids) > r.s.vocab/8 {
		full := r.logits // the native stage's row is no longer needed
		for i := range full {
			full[i] = float32(math.Inf(-1))
		}
		for j, id := range r.ids {
			full[id] = r.out[j]
		}
		return nil, full
	}
	order := make([]int, len(r.ids))
	for j := range order {
		order[j] = j
	}
	slices.SortFunc(order, func(a, b int) int { return int(r.ids[a] - r.ids[b]) })
	ids := make([]int32, len(order))
	vals := make([]float32, len(order))
	for j, o := range order {
		ids[j], vals[j] = r.ids[o], r.out[o]
	}
	return ids, vals
}
