package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/plugin"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// The first-party hook plugins (plugins/redact, plugins/maxlength), loaded
// from their committed modules through a generation, driven by the real
// HookChain.

var (
	hookGenOnce sync.Once
	hookGen     *generation.Generation
	hookGenErr  error
)

// hookPlugins builds, once per test binary, a generation with the hook
// plugins in the configurations the tests use. Compiling a Go-built module
// takes seconds, and over a minute under -race, so each module is compiled
// once: a first generation with one entry per module fills a compilation
// cache (Build loads plugins in parallel, so two entries of one module
// would both compile it), and the generation the tests share loads every
// entry from that cache. It is never closed: it lives as long as the test
// binary.
func hookPlugins(t *testing.T) *generation.Generation {
	t.Helper()
	if testing.Short() {
		t.Skip("loads the Go-built hook plugins")
	}
	hookGenOnce.Do(func() {
		ctx := context.Background()
		redact := func(id, policy string, pool int) config.Plugin {
			return config.Plugin{ID: id, Module: "../../plugins/redact/redact.wasm", FailurePolicy: policy, PoolSize: pool}
		}
		maxlength := func(id string, cfg map[string]any) config.Plugin {
			return config.Plugin{ID: id, Module: "../../plugins/maxlength/maxlength.wasm", Config: cfg, PoolSize: 2}
		}
		deps := generation.Deps{Cache: wazero.NewCompilationCache(), InitTimeout: time.Minute,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		warm, err := generation.Build(ctx, config.Config{Plugins: []config.Plugin{
			redact("redact", "", 1), maxlength("maxchars", map[string]any{"max_chars": 60})}}, deps)
		if err != nil {
			hookGenErr = err
			return
		}
		if err := warm.Close(ctx); err != nil {
			hookGenErr = err
			return
		}
		hookGen, hookGenErr = generation.Build(ctx, config.Config{
			Plugins: []config.Plugin{
				redact("redact", "", 2),
				redact("redact-open", "fail_open", 1),
				maxlength("maxchars", map[string]any{"max_chars": 60}),
				maxlength("maxwords", map[string]any{"max_words": 12}),
			},
			Pipelines: []config.Pipeline{
				{Name: "default", Hooks: []string{"redact", "maxchars"}},
				{Name: "words", Hooks: []string{"redact", "maxwords"}},
			},
		}, deps)
	})
	require.NoError(t, hookGenErr)
	return hookGen
}

func hooksByID(t *testing.T, g *generation.Generation, ids ...string) []*generation.Plugin {
	t.Helper()
	var hs []*generation.Plugin
	for _, id := range ids {
		p, ok := g.Plugin(id)
		require.True(t, ok, id)
		hs = append(hs, p)
	}
	return hs
}

// streamResult is what a choice's client would see.
type streamResult struct {
	text   string
	finish ulanv1.FinishReason
	notes  []string
}

// streamThrough streams deltas of content through a new chain of hooks and ends
// it as the engine would (finish reason stop) unless a hook ends it first.
func streamThrough(t *testing.T, hooks []*generation.Plugin, deltas []string) streamResult {
	t.Helper()
	ctx := context.Background()
	c, err := pipeline.OpenHookChain(ctx, hooks, []byte(`{"request_id":"hookplugins"}`))
	require.NoError(t, err)
	defer c.Close(ctx)
	var res streamResult
	for _, d := range deltas {
		out, err := c.Delta(ctx, d, nil, plugin.ChannelContent)
		require.NoError(t, err)
		res.text += out.Text
		if out.Finish != ulanv1.FinishReason_FINISH_REASON_UNSPECIFIED {
			res.finish = out.Finish
			res.notes = noteTexts(t, c)
			return res
		}
	}
	out, err := c.End(ctx, ulanv1.FinishReason_FINISH_REASON_STOP)
	require.NoError(t, err)
	res.text += out.Text
	res.finish = out.Finish
	res.notes = noteTexts(t, c)
	return res
}

// noteTexts returns the chain's annotations as text (nil for none),
// whether the chain reports them as strings or as API annotations.
func noteTexts(t *testing.T, c *pipeline.HookChain) []string {
	t.Helper()
	var texts []string
	switch as := any(c.Annotations()).(type) {
	case []string:
		texts = append(texts, as...)
	case []*ulanv1.Annotation:
		for _, a := range as {
			texts = append(texts, a.GetMessage())
		}
	default:
		t.Fatalf("annotations of type %T", as)
	}
	return texts
}

func noteContains(notes []string, substr string) bool {
	for _, n := range notes {
		if strings.Contains(n, substr) {
			return true
		}
	}
	return false
}

const (
	secretText = "Mail jane.doe+test@mail.example.co.uk or call +1 (415) 555-0100; " +
		"the key is sk-proj-Abc123Def456Ghi789Jkl0 and AKIAIOSFODNN7EXAMPLE. Café 東京 🌍, done."
	redactedText = "Mail [REDACTED:email] or call [REDACTED:phone]; " +
		"the key is [REDACTED:api_key] and [REDACTED:api_key]. Café 東京 🌍, done."
)

// everySplit returns text split into deltas every way the tests try: at every
// byte position in two, one byte at a time, and at random positions.
func everySplit(text string, random int) [][]string {
	var all [][]string
	bytes := make([]string, len(text))
	for i := range len(text) {
		bytes[i] = text[i : i+1]
		all = append(all, []string{text[:i], text[i:]})
	}
	all = append(all, bytes)
	rng := rand.New(rand.NewPCG(uint64(len(text)), 11))
	for range random {
		var deltas []string
		for rest := text; len(rest) > 0; {
			n := rng.IntN(min(len(rest), 9) + 1)
			deltas = append(deltas, rest[:n])
			rest = rest[n:]
		}
		all = append(all, deltas)
	}
	return all
}

// firstRunes is max_chars's cut: the first n characters.
func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// TestRedactPlugin: an e-mail address, a phone number and two API keys,
// streamed in deltas split every way, come out masked the same way each
// time, and the choice carries the redaction's annotation.
func TestRedactPlugin(t *testing.T) {
	t.Parallel()
	g := hookPlugins(t)
	hooks := hooksByID(t, g, "redact")
	for _, deltas := range everySplit(secretText, 8) {
		res := streamThrough(t, hooks, deltas)
		if res.text != redactedText || res.finish != ulanv1.FinishReason_FINISH_REASON_STOP {
			t.Fatalf("deltas %q:\n got %q (%v)\nwant %q", deltas, res.text, res.finish, redactedText)
		}
		require.True(t, noteContains(res.notes, "hook redact redacted output"), "%q", res.notes)
	}
	res := streamThrough(t, hooks, []string{"Nothing to hide here, ", "nothing at all."})
	require.Equal(t, "Nothing to hide here, nothing at all.", res.text)
	require.Empty(t, res.notes, "no redaction, no annotation")
}

// TestMaxLengthPlugin: the content stops at exactly the limit with finish
// reason length, however it is split; content within the limit goes out
// whole and ends as the engine ended it.
func TestMaxLengthPlugin(t *testing.T) {
	t.Parallel()
	g := hookPlugins(t)
	hooks := hooksByID(t, g, "maxchars")
	want := firstRunes(secretText, 60)
	for _, deltas := range everySplit(secretText, 8) {
		res := streamThrough(t, hooks, deltas)
		if res.text != want || res.finish != ulanv1.FinishReason_FINISH_REASON_LENGTH {
			t.Fatalf("deltas %q:\n got %q (%v)\nwant %q (length)", deltas, res.text, res.finish, want)
		}
		require.True(t, noteContains(res.notes, "hook maxchars stopped the output"), "%q", res.notes)
	}
	short := "Café 東京 🌍: within the limit."
	for _, deltas := range everySplit(short, 0) {
		res := streamThrough(t, hooks, deltas)
		require.Equal(t, streamResult{text: short, finish: ulanv1.FinishReason_FINISH_REASON_STOP}, res, "%q", deltas)
	}
	require.Equal(t, 60, utf8.RuneCountInString(want))
}

// TestRedactThenMaxLength: the pipelines run redact, then maxlength, so the
// limit counts the redacted text — also what redact held back and released
// at the end, which reaches maxlength before its own end.
func TestRedactThenMaxLength(t *testing.T) {
	t.Parallel()
	g := hookPlugins(t)
	for _, tc := range []struct {
		pipeline string
		text     string
		want     string
		finish   ulanv1.FinishReason
	}{
		{"default", secretText, firstRunes(redactedText, 60), ulanv1.FinishReason_FINISH_REASON_LENGTH},
		{"words", secretText, "Mail [REDACTED:email] or call [REDACTED:phone]; the key is [REDACTED:api_key] and [REDACTED:api_key]. Café ",
			ulanv1.FinishReason_FINISH_REASON_LENGTH},
		// 58 characters, then an address that redact releases only at the
		// end: its mask crosses the limit there.
		{"default", strings.Repeat("word ", 11) + "wo a@b.io", strings.Repeat("word ", 11) + "wo [R", ulanv1.FinishReason_FINISH_REASON_LENGTH},
		{"words", "one two three four five six seven eight nine ten eleven a@b.io", "one two three four five six seven eight nine ten eleven [REDACTED:email]",
			ulanv1.FinishReason_FINISH_REASON_STOP},
	} {
		pl, ok := g.Pipeline(tc.pipeline)
		require.True(t, ok)
		limit := map[string]string{"default": "maxchars", "words": "maxwords"}[tc.pipeline]
		require.Equal(t, []string{"redact", limit}, []string{pl.Hooks[0].ID, pl.Hooks[1].ID}, "pipeline order")
		for _, deltas := range everySplit(tc.text, 4) {
			res := streamThrough(t, pl.Hooks, deltas)
			if res.text != tc.want || res.finish != tc.finish {
				t.Fatalf("%s, deltas %q:\n got %q (%v)\nwant %q (%v)", tc.pipeline, deltas, res.text, res.finish, tc.want, tc.finish)
			}
			require.True(t, noteContains(res.notes, "hook redact redacted output"), "%q", res.notes)
		}
	}
}

// TestHookPluginFailures: a failing hook next to the first-party ones
// follows its failure policy (sdk/ABI.md §8). The hostile hook
// (testdata/acthook.wat) traps on a delta that starts with "T".
func TestHookPluginFailures(t *testing.T) {
	t.Parallel()
	g := hookPlugins(t)
	ctx := context.Background()

	// fail_open after redact: the trap skips the hostile hook; the text it
	// could not check goes on, still redacted.
	open := actHook(t, "hostile-open", generation.FailOpen, "")
	res := streamThrough(t, append(hooksByID(t, g, "redact"), open), []string{"Trap: mail jane@", "example.com now"})
	require.Equal(t, streamResult{text: "Trap: mail [REDACTED:email] now", finish: ulanv1.FinishReason_FINISH_REASON_STOP}, streamResult{text: res.text, finish: res.finish})
	require.True(t, noteContains(res.notes, "hook hostile-open failed and was skipped for the rest of the output (fail_open)"), "%q", res.notes)
	require.True(t, noteContains(res.notes, "hook redact redacted output"), "%q", res.notes)

	// fail_closed, safety class: the choice ends with content_filter and
	// nothing unchecked goes out.
	closed := actHook(t, "hostile-closed", generation.FailClosed, `,"hook":{"class":"safety"}`)
	res = streamThrough(t, append(hooksByID(t, g, "redact"), closed), []string{"Trap: mail jane@", "example.com now"})
	require.Equal(t, "", res.text)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER, res.finish)
	require.True(t, noteContains(res.notes, "hook hostile-closed failed (fail_closed)"), "%q", res.notes)

	// redact itself failing: a delta over the ABI's 1 MiB bound is refused
	// before the call. fail_closed (redact is a safety hook) ends the choice
	// with content_filter; fail_open skips it, annotated.
	huge := strings.Repeat("a", 1<<20+1)
	c, err := pipeline.OpenHookChain(ctx, hooksByID(t, g, "redact"), nil)
	require.NoError(t, err)
	out, err := c.Delta(ctx, huge, nil, plugin.ChannelContent)
	require.NoError(t, err)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER, out.Finish)
	require.Empty(t, out.Text)
	require.Contains(t, out.Message, "hook redact failed (fail_closed)")
	c.Close(ctx)

	c, err = pipeline.OpenHookChain(ctx, hooksByID(t, g, "redact-open"), nil)
	require.NoError(t, err)
	out, err = c.Delta(ctx, huge, nil, plugin.ChannelContent)
	require.NoError(t, err)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_UNSPECIFIED, out.Finish)
	require.True(t, out.Text == huge, "what redact-open could not check goes on")
	out, err = c.Delta(ctx, "then a@b.io", nil, plugin.ChannelContent)
	require.NoError(t, err)
	require.Equal(t, "then a@b.io", out.Text, "skipped for the rest of the choice")
	require.True(t, noteContains(noteTexts(t, c), "hook redact-open failed and was skipped for the rest of the output (fail_open)"))
	c.Close(ctx)
}
