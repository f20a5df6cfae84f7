package chatfmt

import (
	"fmt"
	"strings"
)

// v32ToolsPreamble is V3.2's tools preamble up to the schemas, as
// DeepSeek's golden test output has it (blank lines included).
const v32ToolsPreamble = "## Tools\n\nYou have access to a set of tools you can use to answer the user's question.\n" +
	"You can invoke functions by writing a \"<｜DSML｜function_calls>\" block like the following as part of your reply to the user:\n" +
	"<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"$FUNCTION_NAME\">\n" +
	"<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</｜DSML｜parameter>\n...\n" +
	"</｜DSML｜invoke>\n<｜DSML｜invoke name=\"$FUNCTION_NAME2\">\n...\n</｜DSML｜invoke>\n</｜DSML｜function_calls>\n\n" +
	"String and scalar parameters should be specified as is without any escaping or quotes, while lists and objects should use JSON format. " +
	"The \"string\" attribute should be set to \"true\" for string type parameters and \"false\" for other types (numbers, booleans, arrays, objects).\n\n" +
	"If the thinking_mode is enabled, then after function results you should strongly consider outputting a thinking block. Here is an example:\n\n" +
	"<｜DSML｜function_calls>\n...\n</｜DSML｜function_calls>\n\n<function_results>\n...\n</function_results>\n\n" +
	"<think>...thinking about results</think>\n\nHere are the functions available in JSONSchema format:\n<functions>\n"

// RenderV32 renders a conversation as DeepSeek-V3.2's encoder does
// (encode_messages with a BOS and no context): there is no separate
// generation prompt, since a user turn or a closed result block already
// ends with the reply's opener.
func RenderV32(msgs []Message, o Options) (string, error) {
	last := lastUser(msgs)
	if o.Thinking && !o.KeepThinking {
		kept := make([]Message, 0, len(msgs))
		newLast := -1
		for i, m := range msgs {
			if i < last {
				if m.Role == "assistant" {
					m.ReasoningContent = ""
				} else if m.Role != "user" && m.Role != "system" && m.Role != "tool" {
					continue // developer turns before the last user turn are dropped
				}
			}
			if i == last {
				newLast = len(kept)
			}
			kept = append(kept, m)
		}
		msgs, last = kept, newLast
	}
	think := func(i int) string {
		if o.Thinking && i >= last {
			return ThinkOpen
		}
		return ThinkEnd
	}
	var b strings.Builder
	b.WriteString(BOS)
	for i, m := range msgs {
		switch m.Role {
		case "system":
			extras, err := systemExtras(m, v32ToolsPreamble, "\n</functions>\n")
			if err != nil {
				return "", err
			}
			b.WriteString(content(m) + extras)
		case "user":
			b.WriteString(User + content(m) + Assistant + think(i))
		case "developer":
			if m.Content == nil {
				return "", fmt.Errorf("chatfmt: developer message %d has no content", i)
			}
			extras, err := systemExtras(m, v32ToolsPreamble, "\n</functions>\n")
			if err != nil {
				return "", err
			}
			b.WriteString(User + extras + "\n\n# The user's message is: " + content(m) + Assistant + think(i))
		case "assistant":
			if o.Thinking && i > last {
				b.WriteString(m.ReasoningContent + ThinkEnd)
			}
			b.WriteString(content(m))
			if len(m.ToolCalls) > 0 {
				block, err := dsmlBlock("function_calls", m.ToolCalls, false)
				if err != nil {
					return "", err
				}
				b.WriteString("\n\n" + block)
			}
			b.WriteString(EOS)
		case "tool":
			a, k := -1, 0 // the assistant it answers, and its place among the results
			for j := i; j >= 0; j-- {
				if msgs[j].Role == "assistant" {
					a = j
					break
				}
				if msgs[j].Role == "tool" {
					k++
				}
			}
			if a < 0 {
				return "", fmt.Errorf("chatfmt: tool message %d answers no assistant message", i)
			}
			calls := len(msgs[a].ToolCalls)
			if k > calls {
				return "", fmt.Errorf("chatfmt: tool message %d: more results than the %d calls of message %d", i, calls, a)
			}
			if k == 1 {
				b.WriteString("\n\n<function_results>")
			}
			b.WriteString("\n<result>" + content(m) + "</result>")
			if k == calls {
				b.WriteString("\n</function_results>\n\n" + think(i))
			}
		default:
			return "", errRole(i, m.Role)
		}
	}
	return b.String(), nil
}
