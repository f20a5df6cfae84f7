// Package pipeline connects the API to the engine: it is the api.Inference
// of a server with a model loaded. This first version reports the model
// (ModelService.GetModel) truthfully; text generation needs the tokenizer and
// sampling stages, which arrive with later issues, and until then those RPCs
// answer Unimplemented rather than anything made up. The hook stage is here:
// HookChain runs a choice's text through a pipeline's hooks and applies
// their failure policies.
package pipeline

import (
	"context"
	"fmt"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/host/api"

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

// Tokenize is not served yet.
func (p *Pipeline) Tokenize(context.Context, *ulanv1.TokenizeRequest) (*ulanv1.TokenizeResponse, error) {
	return nil, errNoText
}

// Detokenize is not served yet.
func (p *Pipeline) Detokenize(context.Context, *ulanv1.DetokenizeRequest) (*ulanv1.DetokenizeResponse, error) {
	return nil, errNoText
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
