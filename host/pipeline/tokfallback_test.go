package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/tokenizer"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// finishes is an api.Stream that keeps each choice's final message.
type finishes struct {
	mu  sync.Mutex
	fin []*ulanv1.Finished
}

func (s *finishes) Start(*ulanv1.Started) error { return nil }
func (s *finishes) Delta(*ulanv1.Delta) error   { return nil }
func (s *finishes) Finish(f *ulanv1.Finished) error {
	s.mu.Lock()
	s.fin = append(s.fin, f)
	s.mu.Unlock()
	return nil
}

// TestTokenizerFallbackIsAnnotated: a tokenizer plugin that fails under
// fallback leaves the prompt to the model's tokenizer, and every choice's
// final message says so, as Tokenize's and Detokenize's responses do; under
// fail_closed the request fails naming it.
func TestTokenizerFallbackIsAnnotated(t *testing.T) {
	t.Parallel()
	r, f := tinyV3(t, 16<<20)
	tok, err := tokenizer.FromGGUF(f)
	require.NoError(t, err)

	bad := badTokenizer(t)
	ctx := context.Background()
	gen, err := generation.Build(ctx, config.Config{
		Plugins: []config.Plugin{
			{ID: "bad-fallback", Module: "builtin:badtok", FailurePolicy: "fallback", PoolSize: 1, Config: map[string]any{"tokenizer_json": map[string]any{}}},
			{ID: "bad-closed", Module: "builtin:badtok", PoolSize: 1, Config: map[string]any{"tokenizer_json": map[string]any{}}},
		},
		Pipelines: []config.Pipeline{{Name: "fb", Tokenizer: "bad-fallback"}, {Name: "closed", Tokenizer: "bad-closed"}},
	}, generation.Deps{Builtins: map[string][]byte{"badtok": bad}, InitTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	defer gen.Close(ctx)
	p := pipeline.New(pipeline.Model{Name: "m", Runner: r, Tokenizer: tok, Generation: gen})
	defer p.Close()

	// badtok answers "n…" with id −1, which the host refuses.
	out := &finishes{}
	sp := &ulanv1.SamplingParams{Seed: u64(1), MaxTokens: i32(2), N: 2}
	require.NoError(t, p.Generate(ctx, &ulanv1.GenerateRequest{Prompt: "nx", Sampling: sp, Plugins: &ulanv1.PluginSelection{Pipeline: "fb"}}, out))
	require.Len(t, out.fin, 2)
	for _, fin := range out.fin {
		require.Len(t, fin.Annotations, 1)
		a := fin.Annotations[0]
		require.Equal(t, ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_FALLBACK, a.Kind)
		require.Equal(t, "bad-fallback", a.Source)
		require.Contains(t, a.Message, "the model's tokenizer tokenized the prompt")
	}
	err = p.Generate(ctx, &ulanv1.GenerateRequest{Prompt: "nx", Sampling: sp, Plugins: &ulanv1.PluginSelection{Pipeline: "closed"}}, &finishes{})
	require.ErrorContains(t, err, "tokenizer plugin bad-closed failed (fail_closed)")

	// Tokenize and Detokenize say so in their responses. (badtok decodes
	// id 255 to the byte 0xff, which is not UTF-8.)
	fallback := func(notes []*ulanv1.Annotation, what string) {
		t.Helper()
		require.Len(t, notes, 1)
		require.Equal(t, ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_FALLBACK, notes[0].Kind)
		require.Equal(t, "bad-fallback", notes[0].Source)
		require.Contains(t, notes[0].Message, "the model's tokenizer "+what)
	}
	tr, err := p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "nx", Pipeline: "fb"})
	require.NoError(t, err)
	want, err := tok.Encode("nx", 0)
	require.NoError(t, err)
	require.Len(t, tr.TokenIds, len(want))
	fallback(tr.Annotations, "tokenized the text")
	dr, err := p.Detokenize(ctx, &ulanv1.DetokenizeRequest{TokenIds: []uint32{255}, Pipeline: "fb"})
	require.NoError(t, err)
	fallback(dr.Annotations, "detokenized the ids")
	tr, err = p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "ab", Pipeline: "fb"})
	require.NoError(t, err)
	require.Empty(t, tr.Annotations, "the plugin served it")
	_, err = p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "nx", Pipeline: "closed"})
	require.ErrorContains(t, err, "tokenizer plugin bad-closed failed (fail_closed)")
	_, err = p.Detokenize(ctx, &ulanv1.DetokenizeRequest{TokenIds: []uint32{255}, Pipeline: "closed"})
	require.ErrorContains(t, err, "tokenizer plugin bad-closed failed (fail_closed)")
}

func u64(v uint64) *uint64 { return &v }
func i32(v int32) *int32   { return &v }
