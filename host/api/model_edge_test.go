package api_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ulan-ai/ulan/engine"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv3"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/tokenizer"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// tinyPipeline serves testmodel.TinyV3 (vocabulary 129280, context 4096)
// with no configured plugins or pipelines, for the checks that need a
// model: token ids against the vocabulary, prompts against the context,
// names against the configuration.
func tinyPipeline(t *testing.T) *pipeline.Pipeline {
	t.Helper()
	dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-api-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, testmodel.TinyV3().WriteFile(path, 3))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	b := cpu.New(cpu.WithThreads(2))
	m, err := engine.LoadGGUF(f, b)
	require.NoError(t, err)
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: 16 << 20})
	require.NoError(t, err)
	tok, err := tokenizer.FromGGUF(f)
	require.NoError(t, err)
	p := pipeline.New(pipeline.Model{Name: "tiny", Format: "gguf", Backend: "cpu", Runner: r, Tokenizer: tok})
	t.Cleanup(p.Close)
	return p
}

// TestModelDependentEdges sends, to a server with a model, the requests
// only the model can judge.
func TestModelDependentEdges(t *testing.T) {
	t.Parallel()
	const vocab = 129280
	s := serveAll(t, tinyPipeline(t), testLimits)
	client := s.inference(false)
	ctx := context.Background()
	gen := func(s *ulanv1.SamplingParams) *ulanv1.GenerateRequest {
		return &ulanv1.GenerateRequest{PromptTokenIds: []uint32{0, 100}, Sampling: s}
	}
	long := make([]uint32, 4097)
	tests := []struct {
		name string
		req  *ulanv1.GenerateRequest
		want expect
	}{
		{"one token", gen(&ulanv1.SamplingParams{MaxTokens: i32(1), Seed: ptr(uint64(1))}), ok},
		{"prompt id at the vocabulary size", &ulanv1.GenerateRequest{PromptTokenIds: []uint32{1, vocab}}, invalid("prompt_token_ids[1]")},
		{"prompt id max uint32", &ulanv1.GenerateRequest{PromptTokenIds: []uint32{4294967295}}, invalid("prompt_token_ids[0]")},
		{"prompt longer than the context", &ulanv1.GenerateRequest{PromptTokenIds: long}, invalid("prompt_token_ids")},
		{"text prompt longer than the context", &ulanv1.GenerateRequest{Prompt: strings.Repeat("a b ", 16<<10)}, invalid("prompt")},
		{"logit_bias id outside the vocabulary", gen(&ulanv1.SamplingParams{LogitBias: map[uint32]float32{vocab: 1}}), invalid("sampling.logit_bias[129280]")},
		{"allowed id outside the vocabulary", gen(&ulanv1.SamplingParams{AllowedTokenIds: []uint32{5, vocab + 7}}), invalid("sampling.allowed_token_ids[1]")},
		{"banned id outside the vocabulary", gen(&ulanv1.SamplingParams{BannedTokenIds: []uint32{4294967295}}), invalid("sampling.banned_token_ids[0]")},
		{"stop token id outside the vocabulary", gen(&ulanv1.SamplingParams{StopTokenIds: []uint32{1, 2, vocab}}), invalid("sampling.stop_token_ids[2]")},
		{"every allowed token banned", gen(&ulanv1.SamplingParams{AllowedTokenIds: []uint32{5}, BannedTokenIds: []uint32{5}}), invalid("sampling.allowed_token_ids")},
		{"unknown pipeline", &ulanv1.GenerateRequest{Prompt: "a", Plugins: &ulanv1.PluginSelection{Pipeline: "nope"}}, invalid("plugins.pipeline")},
		{"unknown sampler", &ulanv1.GenerateRequest{Prompt: "a", Plugins: &ulanv1.PluginSelection{Sampler: "nope"}}, invalid("plugins.sampler")},
		{"unknown hook", &ulanv1.GenerateRequest{Prompt: "a", Plugins: &ulanv1.PluginSelection{Hooks: []string{"nope"}}}, invalid("plugins.hooks[0]")},
		{"params for an unknown plugin", &ulanv1.GenerateRequest{Prompt: "a", Plugins: &ulanv1.PluginSelection{Params: map[string]*structpb.Struct{"nope": {}}}}, invalid("plugins.params[nope]")},
		{"another model", &ulanv1.GenerateRequest{Prompt: "a", Model: "gpt-4"}, invalid("model")},
	}
	for _, tc := range tests {
		t.Run("generate/"+tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := client.Generate(ctx, connect.NewRequest(tc.req))
			require.NoError(t, err)
			err, got, fins := drain(st, (*ulanv1.GenerateResponse).GetFinished)
			checkStream(t, tc.want, err, got, fins)
		})
	}

	t.Run("chat/conversation longer than the context", func(t *testing.T) {
		t.Parallel()
		long := &ulanv1.Message{Role: ulanv1.Role_ROLE_USER, Content: strings.Repeat("a b ", 8<<10)}
		st, err := client.Chat(ctx, connect.NewRequest(&ulanv1.ChatRequest{Messages: []*ulanv1.Message{long, long}}))
		require.NoError(t, err)
		err, got, fins := drain(st, (*ulanv1.ChatResponse).GetFinished)
		checkStream(t, invalid("messages"), err, got, fins)
	})
	for name, choice := range map[string]*ulanv1.ToolChoice{
		"required":   {Choice: &ulanv1.ToolChoice_Mode{Mode: ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED}},
		"named tool": {Choice: &ulanv1.ToolChoice_Tool{Tool: "get_weather"}},
	} {
		t.Run("chat/tool choice "+name, func(t *testing.T) {
			t.Parallel()
			// Forcing a call needs constrained decoding: not refused as a bad
			// request, but as what the server does not do yet.
			tools := []*ulanv1.Tool{{Name: "get_weather"}}
			st, err := client.Chat(ctx, connect.NewRequest(&ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, Tools: tools, ToolChoice: choice}))
			require.NoError(t, err)
			err, got, fins := drain(st, (*ulanv1.ChatResponse).GetFinished)
			checkStream(t, expect{connect.CodeUnimplemented, "tool_choice"}, err, got, fins)
		})
	}
	t.Run("chat/unknown pipeline", func(t *testing.T) {
		t.Parallel()
		st, err := client.Chat(ctx, connect.NewRequest(&ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, Plugins: &ulanv1.PluginSelection{Pipeline: "nope"}}))
		require.NoError(t, err)
		err, got, fins := drain(st, (*ulanv1.ChatResponse).GetFinished)
		checkStream(t, invalid("plugins.pipeline"), err, got, fins)
	})
	t.Run("detokenize an id outside the vocabulary", func(t *testing.T) {
		t.Parallel()
		_, err := client.Detokenize(ctx, connect.NewRequest(&ulanv1.DetokenizeRequest{TokenIds: []uint32{1, vocab}}))
		checkOutcome(t, invalid("token_ids[1]"), err)
	})
	t.Run("tokenize with an unknown pipeline", func(t *testing.T) {
		t.Parallel()
		// As Generate and Chat answer an unknown plugins.pipeline.
		_, err := client.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{Text: "a", Pipeline: "nope"}))
		checkOutcome(t, invalid("pipeline"), err)
		require.Contains(t, err.Error(), `no pipeline named "nope"`)
	})
	t.Run("only the end-of-sequence token allowed before min_tokens", func(t *testing.T) {
		t.Parallel()
		// Which token ends a sequence is the model's, so the API cannot
		// refuse this up front; the sampler's first step fails and the
		// choice finishes with an error naming the fields to change.
		st, err := client.Generate(ctx, connect.NewRequest(gen(&ulanv1.SamplingParams{AllowedTokenIds: []uint32{1}, MinTokens: 1, MaxTokens: i32(2)})))
		require.NoError(t, err)
		err, _, fins := drain(st, (*ulanv1.GenerateResponse).GetFinished)
		require.NoError(t, err)
		require.Len(t, fins, 1)
		require.Equal(t, ulanv1.FinishReason_FINISH_REASON_ERROR, fins[0].FinishReason)
		require.Contains(t, fins[0].Message, "allowed_token_ids")
		require.Contains(t, fins[0].Message, "min_tokens")
	})
}
