package chatparse

import (
	"encoding/json"
	"os"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// fixture is a parse case of testdata/deepseek-chat-format-fixtures.json
// (copied from shared/research: outputs checked against DeepSeek's own
// parsers, split into every three chunks).
type fixture struct {
	ID                string `json:"id"`
	Format            string `json:"format"`
	StartsInReasoning bool   `json:"starts_in_reasoning"`
	Output            string `json:"output"`
	Expected          struct {
		Reasoning string `json:"reasoning"`
		Content   string `json:"content"`
		ToolCalls []struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"tool_calls"`
	} `json:"expected"`
}

func fixtures(t *testing.T) []fixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/deepseek-chat-format-fixtures.json")
	require.NoError(t, err)
	var f struct {
		Parse []fixture `json:"parse"`
	}
	require.NoError(t, json.Unmarshal(raw, &f))
	require.NotEmpty(t, f.Parse)
	return f.Parse
}

func check(t *testing.T, fx fixture, r Result, how string) {
	t.Helper()
	require.Equal(t, fx.Expected.Reasoning, r.Reasoning, "%s %s: reasoning", fx.ID, how)
	require.Equal(t, fx.Expected.Content, r.Content, "%s %s: content", fx.ID, how)
	require.Len(t, r.ToolCalls, len(fx.Expected.ToolCalls), "%s %s: calls %+v", fx.ID, how, r.ToolCalls)
	for i, c := range fx.Expected.ToolCalls {
		require.Equal(t, c.Name, r.ToolCalls[i].Name, "%s %s: call %d", fx.ID, how, i)
		require.Equal(t, c.Arguments, r.ToolCalls[i].Arguments, "%s %s: call %d", fx.ID, how, i)
		require.True(t, r.ToolCalls[i].Complete, "%s %s: call %d", fx.ID, how, i)
		require.True(t, json.Valid([]byte(r.ToolCalls[i].Arguments)), "%s %s: call %d arguments", fx.ID, how, i)
	}
}

func parseChunks(f Format, start bool, chunks ...string) Result {
	p := New(f, start, nil)
	var r Result
	for _, c := range chunks {
		r.Add(p.Feed(c))
	}
	r.Add(p.Finish())
	return r
}

// TestFixtures parses each fixture whole, split into two chunks at every
// character boundary, and into three at every pair of boundaries up to 32
// bytes apart (so that both cuts can fall inside one marker, the longest
// being 26 bytes).
func TestFixtures(t *testing.T) {
	for _, fx := range fixtures(t) {
		f, err := ParseFormat(fx.Format)
		require.NoError(t, err)
		check(t, fx, Parse(f, fx.StartsInReasoning, fx.Output), "whole")
		var cuts []int
		for i := range fx.Output {
			cuts = append(cuts, i)
		}
		cuts = append(cuts, len(fx.Output))
		for _, a := range cuts {
			check(t, fx, parseChunks(f, fx.StartsInReasoning, fx.Output[:a], fx.Output[a:]), "split at "+itoa(a))
		}
		if testing.Short() {
			continue
		}
		for i, a := range cuts {
			for _, b := range cuts[i:] {
				if b-a > 32 {
					break
				}
				r := parseChunks(f, fx.StartsInReasoning, fx.Output[:a], fx.Output[a:b], fx.Output[b:])
				check(t, fx, r, "split at "+itoa(a)+", "+itoa(b))
			}
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestNoPartialMarkerLeaks: streamed rune by rune, no content or reasoning
// delta ever ends in text that the next rune turns into a marker.
func TestNoPartialMarkerLeaks(t *testing.T) {
	out := "Hi</thi" + "nk>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>"
	p := New(V4, true, nil)
	var got Result
	for i := 0; i < len(out); {
		_, w := utf8.DecodeRuneInString(out[i:])
		for _, e := range p.Feed(out[i : i+w]) {
			if e.Kind == Reasoning || e.Kind == Content {
				require.NotContains(t, e.Text, "<", "a marker's start went out: %q", e.Text)
			}
			got.Add([]Event{e})
		}
		i += w
	}
	got.Add(p.Finish())
	require.Equal(t, "Hi", got.Reasoning)
	require.Empty(t, got.Content)
	require.Len(t, got.ToolCalls, 1)
}

// Tolerances (deepseek-chat-format.md §7.6), each deliberate.
func TestTolerances(t *testing.T) {
	for name, tc := range map[string]struct {
		f      Format
		start  bool
		out    string
		want   Result
		noteIn string
	}{
		"unterminated reasoning":          {V4, true, "still thinking", Result{Reasoning: "still thinking"}, ""},
		"leading <think> opens reasoning": {V3, false, "<think>hmm</think>ok", Result{Reasoning: "hmm", Content: "ok"}, ""},
		"misspelled v3 opener": {V3, false, "<｜tool_calls_begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
			Result{ToolCalls: []ToolCall{{ID: "call_0", Name: "f", Arguments: "{}", Complete: true}}}, ""},
		"omitted call begin": {V3, false, "<｜tool▁calls▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
			Result{ToolCalls: []ToolCall{{ID: "call_0", Name: "f", Arguments: "{}", Complete: true}}}, ""},
		"text after the block": {V32, false, "<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\n</｜DSML｜function_calls> trailing",
			Result{Content: " trailing", ToolCalls: []ToolCall{{ID: "call_0", Name: "f", Arguments: "{}", Complete: true}}}, ""},
		"non-JSON non-string value": {V4, false, "<｜DSML｜tool_calls><｜DSML｜invoke name=\"f\"><｜DSML｜parameter name=\"x\" string=\"false\">not json</｜DSML｜parameter></｜DSML｜invoke></｜DSML｜tool_calls>",
			Result{ToolCalls: []ToolCall{{ID: "call_0", Name: "f", Arguments: `{"x": "not json"}`, Complete: true}}}, "not JSON"},
		"garbage in the block": {V4, false, "<｜DSML｜tool_calls>\nhello <｜DSML｜invoke name=\"f\">",
			Result{Content: "hello <｜DSML｜invoke name=\"f\">"}, "malformed"},
		"cut-off call": {V31, false, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"a\": ",
			Result{ToolCalls: []ToolCall{{ID: "call_0", Name: "f", Arguments: `{"a": `}}}, "cut off"},
		"eos ends everything": {V3, false, "done<｜end▁of▁sentence｜>ignored", Result{Content: "done"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			got := Parse(tc.f, tc.start, tc.out)
			notes := got.Notes
			got.Notes = nil
			require.Equal(t, tc.want, got)
			if tc.noteIn == "" {
				require.Empty(t, notes)
			} else {
				require.NotEmpty(t, notes)
				require.Contains(t, notes[len(notes)-1]+notes[0], tc.noteIn)
			}
		})
	}
}

// TestMarkup: the special tokens a parser reads are told from the others.
func TestMarkup(t *testing.T) {
	for _, piece := range []string{"<think>", "</think>", "<｜end▁of▁sentence｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>",
		"<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>", "｜DSML｜"} {
		require.True(t, Markup(piece), piece)
	}
	for _, piece := range []string{"", "<｜place▁holder▁no▁417｜>", "<｜User｜>", "<｜Assistant｜>", "<｜begin▁of▁sentence｜>", "<｜fim▁hole｜>"} {
		require.False(t, Markup(piece), piece)
	}
}
