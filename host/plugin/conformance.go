package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
)

// Check is one conformance check's outcome.
type Check struct {
	Name string
	Err  error
}

// Conform loads a module as its manifest says and runs the contract of its
// kind on generated inputs: the exports and their signatures, init with the
// given config, then a session (hook), sequences stepped twice in one
// batch as the host steps them — smp_open's JSON with realistic sampling
// parameters, candidates sorted by logit with the whole row's
// log-sum-exp, widened when the plugin answers −2 (sampler) — or info,
// vocabulary and encode/decode round trips (tokenizer); then, loaded with
// exactly the limits its manifest declares, a larger workload of its kind
// (conformLimits). `ulan plugin test` prints the result. The plugin's
// loads log to log (nil: slog.Default()).
func Conform(ctx context.Context, wasm []byte, config []byte, memoryPages uint32, log *slog.Logger) []Check {
	var checks []Check
	add := func(name string, err error) bool {
		checks = append(checks, Check{Name: name, Err: err})
		return err == nil
	}
	d, err := Describe(ctx, wasm)
	if !add("module compiles", err) {
		return checks
	}
	if !add("is a reactor with the ABI 1 marker", shapeErr(d)) {
		return checks
	}
	if !add("carries a valid manifest", d.ManifestErr) {
		return checks
	}
	man := d.Manifest
	if memoryPages == 0 {
		memoryPages = max(man.Needs.MemoryPages, 256)
	}
	timeout := 2 * time.Second
	if man.Needs.CallTimeoutMS > 0 {
		timeout = max(timeout, time.Duration(man.Needs.CallTimeoutMS)*time.Millisecond)
	}
	// The init deadline is generous: this phase checks that the plugin loads, not how
	// fast (a big tokenizer's ulan_init has passed 10 s on a loaded 2-core machine
	// under -race); the limits phase below holds it to the declared limits.
	p, err := Load(ctx, wasm, Config{ID: man.Name, Kind: man.Kind, PluginConfig: config, MemoryPages: memoryPages,
		CallTimeout: timeout, InitTimeout: time.Minute, PoolSize: 1, Grants: Grants{Clock: true}, Tier: Sandboxed, Cache: toolCache, Logger: log})
	if !add(fmt.Sprintf("loads as a %s: exports, signatures, config, init", man.Kind), err) {
		return checks
	}
	defer p.Close(ctx)
	switch man.Kind {
	case KindHook:
		conformHook(ctx, p, add)
	case KindSampler:
		conformSampler(ctx, p, config, add)
	case KindTokenizer:
		conformTokenizer(ctx, p, add)
	}
	add("survives the run (no instance lost)", func() error {
		if s := p.Stats(); s.Replacements > 0 || s.Unhealthy {
			return fmt.Errorf("%d instances replaced, unhealthy: %v", s.Replacements, s.Unhealthy)
		}
		return nil
	}())
	conformLimits(ctx, wasm, config, *man, log, add)
	return checks
}

// limitAttempts is how often conformLimits tries a workload before it
// reports a failure: a deadline on a shared machine can be missed once by
// bad luck, not three times.
const limitAttempts = 3

// conformLimits loads the module again with exactly the limits its manifest
// declares (the host's defaults where it declares none), as an operator
// who grants what a plugin asks for would, and runs a larger workload of
// its kind: a 16 KiB text through encode and decode, 64 hook deltas of 256
// bytes, a sampler step of 32 rows × 64 candidates. Every call must finish
// within the declared deadline and memory.
func conformLimits(ctx context.Context, wasm, config []byte, man Manifest, log *slog.Logger, add func(string, error) bool) {
	cfg := Config{ID: man.Name, Kind: man.Kind, PluginConfig: config, MemoryPages: man.Needs.MemoryPages,
		CallTimeout: time.Duration(man.Needs.CallTimeoutMS) * time.Millisecond, InitTimeout: time.Minute, PoolSize: 1,
		Grants: Grants{Clock: true}, Tier: Sandboxed, Cache: toolCache, Logger: log}
	cfg.defaults()
	name := fmt.Sprintf("within its declared limits (%d pages, %v a call)", cfg.MemoryPages, cfg.CallTimeout)
	p, err := Load(ctx, wasm, cfg)
	if err != nil {
		add(name+": load", err)
		return
	}
	defer p.Close(ctx)
	var work func() error
	switch man.Kind {
	case KindHook:
		work = func() error { return hookWorkload(ctx, p) }
	case KindSampler:
		work = func() error { return samplerWorkload(ctx, p, config) }
	case KindTokenizer:
		work = func() error { return tokenizerWorkload(ctx, p) }
	default:
		return
	}
	for range limitAttempts {
		if err = work(); err == nil {
			break
		}
	}
	if err != nil && Classify(err) != KindInvalid {
		// A deadline, a trap or an error status may be the limits' doing
		// (running out of memory traps or answers one); an answer the host
		// refused is the plugin's to fix.
		err = fmt.Errorf("%w (raise needs.memory_pages or needs.call_timeout_ms in the manifest if the plugin needs more)", err)
	}
	add(name+": "+kindWorkload[man.Kind], err)
}

var kindWorkload = map[Kind]string{
	KindHook:      "64 deltas of 256 bytes",
	KindSampler:   "a step of 32 rows × 64 candidates",
	KindTokenizer: "a 16 KiB text encoded and decoded",
}

func hookWorkload(ctx context.Context, p *Plugin) error {
	s, err := p.OpenHook(ctx, []byte(`{"request_id":"limits"}`))
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	delta := strings.Repeat("Limits: naïve café — 東京 🌍 ", 8)[:256]
	delta = strings.ToValidUTF8(delta, "")
	for i := range 64 {
		r, err := s.Delta(ctx, delta, []int32{int32(i)}, ChannelContent)
		if err != nil {
			return err
		}
		if r.Action == HookStop {
			break
		}
	}
	_, err = s.End(ctx, 1)
	return err
}

// samplerWorkload opens 32 sequences and steps them once, 64 candidates a
// row, widening the rows the plugin asks to widen as the host does.
func samplerWorkload(ctx context.Context, p *Plugin, config []byte) error {
	b, err := p.OpenSamplerBatch(ctx)
	if err != nil {
		return err
	}
	defer b.Close(ctx)
	params := confParams(config)
	seqs := make([]*confSeq, 32)
	for i := range seqs {
		sampling := fmt.Sprintf(`{"temperature": %g, "top_p": 0.95, "min_p": 0.05, "seed": "%d", "max_tokens": 512}`, []float32{0.8, 1, 0.6, 1.2}[i%4], i+2)
		var par json.RawMessage
		if i%2 == 0 {
			par = params
		}
		if seqs[i], err = openConfSeq(ctx, b, sampling, par, uint64(i)); err != nil {
			return err
		}
	}
	if _, err := stepConf(ctx, b, seqs, 0); err != nil {
		return err
	}
	for _, q := range seqs {
		if err := b.CloseSequence(ctx, q.handle); err != nil {
			return err
		}
	}
	return nil
}

func tokenizerWorkload(ctx context.Context, p *Plugin) error {
	info, err := p.TokenizerInfo(ctx)
	if err != nil {
		return err
	}
	text := strings.Repeat("The naïve café in 東京 opened at 9:45 — 🌍 1234567 tokens!\n", 256)[:16<<10]
	text = strings.ToValidUTF8(text, "")
	ids, err := p.Encode(ctx, text, 0, info.VocabSize)
	if err != nil {
		return err
	}
	got, err := p.Decode(ctx, ids, 0)
	if err == nil && got != text {
		err = fmt.Errorf("the text does not round-trip (%d bytes back of %d)", len(got), len(text))
	}
	return err
}

func shapeErr(d *Description) error {
	switch {
	case d.ABI != 1:
		return fmt.Errorf("no %s export", MarkerExport)
	case !d.Reactor:
		return fmt.Errorf("no _initialize export")
	}
	return nil
}

func conformHook(ctx context.Context, p *Plugin, add func(string, error) bool) {
	s, err := p.OpenHook(ctx, []byte(`{"request_id":"conformance"}`))
	if !add("hook_open", err) {
		return
	}
	for i, d := range []struct {
		text string
		ch   HookChannel
	}{{"Hello, ", ChannelContent}, {"wörld 🌍", ChannelContent}, {"thinking…", ChannelReasoning}, {`{"a":1}`, ChannelToolArguments}, {"", ChannelContent}} {
		r, err := s.Delta(ctx, d.text, []int32{int32(i)}, d.ch)
		if err == nil && (r.Action < HookPass || r.Action > HookStop) {
			err = fmt.Errorf("action %d", r.Action)
		}
		if !add(fmt.Sprintf("hook_delta %d (%d bytes)", i, len(d.text)), err) {
			return
		}
		if r.Action == HookStop {
			break
		}
	}
	_, err = s.End(ctx, 1)
	add("hook_end", err)
	s.Close(ctx)
	add("hook_close", nil)
}

// The sampler checks' synthetic model: a vocabulary of confVocab tokens, so
// a row that starts with 64 candidates holds all of it after two widenings
// (×16, confWidenBy, as the host widens), and confFirstK candidates a row
// when the request's top_k does not say (host/sampling's first set).
const (
	confVocab   = 4096
	confFirstK  = 64
	confWidenBy = 16
)

// confSampling are the conformance sequences' sampling parameters, as the
// host hands them to smp_open: SamplingParams in protobuf JSON with the
// proto's names, 64-bit integers as strings, unset fields absent (the
// last: a request that sets none, which truncates nothing, so a policy
// that needs the whole distribution asks to widen its rows).
var confSampling = []string{
	`{"temperature": 0.7, "top_p": 0.9, "top_k": 40, "seed": "1", "stop": ["\n\n"], "max_tokens": 256}`,
	`{"temperature": 1, "top_p": 0.95, "min_p": 0.05, "typical_p": 0.98, "repetition_penalty": 1.1, "seed": "2", "logprobs": true, "top_logprobs": 5}`,
	`{"temperature": 0, "seed": "3"}`,
	`{}`,
}

// confParams is the per-request params the checks hand a plugin: the test
// config when it is a JSON object (a plugin that takes the same settings
// per request as in its config can be exercised with them), else none.
func confParams(config []byte) json.RawMessage {
	var obj map[string]json.RawMessage
	if len(config) == 0 || json.Unmarshal(config, &obj) != nil || obj == nil {
		return nil
	}
	return config
}

// confSeq is one conformance sequence: its handle, the candidates it
// starts a row with, and its current row.
type confSeq struct {
	handle int64
	firstK int
	seed   uint64
	row    *synthRow
	k      int // candidates wanted for the current row
	in     SamplerRow
	out    SamplerOutput
	widen  int // widenings of the current row
}

// openConfSeq opens a sequence as the host does: smp_open with the new
// shape, then its prompt recorded for the history import.
func openConfSeq(ctx context.Context, b *SamplerBatch, sampling string, params json.RawMessage, seed uint64) (*confSeq, error) {
	open, err := json.Marshal(struct {
		Sampling  json.RawMessage `json:"sampling"`
		Params    json.RawMessage `json:"params,omitempty"`
		VocabSize int             `json:"vocab_size"`
	}{json.RawMessage(sampling), params, confVocab})
	if err != nil {
		return nil, err
	}
	var sp struct {
		Temperature *float32 `json:"temperature"`
		TopK        int      `json:"top_k"`
		TopLogprobs int      `json:"top_logprobs"`
	}
	if err := json.Unmarshal([]byte(sampling), &sp); err != nil {
		return nil, err
	}
	// host/sampling's first set: top_k when the request sets one, else
	// confFirstK; one for greedy; never fewer than top_logprobs.
	k := confFirstK
	if sp.TopK > 0 {
		k = sp.TopK
	}
	if sp.Temperature != nil && *sp.Temperature == 0 {
		k = 1
	}
	h, err := b.Open(ctx, open)
	if err != nil {
		return nil, err
	}
	q := &confSeq{handle: h, firstK: min(max(k, sp.TopLogprobs, 1), confVocab), seed: seed}
	prompt := make([]int32, 8)
	for i := range prompt {
		prompt[i] = int32((seed*977 + uint64(i)*131) % confVocab)
	}
	return q, b.Record(h, prompt...)
}

// synthRow is a whole row of logits over the synthetic vocabulary, as a
// model and the host's own stages leave it: a few likely tokens above a
// bulk, rounded to bfloat16 as a model's logits are (so ties are common),
// and some tokens banned (−Inf).
type synthRow struct {
	logits []float32 // by token id
	sorted []int32   // ids by logit, largest first, ties to the lower id
	finite int       // tokens of non-zero probability
	lse    float32   // the whole row's log-sum-exp
}

func newSynthRow(seed uint64, flat bool) *synthRow {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	r := &synthRow{logits: make([]float32, confVocab)}
	for i := range r.logits {
		l := float32(rng.NormFloat64() * 2)
		if rng.IntN(64) == 0 {
			l = float32(math.Inf(-1))
		}
		r.logits[i] = l
	}
	if !flat {
		for j := range 6 {
			r.logits[rng.IntN(confVocab)] = float32(14 - 1.5*float64(j) + rng.Float64())
		}
	}
	m := math.Inf(-1)
	for i, l := range r.logits {
		bits := math.Float32bits(l)
		if !math.IsInf(float64(l), 0) {
			bits = (bits + 0x7fff + (bits>>16)&1) &^ 0xffff // to the nearest bfloat16
		}
		r.logits[i] = math.Float32frombits(bits)
		if !math.IsInf(float64(r.logits[i]), -1) {
			r.finite++
			m = max(m, float64(r.logits[i]))
		}
	}
	var sum float64
	for _, l := range r.logits {
		sum += math.Exp(float64(l) - m)
	}
	r.lse = float32(m + math.Log(sum))
	r.sorted = make([]int32, confVocab)
	for i := range r.sorted {
		r.sorted[i] = int32(i)
	}
	slices.SortFunc(r.sorted, func(a, b int32) int {
		switch va, vb := r.logits[a], r.logits[b]; {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return int(a - b)
	})
	return r
}

// candidates is the host's candidate set of k: the row's k best tokens
// (every finite one when fewer), best first, ties to the lower id; the
// whole vocabulary, −Inf included, once k reaches it.
func (r *synthRow) candidates(k int) ([]int32, []float32) {
	n := min(k, r.finite)
	if k >= confVocab {
		n = confVocab
	}
	ids := slices.Clone(r.sorted[:n])
	logits := make([]float32, n)
	for i, id := range ids {
		logits[i] = r.logits[id]
	}
	return ids, logits
}

// stepConf steps every sequence once at position pos as the host does: a
// fresh row each, the row's true log-sum-exp (NaN, and row_lse to ask for
// it, for a plugin that declares "lse": "on_demand") and seeded uniforms; a
// keep-all answer (out_token −3) is drawn over the whole row; a row
// the plugin asks to widen (out_token −2) gets 16 times the candidates (the
// whole vocabulary once it holds every finite token) and is stepped again,
// with the other widened rows only, at the same position with the same
// uniforms. A widen request for a row that holds the whole vocabulary is
// the plugin's failure. It checks each answer, draws processor rows as the
// host does, records the chosen tokens and returns how many rows were
// widened.
func stepConf(ctx context.Context, b *SamplerBatch, seqs []*confSeq, pos int32) (int, error) {
	rng := rand.New(rand.NewPCG(uint64(pos), 0x0c0f))
	for i, q := range seqs {
		q.row = newSynthRow(q.seed*1000+uint64(pos), i%2 == 1)
		q.k, q.widen = q.firstK, 0
		q.in = SamplerRow{Handle: q.handle, Position: pos, U0: float32(rng.Uint32()>>8) / (1 << 24),
			U1: float32(rng.Uint32()>>8) / (1 << 24), LSE: q.row.lse}
		if b.p.LSEOnDemand() { // the plugin asks with row_lse when it needs it
			lse := q.row.lse
			q.in.LSE, q.in.LoadLSE = float32(math.NaN()), func() float32 { return lse }
		}
		q.in.IDs, q.in.Logits = q.row.candidates(q.k)
	}
	widened := 0
	for todo := seqs; len(todo) > 0; {
		in := make([]SamplerRow, len(todo))
		for i, q := range todo {
			in[i] = q.in
		}
		outs, err := b.Step(ctx, in)
		if err != nil {
			return widened, err
		}
		var again []*confSeq
		for i, q := range todo {
			q.out = outs[i]
			if !q.out.Widen {
				continue
			}
			if q.k >= confVocab {
				return widened, fmt.Errorf("position %d: asked to widen a row that holds the whole vocabulary (%d tokens)", pos, confVocab)
			}
			if len(q.in.IDs) >= q.row.finite {
				q.k = confVocab
			} else {
				q.k = min(q.k*confWidenBy, confVocab)
			}
			q.in.IDs, q.in.Logits = q.row.candidates(q.k)
			if q.widen++; q.widen == 1 {
				widened++
			}
			again = append(again, q)
		}
		todo = again
	}
	for i, q := range seqs {
		tok := q.out.Token
		if q.out.KeepAll { // the whole row at the plugin's temperature
			whole := make([]float32, confVocab)
			for j, l := range q.row.logits {
				whole[j] = l / q.out.Temperature
			}
			probs := make([]float32, confVocab)
			if err := primitive.Softmax(whole, 1, probs); err != nil {
				return widened, fmt.Errorf("position %d: row %d: the keep-all answer leaves nothing to draw: %w", pos, i, err)
			}
			j, err := primitive.Draw(probs, q.in.U0)
			if err != nil {
				return widened, fmt.Errorf("position %d: row %d: %w", pos, i, err)
			}
			tok = int32(j)
		} else if tok == -1 {
			probs := make([]float32, len(q.out.Logits))
			for j, v := range q.out.Logits {
				if math.IsInf(float64(v), 1) {
					return widened, fmt.Errorf("position %d: row %d: +Inf output logit for candidate %d", pos, i, q.in.IDs[j])
				}
			}
			if err := primitive.Softmax(q.out.Logits, 1, probs); err != nil {
				return widened, fmt.Errorf("position %d: row %d: the output leaves nothing to draw: %w", pos, i, err)
			}
			j, err := primitive.Draw(probs, q.in.U0)
			if err != nil {
				return widened, fmt.Errorf("position %d: row %d: %w", pos, i, err)
			}
			tok = q.in.IDs[j]
		}
		if err := b.Record(q.handle, tok); err != nil {
			return widened, err
		}
	}
	return widened, nil
}

// conformSampler opens a sequence for each of confSampling (with the test
// config as params on every other one) and steps them all twice, as the
// host does (sorted candidates, the true log-sum-exp, widening, the drawn
// token recorded between steps).
func conformSampler(ctx context.Context, p *Plugin, config []byte, add func(string, error) bool) {
	b, err := p.OpenSamplerBatch(ctx)
	if !add("open a batch", err) {
		return
	}
	defer b.Close(ctx)
	p.SetVocabulary(confVocabulary())
	params := confParams(config)
	var seqs []*confSeq
	for i, sampling := range confSampling {
		var par json.RawMessage
		name := fmt.Sprintf("smp_open %d: sampling %s", i, sampling)
		if i%2 == 0 && params != nil {
			par = params
			name += ", the test config as params"
		}
		q, err := openConfSeq(ctx, b, sampling, par, uint64(i+1))
		if !add(name, err) {
			return
		}
		seqs = append(seqs, q)
	}
	for pos := range int32(2) {
		widened, err := stepConf(ctx, b, seqs, pos)
		if !add(fmt.Sprintf("smp_step at position %d: %d rows of a %d-token vocabulary, candidates sorted by logit with the row's log-sum-exp (%d widened on request)", pos, len(seqs), confVocab, widened), err) {
			break
		}
	}
	for i, q := range seqs {
		add(fmt.Sprintf("smp_close %d", i), b.CloseSequence(ctx, q.handle))
	}
}

// confVocabulary is the synthetic vocabulary's bytes, for the token_bytes
// import: the 256 bytes, then short words.
func confVocabulary() [][]byte {
	v := make([][]byte, confVocab)
	for i := range v {
		if i < 256 {
			v[i] = []byte{byte(i)}
		} else {
			v[i] = fmt.Appendf(nil, " w%d", i)
		}
	}
	return v
}

func conformTokenizer(ctx context.Context, p *Plugin, add func(string, error) bool) {
	info, err := p.TokenizerInfo(ctx)
	if !add("tok_info", err) {
		return
	}
	vocab, err := p.Vocab(ctx, info.VocabSize)
	add(fmt.Sprintf("tok_vocab (%d tokens)", len(vocab)), err)
	for _, text := range []string{"Hello, world!", "naïve café — 東京 🌍", "  spaces\tand\nlines  ", "1234567890", ""} {
		ids, err := p.Encode(ctx, text, 0, info.VocabSize)
		if !add(fmt.Sprintf("tok_encode %q", text), err) {
			continue
		}
		got, err := p.Decode(ctx, ids, 0)
		if err == nil && got != text {
			err = fmt.Errorf("decodes to %q", got)
		}
		add(fmt.Sprintf("tok_decode round trip %q", text), err)
	}
	if info.Has(FeatureChatTemplate) {
		add("tok_chat", conformChat(ctx, p))
	}
}

// conformChat renders a conversation with every role and requires each
// message's text in the prompt: a chat template may add markup around a
// message, never lose one.
func conformChat(ctx context.Context, p *Plugin) error {
	req := ChatRequest{
		Messages: []ChatMessage{
			{Role: "system", Content: "You are terse."},
			{Role: "user", Content: "What is 2+2? Answer in 東京 style 🌍."},
			{Role: "assistant", Content: "Four."},
			{Role: "user", Content: "And 3+3?"},
		},
		AddGenerationPrompt: true,
	}
	text, err := p.Chat(ctx, req)
	if err != nil {
		return err
	}
	for _, m := range req.Messages {
		if !strings.Contains(text, m.Content) {
			return fmt.Errorf("the prompt %q lacks the %s message %q", text, m.Role, m.Content)
		}
	}
	return nil
}
