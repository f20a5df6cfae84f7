// Package chatfmt renders conversations in DeepSeek's chat formats that
// ship without a Jinja template: V3.2 (DSML function_calls) and V4,
// byte for byte as DeepSeek's own encoders (encoding_dsv32.py,
// encoding_dsv4.py) write them (shared/research/deepseek-chat-format.md §5,
// §6). It is plain Go with no host imports, so the tokenizer plugin and the
// native fallback render the same bytes.
package chatfmt

import (
	"encoding/json"
	"fmt"
)

// Special tokens and markers of the formats.
const (
	BOS       = "<｜begin▁of▁sentence｜>"
	EOS       = "<｜end▁of▁sentence｜>"
	User      = "<｜User｜>"
	Assistant = "<｜Assistant｜>"
	ThinkOpen = "<think>"
	ThinkEnd  = "</think>"
)

// Message is one turn, as OpenAI-style requests carry it. Content nil is
// JSON null (DeepSeek's templates tell it from "").
type Message struct {
	Role             string
	Content          *string
	ReasoningContent string
	ToolCalls        []ToolCall
	ToolCallID       string
	// Tools are the tool schemas a system (or developer) message carries:
	// each tool's function object as the client wrote it.
	Tools []json.RawMessage
	// ResponseFormat is a JSON schema the reply must follow, on a system or
	// developer message.
	ResponseFormat json.RawMessage
}

// ToolCall is a call an assistant made; Arguments is its JSON text.
type ToolCall struct {
	ID, Name, Arguments string
}

// Options select how a conversation is rendered.
type Options struct {
	// Thinking renders thinking mode ("thinking"), else chat mode.
	Thinking bool
	// KeepThinking keeps earlier turns' reasoning (DeepSeek's
	// drop_thinking=false); by default it is dropped before the last user
	// turn.
	KeepThinking bool
	// ReasoningEffort is V4's effort tier: "", "high" or "max"; for
	// V4-0731, "", "low", "high" or "max".
	ReasoningEffort string
	// V4_0731 selects V4-Flash-0731's effort tiers (its "high" is the
	// original "max"; its "max" has a text of its own).
	V4_0731 bool
}

func content(m Message) string {
	if m.Content == nil {
		return ""
	}
	return *m.Content
}

// lastUser is the index of the last user or developer message, or −1.
func lastUser(msgs []Message) int {
	last := -1
	for i, m := range msgs {
		if m.Role == "user" || m.Role == "developer" {
			last = i
		}
	}
	return last
}

func errRole(i int, role string) error {
	return fmt.Errorf("chatfmt: message %d has role %q", i, role)
}
