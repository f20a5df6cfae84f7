package chatfmt

import (
	"fmt"
	"slices"
	"strings"
)

// v4Turn is a rendered unit of V4's conversation: consecutive user and
// tool messages make one user turn.
type v4Turn struct {
	role string // system, user, developer, assistant
	msg  Message
	text string // a user turn's merged text
}

// RenderV4 renders a conversation as DeepSeek-V4's encoder does
// (encoding_dsv4.py): tool results become <tool_result> blocks of a user
// turn, ordered as the assistant's calls; the assistant opener is written
// where a reply starts; reasoning is kept whenever tools are defined; a
// reasoning-effort prefix follows BOS in thinking mode.
func RenderV4(msgs []Message, o Options) (string, error) {
	turns, err := v4Turns(msgs)
	if err != nil {
		return "", err
	}
	drop := o.Thinking && !o.KeepThinking
	for _, m := range msgs {
		if len(m.Tools) > 0 {
			drop = false // tools keep the whole tool loop's reasoning
		}
	}
	last := -1
	for i, t := range turns {
		if t.role == "user" || t.role == "developer" {
			last = i
		}
	}
	if drop {
		kept := turns[:0:0]
		for i, t := range turns {
			if i < last && t.role == "developer" {
				continue
			}
			if i == last {
				last = len(kept)
			}
			kept = append(kept, t)
		}
		turns = kept
	}
	var b strings.Builder
	b.WriteString(BOS)
	if o.Thinking {
		switch {
		case o.V4_0731 && (o.ReasoningEffort == "" || o.ReasoningEffort == "low"):
		case o.V4_0731 && o.ReasoningEffort == "high":
			b.WriteString(v4EffortMax)
		case o.V4_0731 && o.ReasoningEffort == "max":
			b.WriteString(v4EffortMax0731)
		case o.V4_0731:
			return "", fmt.Errorf("chatfmt: reasoning effort %q (V4-0731: low, high or max)", o.ReasoningEffort)
		case o.ReasoningEffort == "" || o.ReasoningEffort == "high":
		case o.ReasoningEffort == "max":
			b.WriteString(v4EffortMax)
		default:
			return "", fmt.Errorf("chatfmt: reasoning effort %q (V4: high or max)", o.ReasoningEffort)
		}
	}
	opener := func(i int) string {
		if o.Thinking && (!drop || i >= last) {
			return Assistant + ThinkOpen
		}
		return Assistant + ThinkEnd
	}
	for i, t := range turns {
		next := ""
		if i+1 < len(turns) {
			next = turns[i+1].role
		}
		startsReply := next == "assistant" || next == ""
		switch t.role {
		case "system":
			extras, err := systemExtras(t.msg, v4ToolsHead, v4ToolsTail)
			if err != nil {
				return "", err
			}
			b.WriteString(content(t.msg) + extras)
		case "user":
			b.WriteString(User + t.text)
			if startsReply {
				b.WriteString(opener(i))
			}
		case "developer":
			extras, err := systemExtras(t.msg, v4ToolsHead, v4ToolsTail)
			if err != nil {
				return "", err
			}
			b.WriteString(User + content(t.msg) + extras)
			if startsReply {
				b.WriteString(opener(i))
			}
		case "assistant":
			m := t.msg
			if o.Thinking && (!drop || i > last) {
				b.WriteString(m.ReasoningContent + ThinkEnd)
			}
			b.WriteString(content(m))
			if len(m.ToolCalls) > 0 {
				block, err := dsmlBlock("tool_calls", m.ToolCalls, true)
				if err != nil {
					return "", err
				}
				b.WriteString("\n\n" + block)
			}
			b.WriteString(EOS)
		}
	}
	return b.String(), nil
}

// v4Turns merges runs of user and tool messages into user turns: each tool
// message a <tool_result> block, ordered as the calls of the assistant
// before it (an unknown call id sorts first), then the user messages'
// text, all joined by "\n\n".
func v4Turns(msgs []Message) ([]v4Turn, error) {
	var turns []v4Turn
	var calls []ToolCall // the latest assistant's calls
	for i := 0; i < len(msgs); {
		m := msgs[i]
		switch m.Role {
		case "system", "developer":
			turns = append(turns, v4Turn{role: m.Role, msg: m})
			i++
		case "assistant":
			turns = append(turns, v4Turn{role: m.Role, msg: m})
			calls = m.ToolCalls
			i++
		case "user", "tool":
			type result struct {
				pos  int
				text string
			}
			var results []result
			var texts []string
			for ; i < len(msgs) && (msgs[i].Role == "user" || msgs[i].Role == "tool"); i++ {
				if msgs[i].Role == "user" {
					texts = append(texts, content(msgs[i]))
					continue
				}
				pos := slices.IndexFunc(calls, func(c ToolCall) bool { return c.ID == msgs[i].ToolCallID })
				results = append(results, result{max(pos, 0), "<tool_result>" + content(msgs[i]) + "</tool_result>"})
			}
			slices.SortStableFunc(results, func(a, b result) int { return a.pos - b.pos })
			parts := make([]string, 0, len(results)+len(texts))
			for _, r := range results {
				parts = append(parts, r.text)
			}
			parts = append(parts, texts...)
			turns = append(turns, v4Turn{role: "user", text: strings.Join(parts, "\n\n")})
		default:
			return nil, errRole(i, m.Role)
		}
	}
	return turns, nil
}
