// Package pipeline connects the API to the engine: it is the api.Inference
// of a server with a model loaded (DESIGN.md, "A request's way through").
// Generate and Chat run tokenizer → scheduler and engine → sampling →
// detokenize → stop strings → channel parsing → hooks → stream, on the
// request's pipeline of plugins; Tokenize and Detokenize run the
// pipeline's tokenizer; GetModel reports the model. HookChain runs a
// choice's text through a pipeline's hooks and applies their failure
// policies.
package pipeline

import (
	"context"
	"fmt"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/metrics"
	"github.com/ulan-ai/ulan/host/sampling"
	"github.com/ulan-ai/ulan/host/scheduler"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
	"go.opentelemetry.io/otel/trace"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// Model describes what is loaded.
type Model struct {
	// Name is how requests refer to the model.
	Name string
	// Format is the file format (gguf).
	Format string
	// DTypes are the weight types in the file.
	DTypes []string
	// Backend runs it.
	Backend string
	// Runner runs the model.
	Runner *engine.Runner
	// Tokenizer is the model's tokenizer (host/tokenizer: from the GGUF's
	// metadata or the model's tokenizer.json); nil answers Tokenize and
	// Detokenize with Unimplemented unless a pipeline's tokenizer plugin
	// serves them.
	Tokenizer *hf.Tokenizer
	// Generation holds the operator's plugins and pipelines; a request's
	// pipeline (or the default one) with a tokenizer plugin tokenizes
	// through it. Nil has no pipelines. Live, when set, replaces it: each
	// request runs on the generation current when it started, to its end,
	// and a reload swaps in the next one for the requests after it.
	Generation *generation.Generation
	Live       *generation.Live
	// Scheduler sizes the continuous-batching scheduler.
	Scheduler scheduler.Config
	// Metrics records tokens, latencies and fallbacks; nil records nothing.
	Metrics *metrics.Metrics
	// Tracer makes the spans of each request (tokenize, prefill, sampled decode
	// steps, and through them plugin calls); nil makes none.
	Tracer trace.TracerProvider
}

// Pipeline is the api.Inference of a loaded model.
type Pipeline struct {
	m     Model
	live  *generation.Live
	stage *sampling.Stage
	sched *scheduler.Scheduler
}

var _ api.Inference = (*Pipeline)(nil)

// New returns the pipeline of m and starts its scheduler; Close stops it.
func New(m Model) *Pipeline {
	p := &Pipeline{m: m, live: m.Live, stage: sampling.NewStage()}
	if p.live == nil {
		p.live = generation.NewLive(m.Generation, 0, nil) // never swapped: the caller closes m.Generation
	}
	if m.Runner != nil {
		p.sched = scheduler.New(m.Runner, p.sample, m.Scheduler)
	}
	return p
}

// Close stops the scheduler (live generations end with an error) and
// returns the sampler plugins' instances.
func (p *Pipeline) Close() {
	if p.sched != nil {
		p.sched.Close()
	}
	p.stage.Close(context.Background())
}

// Stats reports the scheduler's figures (zero without a model).
func (p *Pipeline) Stats() scheduler.Stats {
	if p.sched == nil {
		return scheduler.Stats{}
	}
	return p.sched.Stats()
}

var errNoTokenizer = fmt.Errorf("tokenization: %w: the model was loaded without a tokenizer", api.ErrNotImplemented)

// tokenizers returns the tokenizer plugin of the named pipeline (of the
// default one when name is empty; nil when that pipeline has none) and the
// model's own tokenizer (nil when the model has none); it fails when
// neither is there.
func (p *Pipeline) tokenizers(g *generation.Generation, name string) (*generation.Plugin, *hf.Tokenizer, error) {
	tp, err := pipelineTokenizer(g, name)
	if err != nil {
		return nil, nil, err
	}
	if tp == nil && p.m.Tokenizer == nil {
		return nil, nil, errNoTokenizer
	}
	return tp, p.m.Tokenizer, nil
}

// pipelineTokenizer returns the tokenizer plugin of the named pipeline, or
// of the default one when name is empty; nil when that pipeline has none
// (the model's own tokenizer serves).
func pipelineTokenizer(g *generation.Generation, name string) (*generation.Plugin, error) {
	if name == "" {
		if g == nil || g.Default() == nil {
			return nil, nil
		}
		return g.Default().Tokenizer, nil
	}
	var pl *generation.Pipeline
	ok := false
	if g != nil {
		pl, ok = g.Pipeline(name)
	}
	if !ok {
		// As Generate and Chat answer an unknown plugins.pipeline.
		return nil, &api.FieldError{Field: "pipeline", Reason: fmt.Sprintf("no pipeline named %q%s", name, known(g, pipelineNames))}
	}
	return pl.Tokenizer, nil
}

// tokenizerFailed decides what a request sees when its tokenizer plugin
// fails: under fallback the model's own tokenizer serves it, and the
// returned annotation says so (what: "tokenized the prompt", …); under
// fail_closed the request fails.
func (p *Pipeline) tokenizerFailed(tp *generation.Plugin, what string, err error) (*ulanv1.Annotation, error) {
	if tp.Policy == generation.Fallback && p.m.Tokenizer != nil {
		p.m.Metrics.FallbackTaken(tp.ID, tp.LoadedBy)
		return &ulanv1.Annotation{Kind: ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_FALLBACK, Source: tp.ID,
			Message: fmt.Sprintf("tokenizer plugin %s failed (%v); the model's tokenizer %s", tp.ID, err, what)}, nil
	}
	return nil, fmt.Errorf("tokenizer plugin %s failed (%s): %w", tp.ID, tp.Policy, err)
}

// Tokenize encodes text with the model's tokenizer, with each token's
// bytes in the text. Pieces are the tokens as the vocabulary writes them
// (for byte-level BPE, in its byte alphabet, such as "Ġworld"), which is
// always valid UTF-8 where a token's raw bytes may not be.
func (p *Pipeline) Tokenize(ctx context.Context, req *ulanv1.TokenizeRequest) (*ulanv1.TokenizeResponse, error) {
	lease := p.live.Acquire(ctx)
	defer lease.Release()
	ctx = lease.Context()
	tp, tok, err := p.tokenizers(lease.Generation(), req.GetPipeline())
	if err != nil {
		return nil, err
	}
	var flags hf.Flags
	if req.GetAddSpecialTokens() {
		flags |= hf.AddSpecial
	}
	if req.GetParseSpecialTokens() {
		flags |= hf.ParseSpecial
	}
	var ids []int32
	var spans [][2]int
	var notes []*ulanv1.Annotation
	served := false
	if tp != nil {
		vocab := maxVocab
		if tok != nil {
			vocab = tok.VocabSize()
		}
		ids, err = tp.Runtime.Encode(ctx, req.GetText(), int32(flags), vocab)
		if err != nil {
			note, err := p.tokenizerFailed(tp, "tokenized the text", err)
			if err != nil {
				return nil, err
			}
			notes = append(notes, note)
		} else {
			spans, served = spansOf(tok, req.GetText(), ids), true
		}
	}
	if !served {
		if ids, spans, err = tok.EncodeOffsets(req.GetText(), flags); err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
	}
	res := &ulanv1.TokenizeResponse{TokenIds: make([]uint32, len(ids)), Pieces: make([]string, len(ids)),
		Offsets: make([]*ulanv1.ByteSpan, len(ids)), Annotations: notes}
	for i, id := range ids {
		res.TokenIds[i] = uint32(id)
		if tok != nil {
			res.Pieces[i] = tok.Piece(id)
		}
		res.Offsets[i] = &ulanv1.ByteSpan{Start: uint32(spans[i][0]), End: uint32(spans[i][1])}
	}
	return res, nil
}

// maxVocab bounds the ids a tokenizer plugin may return when the model's
// own tokenizer is not there to say how many there are.
const maxVocab = 1 << 22

// spansOf gives a plugin's ids their bytes in text: each token's bytes in
// turn when they spell the text exactly, else the whole text for each.
func spansOf(tok *hf.Tokenizer, text string, ids []int32) [][2]int {
	if tok != nil {
		if spans, ok := tok.Spans(text, ids); ok {
			return spans
		}
	}
	spans := make([][2]int, len(ids))
	for i := range spans {
		spans[i] = [2]int{0, len(text)}
	}
	return spans
}

// Detokenize decodes token ids with the model's tokenizer; an id outside
// its vocabulary is an invalid argument naming it.
func (p *Pipeline) Detokenize(ctx context.Context, req *ulanv1.DetokenizeRequest) (*ulanv1.DetokenizeResponse, error) {
	lease := p.live.Acquire(ctx)
	defer lease.Release()
	ctx = lease.Context()
	tp, tok, err := p.tokenizers(lease.Generation(), req.GetPipeline())
	if err != nil {
		return nil, err
	}
	vocab := maxVocab
	if tok != nil {
		vocab = tok.VocabSize()
	}
	ids := make([]int32, len(req.GetTokenIds()))
	for i, id := range req.GetTokenIds() {
		if int64(id) >= int64(vocab) {
			return nil, &api.FieldError{Field: fmt.Sprintf("token_ids[%d]", i), Reason: fmt.Sprintf("%d is outside the vocabulary of %d tokens", id, vocab)}
		}
		ids[i] = int32(id)
	}
	var flags hf.Flags
	if req.GetSkipSpecialTokens() {
		flags |= hf.SkipSpecial
	}
	var notes []*ulanv1.Annotation
	if tp != nil {
		text, err := tp.Runtime.Decode(ctx, ids, int32(flags))
		if err == nil {
			return &ulanv1.DetokenizeResponse{Text: text}, nil
		}
		note, err := p.tokenizerFailed(tp, "detokenized the ids", err)
		if err != nil {
			return nil, err
		}
		notes = append(notes, note)
	}
	text, err := tok.Decode(ids, flags)
	if err != nil {
		return nil, &api.FieldError{Field: "token_ids", Reason: err.Error()}
	}
	return &ulanv1.DetokenizeResponse{Text: text, Annotations: notes}, nil
}

// DefaultKVLengths are the context lengths Model reports KV-cache sizes at
// when none are asked for.
var DefaultKVLengths = []uint64{1 << 10, 1 << 16, 1 << 20}

// Model describes the loaded model, with the KV-cache bytes one sequence
// needs at each context length (DefaultKVLengths when lengths is empty).
func (p *Pipeline) Model(_ context.Context, lengths []uint64) (*ulanv1.Model, error) {
	info := p.m.Runner.Model().Info()
	res := &ulanv1.Model{
		Name:             p.m.Name,
		Architecture:     info.Architecture,
		Format:           p.m.Format,
		TotalParameters:  info.TotalParams,
		ActiveParameters: info.ActiveParams,
		ContextLength:    uint64(info.Context),
		VocabSize:        uint32(info.Vocab),
		Dtypes:           p.m.DTypes,
		Backend:          p.m.Backend,
	}
	if len(lengths) == 0 {
		lengths = DefaultKVLengths
	}
	for _, n := range lengths {
		b := uint64(p.m.Runner.CacheBytesAt(int(n)))
		res.KvCache = append(res.KvCache, &ulanv1.KVCacheSize{ContextLength: n, Bytes: b, BytesPerToken: float64(b) / float64(n)})
	}
	return res, nil
}
