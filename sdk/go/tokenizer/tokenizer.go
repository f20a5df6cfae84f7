// Package tokenizer is the Go guest SDK for tokenizer plugins (sdk/ABI.md
// §6.1): implement Tokenizer, call Register from an init function, and the
// package exports tok_info, tok_vocab, tok_encode and tok_decode, and
// tok_chat, which renders a conversation when the Tokenizer is also a
// ChatRenderer. Hot loops
// belong to the host: CompilePattern/Split and RegisterMerges/Merge call
// its primitives, so a plugin keeps the policy and the host runs the loops.
package tokenizer

import (
	"encoding/json"
	"slices"
	"sync"
)

// Flags modify encoding and decoding.
type Flags int32

// Flags (sdk/ABI.md §6.1).
const (
	// AddSpecial adds the beginning-of-sequence token (encode).
	AddSpecial Flags = 1 << 0
	// ParseSpecial encodes special-token text as the special token (encode).
	ParseSpecial Flags = 1 << 1
	// SkipSpecial leaves special tokens out of the text (decode).
	SkipSpecial Flags = 1 << 2
)

// Info describes the tokenizer to the host.
type Info struct {
	VocabSize int     `json:"vocab_size"`
	BOS       int32   `json:"bos"`
	EOS       []int32 `json:"eos"`
	// DecodeIsConcat says decoding is concatenating token bytes, so the host
	// may detokenize streams natively from the vocabulary.
	DecodeIsConcat bool `json:"decode_is_concat"`
	// Features lists optional abilities; the SDK adds FeatureChatTemplate
	// itself when the Tokenizer is a ChatRenderer.
	Features []string `json:"features,omitempty"`
}

// FeatureChatTemplate is the feature of a tokenizer that renders chat
// prompts (tok_chat).
const FeatureChatTemplate = "chat_template"

// Chat is a conversation to render as a prompt (tok_chat's input, sdk/ABI.md
// §6.1).
type Chat struct {
	Messages []Message `json:"messages"`
	Tools    []Tool    `json:"tools,omitempty"`
	// Thinking is the thinking mode where the model has one: "", "off",
	// "on" or "max".
	Thinking string `json:"thinking,omitempty"`
	// AddGenerationPrompt asks for the text that opens the assistant's turn.
	AddGenerationPrompt bool `json:"add_generation_prompt"`
}

// Message is one turn of a Chat.
type Message struct {
	// Role is system, developer, user, assistant or tool.
	Role             string     `json:"role"`
	Content          string     `json:"content"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID answers a tool call (role tool).
	ToolCallID string `json:"tool_call_id,omitempty"`
	Name       string `json:"name,omitempty"`
}

// ToolCall is a call an assistant message made.
type ToolCall struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Arguments is the call's JSON arguments, as text.
	Arguments string `json:"arguments"`
}

// Tool is a function the model may call.
type Tool struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Parameters is the function's JSON Schema.
	Parameters json.RawMessage `json:"parameters,omitempty"`
}

// ChatRenderer is implemented by a Tokenizer that renders conversations in
// its model's chat format.
type ChatRenderer interface {
	RenderChat(Chat) (string, error)
}

// info returns t's Info with the features its interfaces imply.
func info(t Tokenizer) Info {
	in := t.Info()
	if _, ok := t.(ChatRenderer); ok && !slices.Contains(in.Features, FeatureChatTemplate) {
		in.Features = append(slices.Clone(in.Features), FeatureChatTemplate)
	}
	return in
}

// renderChat decodes tok_chat's JSON input and renders it with t.
func renderChat(t Tokenizer, in []byte) (string, error) {
	r, ok := t.(ChatRenderer)
	if !ok {
		return "", sdkError("tokenizer: this tokenizer renders no chat template (implement tokenizer.ChatRenderer)")
	}
	var c Chat
	if err := json.Unmarshal(in, &c); err != nil {
		return "", sdkError("tokenizer: tok_chat input: " + err.Error())
	}
	return r.RenderChat(c)
}

// Tokenizer is a tokenizer plugin's logic.
type Tokenizer interface {
	Info() Info
	// TokenBytes returns a token's raw bytes (for the vocabulary export).
	TokenBytes(id int32) []byte
	Encode(text string, flags Flags) ([]int32, error)
	Decode(ids []int32, flags Flags) (string, error)
}

var (
	mu  sync.Mutex
	tok Tokenizer
	out []byte // the last export's result, valid until the next call
)

// Register installs the plugin's tokenizer. Call it once, from init.
func Register(t Tokenizer) {
	mu.Lock()
	defer mu.Unlock()
	tok = t
}

func current() Tokenizer {
	mu.Lock()
	defer mu.Unlock()
	return tok
}

// vocab encodes count tokens from start: per token a u16 length and its
// bytes.
func vocab(t Tokenizer, start, count int32) []byte {
	b := out[:0]
	n := int32(t.Info().VocabSize)
	for id := start; id < start+count && id < n; id++ {
		tb := t.TokenBytes(id)
		b = append(b, byte(len(tb)), byte(len(tb)>>8))
		b = append(b, tb...)
	}
	return b
}

type sdkError string

func (e sdkError) Error() string { return string(e) }

const errNoTokenizer = sdkError("tokenizer: no Tokenizer registered (call tokenizer.Register from init)")
