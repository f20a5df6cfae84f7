package chatparse

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// Regressions found by FuzzParse and FuzzParseMarkup and by reading the
// parser: each output also goes through checkOutput, the fuzz targets'
// properties.

// TestUnfinishedMarkup: tool markup that the output ends inside, at Finish
// or at an end-of-sentence token, goes out as content with a note; it was
// dropped silently, or dropped only when EOS followed.
func TestUnfinishedMarkup(t *testing.T) {
	const malformed = "the output's tool-call block is malformed; the rest is content"
	for name, tc := range map[string]struct {
		f       Format
		out     string
		content string
	}{
		"a partial marker between calls": {V3, "<｜tool▁calls｜><", "<"},
		"a partial DSML marker":          {V4, "ok<｜DSML｜tool_calls>\n<｜DSML｜inv", "ok<｜DSML｜inv"},
		"an opened tag, nothing after":   {V4, "<｜DSML｜tool_calls><｜DSML｜invoke", "<｜DSML｜invoke"},
		"an unclosed tag":                {V32, "<｜DSML｜function_calls><｜DSML｜invoke name=\"f", "<｜DSML｜invoke name=\"f"},
		"an unfinished V3 head":          {V3, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_", "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_"},
		"an unfinished V3.1 head":        {V31, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_", "<｜tool▁call▁begin｜>get_"},
	} {
		t.Run(name, func(t *testing.T) {
			want := Result{Content: tc.content, Notes: []string{malformed}}
			require.Equal(t, want, Parse(tc.f, false, tc.out))
			require.Equal(t, want, Parse(tc.f, false, tc.out+eos+"ignored"))
			checkOutput(t, tc.f, false, tc.out, []byte{1, 5, 2})
		})
	}
}

// TestLongTag: a tag or call head may hold maxHead bytes; a longer one
// makes the block malformed as soon as that is certain, so a tag that never
// closes is neither held to the end nor rescanned on every delta.
func TestLongTag(t *testing.T) {
	open := "<｜DSML｜tool_calls><｜DSML｜invoke"
	name := func(n int) string { return " name=\"" + strings.Repeat("f", n-len(" name=\"\"")) + "\"" }

	r := Parse(V4, false, open+name(maxHead)+"></｜DSML｜invoke></｜DSML｜tool_calls>")
	require.Empty(t, r.Notes)
	require.Len(t, r.ToolCalls, 1)
	require.Equal(t, strings.Repeat("f", maxHead-len(" name=\"\"")), r.ToolCalls[0].Name)

	r = Parse(V4, false, open+name(maxHead+1)+"></｜DSML｜invoke></｜DSML｜tool_calls>")
	require.Empty(t, r.ToolCalls)
	require.Equal(t, "<｜DSML｜invoke"+name(maxHead+1)+"></｜DSML｜invoke></｜DSML｜tool_calls>", r.Content)
	require.NotEmpty(t, r.Notes)

	for _, n := range []int{maxHead - 1, maxHead, maxHead + 1} {
		checkOutput(t, V4, false, open+name(n)+"></｜DSML｜invoke>", []byte{23, 9, 17})
		checkOutput(t, V3, false, "<｜tool▁calls▁begin｜>function<｜tool▁sep｜>"+strings.Repeat("g", n-len("<｜tool▁sep｜>"))+"\n```json\n{}\n```<｜tool▁call▁end｜>", []byte{23})
	}

	// Streamed, an unclosed tag comes out as content once it passes
	// maxHead, and the parser holds little.
	p := New(V4, false, nil)
	var got Result
	got.Add(p.Feed(open))
	for i := 0; i < 8*maxHead; i++ {
		got.Add(p.Feed("x"))
		require.LessOrEqual(t, len(p.buf), maxHead+len(eos))
	}
	require.Greater(t, len(got.Content), 6*maxHead)
}

// TestLinear: outputs that made the parser quadratic (every marker or
// malformed block rescanning or copying the rest of the output, and Parse
// concatenating its result event by event) parse in linear time. Each took
// seconds to minutes before.
func TestLinear(t *testing.T) {
	const n = 40000
	r := Parse(V4, false, strings.Repeat("<｜DSML｜tool_calls>x", n))
	require.Equal(t, strings.Repeat("x", n), r.Content)
	require.Len(t, r.Notes, n)

	r = Parse(V4, false, "<｜DSML｜tool_calls>"+strings.Repeat("<｜DSML｜invoke name=\"f\"></｜DSML｜invoke>", n))
	require.Len(t, r.ToolCalls, n)
	require.Empty(t, r.Notes)

	r = Parse(V31, false, "<｜tool▁calls▁begin｜>"+strings.Repeat("<｜tool▁call▁begin｜>f<｜tool▁sep｜>{}<｜tool▁call▁end｜>", n))
	require.Len(t, r.ToolCalls, n)
	require.Empty(t, r.Notes)
}

// TestV3Arguments: V3/V3.1 arguments are streamed as written, so they
// cannot be repaired, but a call whose arguments are not JSON gets a note,
// and empty arguments become {} (as a DSML call without parameters).
func TestV3Arguments(t *testing.T) {
	r := Parse(V31, false, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"a\": <｜tool▁call▁end｜><｜tool▁call▁begin｜>g<｜tool▁sep｜> <｜tool▁call▁end｜><｜tool▁calls▁end｜>")
	require.Equal(t, []ToolCall{
		{ID: "call_0", Name: "f", Arguments: `{"a": `, Complete: true},
		{ID: "call_1", Name: "g", Arguments: " {}", Complete: true},
	}, r.ToolCalls)
	require.Equal(t, []string{"tool call 0: its arguments are not valid JSON"}, r.Notes)

	r = Parse(V3, false, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>")
	require.Equal(t, []ToolCall{{ID: "call_0", Name: "f", Arguments: "{}", Complete: true}}, r.ToolCalls)
	require.Empty(t, r.Notes)
}

// TestStringArguments: DSML string values are quoted as DeepSeek's encoder
// quotes them (no \u003c for '<'), and a delta that ends inside a
// character neither splits it in an emitted delta nor turns it into
// U+FFFD.
func TestStringArguments(t *testing.T) {
	out := "<｜DSML｜tool_calls><｜DSML｜invoke name=\"f\"><｜DSML｜parameter name=\"q<\" string=\"true\">a<b && c>\"中\"</｜DSML｜parameter></｜DSML｜invoke></｜DSML｜tool_calls>"
	want := `{"q<": "a<b && c>\"中\""}`
	require.Equal(t, want, Parse(V4, false, out).ToolCalls[0].Arguments)

	p := New(V4, false, nil)
	var got Result
	for i := 0; i < len(out); i++ {
		evs := p.Feed(out[i : i+1])
		for _, e := range evs {
			require.True(t, utf8.ValidString(e.Text), "%+v", e)
		}
		got.Add(evs)
	}
	got.Add(p.Finish())
	require.Equal(t, want, got.ToolCalls[0].Arguments)

	p = New(V4, true, nil)
	got = Result{}
	for _, c := range []string{"a\xe4", "\xb8", "\xad</think>\xf0\x9f", "\x98\x80"} {
		evs := p.Feed(c)
		for _, e := range evs {
			require.True(t, utf8.ValidString(e.Text), "%+v", e)
		}
		got.Add(evs)
	}
	got.Add(p.Finish())
	require.Equal(t, Result{Reasoning: "a中", Content: "😀"}, got)
}

// TestDuplicateParameter: a DSML call that gives a parameter twice keeps
// both (the arguments are what the model wrote) with a note.
func TestDuplicateParameter(t *testing.T) {
	r := Parse(V4, false, "<｜DSML｜tool_calls><｜DSML｜invoke name=\"f\"><｜DSML｜parameter name=\"a\" string=\"false\">1</｜DSML｜parameter><｜DSML｜parameter name=\"a\" string=\"false\">2</｜DSML｜parameter></｜DSML｜invoke><｜DSML｜invoke name=\"g\"><｜DSML｜parameter name=\"a\" string=\"false\">3</｜DSML｜parameter></｜DSML｜invoke></｜DSML｜tool_calls>")
	require.Equal(t, []ToolCall{
		{ID: "call_0", Name: "f", Arguments: `{"a": 1, "a": 2}`, Complete: true},
		{ID: "call_1", Name: "g", Arguments: `{"a": 3}`, Complete: true},
	}, r.ToolCalls)
	require.Equal(t, []string{`tool call 0: parameter "a" is given more than once`}, r.Notes)
}
