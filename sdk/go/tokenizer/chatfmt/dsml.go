package chatfmt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// dsmlBlock writes an assistant's calls as a DSML block named block
// (function_calls in V3.2, tool_calls in V4). Each argument is a parameter:
// a JSON string as its raw text with string="true", any other value as
// JSON with string="false". Arguments that are not a JSON object are an
// error unless raw, which writes them as one parameter named "arguments"
// (V4's fallback).
func dsmlBlock(block string, calls []ToolCall, raw bool) (string, error) {
	invokes := make([]string, len(calls))
	for i, c := range calls {
		params, err := dsmlParams(c.Arguments)
		if err != nil {
			if !raw {
				return "", fmt.Errorf("chatfmt: tool call %d (%s): %w", i, c.Name, err)
			}
			params = []string{`<｜DSML｜parameter name="arguments" string="true">` + c.Arguments + `</｜DSML｜parameter>`}
		}
		invokes[i] = `<｜DSML｜invoke name="` + c.Name + `">` + "\n" + strings.Join(params, "\n") + "\n</｜DSML｜invoke>"
	}
	return "<｜DSML｜" + block + ">\n" + strings.Join(invokes, "\n") + "\n</｜DSML｜" + block + ">", nil
}

// dsmlParams writes the parameters of a JSON object, in its key order.
func dsmlParams(args string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(args))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("arguments are not a JSON object")
	}
	var params []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("arguments: %w", err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("arguments: %w", err)
		}
		key := k.(string)
		var s string
		if bytes.HasPrefix(bytes.TrimSpace(v), []byte(`"`)) && json.Unmarshal(v, &s) == nil {
			params = append(params, `<｜DSML｜parameter name="`+key+`" string="true">`+s+`</｜DSML｜parameter>`)
			continue
		}
		js, err := pyDumps(v)
		if err != nil {
			return nil, err
		}
		params = append(params, `<｜DSML｜parameter name="`+key+`" string="false">`+js+`</｜DSML｜parameter>`)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("arguments: %w", err)
	}
	return params, nil
}

// systemExtras writes what tools and a response format add to a system or
// developer message: "\n\n" before each, the tool lines between toolsHead
// and toolsTail (each version words them its own way).
func systemExtras(m Message, toolsHead, toolsTail string) (string, error) {
	var b strings.Builder
	if len(m.Tools) > 0 {
		lines, err := toolLines(m.Tools)
		if err != nil {
			return "", err
		}
		b.WriteString("\n\n" + toolsHead + lines + toolsTail)
	}
	if len(m.ResponseFormat) > 0 {
		rf, err := responseFormat(m.ResponseFormat)
		if err != nil {
			return "", err
		}
		b.WriteString("\n\n" + rf)
	}
	return b.String(), nil
}

// toolLines writes each tool schema as one line of Python-style JSON.
func toolLines(tools []json.RawMessage) (string, error) {
	lines := make([]string, len(tools))
	for i, t := range tools {
		s, err := pyDumps(t)
		if err != nil {
			return "", fmt.Errorf("chatfmt: tool %d: %w", i, err)
		}
		lines[i] = s
	}
	return strings.Join(lines, "\n"), nil
}

// responseFormat is the block a response_format adds.
func responseFormat(schema json.RawMessage) (string, error) {
	s, err := pyDumps(schema)
	if err != nil {
		return "", fmt.Errorf("chatfmt: response_format: %w", err)
	}
	return "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n" + s, nil
}
