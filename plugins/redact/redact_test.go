package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/hook"
)

// The plugin's logic runs natively under `go test`.

func newTestRedactor(t testing.TB, cfg string) *redactor {
	t.Helper()
	p := &plugin{}
	require.NoError(t, p.configure([]byte(cfg)))
	return p.r
}

// oneShot is the reference: one pass of Go's regexp over the whole text.
func oneShot(r *redactor, text string) string {
	var out strings.Builder
	pos := 0
	for _, loc := range r.all.FindAllStringSubmatchIndex(text, -1) {
		for i, g := range r.group {
			if loc[2*g] >= 0 {
				out.WriteString(text[pos:loc[0]])
				out.WriteString(r.masks[i])
				pos = loc[1]
				break
			}
		}
	}
	out.WriteString(text[pos:])
	return out.String()
}

// streamed feeds deltas through a new stream and ends it; it checks that
// nothing more than the bound is held and that every piece released is
// valid UTF-8.
func streamed(t testing.TB, r *redactor, deltas []string) string {
	t.Helper()
	s := r.newStream()
	var out strings.Builder
	for _, d := range deltas {
		o, _ := s.feed(d, false)
		if !utf8.ValidString(o) {
			t.Fatalf("deltas %q: %q is not valid UTF-8", deltas, o)
		}
		if len(s.held) > r.limit {
			t.Fatalf("deltas %q: %d bytes held, over the bound %d", deltas, len(s.held), r.limit)
		}
		out.WriteString(o)
	}
	o, _ := s.feed("", true)
	require.Empty(t, s.held)
	return out.String() + o
}

const secrets = "Mail jane.doe+test@mail.example.co.uk or call +1 (415) 555-0100; " +
	"the key is sk-proj-Abc123Def456Ghi789Jkl0 and AKIAIOSFODNN7EXAMPLE. Café 東京 🌍, done."

func TestPresets(t *testing.T) {
	t.Parallel()
	r := newTestRedactor(t, `{}`)
	for _, tc := range []struct{ in, want string }{
		{secrets, "Mail [REDACTED:email] or call [REDACTED:phone]; the key is [REDACTED:api_key] and [REDACTED:api_key]. Café 東京 🌍, done."},
		{"x@y.io, a@b.c and 415-555-0100.", "[REDACTED:email], a@b.c and [REDACTED:phone]."},
		{"On 2024-01-15 at 10:30, version 1.2.3 of 10.000.000 at 192.168.1.100", "On 2024-01-15 at 10:30, version 1.2.3 of 10.000.000 at 192.168.1.100"},
		{"+44 20 7946 0958 or +14155550100", "[REDACTED:phone] or [REDACTED:phone]"},
		{"ghp_0123456789abcdefghijABCDEFGHIJ012345 xoxb-1234567890-abc", "[REDACTED:api_key] [REDACTED:api_key]"},
		{"sha 3b1f9c2e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c end", "sha [REDACTED:api_key] end"},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0\n",
			"[REDACTED:api_key]\n[REDACTED:api_key]\n"},
		{"a normal sentence with no secrets in it.", "a normal sentence with no secrets in it."},
	} {
		require.Equal(t, tc.want, oneShot(r, tc.in), "%q", tc.in)
		require.Equal(t, tc.want, streamed(t, r, []string{tc.in}), "%q streamed", tc.in)
	}
}

// TestStreamSplits: the secrets text split at every byte position (once,
// twice, one byte at a time) and at random positions comes out as the
// one-shot redaction.
func TestStreamSplits(t *testing.T) {
	t.Parallel()
	for _, cfg := range []string{
		`{}`,
		`{"patterns": [{"name": "word", "regex": "\\b(?i:done|café)\\b"}, "email", {"name": "digits", "regex": "(\\d)\\d+$"}], "mask": "<{name}>"}`,
	} {
		r := newTestRedactor(t, cfg)
		want := oneShot(r, secrets)
		check := func(deltas []string) {
			t.Helper()
			if got := streamed(t, r, deltas); got != want {
				t.Fatalf("config %s, deltas %q:\n got %q\nwant %q", cfg, deltas, got, want)
			}
		}
		n := len(secrets)
		bytes := make([]string, n)
		for i := range n {
			bytes[i] = secrets[i : i+1]
			check([]string{secrets[:i], secrets[i:]})
			for j := i; j <= n; j += 19 {
				check([]string{secrets[:i], secrets[i:j], secrets[j:]})
			}
		}
		check(bytes)
		rng := rand.New(rand.NewPCG(1, 2))
		for range 50 {
			check(randomSplit(rng, secrets))
		}
	}
}

func randomSplit(rng *rand.Rand, text string) []string {
	var deltas []string
	for len(text) > 0 {
		n := rng.IntN(min(len(text), 12) + 1)
		deltas = append(deltas, text[:n])
		text = text[n:]
	}
	return deltas
}

// TestHoldsBackOnlyWhatCouldMatch: prose waits for the end of the current
// word (any word could still become an e-mail's local part), not more.
func TestHoldsBackOnlyWhatCouldMatch(t *testing.T) {
	t.Parallel()
	r := newTestRedactor(t, `{"patterns": ["email"]}`)
	s := r.newStream()
	for _, step := range []struct{ in, out string }{
		{"Hello wor", "Hello "},
		{"ld, write to ", "world, write to "},
		{"jane@exam", ""},
		{"ple.com", ""},
		{" today", "[REDACTED:email] "},
		{"!", "today!"},
	} {
		out, _ := s.feed(step.in, false)
		require.Equal(t, step.out, out, "after %q", step.in)
	}
	out, n := s.feed("", true)
	require.Equal(t, "", out)
	require.Zero(t, n)

	// A match released while a later start was still undecided: "bcd"
	// could have started inside "ab", which the one-shot pass skips.
	r = newTestRedactor(t, `{"patterns": [{"name": "x", "regex": "ab|bcd"}], "mask": "#"}`)
	s = r.newStream()
	for _, step := range []struct{ in, out string }{
		{"xab", "x"}, // "ab" could still be followed by more: held
		{"c", "#"},   // "ab" is final; "c" waits, as "bcd" might be coming
		{"d", "cd"},  // it was, but it started inside the match
		{"bc", ""},
		{"d!", "#!"},
	} {
		out, _ := s.feed(step.in, false)
		require.Equal(t, step.out, out, "after %q", step.in)
	}
	require.Equal(t, "x#cd#!", oneShot(r, "xabcdbcd!"))
}

// TestBoundedHoldback: text that could still match for longer than the
// bound (a long base64 blob) is released at the bound, masked in pieces.
func TestBoundedHoldback(t *testing.T) {
	t.Parallel()
	r := newTestRedactor(t, `{"patterns": ["api_key"], "mask": "#"}`)
	blob := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkw", 20) // 880 base64 bytes
	text := "key: " + blob + " end"
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		got := streamed(t, r, randomSplit(rng, text))
		require.True(t, strings.HasPrefix(got, "key: #"), got)
		require.True(t, strings.HasSuffix(got, "# end"), got)
		require.NotContains(t, got, "QUJD", "no piece of the blob is left")
	}
}

func TestSession(t *testing.T) {
	t.Parallel()
	p := &plugin{}
	_, err := p.Open(nil)
	require.Error(t, err, "not configured")
	require.NoError(t, p.configure([]byte(`{"patterns": ["email"]}`)))
	s, err := p.Open([]byte(`{"request_id":"r"}`))
	require.NoError(t, err)
	for _, step := range []struct {
		in   string
		ch   hook.Channel
		want hook.Result
	}{
		{"Hi. ", hook.Content, hook.Result{Action: hook.Pass}},
		{"Mail a@b.", hook.Content, hook.Result{Action: hook.Replace, Emit: "Mail "}},
		{"a@b.io", hook.Reasoning, hook.Result{Action: hook.Pass}},
		{"io now", hook.Content, hook.Result{Action: hook.Redact, Emit: "[REDACTED:email] "}},
		{"", hook.Content, hook.Result{Action: hook.Pass}},
	} {
		got, err := s.Delta(step.in, nil, step.ch)
		require.NoError(t, err)
		require.Equal(t, step.want, got, "delta %q", step.in)
	}
	got, err := s.End(1)
	require.NoError(t, err)
	require.Equal(t, hook.Result{Action: hook.Replace, Emit: "now"}, got)
	got, err = s.End(1)
	require.NoError(t, err)
	require.Equal(t, hook.Result{Action: hook.Pass}, got)

	s, err = p.Open(nil)
	require.NoError(t, err)
	_, err = s.Delta("to x@y.co", nil, hook.Content)
	require.NoError(t, err)
	got, err = s.End(1)
	require.NoError(t, err)
	require.Equal(t, hook.Result{Action: hook.Redact, Emit: "[REDACTED:email]"}, got, "the end redacts what it releases")
	s.Close()
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ cfg, err string }{
		{`{"patterns": ["ssn"]}`, `no preset "ssn"`},
		{`{"patterns": [{"name": "bad", "regex": "a("}]}`, "pattern bad: error parsing regexp"},
		{`{"patterns": [{"name": "escape", "regex": "a)|(b"}]}`, "pattern escape"},
		{`{"patterns": [{"name": "empty", "regex": "x*"}]}`, "pattern empty can match empty text"},
		{`{"patterns": [{"name": "boundary", "regex": "\\b|y"}]}`, "pattern boundary can match empty text"},
		{`{"patterns": [{"name": "n"}]}`, "needs a name and a regex"},
	} {
		err := (&plugin{}).configure([]byte(tc.cfg))
		require.ErrorContains(t, err, tc.err, tc.cfg)
	}
	// Capture groups of one pattern do not confuse which pattern matched;
	// flags stay inside their pattern.
	r := newTestRedactor(t, `{"patterns": [{"name": "a", "regex": "(?i)(x)(y)z"}, {"name": "b", "regex": "(q)+"}], "mask": "[{name}]"}`)
	require.Equal(t, "[a] [b] [a] Q[b] [a]", oneShot(r, "XYZ qq XYz Qq xyZ"))
}

// TestManifestHoldback: the bound the code keeps is the one the manifest
// declares.
func TestManifestHoldback(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("manifest.json")
	require.NoError(t, err)
	var m struct {
		Hook struct {
			MaxHoldbackBytes int `json:"max_holdback_bytes"`
		} `json:"hook"`
	}
	require.NoError(t, json.Unmarshal(raw, &m))
	require.Equal(t, maxHoldback, m.Hook.MaxHoldbackBytes)
}

func TestLiveEarliest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr, text string
		want       int
	}{
		{`abc`, "xxab", 2},
		{`abc`, "xxabc", 2},    // a match at the end counts as undecided
		{`abc`, "xxabd", 5},    // nothing can start before the end
		{`a+b`, "aaac", 4},     // dead
		{`a+`, "caaa", 1},      // could grow
		{`\bfoo\b`, "xfoo", 4}, // no word boundary before foo
		{`\bfoo\b`, " foo", 1}, // \b at the end depends on what follows
		{`foo$`, "foo bar", 7}, // $ is the end of all the content
		{`(?m)^ab`, "x\na", 2}, // ^ after a newline
		{`東京`, "in 東", 3},      // characters, not bytes
		{`x|[0-9]{3}`, "a12", 1},
	} {
		prog, err := compile(tc.expr)
		require.NoError(t, err)
		require.Equal(t, tc.want, newLive(prog).earliest(tc.text, -1), "%s on %q", tc.expr, tc.text)
	}
}

// FuzzStream: for any text, split, and an extra pattern of the fuzzer's
// (alongside the presets), the streamed redaction equals the one-shot one
// while nothing reaches the holdback bound.
func FuzzStream(f *testing.F) {
	f.Add(secrets[:120], `\bcall\b`, uint64(1))
	f.Add("a@b.co x", `(?m)^x$`, uint64(2))
	f.Add("ab ab\nab", `(?i)b\B`, uint64(3))
	f.Add("東京 café", `é\b|京`, uint64(4))
	f.Fuzz(func(t *testing.T, text, expr string, seed uint64) {
		if len(text) > 200 || len(expr) > 40 || strings.Contains(expr, "{") {
			return // within the bound; no large repeats
		}
		prog, err := compile(expr)
		if err != nil || matchesEmpty(prog) {
			return
		}
		pats := []pattern{{"x", expr}, presets["email"], presets["phone"], presets["api_key"]}
		r, err := newRedactor(pats, "<{name}>", maxHoldback)
		if err != nil {
			return
		}
		want := oneShot(r, text)
		got := streamed(t, r, randomSplit(rand.New(rand.NewPCG(seed, 5)), text))
		if !utf8.ValidString(text) {
			// Released pieces are made valid one by one: compare without
			// what stood for invalid bytes.
			strip := func(s string) string { return strings.ReplaceAll(strings.ToValidUTF8(s, ""), "\uFFFD", "") }
			want, got = strip(want), strip(got)
		}
		if got != want {
			t.Fatalf("text %q, pattern %q:\n got %q\nwant %q", text, expr, got, want)
		}
	})
}
