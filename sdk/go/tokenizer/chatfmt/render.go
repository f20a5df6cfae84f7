package chatfmt

import (
	"encoding/json"
	"fmt"
)

// Formats Render knows.
const (
	FormatJinja  = "jinja"   // the tokenizer's chat_template (V3, V3-0324, R1, V3.1)
	FormatV32    = "v3.2"    // RenderV32
	FormatV4     = "v4"      // RenderV4
	FormatV40731 = "v4-0731" // RenderV4 with V4-0731's effort tiers
)

// Conversation is a chat request to render.
type Conversation struct {
	Messages []Message
	// Tools are the request's tool schemas (each a function object).
	Tools []json.RawMessage
	// Thinking is the thinking mode: "" or "off" (chat), "on", "max" (on,
	// at the highest reasoning effort the format has).
	Thinking            string
	AddGenerationPrompt bool
}

// Render renders c in format; template is the tokenizer's chat_template,
// used by FormatJinja. For V3.2 and V4 the tools go on the first message
// when it is a system message, else on an empty system message put first
// (DeepSeek's tests and SGLang place them so), and there is no separate
// generation prompt: the text already ends where the reply begins.
func Render(format, template string, c Conversation) (string, error) {
	var o Options
	switch c.Thinking {
	case "", "off":
	case "on":
		o.Thinking = true
	case "max":
		o.Thinking, o.ReasoningEffort = true, "max"
	default:
		return "", fmt.Errorf("chatfmt: thinking mode %q (off, on or max)", c.Thinking)
	}
	switch format {
	case FormatJinja:
		if template == "" {
			return "", fmt.Errorf("chatfmt: the tokenizer has no chat_template")
		}
		return RenderJinja(template, c.Messages, JinjaOptions{BOS: BOS, EOS: EOS, AddGenerationPrompt: c.AddGenerationPrompt,
			Tools: c.Tools, Thinking: o.Thinking})
	case FormatV32, FormatV4, FormatV40731:
		msgs := c.Messages
		if len(c.Tools) > 0 {
			msgs = append([]Message(nil), msgs...)
			if len(msgs) == 0 || msgs[0].Role != "system" {
				empty := ""
				msgs = append([]Message{{Role: "system", Content: &empty}}, msgs...)
			}
			msgs[0].Tools = c.Tools
		}
		if format == FormatV32 {
			return RenderV32(msgs, o)
		}
		o.V4_0731 = format == FormatV40731
		return RenderV4(msgs, o)
	}
	return "", fmt.Errorf("chatfmt: unknown chat format %q (jinja, v3.2, v4, v4-0731)", format)
}
