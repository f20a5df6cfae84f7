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
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv4"
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
	return pipelineOf(t, func(path string) error { return testmodel.TinyV3().WriteFile(path, 3) })
}

// pipelineOf serves the model that write writes, as tinyPipeline does.
func pipelineOf(t *testing.T, write func(path string) error) *pipeline.Pipeline {
	t.Helper()
	dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-api-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "tiny.gguf")
	require.NoError(t, write(path))
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
	t.Run("chat/tool choice forces a call", func(t *testing.T) {
		t.Parallel()
		// TinyV3 writes V3 tool calls: a named tool's call header and the
		// opening of its arguments are forced, so the parser starts the call
		// however random the model; required forces the header up to the
		// function's name, which the model then writes.
		tools := []*ulanv1.Tool{{Name: "get_weather"}, {Name: "get_time"}}
		for name, tc := range map[string]*ulanv1.ToolChoice{
			"named":    {Choice: &ulanv1.ToolChoice_Tool{Tool: "get_weather"}},
			"required": {Choice: &ulanv1.ToolChoice_Mode{Mode: ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED}},
		} {
			st, err := client.Chat(ctx, connect.NewRequest(&ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, Tools: tools, ToolChoice: tc,
				Sampling: &ulanv1.SamplingParams{Seed: ptr(uint64(5)), MaxTokens: i32(24)}}))
			require.NoError(t, err, name)
			var calls []*ulanv1.ToolCallDelta
			var ids []uint32
			var fin *ulanv1.Finished
			for st.Receive() {
				if d := st.Msg().GetDelta(); d != nil {
					calls = append(calls, d.ToolCalls...)
					ids = append(ids, d.TokenIds...)
				}
				if f := st.Msg().GetFinished(); f != nil {
					fin = f
				}
			}
			require.NoError(t, st.Err(), name)
			require.NotNil(t, fin, name)
			require.NotEqual(t, ulanv1.FinishReason_FINISH_REASON_ERROR, fin.FinishReason, "%s: %s", name, fin.Message)
			head, err := client.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{
				Text: "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>", ParseSpecialTokens: true}))
			require.NoError(t, err)
			require.Greater(t, len(ids), len(head.Msg.TokenIds), name)
			require.Equal(t, head.Msg.TokenIds, ids[:len(head.Msg.TokenIds)], "%s: the answer opens with the call's header", name)
			if name == "named" {
				require.NotEmpty(t, calls, "the forced header starts a call")
				require.Equal(t, "get_weather", calls[0].Name)
			}
		}
	})
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
		// Which token ends a sequence is the model's: the pipeline refuses
		// this before the stream starts.
		st, err := client.Generate(ctx, connect.NewRequest(gen(&ulanv1.SamplingParams{AllowedTokenIds: []uint32{1}, MinTokens: 1, MaxTokens: i32(2)})))
		require.NoError(t, err)
		err, got, fins := drain(st, (*ulanv1.GenerateResponse).GetFinished)
		checkStream(t, invalid("sampling.allowed_token_ids"), err, got, fins)
		require.Contains(t, err.Error(), "end-of-sequence")
	})
}

// TestForcedToolCallV4: on a V4 model, a named tool's DSML call head is
// forced, so the answer's first call is that tool's however random the
// model. (A reasoning turn's forcing after </think> is TestForcedTokens's,
// in host/sampling: TinyV4's tokenizer, DeepSeek-V3's, spells </think> in
// three tokens the random model does not write in order.)
func TestForcedToolCallV4(t *testing.T) {
	t.Parallel()
	s := serveAll(t, pipelineOf(t, func(path string) error { return testmodel.TinyV4().WriteFile(path, 3) }), testLimits)
	client := s.inference(false)
	ctx := context.Background()
	st, err := client.Chat(ctx, connect.NewRequest(&ulanv1.ChatRequest{
		Messages:   []*ulanv1.Message{{Role: ulanv1.Role_ROLE_USER, Content: "weather?"}},
		Tools:      []*ulanv1.Tool{{Name: "get_weather"}},
		ToolChoice: &ulanv1.ToolChoice{Choice: &ulanv1.ToolChoice_Tool{Tool: "get_weather"}},
		Thinking:   ulanv1.ThinkingMode_THINKING_MODE_OFF,
		Sampling:   &ulanv1.SamplingParams{Seed: ptr(uint64(9)), MaxTokens: i32(32)},
	}))
	require.NoError(t, err)
	var calls []*ulanv1.ToolCallDelta
	var content string
	for st.Receive() {
		if d := st.Msg().GetDelta(); d != nil {
			calls = append(calls, d.ToolCalls...)
			content += d.Content
		}
	}
	require.NoError(t, st.Err())
	require.NotEmpty(t, calls, "the forced head starts a call")
	require.Equal(t, "get_weather", calls[0].Name)
	require.NotContains(t, content, "DSML", "the forced markup is parsed, not shown")
}

// TestToolCallsV31: a model whose chat template writes DeepSeek-V3.1's
// calls (NAME<｜tool▁sep｜>ARGS, no type and no fence) has its answers
// parsed and its tool calls forced in that form, not V3's.
func TestToolCallsV31(t *testing.T) {
	t.Parallel()
	template, err := os.ReadFile("../../sdk/go/tokenizer/chatfmt/testdata/deepseek-v3.1.jinja")
	require.NoError(t, err)
	s := serveAll(t, pipelineOf(t, func(path string) error {
		return testmodel.TinyV3().WriteFile(path, 3, testmodel.WithChatTemplate(string(template)))
	}), testLimits)
	client := s.inference(false)
	ctx := context.Background()
	tools := []*ulanv1.Tool{{Name: "get_weather"}, {Name: "get_time"}}
	for name, tc := range map[string]*ulanv1.ToolChoice{
		"named":    {Choice: &ulanv1.ToolChoice_Tool{Tool: "get_weather"}},
		"required": {Choice: &ulanv1.ToolChoice_Mode{Mode: ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED}},
	} {
		st, err := client.Chat(ctx, connect.NewRequest(&ulanv1.ChatRequest{
			Messages: []*ulanv1.Message{{Role: ulanv1.Role_ROLE_USER, Content: "weather?"}}, Tools: tools, ToolChoice: tc,
			Sampling: &ulanv1.SamplingParams{Seed: ptr(uint64(5)), MaxTokens: i32(24)}}))
		require.NoError(t, err, name)
		var calls []*ulanv1.ToolCallDelta
		var ids []uint32
		var content string
		for st.Receive() {
			if d := st.Msg().GetDelta(); d != nil {
				calls = append(calls, d.ToolCalls...)
				ids = append(ids, d.TokenIds...)
				content += d.Content
			}
		}
		require.NoError(t, st.Err(), name)
		head, err := client.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{
			Text: "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>", ParseSpecialTokens: true}))
		require.NoError(t, err)
		require.Greater(t, len(ids), len(head.Msg.TokenIds), name)
		require.Equal(t, head.Msg.TokenIds, ids[:len(head.Msg.TokenIds)], "%s: the answer opens with V3.1's call", name)
		if name == "named" {
			// (Under required, the random model writes no name and
			// separator, so its unfinished head is shown at the end.)
			require.NotContains(t, content, "tool▁", "the call's markup is parsed, not shown")
			require.NotEmpty(t, calls, "the forced head starts a call")
			require.Equal(t, "get_weather", calls[0].Name, "V3.1's head has the name right after the call's opening")
		}
	}
}

// TestChatHidesControlTokens: a chat's answer shows text, not control
// tokens (a placeholder the model drew is in token_ids, not in content), as
// Generate's does, while the special tokens of the chat's markup are still
// parsed.
func TestChatHidesControlTokens(t *testing.T) {
	t.Parallel()
	s := serveAll(t, tinyPipeline(t), testLimits)
	client := s.inference(false)
	ctx := context.Background()
	id := func(text string) uint32 {
		res, err := client.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{Text: text, ParseSpecialTokens: true}))
		require.NoError(t, err)
		require.Len(t, res.Msg.TokenIds, 1, text)
		return res.Msg.TokenIds[0]
	}
	placeholder, word := id("<｜place▁holder▁no▁417｜>"), id("hello")
	st, err := client.Chat(ctx, connect.NewRequest(&ulanv1.ChatRequest{
		Messages: []*ulanv1.Message{{Role: ulanv1.Role_ROLE_USER, Content: "hi"}},
		Sampling: &ulanv1.SamplingParams{Seed: ptr(uint64(1)), MaxTokens: i32(12), AllowedTokenIds: []uint32{placeholder, word}},
	}))
	require.NoError(t, err)
	var ids []uint32
	var content string
	for st.Receive() {
		if d := st.Msg().GetDelta(); d != nil {
			ids = append(ids, d.TokenIds...)
			content += d.Content
		}
	}
	require.NoError(t, st.Err())
	require.Contains(t, ids, placeholder, "the seed draws the placeholder")
	require.Contains(t, ids, word, "the seed draws the word")
	require.NotContains(t, content, "place▁holder")
	require.Equal(t, countOf(ids, word), strings.Count(content, "hello"))
}

func countOf(ids []uint32, id uint32) int {
	n := 0
	for _, v := range ids {
		if v == id {
			n++
		}
	}
	return n
}
