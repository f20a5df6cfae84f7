// Package apitest provides a test double of api.Inference for the tests of
// the host, the API and the CLI. It is not a model: Echo streams its prompt
// back, so tests can watch streams, cancellation and shutdown without one.
package apitest

import (
	"context"
	"strings"
	"time"

	"github.com/ulan-ai/ulan/host/api"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// Echo implements api.Inference by echoing. Generate and Chat stream the
// prompt (or the last message) back one word per delta, as both content and
// token ids (the bytes of the word), then finish with FINISH_REASON_STOP.
// Tokenize maps each byte to its value as a token id; Detokenize reverses it.
type Echo struct {
	// Delay is the pause before each delta.
	Delay time.Duration
	// Started, when not nil, receives the generation id of every stream once
	// it has started.
	Started chan<- string
}

var _ api.Inference = (*Echo)(nil)

// Generate echoes req.Prompt.
func (e *Echo) Generate(ctx context.Context, req *ulanv1.GenerateRequest, out api.Stream) error {
	text := req.Prompt
	if text == "" {
		text = string(toBytes(req.PromptTokenIds))
	}
	return e.echo(ctx, text, out)
}

// Chat echoes the last message's content.
func (e *Echo) Chat(ctx context.Context, req *ulanv1.ChatRequest, out api.Stream) error {
	return e.echo(ctx, req.Messages[len(req.Messages)-1].Content, out)
}

func (e *Echo) echo(ctx context.Context, text string, out api.Stream) error {
	started := &ulanv1.Started{Model: "echo", PromptTokens: uint32(len(text)), ConfigGeneration: 1}
	if err := out.Start(started); err != nil {
		return err
	}
	if e.Started != nil {
		e.Started <- started.GenerationId
	}
	words := strings.SplitAfter(text, " ")
	for _, w := range words {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(e.Delay):
		}
		if err := out.Delta(&ulanv1.Delta{Content: w, TokenIds: toIDs([]byte(w))}); err != nil {
			return err
		}
	}
	return out.Finish(&ulanv1.Finished{
		FinishReason: ulanv1.FinishReason_FINISH_REASON_STOP,
		Usage:        &ulanv1.Usage{PromptTokens: uint32(len(text)), CompletionTokens: uint32(len(text))},
		Timings:      &ulanv1.Timings{},
	})
}

// Tokenize returns the text's bytes as ids.
func (e *Echo) Tokenize(_ context.Context, req *ulanv1.TokenizeRequest) (*ulanv1.TokenizeResponse, error) {
	res := &ulanv1.TokenizeResponse{TokenIds: toIDs([]byte(req.Text))}
	for i := 0; i < len(req.Text); i++ {
		res.Pieces = append(res.Pieces, strings.ToValidUTF8(req.Text[i:i+1], "\uFFFD"))
	}
	return res, nil
}

// Detokenize returns the ids as bytes.
func (e *Echo) Detokenize(_ context.Context, req *ulanv1.DetokenizeRequest) (*ulanv1.DetokenizeResponse, error) {
	return &ulanv1.DetokenizeResponse{Text: string(toBytes(req.TokenIds))}, nil
}

// Model describes the echo "model": 256 token ids, no weights.
func (e *Echo) Model(_ context.Context, lengths []uint64) (*ulanv1.Model, error) {
	m := &ulanv1.Model{Name: "echo", Architecture: "echo", VocabSize: 256, Backend: "none"}
	for _, n := range lengths {
		m.KvCache = append(m.KvCache, &ulanv1.KVCacheSize{ContextLength: n})
	}
	return m, nil
}

func toIDs(b []byte) []uint32 {
	ids := make([]uint32, len(b))
	for i, c := range b {
		ids[i] = uint32(c)
	}
	return ids
}

func toBytes(ids []uint32) []byte {
	b := make([]byte, len(ids))
	for i, id := range ids {
		b[i] = byte(id)
	}
	return b
}
