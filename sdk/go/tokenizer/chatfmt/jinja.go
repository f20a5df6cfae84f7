package chatfmt

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/ardanlabs/jinja"
)

// JinjaOptions are the variables a Hugging Face chat template reads besides
// the messages.
type JinjaOptions struct {
	BOS, EOS            string
	AddGenerationPrompt bool
	// Tools are the tool schemas (each a function object), given to the
	// template as OpenAI-style {"type": "function", "function": …} items.
	Tools []json.RawMessage
	// Thinking sets the template's `thinking` variable (V3.1's hybrid
	// thinking).
	Thinking bool
}

var templates sync.Map // source → *jinja.Template

// compile compiles a template once.
func compile(source string) (*jinja.Template, error) {
	if t, ok := templates.Load(source); ok {
		return t.(*jinja.Template), nil
	}
	t, err := jinja.Compile(source)
	if err != nil {
		return nil, fmt.Errorf("chatfmt: chat template: %w", err)
	}
	templates.Store(source, t)
	return t, nil
}

// RenderJinja renders a conversation with a Hugging Face chat_template (as
// DeepSeek-V3, V3-0324, R1 and V3.1 ship in tokenizer_config.json), the
// way transformers' apply_chat_template does: messages as OpenAI-style
// mappings (content null where it is nil, tool calls with a function
// object), bos_token, eos_token, add_generation_prompt and tools.
func RenderJinja(source string, msgs []Message, o JinjaOptions) (string, error) {
	t, err := compile(source)
	if err != nil {
		return "", err
	}
	messages := make([]any, len(msgs))
	for i, m := range msgs {
		mm := map[string]any{"role": m.Role}
		if m.Content != nil {
			mm["content"] = *m.Content
		} else {
			mm["content"] = nil
		}
		if m.ReasoningContent != "" {
			mm["reasoning_content"] = m.ReasoningContent
		}
		if m.ToolCallID != "" {
			mm["tool_call_id"] = m.ToolCallID
		}
		if len(m.ToolCalls) > 0 {
			calls := make([]any, len(m.ToolCalls))
			for j, c := range m.ToolCalls {
				calls[j] = map[string]any{"id": c.ID, "type": "function",
					"function": map[string]any{"name": c.Name, "arguments": c.Arguments}}
			}
			mm["tool_calls"] = calls
		}
		messages[i] = mm
	}
	data := map[string]any{
		"messages":              messages,
		"bos_token":             o.BOS,
		"eos_token":             o.EOS,
		"add_generation_prompt": o.AddGenerationPrompt,
		"thinking":              o.Thinking,
	}
	if len(o.Tools) > 0 {
		tools := make([]any, len(o.Tools))
		for i, raw := range o.Tools {
			var fn any
			if err := json.Unmarshal(raw, &fn); err != nil {
				return "", fmt.Errorf("chatfmt: tool %d: %w", i, err)
			}
			tools[i] = map[string]any{"type": "function", "function": fn}
		}
		data["tools"] = tools
	}
	out, err := t.Render(data)
	if err != nil {
		return "", fmt.Errorf("chatfmt: rendering the chat template: %w", err)
	}
	return out, nil
}
