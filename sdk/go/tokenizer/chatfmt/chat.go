package chatfmt

import (
	"encoding/json"
	"fmt"

	"github.com/ulan-ai/ulan/sdk/go/tokenizer"
)

// RenderChat renders a tok_chat request (tokenizer.Chat) in format, with
// template the tokenizer's chat_template for FormatJinja. The tokenizer
// plugin and the host's native path both render through it.
func RenderChat(format, template string, c tokenizer.Chat) (string, error) {
	conv := Conversation{Thinking: c.Thinking, AddGenerationPrompt: c.AddGenerationPrompt}
	for _, m := range c.Messages {
		msg := Message{Role: m.Role, ReasoningContent: m.ReasoningContent, ToolCallID: m.ToolCallID}
		// An assistant turn that only calls tools has null content, which
		// DeepSeek's templates tell from "" (V3's drops the calls on "").
		if !(m.Content == "" && len(m.ToolCalls) > 0) {
			content := m.Content
			msg.Content = &content
		}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, ToolCall{ID: tc.ID, Name: tc.Name, Arguments: tc.Arguments})
		}
		conv.Messages = append(conv.Messages, msg)
	}
	for _, t := range c.Tools {
		fn, err := functionObject(t)
		if err != nil {
			return "", err
		}
		conv.Tools = append(conv.Tools, fn)
	}
	return Render(format, template, conv)
}

// functionObject writes a tool as OpenAI's function object: name,
// description, parameters, in that order.
func functionObject(t tokenizer.Tool) (json.RawMessage, error) {
	name, _ := json.Marshal(t.Name)
	out := `{"name": ` + string(name)
	if t.Description != "" {
		d, _ := json.Marshal(t.Description)
		out += `, "description": ` + string(d)
	}
	if len(t.Parameters) > 0 {
		if !json.Valid(t.Parameters) {
			return nil, fmt.Errorf("tool %s: parameters are not JSON", t.Name)
		}
		out += `, "parameters": ` + string(t.Parameters)
	}
	return json.RawMessage(out + "}"), nil
}
