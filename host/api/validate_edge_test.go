package api_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/api/apitest"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// The edge tests send every RPC the requests a careless or hostile client
// would: missing fields, NaN and infinities, values at and past each bound,
// lists too long, contradictions, bytes that are not UTF-8. Each must get a
// clear error naming the field (InvalidArgument, or another code where one
// fits better), never a panic, a hang, a silent clamp or a half-run stream;
// the values at the bounds must pass.

// expect is what a request should get: code 0 is success; otherwise the
// code, and field, which the message must name as "field:".
type expect struct {
	code  connect.Code
	field string
}

var ok = expect{}

func invalid(field string) expect { return expect{connect.CodeInvalidArgument, field} }

// servers is one API served over HTTP/1.1 and h2c, with an inference client
// for each wire protocol.
type servers struct {
	url     string
	h1, h2c *http.Client
}

func serveAll(t *testing.T, inf api.Inference, lim api.Limits) *servers {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewUnstartedServer(api.New(api.Config{Inference: inf, Plugins: nil, Limits: lim, Logger: log}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	return &servers{
		url: srv.URL,
		h1:  srv.Client(),
		h2c: &http.Client{Transport: &http.Transport{Protocols: h2c}},
	}
}

// protocols are the wire protocols every check runs over.
var protocols = []struct {
	name string
	h2   bool
	json bool
	opts []connect.ClientOption
}{
	{"connect", false, false, nil},
	{"connect-json", false, true, []connect.ClientOption{connect.WithProtoJSON()}},
	{"grpc", true, false, []connect.ClientOption{connect.WithGRPC()}},
	{"grpc-web", false, false, []connect.ClientOption{connect.WithGRPCWeb()}},
}

func (s *servers) client(h2 bool) *http.Client {
	if h2 {
		return s.h2c
	}
	return s.h1
}

func (s *servers) inference(h2 bool, opts ...connect.ClientOption) ulanv1connect.InferenceServiceClient {
	return ulanv1connect.NewInferenceServiceClient(s.client(h2), s.url, opts...)
}

func (s *servers) model(h2 bool, opts ...connect.ClientOption) ulanv1connect.ModelServiceClient {
	return ulanv1connect.NewModelServiceClient(s.client(h2), s.url, opts...)
}

// drain reads a stream to its end. It returns the stream's error, whether
// any message came, and the finished messages.
func drain[T any](s interface {
	Receive() bool
	Msg() *T
	Err() error
	Close() error
}, finished func(*T) *ulanv1.Finished) (err error, got bool, fins []*ulanv1.Finished) {
	defer s.Close()
	for s.Receive() {
		got = true
		if f := finished(s.Msg()); f != nil {
			fins = append(fins, f)
		}
	}
	return s.Err(), got, fins
}

// checkOutcome asserts that err is what want says.
func checkOutcome(t *testing.T, want expect, err error) {
	t.Helper()
	if want.code == 0 {
		require.NoError(t, err)
		return
	}
	require.Error(t, err)
	require.Equal(t, want.code, connect.CodeOf(err), "%v", err)
	require.Contains(t, err.Error(), want.field+":", "the message must name the field")
}

// checkStream asserts the outcome of a Generate or Chat stream: an error
// before any message for a bad request; otherwise a stream whose first
// choice finishes without an error.
func checkStream(t *testing.T, want expect, err error, got bool, fins []*ulanv1.Finished) {
	t.Helper()
	checkOutcome(t, want, err)
	if want.code != 0 {
		require.False(t, got, "a bad request must fail before its stream starts")
		return
	}
	require.NotEmpty(t, fins)
	// Echo answers choice 0 only; the host finishes the others.
	require.NotEqual(t, ulanv1.FinishReason_FINISH_REASON_ERROR, fins[0].FinishReason, "%s", fins[0].Message)
}

var (
	nan    = float32(math.NaN())
	posInf = float32(math.Inf(1))
	negInf = float32(math.Inf(-1))
	// huge is the largest float32.
	huge = float32(math.MaxFloat32)
)

// floatField names a float field of SamplingParams, how to set it, and
// which of the probe values below it accepts.
type floatField struct {
	name  string
	set   func(*ulanv1.SamplingParams, float32)
	valid []float32
	bad   []float32
}

func ptr[T any](v T) *T { return &v }

// floatFields are SamplingParams' float fields with values at and past
// their bounds (proto/ulan/v1/inference.proto).
var floatFields = []floatField{
	{"temperature", func(s *ulanv1.SamplingParams, v float32) { s.Temperature = &v },
		[]float32{0, 1e-30, 0.7, 100}, []float32{-1e-30, -1, math.Nextafter32(100, 200), 1e30}},
	{"top_p", func(s *ulanv1.SamplingParams, v float32) { s.TopP = &v },
		[]float32{1e-30, 0.5, 1}, []float32{0, -0.1, math.Nextafter32(1, 2), 2}},
	{"min_p", func(s *ulanv1.SamplingParams, v float32) { s.MinP = &v },
		[]float32{0, 0.05, 1}, []float32{-0.1, 1.5}},
	{"typical_p", func(s *ulanv1.SamplingParams, v float32) { s.TypicalP = &v },
		[]float32{1e-30, 0.9, 1}, []float32{0, -1, 1.01}},
	{"repetition_penalty", func(s *ulanv1.SamplingParams, v float32) { s.RepetitionPenalty = &v },
		[]float32{1e-30, 1, 10}, []float32{0, -1, 10.5}},
	{"presence_penalty", func(s *ulanv1.SamplingParams, v float32) { s.PresencePenalty = &v },
		[]float32{-2, 0, 2}, []float32{-2.5, 2.5}},
	{"frequency_penalty", func(s *ulanv1.SamplingParams, v float32) { s.FrequencyPenalty = &v },
		[]float32{-2, 0, 2}, []float32{-2.5, 2.5}},
}

// samplingCase is a SamplingParams and what both Generate and Chat should
// make of it.
type samplingCase struct {
	name string
	s    *ulanv1.SamplingParams
	want expect
}

func ids(n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i)
	}
	return out
}

func bias(n int, v float32) map[uint32]float32 {
	m := make(map[uint32]float32, n)
	for i := range n {
		m[uint32(i)] = v
	}
	return m
}

func samplingCases() []samplingCase {
	var cases []samplingCase
	for _, f := range floatFields {
		field := "sampling." + f.name
		for _, v := range f.valid {
			s := &ulanv1.SamplingParams{}
			f.set(s, v)
			cases = append(cases, samplingCase{fmt.Sprintf("%s %v", f.name, v), s, ok})
		}
		for _, v := range append([]float32{nan, posInf, negInf, huge, -huge}, f.bad...) {
			s := &ulanv1.SamplingParams{}
			f.set(s, v)
			cases = append(cases, samplingCase{fmt.Sprintf("%s %v", f.name, v), s, invalid(field)})
		}
	}
	for _, v := range []float32{nan, posInf, negInf, huge, -huge, 100.5, -100.5} {
		cases = append(cases, samplingCase{fmt.Sprintf("logit_bias %v", v),
			&ulanv1.SamplingParams{LogitBias: map[uint32]float32{42: 1, 7: v}}, invalid("sampling.logit_bias[7]")})
	}
	maxTokens := int32(testLimits.MaxTokens)
	cases = append(cases, []samplingCase{
		{"logit_bias -100 and 100", &ulanv1.SamplingParams{LogitBias: map[uint32]float32{1: -100, 2: 100}}, ok},
		{"logit_bias at most entries", &ulanv1.SamplingParams{LogitBias: bias(1024, 1)}, ok},
		{"logit_bias too many entries", &ulanv1.SamplingParams{LogitBias: bias(1025, 1)}, invalid("sampling.logit_bias")},

		{"top_k 0 disables", &ulanv1.SamplingParams{TopK: i32(0)}, ok},
		{"top_k larger than any vocabulary keeps all", &ulanv1.SamplingParams{TopK: i32(math.MaxInt32)}, ok},
		{"top_k -1", &ulanv1.SamplingParams{TopK: i32(-1)}, invalid("sampling.top_k")},
		{"top_k min int32", &ulanv1.SamplingParams{TopK: i32(math.MinInt32)}, invalid("sampling.top_k")},
		{"penalty_window 0", &ulanv1.SamplingParams{PenaltyWindow: i32(0)}, ok},
		{"penalty_window max int32", &ulanv1.SamplingParams{PenaltyWindow: i32(math.MaxInt32)}, ok},
		{"penalty_window min int32", &ulanv1.SamplingParams{PenaltyWindow: i32(math.MinInt32)}, invalid("sampling.penalty_window")},

		{"max_tokens 1", &ulanv1.SamplingParams{MaxTokens: i32(1)}, ok},
		{"max_tokens at the limit", &ulanv1.SamplingParams{MaxTokens: i32(maxTokens)}, ok},
		{"max_tokens over the limit", &ulanv1.SamplingParams{MaxTokens: i32(maxTokens + 1)}, invalid("sampling.max_tokens")},
		{"max_tokens 0", &ulanv1.SamplingParams{MaxTokens: i32(0)}, invalid("sampling.max_tokens")},
		{"max_tokens -1", &ulanv1.SamplingParams{MaxTokens: i32(-1)}, invalid("sampling.max_tokens")},
		{"max_tokens min int32", &ulanv1.SamplingParams{MaxTokens: i32(math.MinInt32)}, invalid("sampling.max_tokens")},
		{"max_tokens max int32", &ulanv1.SamplingParams{MaxTokens: i32(math.MaxInt32)}, invalid("sampling.max_tokens")},
		{"min_tokens equal to max_tokens", &ulanv1.SamplingParams{MaxTokens: i32(8), MinTokens: 8}, ok},
		{"min_tokens at the limit", &ulanv1.SamplingParams{MinTokens: maxTokens}, ok},
		{"min_tokens over max_tokens", &ulanv1.SamplingParams{MaxTokens: i32(8), MinTokens: 9}, invalid("sampling.min_tokens")},
		{"min_tokens over the limit", &ulanv1.SamplingParams{MinTokens: maxTokens + 1}, invalid("sampling.min_tokens")},
		{"min_tokens max int32", &ulanv1.SamplingParams{MinTokens: math.MaxInt32}, invalid("sampling.min_tokens")},
		{"min_tokens -1", &ulanv1.SamplingParams{MinTokens: -1}, invalid("sampling.min_tokens")},
		{"min_tokens min int32", &ulanv1.SamplingParams{MinTokens: math.MinInt32}, invalid("sampling.min_tokens")},

		{"seed 0", &ulanv1.SamplingParams{Seed: ptr(uint64(0))}, ok},
		{"seed max uint64", &ulanv1.SamplingParams{Seed: ptr(uint64(math.MaxUint64))}, ok},

		{"logprobs with 20 alternatives", &ulanv1.SamplingParams{Logprobs: true, TopLogprobs: 20}, ok},
		{"top_logprobs 21", &ulanv1.SamplingParams{Logprobs: true, TopLogprobs: 21}, invalid("sampling.top_logprobs")},
		{"top_logprobs -1", &ulanv1.SamplingParams{Logprobs: true, TopLogprobs: -1}, invalid("sampling.top_logprobs")},
		{"top_logprobs max int32", &ulanv1.SamplingParams{Logprobs: true, TopLogprobs: math.MaxInt32}, invalid("sampling.top_logprobs")},
		{"top_logprobs without logprobs", &ulanv1.SamplingParams{TopLogprobs: 1}, invalid("sampling.top_logprobs")},
		{"n 0 is one choice", &ulanv1.SamplingParams{N: 0}, ok},
		{"n 16", &ulanv1.SamplingParams{N: 16}, ok},
		{"n 17", &ulanv1.SamplingParams{N: 17}, invalid("sampling.n")},
		{"n -1", &ulanv1.SamplingParams{N: -1}, invalid("sampling.n")},
		{"n max int32", &ulanv1.SamplingParams{N: math.MaxInt32}, invalid("sampling.n")},
		{"n min int32", &ulanv1.SamplingParams{N: math.MinInt32}, invalid("sampling.n")},

		{"16 stop strings of 256 bytes", &ulanv1.SamplingParams{Stop: repeat(strings.Repeat("s", 256), 16)}, ok},
		{"17 stop strings", &ulanv1.SamplingParams{Stop: repeat("s", 17)}, invalid("sampling.stop")},
		{"10000 stop strings", &ulanv1.SamplingParams{Stop: repeat("s", 10000)}, invalid("sampling.stop")},
		{"empty stop string", &ulanv1.SamplingParams{Stop: []string{"a", ""}}, invalid("sampling.stop[1]")},
		{"stop string of 257 bytes", &ulanv1.SamplingParams{Stop: []string{strings.Repeat("s", 257)}}, invalid("sampling.stop[0]")},
		{"stop string of 64 KiB", &ulanv1.SamplingParams{Stop: []string{strings.Repeat("s", 64<<10)}}, invalid("sampling.stop[0]")},
		{"256 stop token ids", &ulanv1.SamplingParams{StopTokenIds: ids(256)}, ok},
		{"257 stop token ids", &ulanv1.SamplingParams{StopTokenIds: ids(257)}, invalid("sampling.stop_token_ids")},
		{"131073 allowed token ids", &ulanv1.SamplingParams{AllowedTokenIds: ids(1<<17 + 1)}, invalid("sampling.allowed_token_ids")},
		{"131073 banned token ids", &ulanv1.SamplingParams{BannedTokenIds: ids(1<<17 + 1)}, invalid("sampling.banned_token_ids")},
		{"every allowed token banned", &ulanv1.SamplingParams{AllowedTokenIds: []uint32{5, 6}, BannedTokenIds: []uint32{6, 7, 5}},
			invalid("sampling.allowed_token_ids")},
		{"some allowed tokens banned", &ulanv1.SamplingParams{AllowedTokenIds: []uint32{5, 6}, BannedTokenIds: []uint32{6}}, ok},
		{"every allowed token a stop token before min_tokens",
			&ulanv1.SamplingParams{AllowedTokenIds: []uint32{5}, StopTokenIds: []uint32{5}, MinTokens: 2},
			invalid("sampling.allowed_token_ids")},
		{"allowed stop tokens without min_tokens", &ulanv1.SamplingParams{AllowedTokenIds: []uint32{5}, StopTokenIds: []uint32{5}}, ok},
	}...)
	return cases
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// pluginCases are plugin selections that are wrong whatever the
// configuration (names outside config.NamePattern, too many hooks).
func pluginCases() []struct {
	name string
	p    *ulanv1.PluginSelection
	want expect
} {
	return []struct {
		name string
		p    *ulanv1.PluginSelection
		want expect
	}{
		{"empty selection", &ulanv1.PluginSelection{}, ok},
		{"pipeline with a space", &ulanv1.PluginSelection{Pipeline: "my pipeline"}, invalid("plugins.pipeline")},
		{"pipeline upper case", &ulanv1.PluginSelection{Pipeline: "Default"}, invalid("plugins.pipeline")},
		{"pipeline of 65 bytes", &ulanv1.PluginSelection{Pipeline: strings.Repeat("p", 65)}, invalid("plugins.pipeline")},
		{"pipeline of 1 MB is clipped in the message", &ulanv1.PluginSelection{Pipeline: strings.Repeat("P", 100_000)}, invalid("plugins.pipeline")},
		{"sampler path", &ulanv1.PluginSelection{Sampler: "../etc/passwd"}, invalid("plugins.sampler")},
		{"empty hook", &ulanv1.PluginSelection{Hooks: []string{""}}, invalid("plugins.hooks[0]")},
		{"bad hook", &ulanv1.PluginSelection{Hooks: []string{"ok", "Not OK"}}, invalid("plugins.hooks[1]")},
		{"duplicate hook", &ulanv1.PluginSelection{Hooks: []string{"a", "b", "a"}}, invalid("plugins.hooks[2]")},
		{"17 hooks", &ulanv1.PluginSelection{Hooks: hookNames(17)}, invalid("plugins.hooks")},
		{"params for a bad id", &ulanv1.PluginSelection{Params: map[string]*structpb.Struct{"Bad Id": {}}}, invalid("plugins.params")},
		{"params for an empty id", &ulanv1.PluginSelection{Params: map[string]*structpb.Struct{"": {}}}, invalid("plugins.params")},
	}
}

func hookNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("h%d", i)
	}
	return out
}

var user = &ulanv1.Message{Role: ulanv1.Role_ROLE_USER, Content: "hi"}

// TestSamplingEdges sends every sampling case through Generate and Chat
// over each wire protocol.
func TestSamplingEdges(t *testing.T) {
	t.Parallel()
	s := serveAll(t, &apitest.Echo{}, testLimits)
	for _, proto := range protocols {
		client := s.inference(proto.h2, proto.opts...)
		for _, tc := range samplingCases() {
			t.Run(proto.name+"/generate/"+tc.name, func(t *testing.T) {
				t.Parallel()
				st, err := client.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "a", Sampling: tc.s}))
				require.NoError(t, err)
				err, got, fins := drain(st, (*ulanv1.GenerateResponse).GetFinished)
				checkStream(t, tc.want, err, got, fins)
			})
			t.Run(proto.name+"/chat/"+tc.name, func(t *testing.T) {
				t.Parallel()
				st, err := client.Chat(context.Background(), connect.NewRequest(&ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, Sampling: tc.s}))
				require.NoError(t, err)
				err, got, fins := drain(st, (*ulanv1.ChatResponse).GetFinished)
				checkStream(t, tc.want, err, got, fins)
			})
		}
	}
}

// TestPluginSelectionEdges checks plugin names in Generate and Chat.
func TestPluginSelectionEdges(t *testing.T) {
	t.Parallel()
	client := serveAll(t, &apitest.Echo{}, testLimits).inference(false)
	for _, tc := range pluginCases() {
		t.Run("generate/"+tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := client.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "a", Plugins: tc.p}))
			require.NoError(t, err)
			err, got, fins := drain(st, (*ulanv1.GenerateResponse).GetFinished)
			checkStream(t, tc.want, err, got, fins)
			if err != nil {
				require.Less(t, len(err.Error()), 1024, "a huge bad value must not come back in full")
			}
		})
		t.Run("chat/"+tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := client.Chat(context.Background(), connect.NewRequest(&ulanv1.ChatRequest{Messages: []*ulanv1.Message{user}, Plugins: tc.p}))
			require.NoError(t, err)
			err, got, fins := drain(st, (*ulanv1.ChatResponse).GetFinished)
			checkStream(t, tc.want, err, got, fins)
		})
	}
}

// TestGenerateEdges checks GenerateRequest's own fields.
func TestGenerateEdges(t *testing.T) {
	t.Parallel()
	client := serveAll(t, &apitest.Echo{}, testLimits).inference(false)
	maxPrompt := int(testLimits.MaxPromptBytes)
	tests := []struct {
		name string
		req  *ulanv1.GenerateRequest
		want expect
	}{
		{"empty request", &ulanv1.GenerateRequest{}, invalid("prompt")},
		{"add_special_tokens alone is no prompt", &ulanv1.GenerateRequest{AddSpecialTokens: true}, invalid("prompt")},
		{"empty token ids", &ulanv1.GenerateRequest{PromptTokenIds: []uint32{}}, invalid("prompt")},
		{"both prompts", &ulanv1.GenerateRequest{Prompt: "a", PromptTokenIds: []uint32{1}}, invalid("prompt")},
		{"prompt at the byte limit", &ulanv1.GenerateRequest{Prompt: strings.Repeat("x", maxPrompt)}, ok},
		{"prompt over the byte limit", &ulanv1.GenerateRequest{Prompt: strings.Repeat("x", maxPrompt+1)}, invalid("prompt")},
		{"whitespace prompt", &ulanv1.GenerateRequest{Prompt: " "}, ok},
		{"NUL prompt", &ulanv1.GenerateRequest{Prompt: "\x00"}, ok},
		{"token ids", &ulanv1.GenerateRequest{PromptTokenIds: []uint32{104, 105}}, ok},
		{"model of 256 bytes", &ulanv1.GenerateRequest{Prompt: "a", Model: strings.Repeat("m", 256)}, ok},
		{"model of 257 bytes", &ulanv1.GenerateRequest{Prompt: "a", Model: strings.Repeat("m", 257)}, invalid("model")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := client.Generate(context.Background(), connect.NewRequest(tc.req))
			require.NoError(t, err)
			err, got, fins := drain(st, (*ulanv1.GenerateResponse).GetFinished)
			checkStream(t, tc.want, err, got, fins)
		})
	}
}

func msgs(ms ...*ulanv1.Message) []*ulanv1.Message { return ms }

func call(id, name, args string) *ulanv1.Message {
	return &ulanv1.Message{Role: ulanv1.Role_ROLE_ASSISTANT, ToolCalls: []*ulanv1.ToolCall{{Id: id, Name: name, Arguments: args}}}
}

func toolReply(id string) *ulanv1.Message {
	return &ulanv1.Message{Role: ulanv1.Role_ROLE_TOOL, ToolCallId: id, Content: "ok"}
}

// TestChatEdges checks ChatRequest's own fields.
func TestChatEdges(t *testing.T) {
	t.Parallel()
	client := serveAll(t, &apitest.Echo{}, testLimits).inference(false)
	maxPrompt := int(testLimits.MaxPromptBytes)
	many := make([]*ulanv1.Message, 4097)
	for i := range many {
		many[i] = user
	}
	tools := func(n int) []*ulanv1.Tool {
		out := make([]*ulanv1.Tool, n)
		for i := range out {
			out[i] = &ulanv1.Tool{Name: fmt.Sprintf("f%d", i)}
		}
		return out
	}
	mode := func(m ulanv1.ToolChoiceMode) *ulanv1.ToolChoice {
		return &ulanv1.ToolChoice{Choice: &ulanv1.ToolChoice_Mode{Mode: m}}
	}
	tests := []struct {
		name string
		req  *ulanv1.ChatRequest
		want expect
	}{
		{"no messages", &ulanv1.ChatRequest{}, invalid("messages")},
		{"empty message list", &ulanv1.ChatRequest{Messages: []*ulanv1.Message{}}, invalid("messages")},
		{"4097 messages", &ulanv1.ChatRequest{Messages: many}, invalid("messages")},
		{"4096 messages", &ulanv1.ChatRequest{Messages: many[:4096]}, ok},
		{"role unspecified", &ulanv1.ChatRequest{Messages: msgs(&ulanv1.Message{Content: "x"})}, invalid("messages[0].role")},
		{"role 6", &ulanv1.ChatRequest{Messages: msgs(user, &ulanv1.Message{Role: 6, Content: "x"})}, invalid("messages[1].role")},
		{"role -1", &ulanv1.ChatRequest{Messages: msgs(&ulanv1.Message{Role: -1, Content: "x"})}, invalid("messages[0].role")},
		{"role max int32", &ulanv1.ChatRequest{Messages: msgs(&ulanv1.Message{Role: math.MaxInt32, Content: "x"})}, invalid("messages[0].role")},
		{"every role", &ulanv1.ChatRequest{Messages: msgs(
			&ulanv1.Message{Role: ulanv1.Role_ROLE_SYSTEM, Content: "s"}, &ulanv1.Message{Role: ulanv1.Role_ROLE_DEVELOPER, Content: "d"},
			user, call("c1", "f", "{}"), toolReply("c1"), &ulanv1.Message{Role: ulanv1.Role_ROLE_ASSISTANT, Content: "a"}, user)}, ok},
		{"text at the byte limit", &ulanv1.ChatRequest{Messages: msgs(&ulanv1.Message{Role: ulanv1.Role_ROLE_USER, Content: strings.Repeat("x", maxPrompt)})}, ok},
		{"text over the byte limit", &ulanv1.ChatRequest{Messages: msgs(
			&ulanv1.Message{Role: ulanv1.Role_ROLE_ASSISTANT, Content: strings.Repeat("x", maxPrompt/2), Reasoning: strings.Repeat("x", maxPrompt/2)}, user)},
			invalid("messages")},
		{"tool arguments over the byte limit", &ulanv1.ChatRequest{Messages: msgs(user,
			call("c1", "f", `{"a":"`+strings.Repeat("x", maxPrompt)+`"}`))}, invalid("messages")},
		{"reasoning on a user turn", &ulanv1.ChatRequest{Messages: msgs(&ulanv1.Message{Role: ulanv1.Role_ROLE_USER, Reasoning: "r"})}, invalid("messages[0].reasoning")},
		{"tool calls on a user turn", &ulanv1.ChatRequest{Messages: msgs(&ulanv1.Message{Role: ulanv1.Role_ROLE_USER,
			ToolCalls: []*ulanv1.ToolCall{{Id: "c1", Name: "f", Arguments: "{}"}}})}, invalid("messages[0].tool_calls")},
		{"tool call without id", &ulanv1.ChatRequest{Messages: msgs(user, call("", "f", "{}"))}, invalid("messages[1].tool_calls[0].id")},
		{"tool call id of 257 bytes", &ulanv1.ChatRequest{Messages: msgs(user, call(strings.Repeat("c", 257), "f", "{}"))}, invalid("messages[1].tool_calls[0].id")},
		{"tool call without name", &ulanv1.ChatRequest{Messages: msgs(user, call("c1", "", "{}"))}, invalid("messages[1].tool_calls[0].name")},
		{"tool call name of 65 bytes", &ulanv1.ChatRequest{Messages: msgs(user, call("c1", strings.Repeat("f", 65), "{}"))}, invalid("messages[1].tool_calls[0].name")},
		{"tool call arguments empty", &ulanv1.ChatRequest{Messages: msgs(user, call("c1", "f", ""))}, invalid("messages[1].tool_calls[0].arguments")},
		{"tool call arguments null", &ulanv1.ChatRequest{Messages: msgs(user, call("c1", "f", "null"))}, invalid("messages[1].tool_calls[0].arguments")},
		{"tool call arguments an array", &ulanv1.ChatRequest{Messages: msgs(user, call("c1", "f", "[]"))}, invalid("messages[1].tool_calls[0].arguments")},
		{"tool call arguments trailing junk", &ulanv1.ChatRequest{Messages: msgs(user, call("c1", "f", "{} x"))}, invalid("messages[1].tool_calls[0].arguments")},
		{"129 tool calls", &ulanv1.ChatRequest{Messages: msgs(user, &ulanv1.Message{Role: ulanv1.Role_ROLE_ASSISTANT, ToolCalls: manyCalls(129)})}, invalid("messages[1].tool_calls")},
		{"tool reply without id", &ulanv1.ChatRequest{Messages: msgs(user, call("c1", "f", "{}"), &ulanv1.Message{Role: ulanv1.Role_ROLE_TOOL, Content: "x"})}, invalid("messages[2].tool_call_id")},
		{"tool reply to no call", &ulanv1.ChatRequest{Messages: msgs(user, toolReply("c1"))}, invalid("messages[1].tool_call_id")},
		{"tool reply before its call", &ulanv1.ChatRequest{Messages: msgs(user, toolReply("c1"), call("c1", "f", "{}"))}, invalid("messages[1].tool_call_id")},
		{"tool_call_id on a user turn", &ulanv1.ChatRequest{Messages: msgs(&ulanv1.Message{Role: ulanv1.Role_ROLE_USER, ToolCallId: "c1", Content: "x"})}, invalid("messages[0].tool_call_id")},
		{"author name of 257 bytes", &ulanv1.ChatRequest{Messages: msgs(&ulanv1.Message{Role: ulanv1.Role_ROLE_USER, Name: strings.Repeat("n", 257), Content: "x"})}, invalid("messages[0].name")},
		{"128 tools", &ulanv1.ChatRequest{Messages: msgs(user), Tools: tools(128)}, ok},
		{"129 tools", &ulanv1.ChatRequest{Messages: msgs(user), Tools: tools(129)}, invalid("tools")},
		{"tool without name", &ulanv1.ChatRequest{Messages: msgs(user), Tools: []*ulanv1.Tool{{}}}, invalid("tools[0].name")},
		{"tool defined twice", &ulanv1.ChatRequest{Messages: msgs(user), Tools: []*ulanv1.Tool{{Name: "f"}, {Name: "f"}}}, invalid("tools[1].name")},
		{"tool choice auto without tools", &ulanv1.ChatRequest{Messages: msgs(user), ToolChoice: mode(ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_AUTO)}, ok},
		{"tool choice none with tools", &ulanv1.ChatRequest{Messages: msgs(user), Tools: tools(1), ToolChoice: mode(ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE)}, ok},
		{"tool choice required without tools", &ulanv1.ChatRequest{Messages: msgs(user), ToolChoice: mode(ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED)}, invalid("tool_choice.mode")},
		{"tool choice mode 4", &ulanv1.ChatRequest{Messages: msgs(user), ToolChoice: mode(4)}, invalid("tool_choice.mode")},
		{"tool choice of an undefined tool", &ulanv1.ChatRequest{Messages: msgs(user), Tools: tools(1), ToolChoice: &ulanv1.ToolChoice{Choice: &ulanv1.ToolChoice_Tool{Tool: "g"}}}, invalid("tool_choice.tool")},
		{"tool choice of an empty name", &ulanv1.ChatRequest{Messages: msgs(user), ToolChoice: &ulanv1.ToolChoice{Choice: &ulanv1.ToolChoice_Tool{}}}, invalid("tool_choice.tool")},
		{"thinking 4", &ulanv1.ChatRequest{Messages: msgs(user), Thinking: 4}, invalid("thinking")},
		{"thinking -1", &ulanv1.ChatRequest{Messages: msgs(user), Thinking: -1}, invalid("thinking")},
		{"model of 257 bytes", &ulanv1.ChatRequest{Messages: msgs(user), Model: strings.Repeat("m", 257)}, invalid("model")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := client.Chat(context.Background(), connect.NewRequest(tc.req))
			require.NoError(t, err)
			err, got, fins := drain(st, (*ulanv1.ChatResponse).GetFinished)
			checkStream(t, tc.want, err, got, fins)
		})
	}
}

func manyCalls(n int) []*ulanv1.ToolCall {
	out := make([]*ulanv1.ToolCall, n)
	for i := range out {
		out[i] = &ulanv1.ToolCall{Id: fmt.Sprintf("c%d", i), Name: "f", Arguments: "{}"}
	}
	return out
}

// TestUnaryEdges checks Tokenize, Detokenize, Cancel and GetModel.
func TestUnaryEdges(t *testing.T) {
	t.Parallel()
	s := serveAll(t, &apitest.Echo{}, testLimits)
	inf, mod := s.inference(false), s.model(false)
	ctx := context.Background()
	maxPrompt := int(testLimits.MaxPromptBytes)
	tests := []struct {
		name string
		do   func() error
		want expect
	}{
		{"tokenize empty text", func() error {
			_, err := inf.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{}))
			return err
		}, ok},
		{"tokenize text at the limit", func() error {
			_, err := inf.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{Text: strings.Repeat("x", maxPrompt)}))
			return err
		}, ok},
		{"tokenize text over the limit", func() error {
			_, err := inf.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{Text: strings.Repeat("x", maxPrompt+1)}))
			return err
		}, invalid("text")},
		{"tokenize with a bad pipeline name", func() error {
			_, err := inf.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{Text: "x", Pipeline: "No Such"}))
			return err
		}, invalid("pipeline")},
		{"tokenize with a long model name", func() error {
			_, err := inf.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{Text: "x", Model: strings.Repeat("m", 257)}))
			return err
		}, invalid("model")},
		{"detokenize no ids", func() error {
			_, err := inf.Detokenize(ctx, connect.NewRequest(&ulanv1.DetokenizeRequest{}))
			return err
		}, ok},
		{"detokenize with a bad pipeline name", func() error {
			_, err := inf.Detokenize(ctx, connect.NewRequest(&ulanv1.DetokenizeRequest{TokenIds: []uint32{1}, Pipeline: "x y"}))
			return err
		}, invalid("pipeline")},
		{"detokenize with a long model name", func() error {
			_, err := inf.Detokenize(ctx, connect.NewRequest(&ulanv1.DetokenizeRequest{Model: strings.Repeat("m", 257)}))
			return err
		}, invalid("model")},
		{"cancel without id", func() error {
			_, err := inf.Cancel(ctx, connect.NewRequest(&ulanv1.CancelRequest{}))
			return err
		}, invalid("generation_id")},
		{"cancel a malformed id", func() error {
			_, err := inf.Cancel(ctx, connect.NewRequest(&ulanv1.CancelRequest{GenerationId: "gen_" + strings.Repeat("A", 26)}))
			return err
		}, invalid("generation_id")},
		{"cancel a huge id", func() error {
			_, err := inf.Cancel(ctx, connect.NewRequest(&ulanv1.CancelRequest{GenerationId: strings.Repeat("g", 100_000)}))
			if err != nil && len(err.Error()) > 1024 {
				return errors.New("the error repeats the whole id")
			}
			return err
		}, invalid("generation_id")},
		{"cancel an unknown id", func() error {
			_, err := inf.Cancel(ctx, connect.NewRequest(&ulanv1.CancelRequest{GenerationId: "gen_" + strings.Repeat("a", 26)}))
			return err
		}, expect{connect.CodeNotFound, "generation gen_" + strings.Repeat("a", 26)}},
		{"model sizes at the bounds", func() error {
			_, err := mod.GetModel(ctx, connect.NewRequest(&ulanv1.GetModelRequest{KvCacheContextLengths: []uint64{1, 1 << 32}}))
			return err
		}, ok},
		{"model size of 0 tokens", func() error {
			_, err := mod.GetModel(ctx, connect.NewRequest(&ulanv1.GetModelRequest{KvCacheContextLengths: []uint64{1, 0}}))
			return err
		}, invalid("kv_cache_context_lengths[1]")},
		{"model size past 2^32", func() error {
			_, err := mod.GetModel(ctx, connect.NewRequest(&ulanv1.GetModelRequest{KvCacheContextLengths: []uint64{1<<32 + 1}}))
			return err
		}, invalid("kv_cache_context_lengths[0]")},
		{"model size of max uint64", func() error {
			_, err := mod.GetModel(ctx, connect.NewRequest(&ulanv1.GetModelRequest{KvCacheContextLengths: []uint64{math.MaxUint64}}))
			return err
		}, invalid("kv_cache_context_lengths[0]")},
		{"17 model sizes", func() error {
			_, err := mod.GetModel(ctx, connect.NewRequest(&ulanv1.GetModelRequest{KvCacheContextLengths: make([]uint64, 17)}))
			return err
		}, invalid("kv_cache_context_lengths")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.do()
			if tc.want.code == connect.CodeNotFound {
				require.Equal(t, connect.CodeNotFound, connect.CodeOf(err), "%v", err)
				require.Contains(t, err.Error(), tc.want.field)
				return
			}
			checkOutcome(t, tc.want, err)
		})
	}
}

// wire is a request as raw protobuf bytes: what a client that does not
// check UTF-8 (or a hostile one) sends, which a generated client refuses to
// encode.
type wire []byte

// rawCodec sends a *wire as it is and decodes responses as protobuf.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(m any) ([]byte, error) {
	if w, ok := m.(*wire); ok {
		return *w, nil
	}
	return proto.Marshal(m.(proto.Message))
}

func (rawCodec) Unmarshal(b []byte, m any) error { return proto.Unmarshal(b, m.(proto.Message)) }

// field encodes one length-delimited field: a string, or a message when v
// is itself an encoding.
func field(num protowire.Number, v string) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// TestInvalidUTF8 sends strings that are not UTF-8 in each text field; the
// protobuf decoder refuses them (proto3 strings must be UTF-8), and the
// client must hear which field it was.
func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	s := serveAll(t, &apitest.Echo{}, testLimits)
	const bad = "ok\xff\xfe"
	userMsg := func(content string) string {
		return string(append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3), field(2, content)...))
	}
	streams := []struct {
		name      string
		procedure string
		req       []byte
		field     string
	}{
		{"generate prompt", ulanv1connect.InferenceServiceGenerateProcedure, field(1, bad), "prompt"},
		{"generate model", ulanv1connect.InferenceServiceGenerateProcedure, append(field(1, "a"), field(6, bad)...), "model"},
		{"generate stop", ulanv1connect.InferenceServiceGenerateProcedure, append(field(1, "a"), field(4, string(field(11, bad)))...), "sampling.stop[0]"},
		{"generate pipeline", ulanv1connect.InferenceServiceGenerateProcedure, append(field(1, "a"), field(5, string(field(1, bad)))...), "plugins.pipeline"},
		{"generate hook", ulanv1connect.InferenceServiceGenerateProcedure, append(field(1, "a"), field(5, string(append(field(3, "ok"), field(3, bad)...)))...), "plugins.hooks[1]"},
		{"chat content", ulanv1connect.InferenceServiceChatProcedure, append(field(1, userMsg("hi")), field(1, userMsg(bad))...), "messages[1].content"},
		{"generate params key", ulanv1connect.InferenceServiceGenerateProcedure,
			append(field(1, "a"), field(5, string(field(4, string(field(1, bad)))))...), "plugins.params"},
		{"generate params value", ulanv1connect.InferenceServiceGenerateProcedure,
			append(field(1, "a"), field(5, string(field(4, string(append(field(1, "redact"), field(2, string(field(1, string(append(field(1, "k"), field(2, string(field(3, bad)))...)))))...)))))...),
			"plugins.params[redact].fields[k].string_value"},
		{"chat tool call argument", ulanv1connect.InferenceServiceChatProcedure,
			append(field(1, userMsg("hi")), field(1, string(field(4, string(append(field(1, "c1"), field(3, bad)...)))))...), "messages[1].tool_calls[0].arguments"},
		{"chat tool name", ulanv1connect.InferenceServiceChatProcedure, append(field(1, userMsg("hi")), field(2, string(field(1, bad)))...), "tools[0].name"},
	}
	unary := []struct {
		name      string
		procedure string
		req       []byte
		field     string
	}{
		{"tokenize text", ulanv1connect.InferenceServiceTokenizeProcedure, field(1, bad), "text"},
		{"detokenize pipeline", ulanv1connect.InferenceServiceDetokenizeProcedure, field(3, bad), "pipeline"},
		{"cancel id", ulanv1connect.InferenceServiceCancelProcedure, field(1, bad), "generation_id"},
	}
	for _, p := range protocols {
		if p.json {
			continue // JSON cannot carry bytes that are not UTF-8 as a string
		}
		for _, tc := range streams {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				client := connect.NewClient[wire, ulanv1.GenerateResponse](s.client(p.h2), s.url+tc.procedure,
					append([]connect.ClientOption{connect.WithCodec(rawCodec{})}, p.opts...)...)
				req := wire(tc.req)
				st, err := client.CallServerStream(context.Background(), connect.NewRequest(&req))
				require.NoError(t, err)
				err, got, _ := drain(st, (*ulanv1.GenerateResponse).GetFinished)
				require.False(t, got)
				require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
				require.Contains(t, err.Error(), tc.field+": is not valid UTF-8")
			})
		}
		for _, tc := range unary {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				client := connect.NewClient[wire, ulanv1.TokenizeResponse](s.client(p.h2), s.url+tc.procedure,
					append([]connect.ClientOption{connect.WithCodec(rawCodec{})}, p.opts...)...)
				req := wire(tc.req)
				_, err := client.CallUnary(context.Background(), connect.NewRequest(&req))
				require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
				require.Contains(t, err.Error(), tc.field+": is not valid UTF-8")
			})
		}
	}
}

// jsonRawCodec sends a *wire (JSON text here) as it is and decodes
// responses as protobuf JSON.
type jsonRawCodec struct{}

func (jsonRawCodec) Name() string { return "json" }

func (jsonRawCodec) Marshal(m any) ([]byte, error) { return *m.(*wire), nil }

func (jsonRawCodec) Unmarshal(b []byte, m any) error {
	return protojson.Unmarshal(b, m.(proto.Message))
}

// TestInvalidJSONText sends JSON whose strings are not UTF-8, or are lone
// surrogates, over Connect's JSON.
func TestInvalidJSONText(t *testing.T) {
	t.Parallel()
	s := serveAll(t, &apitest.Echo{}, testLimits)
	tests := []struct {
		name, body, field string
	}{
		{"raw byte", "{\"prompt\":\"ok\xff\"}", "prompt"},
		{"lone surrogate", `{"prompt":"ok\udc00"}`, "prompt"},
		{"nested", "{\"prompt\":\"a\",\"sampling\":{\"stop\":[\"x\",\"\xfe\"]}}", "sampling.stop[1]"},
		{"nested lone high surrogate", `{"prompt":"a","sampling":{"stop":["\ud800x"]}}`, "sampling.stop[0]"},
		{"names as the client wrote them", `{"prompt":"a","sampling":{"maxTokens":3,"stop":["x","\udfff"]}}`, "sampling.stop[1]"},
		{"a member name", "{\"prompt\":\"a\",\"sampling\":{\"\xff\":1}}", "sampling"},
		{"plugin params", `{"prompt":"a","plugins":{"params":{"redact":{"list":[1,"\udc00"]}}}}`, "plugins.params.redact.list[1]"},
		{"surrogate pair", `{"prompt":"ok\ud83d\ude00"}`, ""},
		{"escaped backslash before u", `{"prompt":"ok\\udc00"}`, ""},
		{"escapes and plain text", `{"prompt":"tab\there \"quoted\" \u00e9"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := connect.NewClient[wire, ulanv1.GenerateResponse](s.h1, s.url+ulanv1connect.InferenceServiceGenerateProcedure, connect.WithCodec(jsonRawCodec{}))
			req := wire(tc.body)
			st, err := client.CallServerStream(context.Background(), connect.NewRequest(&req))
			require.NoError(t, err)
			err, got, _ := drain(st, (*ulanv1.GenerateResponse).GetFinished)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			require.False(t, got)
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			require.Contains(t, err.Error(), tc.field+": is not valid UTF-8")
		})
	}
}
