// Package sampling turns a step's logits into tokens (DESIGN.md, request
// flow step 5). For every choice it runs, natively and whatever any plugin
// does, the stage each request relies on: logit_bias, allowed and banned
// tokens, repetition, presence and frequency penalties over a window, and
// min_tokens; then a top-K pre-selection with the full row's log-sum-exp.
// A policy adjusts the candidates — a sampler plugin (one call per step for
// all the choices it serves) or the built-in standard policy — and the host
// draws with uniforms from the request's seeded generator, so a seed gives
// the same tokens with the plugin or its fallback, across restarts.
//
// Sampling is exact: a policy that needs probability mass beyond its
// candidates asks for more (sdk/ABI.md §6.2, out_token −2), and the set
// widens up to the whole vocabulary.
package sampling

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/sdk/go/sampler/standard"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
	"go.opentelemetry.io/otel/trace"
)

// Config describes one choice to sample.
type Config struct {
	// Params are the request's sampling parameters (nil: all defaults).
	Params *ulanv1.SamplingParams
	// Vocab is the width of a logits row.
	Vocab int
	// EOS are the model's end-of-sequence tokens: they end a choice (unless
	// ignore_eos) and are banned until min_tokens.
	EOS []int32
	// Prompt is the choice's prompt, the start of the penalties' window and
	// of a plugin's history.
	Prompt []int32
	// Choice is the choice's index; choices of one request draw from
	// different streams of the same seed.
	Choice int
	// Plugin is the sampler plugin; nil samples with the built-in standard
	// policy.
	Plugin *generation.Plugin
	// PluginParams are the request's parameters for the plugin (JSON
	// object; nil for none).
	PluginParams []byte
	// Trace is the request's span when the request is traced (nil or a
	// span that does not record otherwise): the sampler plugin's calls for
	// this choice get spans under it — its smp_open, and one step in
	// TraceEvery (see plugin.SamplerRow.Span).
	Trace trace.Span
	// Force, when set, makes the choice take fixed tokens (a forced tool
	// call's opener).
	Force *Forcing
}

// Forcing is a run of tokens a choice must take in order, one a step, once
// its chosen tokens end with After (at its first step when After is
// empty). A forced step keeps only its token's logit — whatever
// logit_bias, the allowed and banned tokens or min_tokens would do to it —
// so the native policy and any plugin draw it, and its logprob is 0.
type Forcing struct {
	After  []int32
	Tokens []int32
}

// TraceEvery samples the sampler plugin's steps that a traced choice gives a
// span: those that draw its first token and every 32nd after it, as the
// pipeline samples its decode steps.
const TraceEvery = 32

// Seq is one choice's sampling state. A Stage samples it, one token per
// step; it is not safe for concurrent use.
type Seq struct {
	vocab       int
	p           *ulanv1.SamplingParams
	eos, stops  map[int32]bool
	bias        map[int32]float32
	allowed     []bool // nil: every token
	banned      []int32
	minTokens   int
	ignoreEOS   bool
	repetition  float32
	presence    float32
	frequency   float32
	window      int // 0: the whole sequence
	topLogprobs int
	logprobs    bool
	// force are the tokens still to force, once the chosen tokens end with
	// forceAfter; from then on forceAfter is nil.
	force      []int32
	forceAfter []int32

	history []int32 // prompt, then the chosen tokens
	// tileScratch is topKTiles' candidates, kept from step to step (a
	// choice's rows are sampled one at a time).
	tileScratch [2][]uint64
	counts      map[int32]int32
	prompt      int
	rng         *mrand.PCG

	// native is the built-in standard policy: the policy itself when there
	// is no plugin, the fallback when there is one.
	native   *standard.Policy
	openJSON []byte
	plugin   *generation.Plugin
	handle   int64 // the plugin's sequence handle, when opened
	opened   bool  // the plugin has the sequence open (any handle, 0 included)
	fallback bool  // the plugin failed; native serves from now on
	// lost is why the plugin lost the sequence between its steps (its
	// instance failed serving another choice's row or call): the choice
	// follows the plugin's failure policy at its next step.
	lost     error
	readsLSE bool // the plugin has asked for a row's log-sum-exp
	notes    []Note
	trace    trace.Span // the request's recording span; nil when untraced
}

// stepSpan is the span a plugin step for this choice goes under, at the
// sampled steps of a traced choice; nil otherwise.
func (s *Seq) stepSpan() trace.Span {
	if s.trace == nil || s.Generated()%TraceEvery != 0 {
		return nil
	}
	return s.trace
}

// Note is something the stage did that the response's annotations report.
type Note struct {
	Kind    ulanv1.AnnotationKind
	Source  string
	Message string
}

// openRequest is what a sampler plugin's smp_open receives (sdk/ABI.md
// §6.2).
type openRequest struct {
	Sampling  json.RawMessage `json:"sampling"`
	Params    json.RawMessage `json:"params,omitempty"`
	VocabSize int             `json:"vocab_size"`
}

// NewSeq checks cfg against the vocabulary and prepares the choice's state.
// A token id outside the vocabulary is an error naming the field.
func NewSeq(cfg Config) (*Seq, error) {
	p := cfg.Params
	if p == nil {
		p = &ulanv1.SamplingParams{}
	}
	if cfg.Vocab <= 0 {
		return nil, fmt.Errorf("sampling: vocabulary of %d tokens", cfg.Vocab)
	}
	s := &Seq{
		vocab: cfg.Vocab, p: p, eos: map[int32]bool{}, stops: map[int32]bool{}, bias: map[int32]float32{},
		minTokens: int(p.MinTokens), ignoreEOS: p.IgnoreEos,
		repetition: p.GetRepetitionPenalty(), presence: p.GetPresencePenalty(), frequency: p.GetFrequencyPenalty(),
		window: int(p.GetPenaltyWindow()), logprobs: p.Logprobs, topLogprobs: int(p.TopLogprobs),
		counts: map[int32]int32{}, plugin: cfg.Plugin,
	}
	if cfg.Trace != nil && cfg.Trace.IsRecording() {
		s.trace = cfg.Trace
	}
	if p.RepetitionPenalty == nil {
		s.repetition = 1
	}
	check := func(field string, i int, id uint32) error {
		if int64(id) >= int64(cfg.Vocab) {
			return &FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("%d is outside the vocabulary of %d tokens", id, cfg.Vocab)}
		}
		return nil
	}
	for _, id := range cfg.EOS {
		if id >= 0 && int(id) < cfg.Vocab {
			s.eos[id] = true
		}
	}
	for i, id := range p.StopTokenIds {
		if err := check("sampling.stop_token_ids", i, id); err != nil {
			return nil, err
		}
		s.stops[int32(id)] = true
	}
	for id, b := range p.LogitBias {
		if int64(id) >= int64(cfg.Vocab) {
			return nil, &FieldError{Field: fmt.Sprintf("sampling.logit_bias[%d]", id), Reason: fmt.Sprintf("%d is outside the vocabulary of %d tokens", id, cfg.Vocab)}
		}
		s.bias[int32(id)] = b
	}
	if len(p.AllowedTokenIds) > 0 {
		s.allowed = make([]bool, cfg.Vocab)
		for i, id := range p.AllowedTokenIds {
			if err := check("sampling.allowed_token_ids", i, id); err != nil {
				return nil, err
			}
			s.allowed[id] = true
		}
	}
	for i, id := range p.BannedTokenIds {
		if err := check("sampling.banned_token_ids", i, id); err != nil {
			return nil, err
		}
		s.banned = append(s.banned, int32(id))
	}
	if err := s.checkSamplable(); err != nil {
		return nil, err
	}
	seed := p.GetSeed()
	if p.Seed == nil {
		var b [8]byte
		_, _ = rand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:])
	}
	// Each choice has its own stream of the seed.
	s.rng = mrand.NewPCG(seed, 0x9e3779b97f4a7c15*uint64(cfg.Choice+1))
	sampling, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("sampling: %w", err)
	}
	params := cfg.PluginParams
	if len(params) == 0 {
		params = nil
	}
	s.openJSON, err = json.Marshal(openRequest{Sampling: sampling, Params: params, VocabSize: cfg.Vocab})
	if err != nil {
		return nil, fmt.Errorf("sampling: %w", err)
	}
	// The native policy reads the request's standard parameters only: a
	// plugin's own parameters are not the standard policy's.
	nativeJSON, _ := json.Marshal(openRequest{Sampling: sampling, VocabSize: cfg.Vocab})
	if s.native, err = standard.Parse(nativeJSON); err != nil {
		return nil, fmt.Errorf("sampling: %w", err)
	}
	s.Append(cfg.Prompt...)
	s.prompt = len(cfg.Prompt)
	if f := cfg.Force; f != nil && len(f.Tokens) > 0 {
		for i, id := range append(slices.Clip(f.Tokens), f.After...) {
			if id < 0 || int(id) >= cfg.Vocab {
				return nil, fmt.Errorf("sampling: forced token %d (%d) is outside the vocabulary of %d tokens", i, id, cfg.Vocab)
			}
		}
		s.force, s.forceAfter = slices.Clone(f.Tokens), slices.Clone(f.After)
	}
	return s, nil
}

// checkSamplable refuses allowed_token_ids that leave no token to sample at
// the first step: each allowed token banned, or, before min_tokens, an
// end-of-sequence or stop token (banned until then). The request then fails
// before its stream starts rather than at its first step.
func (s *Seq) checkSamplable() error {
	if s.allowed == nil {
		return nil
	}
	excluded := map[int32]bool{}
	for _, id := range s.banned {
		excluded[id] = true
	}
	if s.minTokens > 0 {
		for id := range s.eos {
			excluded[id] = true
		}
		for id := range s.stops {
			excluded[id] = true
		}
	}
	for _, id := range s.p.AllowedTokenIds {
		if !excluded[int32(id)] {
			return nil
		}
	}
	reason := "every allowed token is banned (banned_token_ids)"
	if s.minTokens > 0 {
		reason = "every allowed token is banned (banned_token_ids) or, until min_tokens, an end-of-sequence or stop token"
	}
	return &FieldError{Field: "sampling.allowed_token_ids", Reason: reason + ", so none can be sampled"}
}

// forced returns the token this step must take, if one must.
func (s *Seq) forced() (int32, bool) {
	if len(s.force) == 0 || len(s.forceAfter) > 0 {
		return 0, false
	}
	return s.force[0], true
}

// FieldError is a request field the vocabulary makes invalid.
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Append records tokens in the choice's history (the penalties' window,
// and the plugin's history once its sequence opens).
func (s *Seq) Append(ids ...int32) {
	for _, id := range ids {
		if _, ok := s.forced(); ok {
			s.force = s.force[1:] // id is the forced token: no other could be drawn
		}
		s.history = append(s.history, id)
		if n := len(s.forceAfter); n > 0 && len(s.force) > 0 && len(s.history)-s.prompt >= n && slices.Equal(s.history[len(s.history)-n:], s.forceAfter) {
			s.forceAfter = nil
		}
		s.counts[id]++
		if s.window > 0 && len(s.history) > s.window {
			old := s.history[len(s.history)-s.window-1]
			if s.counts[old]--; s.counts[old] == 0 {
				delete(s.counts, old)
			}
		}
	}
}

// Generated is the number of tokens chosen so far.
func (s *Seq) Generated() int { return len(s.history) - s.prompt }

// Notes returns what the stage did to this choice that the response
// reports (a plugin fallback), and forgets them.
func (s *Seq) Notes() []Note {
	n := s.notes
	s.notes = nil
	return n
}

// Ends reports whether tok ends the choice: a stop token id, or an
// end-of-sequence token without ignore_eos.
func (s *Seq) Ends(tok int32) bool {
	return s.stops[tok] || (s.eos[tok] && !s.ignoreEOS)
}

// uniforms draws the step's two uniforms in [0, 1), with 24 bits each so
// that they are exact float32s.
func (s *Seq) uniforms() (float32, float32) {
	const scale = 1.0 / (1 << 24)
	x := s.rng.Uint64()
	return float32(x>>40) * scale, float32((x>>16)&(1<<24-1)) * scale
}
