package api_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/api/apitest"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

var testLimits = api.Limits{MaxRequestBytes: 1 << 20, MaxPromptBytes: 64 << 10, MaxTokens: 4096}

// serve starts the API over HTTP/1.1 on loopback and returns an inference
// client for it.
func serve(t *testing.T, inf api.Inference) ulanv1connect.InferenceServiceClient {
	t.Helper()
	a := api.New(api.Config{Inference: inf, Plugins: nil, Limits: testLimits})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return ulanv1connect.NewInferenceServiceClient(srv.Client(), srv.URL)
}

func f32(v float32) *float32 { return &v }
func i32(v int32) *int32     { return &v }

func generate(prompt string, s *ulanv1.SamplingParams) *ulanv1.GenerateRequest {
	return &ulanv1.GenerateRequest{Prompt: prompt, Sampling: s}
}

// TestGenerateRejectsBadRequests checks that each bad field is refused with
// InvalidArgument naming it, before any model work starts.
func TestGenerateRejectsBadRequests(t *testing.T) {
	t.Parallel()
	client := serve(t, &apitest.Echo{})
	nan := float32(math.NaN())
	tests := []struct {
		name  string
		req   *ulanv1.GenerateRequest
		field string
	}{
		{"no prompt", &ulanv1.GenerateRequest{}, "prompt"},
		{"both prompts", &ulanv1.GenerateRequest{Prompt: "a", PromptTokenIds: []uint32{1}}, "prompt"},
		{"oversized prompt", generate(strings.Repeat("x", 64<<10+1), nil), "prompt"},
		{"temperature -1", generate("a", &ulanv1.SamplingParams{Temperature: f32(-1)}), "sampling.temperature"},
		{"temperature NaN", generate("a", &ulanv1.SamplingParams{Temperature: &nan}), "sampling.temperature"},
		{"temperature +Inf", generate("a", &ulanv1.SamplingParams{Temperature: f32(float32(math.Inf(1)))}), "sampling.temperature"},
		{"top_p 2", generate("a", &ulanv1.SamplingParams{TopP: f32(2)}), "sampling.top_p"},
		{"top_p 0", generate("a", &ulanv1.SamplingParams{TopP: f32(0)}), "sampling.top_p"},
		{"top_k -5", generate("a", &ulanv1.SamplingParams{TopK: i32(-5)}), "sampling.top_k"},
		{"min_p 1.5", generate("a", &ulanv1.SamplingParams{MinP: f32(1.5)}), "sampling.min_p"},
		{"typical_p NaN", generate("a", &ulanv1.SamplingParams{TypicalP: &nan}), "sampling.typical_p"},
		{"repetition_penalty 0", generate("a", &ulanv1.SamplingParams{RepetitionPenalty: f32(0)}), "sampling.repetition_penalty"},
		{"presence_penalty 3", generate("a", &ulanv1.SamplingParams{PresencePenalty: f32(3)}), "sampling.presence_penalty"},
		{"frequency_penalty -3", generate("a", &ulanv1.SamplingParams{FrequencyPenalty: f32(-3)}), "sampling.frequency_penalty"},
		{"penalty_window -1", generate("a", &ulanv1.SamplingParams{PenaltyWindow: i32(-1)}), "sampling.penalty_window"},
		{"max_tokens 0", generate("a", &ulanv1.SamplingParams{MaxTokens: i32(0)}), "sampling.max_tokens"},
		{"max_tokens absurd", generate("a", &ulanv1.SamplingParams{MaxTokens: i32(math.MaxInt32)}), "sampling.max_tokens"},
		{"min_tokens over max_tokens", generate("a", &ulanv1.SamplingParams{MaxTokens: i32(10), MinTokens: 11}), "sampling.min_tokens"},
		{"min_tokens negative", generate("a", &ulanv1.SamplingParams{MinTokens: -1}), "sampling.min_tokens"},
		{"empty stop", generate("a", &ulanv1.SamplingParams{Stop: []string{""}}), "sampling.stop[0]"},
		{"too many stops", generate("a", &ulanv1.SamplingParams{Stop: strings.Split(strings.Repeat("x,", 17), ",")[:17]}), "sampling.stop"},
		{"logit_bias 101", generate("a", &ulanv1.SamplingParams{LogitBias: map[uint32]float32{7: 101}}), "sampling.logit_bias[7]"},
		{"logit_bias NaN", generate("a", &ulanv1.SamplingParams{LogitBias: map[uint32]float32{9: nan}}), "sampling.logit_bias[9]"},
		{"top_logprobs 21", generate("a", &ulanv1.SamplingParams{Logprobs: true, TopLogprobs: 21}), "sampling.top_logprobs"},
		{"top_logprobs without logprobs", generate("a", &ulanv1.SamplingParams{TopLogprobs: 2}), "sampling.top_logprobs"},
		{"n negative", generate("a", &ulanv1.SamplingParams{N: -1}), "sampling.n"},
		{"bad pipeline name", &ulanv1.GenerateRequest{Prompt: "a", Plugins: &ulanv1.PluginSelection{Pipeline: "Bad Name"}}, "plugins.pipeline"},
		{"duplicate hook", &ulanv1.GenerateRequest{Prompt: "a", Plugins: &ulanv1.PluginSelection{Hooks: []string{"pii", "pii"}}}, "plugins.hooks[1]"},
		{"model name too long", &ulanv1.GenerateRequest{Prompt: "a", Model: strings.Repeat("m", 300)}, "model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stream, err := client.Generate(context.Background(), connect.NewRequest(tt.req))
			require.NoError(t, err)
			require.False(t, stream.Receive(), "no message may be sent for a bad request")
			err = stream.Err()
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			require.Contains(t, err.Error(), tt.field+":")
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	t.Parallel()
	client := serve(t, &apitest.Echo{})
	stream, err := client.Generate(context.Background(), connect.NewRequest(
		generate("a", &ulanv1.SamplingParams{Temperature: f32(-1), TopP: f32(2), TopK: i32(-5)})))
	require.NoError(t, err)
	require.False(t, stream.Receive())
	msg := stream.Err().Error()
	for _, f := range []string{"sampling.temperature", "sampling.top_p", "sampling.top_k"} {
		require.Contains(t, msg, f)
	}
}

func TestChatRejectsBadRequests(t *testing.T) {
	t.Parallel()
	client := serve(t, &apitest.Echo{})
	user := &ulanv1.Message{Role: ulanv1.Role_ROLE_USER, Content: "hi"}
	call := &ulanv1.Message{Role: ulanv1.Role_ROLE_ASSISTANT, ToolCalls: []*ulanv1.ToolCall{{Id: "c1", Name: "get_weather", Arguments: `{"city":"Oslo"}`}}}
	tests := []struct {
		name  string
		req   *ulanv1.ChatRequest
		field string
	}{
		{"no messages", &ulanv1.ChatRequest{}, "messages"},
		{"role missing", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{{Content: "x"}}}, "messages[0].role"},
		{"unknown role", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{{Role: 42, Content: "x"}}}, "messages[0].role"},
		{"unknown thinking mode", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, Thinking: 9}, "thinking"},
		{"unknown tool choice mode", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, ToolChoice: &ulanv1.ToolChoice{Choice: &ulanv1.ToolChoice_Mode{Mode: 17}}}, "tool_choice.mode"},
		{"user reasoning", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{{Role: ulanv1.Role_ROLE_USER, Reasoning: "x"}}}, "messages[0].reasoning"},
		{"tool message without id", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user, call, {Role: ulanv1.Role_ROLE_TOOL, Content: "sunny"}}}, "messages[2].tool_call_id"},
		{"tool message answering nothing", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user, {Role: ulanv1.Role_ROLE_TOOL, ToolCallId: "c9", Content: "x"}}}, "messages[1].tool_call_id"},
		{"bad arguments", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user, {Role: ulanv1.Role_ROLE_ASSISTANT, ToolCalls: []*ulanv1.ToolCall{{Id: "c1", Name: "f", Arguments: "{"}}}}}, "messages[1].tool_calls[0].arguments"},
		{"bad tool name", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, Tools: []*ulanv1.Tool{{Name: "has space"}}}, "tools[0].name"},
		{"duplicate tool", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, Tools: []*ulanv1.Tool{{Name: "f"}, {Name: "f"}}}, "tools[1].name"},
		{"tool choice of unknown tool", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, ToolChoice: &ulanv1.ToolChoice{Choice: &ulanv1.ToolChoice_Tool{Tool: "f"}}}, "tool_choice.tool"},
		{"required without tools", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, ToolChoice: &ulanv1.ToolChoice{Choice: &ulanv1.ToolChoice_Mode{Mode: ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED}}}, "tool_choice.mode"},
		{"oversized messages", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{{Role: ulanv1.Role_ROLE_USER, Content: strings.Repeat("x", 64<<10)}, user}}, "messages"},
		{"temperature NaN", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, Sampling: &ulanv1.SamplingParams{Temperature: f32(float32(math.NaN()))}}, "sampling.temperature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stream, err := client.Chat(context.Background(), connect.NewRequest(tt.req))
			require.NoError(t, err)
			require.False(t, stream.Receive())
			err = stream.Err()
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			require.Contains(t, err.Error(), tt.field+":")
		})
	}
}

func TestValidChatWithToolsPasses(t *testing.T) {
	t.Parallel()
	client := serve(t, &apitest.Echo{})
	req := &ulanv1.ChatRequest{
		Messages: []*ulanv1.Message{
			{Role: ulanv1.Role_ROLE_SYSTEM, Content: "be brief"},
			{Role: ulanv1.Role_ROLE_USER, Content: "weather in Oslo?"},
			{Role: ulanv1.Role_ROLE_ASSISTANT, Reasoning: "call the tool", ToolCalls: []*ulanv1.ToolCall{{Id: "c1", Name: "get_weather", Arguments: `{"city":"Oslo"}`}}},
			{Role: ulanv1.Role_ROLE_TOOL, ToolCallId: "c1", Content: "sunny"},
		},
		Tools:      []*ulanv1.Tool{{Name: "get_weather"}},
		ToolChoice: &ulanv1.ToolChoice{Choice: &ulanv1.ToolChoice_Tool{Tool: "get_weather"}},
		Thinking:   ulanv1.ThinkingMode_THINKING_MODE_MAX,
	}
	stream, err := client.Chat(context.Background(), connect.NewRequest(req))
	require.NoError(t, err)
	var text string
	for stream.Receive() {
		text += stream.Msg().GetDelta().GetContent()
	}
	require.NoError(t, stream.Err())
	require.Equal(t, "sunny", text)
}

func TestTooManyChoicesIsInvalid(t *testing.T) {
	t.Parallel()
	client := serve(t, &apitest.Echo{})
	stream, err := client.Generate(context.Background(), connect.NewRequest(generate("a", &ulanv1.SamplingParams{N: 17})))
	require.NoError(t, err)
	require.False(t, stream.Receive())
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(stream.Err()))
	require.Contains(t, stream.Err().Error(), "sampling.n")
}

func TestNoModelIsUnavailable(t *testing.T) {
	t.Parallel()
	client := serve(t, nil)
	stream, err := client.Generate(context.Background(), connect.NewRequest(generate("hello", nil)))
	require.NoError(t, err)
	require.False(t, stream.Receive())
	require.Equal(t, connect.CodeUnavailable, connect.CodeOf(stream.Err()))
	require.Contains(t, stream.Err().Error(), "no model is loaded")

	_, err = client.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: "hello"}))
	require.Equal(t, connect.CodeUnavailable, connect.CodeOf(err))
	_, err = client.Detokenize(context.Background(), connect.NewRequest(&ulanv1.DetokenizeRequest{TokenIds: []uint32{1}}))
	require.Equal(t, connect.CodeUnavailable, connect.CodeOf(err))
}

func TestStreamShape(t *testing.T) {
	t.Parallel()
	client := serve(t, &apitest.Echo{})
	stream, err := client.Generate(context.Background(), connect.NewRequest(generate("one two three", nil)))
	require.NoError(t, err)
	var events []*ulanv1.GenerateResponse
	for stream.Receive() {
		events = append(events, proto.CloneOf(stream.Msg()))
	}
	require.NoError(t, stream.Err())
	require.GreaterOrEqual(t, len(events), 3)
	id := events[0].GetStarted().GetGenerationId()
	require.Regexp(t, `^gen_[a-z2-7]{26}$`, id)
	require.Equal(t, id, stream.ResponseHeader().Get(api.GenerationIDHeader))
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_STOP, events[len(events)-1].GetFinished().GetFinishReason())
	var text string
	for _, e := range events[1 : len(events)-1] {
		text += e.GetDelta().GetContent()
	}
	require.Equal(t, "one two three", text)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	started := make(chan string, 1)
	client := serve(t, &apitest.Echo{Delay: 50 * time.Millisecond, Started: started})
	stream, err := client.Generate(context.Background(), connect.NewRequest(generate(strings.Repeat("word ", 200), nil)))
	require.NoError(t, err)
	require.True(t, stream.Receive())
	id := <-started
	_, err = client.Cancel(context.Background(), connect.NewRequest(&ulanv1.CancelRequest{GenerationId: id}))
	require.NoError(t, err)
	var last *ulanv1.Finished
	for stream.Receive() {
		if f := stream.Msg().GetFinished(); f != nil {
			last = f
		}
	}
	require.NoError(t, stream.Err())
	require.NotNil(t, last)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_CANCELLED, last.FinishReason)
	require.Contains(t, last.Message, "Cancel request")

	_, err = client.Cancel(context.Background(), connect.NewRequest(&ulanv1.CancelRequest{GenerationId: id}))
	require.Equal(t, connect.CodeNotFound, connect.CodeOf(err), "a finished generation is gone")
	_, err = client.Cancel(context.Background(), connect.NewRequest(&ulanv1.CancelRequest{GenerationId: "nope"}))
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
	require.Contains(t, err.Error(), "generation_id")
}

// brokenInference breaks the stream contract in the ways the host must
// repair: it never finishes, or fails half-way with an internal error.
type brokenInference struct {
	apitest.Echo
	err error
}

func (b *brokenInference) Generate(_ context.Context, _ *ulanv1.GenerateRequest, out api.Stream) error {
	if err := out.Start(&ulanv1.Started{}); err != nil {
		return err
	}
	if err := out.Delta(&ulanv1.Delta{Index: 3}); err == nil {
		return errors.New("a delta for a choice that does not exist was accepted")
	}
	if err := out.Delta(&ulanv1.Delta{Content: "partial"}); err != nil {
		return err
	}
	return b.err
}

func TestEveryStreamEndsWithAReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		msg  string
	}{
		{"returns without finishing", nil, "pipeline ended without a finish reason"},
		{"internal error mid-stream", errors.New("/weights/secret.gguf: read failed"), "internal error"},
		{"known error mid-stream", api.ErrOverloaded, "overloaded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := serve(t, &brokenInference{err: tt.err})
			stream, err := client.Generate(context.Background(), connect.NewRequest(generate("x", nil)))
			require.NoError(t, err)
			var last *ulanv1.Finished
			for stream.Receive() {
				if f := stream.Msg().GetFinished(); f != nil {
					last = f
				}
			}
			require.NoError(t, stream.Err())
			require.NotNil(t, last)
			require.Equal(t, ulanv1.FinishReason_FINISH_REASON_ERROR, last.FinishReason)
			require.Equal(t, tt.msg, last.Message)
		})
	}
}

func TestOversizedRequestIsRefused(t *testing.T) {
	t.Parallel()
	a := api.New(api.Config{Inference: &apitest.Echo{}, Limits: api.Limits{MaxRequestBytes: 1024, MaxPromptBytes: 1024, MaxTokens: 16}})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	client := ulanv1connect.NewInferenceServiceClient(http.DefaultClient, srv.URL)
	_, err := client.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: strings.Repeat("x", 4096)}))
	require.Equal(t, connect.CodeResourceExhausted, connect.CodeOf(err), "%v", err)
}

func TestModelKVSizesValidated(t *testing.T) {
	t.Parallel()
	a := api.New(api.Config{Inference: &apitest.Echo{}, Limits: testLimits})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	client := ulanv1connect.NewModelServiceClient(http.DefaultClient, srv.URL)
	res, err := client.GetModel(context.Background(), connect.NewRequest(&ulanv1.GetModelRequest{KvCacheContextLengths: []uint64{1024, 65536, 1 << 20}}))
	require.NoError(t, err)
	require.Len(t, res.Msg.Model.KvCache, 3)
	_, err = client.GetModel(context.Background(), connect.NewRequest(&ulanv1.GetModelRequest{KvCacheContextLengths: []uint64{0}}))
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
	require.Contains(t, err.Error(), "kv_cache_context_lengths[0]")
}

// TestBadMaxTokensIsItsOwnProblem: a max_tokens out of range is reported
// alone, not also as a min_tokens above it.
func TestBadMaxTokensIsItsOwnProblem(t *testing.T) {
	t.Parallel()
	client := serve(t, &apitest.Echo{})
	for _, m := range []int32{-1, 0} {
		s, err := client.Generate(context.Background(), connect.NewRequest(generate("a", &ulanv1.SamplingParams{MaxTokens: i32(m)})))
		require.NoError(t, err)
		for s.Receive() {
		}
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(s.Err()))
		require.Contains(t, s.Err().Error(), "sampling.max_tokens")
		require.NotContains(t, s.Err().Error(), "min_tokens")
	}
}
