package stop_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/stop"
)

// reference is the one-shot answer over the whole text: the stop string
// whose first occurrence ends first, ties to the longest (see the package
// comment).
func reference(text string, stops []string, include bool) (out, hit string) {
	end := -1
	for _, s := range stops {
		if s == "" {
			continue
		}
		i := strings.Index(text, s)
		if i < 0 {
			continue
		}
		if e := i + len(s); end < 0 || e < end || (e == end && len(s) > len(hit)) {
			end, hit = e, s
		}
	}
	switch {
	case end < 0:
		return text, ""
	case include:
		return text[:end], hit
	}
	return text[:end-len(hit)], hit
}

// heldFor is how much of fed a Matcher may hold back when no stop string has
// completed: the longest suffix of fed that is a proper prefix of a stop
// string.
func heldFor(fed string, stops []string) int {
	held := 0
	for _, s := range stops {
		for k := min(len(s)-1, len(fed)); k > held; k-- {
			if strings.HasSuffix(fed, s[:k]) {
				held = k
				break
			}
		}
	}
	return held
}

// stream feeds deltas, then flushes, and checks on the way that each piece
// that goes out is valid UTF-8 when every delta and stop string is, and that
// no more is held back than a possible partial match (plus, for invalid
// UTF-8, a sequence it would split).
func stream(t testing.TB, stops []string, include bool, deltas []string) (string, string) {
	t.Helper()
	m := stop.New(stops, include)
	valid := true
	for _, s := range append(stops[:len(stops):len(stops)], deltas...) {
		valid = valid && utf8.ValidString(s)
	}
	var out strings.Builder
	fed := ""
	hit := ""
	for _, d := range deltas {
		o, h := m.Feed(d)
		if valid && !utf8.ValidString(o) {
			t.Fatalf("stops %q, deltas %q: piece %q splits a character", stops, deltas, o)
		}
		out.WriteString(o)
		if hit != "" {
			require.Empty(t, o+h, "Feed after a match returns nothing")
			continue
		}
		fed += d
		hit = h
		if h == "" {
			want := heldFor(fed, stops)
			got := len(fed) - out.Len()
			if got != want && (valid || got < want || got > want+utf8.UTFMax-1) {
				t.Fatalf("stops %q, deltas %q: after %q, %d bytes held, want %d", stops, deltas, fed, got, want)
			}
		}
	}
	tail := m.Flush()
	if valid && !utf8.ValidString(tail) {
		t.Fatalf("stops %q, deltas %q: Flush %q splits a character", stops, deltas, tail)
	}
	out.WriteString(tail)
	require.True(t, m.Done())
	require.Equal(t, hit, m.Hit())
	return out.String(), hit
}

func TestMatcher(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		stops   []string
		include bool
		deltas  []string
		want    string
		hit     string
	}{
		{"no stop strings", nil, false, []string{"a", "", "bc"}, "abc", ""},
		{"empty stop strings are ignored", []string{"", ""}, false, []string{"abc"}, "abc", ""},
		{"exclude", []string{"STOP"}, false, []string{"Hello ST", "OP world"}, "Hello ", "STOP"},
		{"include", []string{"STOP"}, true, []string{"Hello ST", "OP world"}, "Hello STOP", "STOP"},
		{"a stop string that ends with another: the longest", []string{"b", "ab"}, false, []string{"xab"}, "x", "ab"},
		{"the same, listed the other way", []string{"ab", "b"}, false, []string{"xa", "b"}, "x", "ab"},
		{"the match that ends first wins", []string{"abcd", "bc"}, false, []string{"abcd"}, "a", "bc"},
		{"a stop string that is a prefix of another", []string{"abc", "ab"}, false, []string{"xa", "bc"}, "x", "ab"},
		{"repeated near matches", []string{"ab"}, false, []string{"a", "a", "a", "b", "c"}, "aa", "ab"},
		{"aab", []string{"ab"}, true, []string{"aab"}, "aab", "ab"},
		{"self-overlapping stop string", []string{"aab"}, false, []string{"a", "a", "a", "b"}, "a", "aab"},
		{"flush releases a partial match", []string{"STOP"}, false, []string{"Hello S", "T"}, "Hello ST", ""},
		{"empty deltas", []string{"xy"}, false, []string{"", "ax", "", "", "y", ""}, "a", "xy"},
		{"the match starts in an earlier delta", []string{"<end>"}, false, []string{"one <", "e", "n", "d", ">two"}, "one ", "<end>"},
		{"UTF-8", []string{"世界"}, false, []string{"你好世", "界!"}, "你好", "世界"},
		{"the stop string at the very start", []string{"x"}, true, []string{"xyz"}, "x", "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, hit := stream(t, tc.stops, tc.include, tc.deltas)
			require.Equal(t, tc.want, out)
			require.Equal(t, tc.hit, hit)
			rout, rhit := reference(strings.Join(tc.deltas, ""), tc.stops, tc.include)
			require.Equal(t, rout, out, "the reference agrees")
			require.Equal(t, rhit, hit)
		})
	}
}

func TestMatcherHoldsBackOnlyAPartialMatch(t *testing.T) {
	t.Parallel()
	m := stop.New([]string{"</answer>", "\n\n"}, false)
	for _, step := range []struct{ in, out string }{
		{"The answer", "The answer"},
		{" is 4.<", " is 4."}, // "<" may start "</answer>"
		{"/ans", ""},          // still may
		{"wer!", "</answer!"}, // no longer: all of it goes out
		{"\n", ""},            // may start "\n\n"
		{"x\n", "\nx"},        // the first "\n" goes, the new one is held
		{"é<", "\né"},         // the held "\n" goes with the character
		{"/answer> tail", ""}, // the match: nothing after the stop string
		{"more", ""},          // done
	} {
		out, hit := m.Feed(step.in)
		require.Equal(t, step.out, out, "after %q", step.in)
		if step.in == "/answer> tail" {
			require.Equal(t, "</answer>", hit)
		}
	}
	require.Empty(t, m.Flush())
	require.Equal(t, "</answer>", m.Hit())
}

// TestMatcherSplits feeds texts split at every byte position (one split,
// two splits, one byte at a time) and at random positions: the output and
// the hit are always the one-shot reference's.
func TestMatcherSplits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		text  string
		stops []string
	}{
		{"The quick brown fox jumps over the lazy dog.", []string{"lazy", "fox j", "the"}},
		{"aaaaaaaaab and then some", []string{"aab", "aaab", "b a"}},
		{"abababababac", []string{"ababac", "babac", "c"}},
		{"no stop string occurs here at all, none", []string{"zzz", "none!", "e at a!"}},
		{"naïve café in 東京 🌍 done", []string{"東京 🌍", "é i", "🌍 d"}},
		{"line one\n\nline two\n", []string{"\n\n", "\nline", "two\n"}},
		{"partial at the end <|im_e", []string{"<|im_end|>"}},
	}
	for _, tc := range cases {
		for _, include := range []bool{false, true} {
			wantOut, wantHit := reference(tc.text, tc.stops, include)
			check := func(deltas []string) {
				t.Helper()
				out, hit := stream(t, tc.stops, include, deltas)
				if out != wantOut || hit != wantHit {
					t.Fatalf("deltas %q (include %v): got %q, %q; want %q, %q", deltas, include, out, hit, wantOut, wantHit)
				}
			}
			n := len(tc.text)
			for i := 0; i <= n; i++ {
				check([]string{tc.text[:i], tc.text[i:]})
				for j := i; j <= n; j++ {
					check([]string{tc.text[:i], tc.text[i:j], tc.text[j:]})
				}
			}
			bytes := make([]string, n)
			for i := range n {
				bytes[i] = tc.text[i : i+1]
			}
			check(bytes)
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			for range 50 {
				check(randomSplit(rng, tc.text))
			}
		}
	}
}

// TestMatcherSplitsEveryStopString puts each stop string in a text and
// splits it at every byte position, so that the match straddles deltas in
// every possible way.
func TestMatcherSplitsEveryStopString(t *testing.T) {
	t.Parallel()
	stops := []string{"###", "<|end|>", "Observation:", "終わり", "\n\nUser:"}
	for _, s := range stops {
		text := "before " + s[:len(s)-1] + " near miss, " + s + " after"
		for i := 0; i <= len(text); i++ {
			for j := i; j <= len(text); j += 3 {
				out, hit := stream(t, stops, false, []string{text[:i], text[i:j], text[j:]})
				require.Equal(t, s, hit)
				require.Equal(t, "before "+s[:len(s)-1]+" near miss, ", out)
			}
		}
	}
}

func randomSplit(rng *rand.Rand, text string) []string {
	var deltas []string
	for len(text) > 0 {
		n := rng.IntN(min(len(text), 6) + 1) // empty deltas too
		deltas = append(deltas, text[:n])
		text = text[n:]
	}
	return deltas
}

// FuzzMatcher: for any text, stop strings (the second argument split at
// NUL, at most 16 of at most 256 bytes), split points and include, the
// streamed output and hit equal the one-shot reference's.
func FuzzMatcher(f *testing.F) {
	f.Add("Hello STOP world", "STOP", uint64(1), false)
	f.Add("xab", "b\x00ab", uint64(2), true)
	f.Add("aaab", "aab\x00ab", uint64(3), false)
	f.Add("naïve café 東京", "東\x00é c\x00\xa9", uint64(4), false)
	f.Add("\xe6\x9d\xb1\xe4\xba\xac", "\xba\x00\x9d", uint64(5), true)
	f.Fuzz(func(t *testing.T, text, stopList string, seed uint64, include bool) {
		var stops []string
		for s := range strings.SplitSeq(stopList, "\x00") {
			if len(stops) == 16 {
				break
			}
			stops = append(stops, s[:min(len(s), 256)])
		}
		wantOut, wantHit := reference(text, stops, include)
		rng := rand.New(rand.NewPCG(seed, 0))
		out, hit := stream(t, stops, include, randomSplit(rng, text))
		if out != wantOut || hit != wantHit {
			t.Fatalf("text %q, stops %q: got %q, %q; want %q, %q", text, stops, out, hit, wantOut, wantHit)
		}
	})
}

func BenchmarkMatcher(b *testing.B) {
	stops := []string{"<|im_end|>", "\n\nUser:", "Observation:", "###"}
	delta := "a token "
	b.SetBytes(int64(len(delta)))
	m := stop.New(stops, false)
	for b.Loop() {
		m.Feed(delta)
	}
}
