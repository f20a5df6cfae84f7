package chatfmt

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// renderCase is a render case of testdata/deepseek-chat-format-fixtures.json
// (a copy of shared/research's, checked against DeepSeek's own encoders).
type renderCase struct {
	ID      string `json:"id"`
	Format  string `json:"format"`
	Options struct {
		ThinkingMode    string `json:"thinking_mode"`
		DropThinking    *bool  `json:"drop_thinking"`
		ReasoningEffort string `json:"reasoning_effort"`
	} `json:"options"`
	ToolsOnFirstSystem bool `json:"tools_on_first_system"`
	Messages           []struct {
		Role             string  `json:"role"`
		Content          *string `json:"content"`
		ReasoningContent string  `json:"reasoning_content"`
		ToolCallID       string  `json:"tool_call_id"`
		ToolCalls        []struct {
			ID       string `json:"id"`
			Function struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
	Expected string `json:"expected_prompt"`
}

func renderCases(t *testing.T, format string) ([]renderCase, []json.RawMessage) {
	t.Helper()
	raw, err := os.ReadFile("testdata/deepseek-chat-format-fixtures.json")
	require.NoError(t, err)
	var f struct {
		Tools struct {
			TOOLS []struct {
				Function json.RawMessage `json:"function"`
			} `json:"TOOLS"`
		} `json:"tools"`
		Render []renderCase `json:"render"`
	}
	require.NoError(t, json.Unmarshal(raw, &f))
	var tools []json.RawMessage
	for _, t := range f.Tools.TOOLS {
		tools = append(tools, t.Function)
	}
	var out []renderCase
	for _, c := range f.Render {
		if c.Format == format {
			out = append(out, c)
		}
	}
	require.NotEmpty(t, out)
	return out, tools
}

func (c renderCase) inputs(tools []json.RawMessage) ([]Message, Options) {
	msgs := make([]Message, len(c.Messages))
	for i, m := range c.Messages {
		msgs[i] = Message{Role: m.Role, Content: m.Content, ReasoningContent: m.ReasoningContent, ToolCallID: m.ToolCallID}
		for _, tc := range m.ToolCalls {
			msgs[i].ToolCalls = append(msgs[i].ToolCalls, ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
	}
	if c.ToolsOnFirstSystem {
		msgs[0].Tools = tools
	}
	o := Options{Thinking: c.Options.ThinkingMode == "thinking", ReasoningEffort: c.Options.ReasoningEffort}
	if c.Options.DropThinking != nil && !*c.Options.DropThinking {
		o.KeepThinking = true
	}
	return msgs, o
}

func TestRenderV32Fixtures(t *testing.T) {
	cases, tools := renderCases(t, "v3.2")
	for _, c := range cases {
		msgs, o := c.inputs(tools)
		got, err := RenderV32(msgs, o)
		require.NoError(t, err, c.ID)
		require.Equal(t, c.Expected, got, c.ID)
	}
}

func TestPyDumps(t *testing.T) {
	for in, want := range map[string]string{
		`{"b":1,"a":[true,null,"x"]}`:       `{"b": 1, "a": [true, null, "x"]}`,
		`{"s":"é<>&/\u2028\n\t\"\\\u0001"}`: "{\"s\": \"é<>&/\u2028\\n\\t\\\"\\\\\\u0001\"}",
		`1.0`:                               `1.0`,
		`[]`:                                `[]`,
		`{}`:                                `{}`,
	} {
		got, err := pyDumps([]byte(in))
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := pyDumps([]byte(`{"a":`))
	require.Error(t, err)
	_, err = pyDumps([]byte(`1 2`))
	require.Error(t, err)
}

func TestRenderV4Fixtures(t *testing.T) {
	cases, tools := renderCases(t, "v4")
	for _, c := range cases {
		msgs, o := c.inputs(tools)
		got, err := RenderV4(msgs, o)
		require.NoError(t, err, c.ID)
		require.Equal(t, c.Expected, got, c.ID)
	}
}

func TestRenderV4_0731Fixtures(t *testing.T) {
	cases, tools := renderCases(t, "v4-0731")
	for _, c := range cases {
		msgs, o := c.inputs(tools)
		o.V4_0731 = true
		got, err := RenderV4(msgs, o)
		require.NoError(t, err, c.ID)
		require.Equal(t, c.Expected, got, c.ID)
	}
	_, err := RenderV4([]Message{{Role: "user"}}, Options{Thinking: true, ReasoningEffort: "low"})
	require.ErrorContains(t, err, "V4: high or max")
}

func TestRenderErrors(t *testing.T) {
	s := func(v string) *string { return &v }
	_, err := RenderV32([]Message{{Role: "robot"}}, Options{})
	require.ErrorContains(t, err, `role "robot"`)
	_, err = RenderV32([]Message{{Role: "tool", Content: s("x")}}, Options{})
	require.ErrorContains(t, err, "answers no assistant")
	_, err = RenderV32([]Message{{Role: "user", Content: s("q")}, {Role: "assistant", ToolCalls: []ToolCall{{Name: "f", Arguments: "{}"}}},
		{Role: "tool", Content: s("1")}, {Role: "tool", Content: s("2")}}, Options{})
	require.ErrorContains(t, err, "more results than")
	_, err = RenderV32([]Message{{Role: "assistant", ToolCalls: []ToolCall{{Name: "f", Arguments: "[1]"}}}}, Options{})
	require.ErrorContains(t, err, "not a JSON object")
	_, err = RenderV32([]Message{{Role: "developer"}}, Options{})
	require.ErrorContains(t, err, "no content")

	// V4 writes arguments that are not a JSON object as one raw parameter.
	got, err := RenderV4([]Message{{Role: "assistant", ToolCalls: []ToolCall{{Name: "f", Arguments: "oops"}}}}, Options{})
	require.NoError(t, err)
	require.Contains(t, got, `<｜DSML｜parameter name="arguments" string="true">oops</｜DSML｜parameter>`)
	_, err = RenderV4([]Message{{Role: "robot"}}, Options{})
	require.ErrorContains(t, err, `role "robot"`)
	_, err = RenderV4([]Message{{Role: "system", Tools: []json.RawMessage{json.RawMessage(`{"a":`)}}}, Options{})
	require.ErrorContains(t, err, "tool 0")
}

// v3Template is DeepSeek-V3's chat_template, as its tokenizer_config.json
// (engine/testmodel's copy) carries it.
func v3Template(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../../../../engine/testmodel/tokenizer_config.json")
	require.NoError(t, err)
	var c struct {
		ChatTemplate string `json:"chat_template"`
	}
	require.NoError(t, json.Unmarshal(raw, &c))
	require.NotEmpty(t, c.ChatTemplate)
	return c.ChatTemplate
}

// TestJinjaMatchesTransformersJS renders testdata/jinja.json's 42
// conversations with DeepSeek-V3's template and requires transformers.js's
// prompt, byte for byte (testdata/gen_jinja.mjs).
func TestJinjaMatchesTransformersJS(t *testing.T) {
	tmpl := v3Template(t)
	raw, err := os.ReadFile("testdata/jinja.json")
	require.NoError(t, err)
	var f struct {
		Cases []struct {
			ID       string          `json:"id"`
			Messages json.RawMessage `json:"messages"`
			Gen      bool            `json:"add_generation_prompt"`
			Prompt   string          `json:"prompt"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(raw, &f))
	require.GreaterOrEqual(t, len(f.Cases), 40)
	for _, c := range f.Cases {
		var rc renderCase
		require.NoError(t, json.Unmarshal([]byte(`{"messages":`+string(c.Messages)+`}`), &rc))
		msgs, _ := rc.inputs(nil)
		got, err := RenderJinja(tmpl, msgs, JinjaOptions{BOS: BOS, EOS: EOS, AddGenerationPrompt: c.Gen})
		require.NoError(t, err, c.ID)
		require.Equal(t, c.Prompt, got, c.ID)
	}
}

// TestJinjaV3_2412Fixtures: the same template is DeepSeek-V3-2412's, whose
// fixtures it must reproduce too.
func TestJinjaV3_2412Fixtures(t *testing.T) {
	tmpl := v3Template(t)
	cases, tools := renderCases(t, "v3-2412")
	for _, c := range cases {
		msgs, _ := c.inputs(tools)
		got, err := RenderJinja(tmpl, msgs, JinjaOptions{BOS: BOS, EOS: EOS, AddGenerationPrompt: true})
		require.NoError(t, err, c.ID)
		require.Equal(t, c.Expected, got, c.ID)
	}
}

func TestRenderDispatch(t *testing.T) {
	s := func(v string) *string { return &v }
	tool := json.RawMessage(`{"name":"f","parameters":{"type":"object"}}`)
	c := Conversation{Messages: []Message{{Role: "user", Content: s("Hi")}}, Tools: []json.RawMessage{tool}, Thinking: "on"}
	got, err := Render(FormatV4, "", c)
	require.NoError(t, err)
	require.Contains(t, got, BOS+"\n\n## Tools", "tools on an empty system message put first")
	require.True(t, len(got) > 0 && got[len(got)-len(ThinkOpen):] == ThinkOpen)
	got, err = Render(FormatV32, "", Conversation{Messages: c.Messages})
	require.NoError(t, err)
	require.Equal(t, BOS+User+"Hi"+Assistant+ThinkEnd, got)
	got, err = Render(FormatJinja, v3Template(t), Conversation{Messages: c.Messages, AddGenerationPrompt: true})
	require.NoError(t, err)
	require.Equal(t, BOS+User+"Hi"+Assistant, got)
	_, err = Render(FormatJinja, "", c)
	require.ErrorContains(t, err, "no chat_template")
	_, err = Render("v9", "", c)
	require.ErrorContains(t, err, "unknown chat format")
	_, err = Render(FormatV4, "", Conversation{Thinking: "very"})
	require.ErrorContains(t, err, "thinking mode")
}

// TestJinjaV31Fixtures renders the V3.1 fixtures with DeepSeek-V3.1's own
// template (testdata/deepseek-v3.1.jinja, see testdata/README.md).
func TestJinjaV31Fixtures(t *testing.T) {
	tmpl, err := os.ReadFile("testdata/deepseek-v3.1.jinja")
	require.NoError(t, err)
	raw, err := os.ReadFile("testdata/deepseek-chat-format-fixtures.json")
	require.NoError(t, err)
	var f struct {
		Render []struct {
			ID      string `json:"id"`
			Format  string `json:"format"`
			Options struct {
				Gen      bool `json:"add_generation_prompt"`
				Thinking bool `json:"thinking"`
			} `json:"options"`
		} `json:"render"`
	}
	require.NoError(t, json.Unmarshal(raw, &f))
	cases, tools := renderCases(t, "v3.1")
	require.Len(t, cases, 5)
	for _, c := range cases {
		var gen, thinking bool
		for _, r := range f.Render {
			if r.ID == c.ID {
				gen, thinking = r.Options.Gen, r.Options.Thinking
			}
		}
		msgs, _ := c.inputs(tools)
		got, err := RenderJinja(string(tmpl), msgs, JinjaOptions{BOS: BOS, EOS: EOS, AddGenerationPrompt: gen, Thinking: thinking})
		require.NoError(t, err, c.ID)
		require.Equal(t, c.Expected, got, c.ID)
	}
}

// TestJinjaR1Fixtures renders the R1 fixtures with the R1-Distill template
// llama.cpp keeps (testdata/deepseek-r1-distill.jinja, see
// testdata/README.md).
func TestJinjaR1Fixtures(t *testing.T) {
	tmpl, err := os.ReadFile("testdata/deepseek-r1-distill.jinja")
	require.NoError(t, err)
	cases, tools := renderCases(t, "r1-2501")
	for _, c := range cases {
		msgs, _ := c.inputs(tools)
		got, err := RenderJinja(string(tmpl), msgs, JinjaOptions{BOS: BOS, EOS: EOS, AddGenerationPrompt: true})
		require.NoError(t, err, c.ID)
		require.Equal(t, c.Expected, got, c.ID)
	}
}

// TestJinjaV3_0324Fixtures renders the V3-0324 fixtures with that
// checkpoint's own template (testdata/deepseek-v3-0324.jinja, see
// testdata/README.md).
func TestJinjaV3_0324Fixtures(t *testing.T) {
	tmpl, err := os.ReadFile("testdata/deepseek-v3-0324.jinja")
	require.NoError(t, err)
	cases, tools := renderCases(t, "v3-0324")
	require.Len(t, cases, 2)
	for _, c := range cases {
		msgs, _ := c.inputs(tools)
		got, err := RenderJinja(string(tmpl), msgs, JinjaOptions{BOS: BOS, EOS: EOS, AddGenerationPrompt: true})
		require.NoError(t, err, c.ID)
		require.Equal(t, c.Expected, got, c.ID)
	}
}
