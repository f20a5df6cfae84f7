// Package pipeline connects the API to the engine: it is the api.Inference
// of a server with a model loaded. This first version reports the model
// (ModelService.GetModel) truthfully; text generation needs the tokenizer and
// sampling stages, which arrive with later issues, and until then those RPCs
// answer Unimplemented rather than anything made up. Tokenize and Detokenize
// run the model's tokenizer. The hook stage is here:
// HookChain runs a choice's text through a pipeline's hooks and applies
// their failure policies.
package pipeline

import (
	"context"
	"fmt"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"

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
	// Detokenize with Unimplemented.
	Tokenizer *hf.Tokenizer
}

// Pipeline is the api.Inference of a loaded model.
type Pipeline struct {
	m Model
}

var _ api.Inference = (*Pipeline)(nil)

// New returns the pipeline of m.
func New(m Model) *Pipeline { return &Pipeline{m: m} }

var errNoText = fmt.Errorf("text generation: %w: the tokenizer and sampler stages arrive with later releases; `ulan generate --model FILE --prompt-ids …` runs the engine on token ids", api.ErrNotImplemented)

// Generate is not served yet.
func (p *Pipeline) Generate(context.Context, *ulanv1.GenerateRequest, api.Stream) error {
	return errNoText
}

// Chat is not served yet.
func (p *Pipeline) Chat(context.Context, *ulanv1.ChatRequest, api.Stream) error { return errNoText }

var errNoTokenizer = fmt.Errorf("tokenization: %w: the model was loaded without a tokenizer", api.ErrNotImplemented)

// checkPipeline refuses a named pipeline: requests run the model's own
// tokenizer until pipelines are wired to requests.
func checkPipeline(name string) error {
	if name != "" {
		return fmt.Errorf("pipeline %q: %w: requests run the model's own tokenizer until pipelines serve requests", name, api.ErrNotImplemented)
	}
	return nil
}

// Tokenize encodes text with the model's tokenizer, with each token's
// bytes in the text. Pieces are the tokens as the vocabulary writes them
// (for byte-level BPE, in its byte alphabet, such as "Ġworld"), which is
// always valid UTF-8 where a token's raw bytes may not be.
func (p *Pipeline) Tokenize(_ context.Context, req *ulanv1.TokenizeRequest) (*ulanv1.TokenizeResponse, error) {
	tok := p.m.Tokenizer
	if tok == nil {
		return nil, errNoTokenizer
	}
	if err := checkPipeline(req.GetPipeline()); err != nil {
		return nil, err
	}
	var flags hf.Flags
	if req.GetAddSpecialTokens() {
		flags |= hf.AddSpecial
	}
	if req.GetParseSpecialTokens() {
		flags |= hf.ParseSpecial
	}
	ids, spans, err := tok.EncodeOffsets(req.GetText(), flags)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	res := &ulanv1.TokenizeResponse{TokenIds: make([]uint32, len(ids)), Pieces: make([]string, len(ids)),
		Offsets: make([]*ulanv1.ByteSpan, len(ids))}
	for i, id := range ids {
		res.TokenIds[i] = uint32(id)
		res.Pieces[i] = tok.Piece(id)
		res.Offsets[i] = &ulanv1.ByteSpan{Start: uint32(spans[i][0]), End: uint32(spans[i][1])}
	}
	return res, nil
}

// Detokenize decodes token ids with the model's tokenizer; an id outside
// its vocabulary is an invalid argument naming it.
func (p *Pipeline) Detokenize(_ context.Context, req *ulanv1.DetokenizeRequest) (*ulanv1.DetokenizeResponse, error) {
	tok := p.m.Tokenizer
	if tok == nil {
		return nil, errNoTokenizer
	}
	if err := checkPipeline(req.GetPipeline()); err != nil {
		return nil, err
	}
	ids := make([]int32, len(req.GetTokenIds()))
	for i, id := range req.GetTokenIds() {
		if int64(id) >= int64(tok.VocabSize()) {
			return nil, &api.FieldError{Field: fmt.Sprintf("token_ids[%d]", i), Reason: fmt.Sprintf("%d is outside the vocabulary of %d tokens", id, tok.VocabSize())}
		}
		ids[i] = int32(id)
	}
	var flags hf.Flags
	if req.GetSkipSpecialTokens() {
		flags |= hf.SkipSpecial
	}
	text, err := tok.Decode(ids, flags)
	if err != nil {
		return nil, &api.FieldError{Field: "token_ids", Reason: err.Error()}
	}
	return &ulanv1.DetokenizeResponse{Text: text}, nil
}

// Model describes the loaded model, with the KV-cache bytes one sequence
// needs at each context length (the runner's f32 latent cache).
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
	perToken := uint64(p.m.Runner.CacheBytesPerToken())
	for _, n := range lengths {
		res.KvCache = append(res.KvCache, &ulanv1.KVCacheSize{ContextLength: n, Bytes: n * perToken})
	}
	return res, nil
}
