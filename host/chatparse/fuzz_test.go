package chatparse

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// The fuzz targets check properties that hold for any output text:
//
//   - nothing panics, and the parser accepts nothing after Finish;
//   - feeding the text whole, cut into deltas at positions drawn from the
//     fuzz input, and one byte at a time give the same events (after
//     merging adjacent deltas of one channel): same channel texts, calls
//     and notes, in the same order;
//   - the events are well formed: calls are numbered 0, 1, … in order,
//     arguments and ends go to the open call, deltas are never empty;
//   - every call is either closed or named in a note, and a closed call's
//     arguments are JSON unless a note says they are not;
//   - text is neither lost nor duplicated: the reasoning and content deltas,
//     in order, are a subsequence of the output, and an output without a
//     '<' (so without any marker) is passed through whole to its channel;
//   - an end-of-sentence token ends the output exactly as Finish does:
//     what follows it is ignored;
//   - for valid UTF-8 output, every emitted string is valid UTF-8, even
//     when a delta ends inside a character.

// fuzzFormat maps a fuzz byte to a format.
func fuzzFormat(b uint8) Format { return Format(b%4) + V3 }

// fuzzSeeds adds the fixtures and tolerance cases, each with a few cut
// patterns, to f.
func fuzzSeeds(f *testing.F) {
	raw, err := os.ReadFile("testdata/deepseek-chat-format-fixtures.json")
	if err != nil {
		f.Fatal(err)
	}
	var fx struct {
		Parse []fixture `json:"parse"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		f.Fatal(err)
	}
	for _, c := range fx.Parse {
		format, err := ParseFormat(c.Format)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(format-V3), c.StartsInReasoning, []byte{3, 1, 7}, c.Output)
	}
	f.Add(uint8(V4-V3), false, []byte{5}, "<｜DSML｜tool_calls>\nhello <｜DSML｜invoke name=\"f\">")
	f.Add(uint8(V31-V3), false, []byte{2, 9}, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"a\": ")
	f.Add(uint8(V3-V3), false, []byte{0, 4}, "<think>hmm</think>ok")
}

// FuzzParse checks the properties above on arbitrary output text.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, format uint8, start bool, cuts []byte, output string) {
		checkOutput(t, fuzzFormat(format), start, output, cuts)
	})
}

// fuzzPieces are the words FuzzParseMarkup writes outputs with: every
// format's markers, their parts, and text that stresses escaping and
// UTF-8.
var fuzzPieces = []string{
	eos, thinkOpen, thinkEnd, "</thi", "\n", "\n\n", " ", "x", "é", "中", "😀", `"`, `\`, "{", "}", "1", "\t",
	"<｜DSML｜tool_calls>", "</｜DSML｜tool_calls>", "<｜DSML｜function_calls>", "</｜DSML｜function_calls>",
	"<｜DSML｜invoke", " name=\"f\"", " name=\"g\"", ">", "</｜DSML｜invoke>",
	"<｜DSML｜parameter", " string=\"true\"", " string=\"false\"", "</｜DSML｜parameter>", "<｜DSML｜",
	"<｜tool▁calls▁begin｜>", "<｜tool_calls_begin｜>", "<｜tool▁calls｜>", "<｜tool▁calls▁end｜>",
	"<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>", "function", "\n```json\n", "\n```", "```",
	"{\"a\": 1}", "[1, 2]", "true", "<｜tool▁calls▁beg", "<｜", "<b>",
}

// FuzzParseMarkup checks the same properties on outputs written with
// markers, where the raw fuzzer seldom reaches deep into a tool block:
// each byte of words picks a piece.
func FuzzParseMarkup(f *testing.F) {
	f.Add(uint8(V4-V3), false, []byte{1, 2}, []byte{17, 21, 22, 24, 27, 28, 31, 24, 7, 29, 25, 18})
	f.Add(uint8(V3-V3), true, []byte{4}, []byte{7, 2, 32, 36, 39, 38, 40, 43, 41, 37, 35})
	f.Add(uint8(V31-V3), false, []byte{}, []byte{32, 36, 7, 38, 43, 37, 35, 0})
	f.Add(uint8(V32-V3), true, []byte{9, 0}, []byte{7, 2, 3, 19, 21, 22, 24, 27, 26, 24, 9, 29, 25, 20})
	f.Fuzz(func(t *testing.T, format uint8, start bool, cuts, words []byte) {
		var b strings.Builder
		for _, w := range words[:min(len(words), 256)] {
			b.WriteString(fuzzPieces[int(w)%len(fuzzPieces)])
		}
		checkOutput(t, fuzzFormat(format), start, b.String(), cuts)
	})
}

// feedAll runs a parser over chunks and returns its events.
func feedAll(t *testing.T, f Format, start bool, chunks []string) []Event {
	p := New(f, start, nil)
	var evs []Event
	for _, c := range chunks {
		evs = append(evs, p.Feed(c)...)
	}
	evs = append(evs, p.Finish()...)
	require.Empty(t, p.Finish(), "a second Finish")
	require.Empty(t, p.Feed("more"), "Feed after Finish")
	return evs
}

// merged joins adjacent deltas of one channel (or one call's arguments),
// which a parser may emit whole or in pieces depending on the deltas.
func merged(evs []Event) []Event {
	var out []Event
	for _, e := range evs {
		if n := len(out); n > 0 && out[n-1].Kind == e.Kind && out[n-1].Index == e.Index &&
			(e.Kind == Reasoning || e.Kind == Content || e.Kind == CallArgs) {
			out[n-1].Text += e.Text
			continue
		}
		out = append(out, e)
	}
	return out
}

// cut cuts s into chunks: each byte of cuts is a chunk's length in bytes
// (0 to 23, an empty delta included), so a cut may fall inside a marker or
// a character; the rest of s is one last chunk.
func cut(s string, cuts []byte) []string {
	var chunks []string
	i := 0
	for _, c := range cuts {
		j := min(i+int(c)%24, len(s))
		chunks = append(chunks, s[i:j])
		i = j
	}
	return append(chunks, s[i:])
}

// bytewise cuts s into single bytes.
func bytewise(s string) []string {
	out := make([]string, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = s[i : i+1]
	}
	return out
}

func checkOutput(t *testing.T, f Format, start bool, s string, cuts []byte) {
	whole := feedAll(t, f, start, []string{s})
	want := merged(whole)
	wellFormed(t, f, start, s, want)

	for how, chunks := range map[string][]string{"cut": cut(s, cuts), "bytes": bytewise(s)} {
		got := feedAll(t, f, start, chunks)
		require.Equal(t, want, merged(got), "%s: %q", how, chunks)
		if utf8.ValidString(s) {
			validUTF8(t, got)
		}
	}
	if utf8.ValidString(s) {
		validUTF8(t, whole)
	}

	if !strings.Contains(s, eos) {
		after := feedAll(t, f, start, []string{s + eos + "ignored</think>"})
		require.Equal(t, want, merged(after), "EOS must end the output as Finish does")
	}
}

// wellFormed checks the events of one whole output s.
func wellFormed(t *testing.T, f Format, start bool, s string, evs []Event) {
	var r Result
	open := -1
	var text strings.Builder
	for _, e := range evs {
		switch e.Kind {
		case Reasoning, Content:
			require.NotEmpty(t, e.Text)
			text.WriteString(e.Text)
		case CallStart:
			require.Equal(t, -1, open, "a call starts while call %d is open", open)
			require.Equal(t, len(r.ToolCalls), e.Index, "calls are numbered in order")
			open = e.Index
		case CallArgs:
			require.NotEmpty(t, e.Text)
			require.Equal(t, open, e.Index, "arguments go to the open call")
		case CallEnd:
			require.Equal(t, open, e.Index, "only the open call ends")
			open = -1
		case Note:
			require.NotEmpty(t, e.Text)
			if open >= 0 && incompleteNote(e.Text, open) {
				open = -1
			}
		default:
			t.Fatalf("unknown event kind %d", e.Kind)
		}
		r.Add([]Event{e})
	}
	require.Equal(t, -1, open, "call %d neither closed nor reported", open)
	for i, c := range r.ToolCalls {
		if !c.Complete {
			require.True(t, slices.ContainsFunc(r.Notes, func(n string) bool { return incompleteNote(n, i) }),
				"call %d is incomplete without a note: %q", i, r.Notes)
			continue
		}
		if !json.Valid([]byte(c.Arguments)) {
			require.True(t, f == V3 || f == V31, "DSML arguments are always JSON: %q", c.Arguments)
			require.Contains(t, r.Notes, fmt.Sprintf("tool call %d: its arguments are not valid JSON", i))
		}
	}
	require.True(t, isSubsequence(text.String(), s), "reasoning and content %q are not drawn from %q", text.String(), s)
	if !strings.Contains(s, "<") {
		want := Result{Content: s}
		if start {
			want = Result{Reasoning: s}
		}
		require.Equal(t, want, r, "an output without markers passes through")
	}
}

// incompleteNote reports whether note says that call i is incomplete.
func incompleteNote(note string, i int) bool {
	return note == fmt.Sprintf("tool call %d was cut off before it closed; its arguments are incomplete", i) ||
		note == fmt.Sprintf("tool call %d is malformed; its arguments are incomplete", i)
}

// isSubsequence reports whether a's bytes appear in b in order.
func isSubsequence(a, b string) bool {
	for i := 0; i < len(a); i++ {
		j := strings.IndexByte(b, a[i])
		if j < 0 {
			return false
		}
		b = b[j+1:]
	}
	return true
}

func validUTF8(t *testing.T, evs []Event) {
	for _, e := range evs {
		require.True(t, utf8.ValidString(e.Text), "%+v", e)
		require.True(t, utf8.ValidString(e.Name), "%+v", e)
	}
}
