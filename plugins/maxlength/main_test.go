package main

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/hook"
)

// The plugin's logic runs natively under `go test`.

// reference cuts text at the limit in one go: the output and whether the
// text exceeded the limit.
func reference(cfg config, text string) (string, bool) {
	n, inWord := 0, false
	for i, r := range text {
		if cfg.MaxChars > 0 {
			if n++; n > cfg.MaxChars {
				return text[:i], true
			}
			continue
		}
		if !unicode.IsSpace(r) && !inWord {
			if n++; n > cfg.MaxWords {
				return text[:i], true
			}
		}
		inWord = !unicode.IsSpace(r)
	}
	return text, false
}

// run feeds deltas to a session and ends it as the hook chain would: the
// output, and whether the hook stopped the choice.
func run(t *testing.T, cfg config, deltas []string) (string, bool) {
	t.Helper()
	s, err := (&plugin{cfg: cfg}).Open(nil)
	require.NoError(t, err)
	var out strings.Builder
	for _, d := range deltas {
		r, err := s.Delta(d, nil, hook.Content)
		require.NoError(t, err)
		require.LessOrEqual(t, len(s.(*session).held), 3, "the manifest's max_holdback_bytes")
		switch r.Action {
		case hook.Pass:
			out.WriteString(d)
		case hook.Replace:
			out.WriteString(r.Emit)
		case hook.Stop:
			require.Equal(t, int32(finishLength), r.FinishReason)
			return out.String() + r.Emit, true
		default:
			t.Fatalf("action %d", r.Action)
		}
	}
	r, err := s.End(1)
	require.NoError(t, err)
	out.WriteString(r.Emit)
	return out.String(), r.Action == hook.Stop
}

func TestLimits(t *testing.T) {
	t.Parallel()
	texts := []string{
		"The naïve café in 東京 opened at 9:45 — 🌍 tokens!",
		"  leading spaces,\n\nnew lines\tand tabs  ",
		"short",
	}
	for _, text := range texts {
		for _, cfg := range []config{{MaxChars: 1}, {MaxChars: 8}, {MaxChars: 19}, {MaxChars: utf8.RuneCountInString(text)}, {MaxChars: 1000},
			{MaxWords: 1}, {MaxWords: 3}, {MaxWords: 5}, {MaxWords: len(strings.Fields(text))}} {
			want, wantStop := reference(cfg, text)
			check := func(deltas []string) {
				t.Helper()
				got, stop := run(t, cfg, deltas)
				if got != want || stop != wantStop {
					t.Fatalf("%+v, deltas %q: got %q (stop %v), want %q (stop %v)", cfg, deltas, got, stop, want, wantStop)
				}
			}
			check([]string{text})
			n := len(text)
			bytes := make([]string, n)
			for i := range n {
				bytes[i] = text[i : i+1]
				check([]string{text[:i], text[i:]})
				for j := i; j <= n; j += 5 {
					check([]string{text[:i], "", text[i:j], text[j:]})
				}
			}
			check(bytes)
		}
	}
}

func TestExactCuts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg    config
		deltas []string
		want   string
		stop   bool
	}{
		{config{MaxChars: 5}, []string{"東京🌍ab", "c"}, "東京🌍ab", true},
		{config{MaxChars: 5}, []string{"東京🌍ab"}, "東京🌍ab", false}, // at the limit, not over it
		{config{MaxChars: 3}, []string{"ab", "cdef"}, "abc", true},
		{config{MaxWords: 2}, []string{"one two", "  three"}, "one two  ", true},
		{config{MaxWords: 2}, []string{"one two  "}, "one two  ", false},
		{config{MaxWords: 2}, []string{"one\ntwo\n", "\n3"}, "one\ntwo\n\n", true},
	} {
		got, stop := run(t, tc.cfg, tc.deltas)
		require.Equal(t, tc.want, got, "%+v %q", tc.cfg, tc.deltas)
		require.Equal(t, tc.stop, stop, "%+v %q", tc.cfg, tc.deltas)
	}
}

func TestSession(t *testing.T) {
	t.Parallel()
	p := &plugin{}
	_, err := p.Open(nil)
	require.Error(t, err, "not configured")
	require.NoError(t, p.configure([]byte(`{"max_chars": 4}`)))
	s, err := p.Open(nil)
	require.NoError(t, err)
	for _, step := range []struct {
		in   string
		ch   hook.Channel
		want hook.Result
	}{
		{"ab", hook.Content, hook.Result{Action: hook.Pass}},
		{"thinking at length", hook.Reasoning, hook.Result{Action: hook.Pass}}, // not counted
		{"c\xc3", hook.Content, hook.Result{Action: hook.Replace, Emit: "c"}},  // half of "é" held
		{"\xa9xyz", hook.Content, hook.Result{Action: hook.Stop, Emit: "é", FinishReason: finishLength}},
		{"more", hook.Content, hook.Result{Action: hook.Stop, FinishReason: finishLength}},
	} {
		got, err := s.Delta(step.in, nil, step.ch)
		require.NoError(t, err)
		require.Equal(t, step.want, got, "delta %q", step.in)
	}
	got, err := s.End(1)
	require.NoError(t, err)
	require.Equal(t, hook.Pass, got.Action)

	// An incomplete sequence at the end goes out as U+FFFD, within the limit.
	s, _ = p.Open(nil)
	_, _ = s.Delta("abc\xe6\x9d", nil, hook.Content)
	got, _ = s.End(1)
	require.Equal(t, hook.Result{Action: hook.Replace, Emit: "\uFFFD"}, got)
	s, _ = p.Open(nil)
	_, _ = s.Delta("abcd\xe6\x9d", nil, hook.Content)
	got, _ = s.End(1)
	require.Equal(t, hook.Result{Action: hook.Stop, FinishReason: finishLength}, got)
	s.Close()

	for _, bad := range []string{`{}`, `{"max_chars": 3, "max_words": 2}`, `{"max_words": 0}`, `[]`} {
		require.Error(t, (&plugin{}).configure([]byte(bad)), bad)
	}
}
