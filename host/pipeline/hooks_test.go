package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/plugin"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// actHook loads testdata/acthook.wasm (see its source for what each first
// byte of a delta makes it do) as a hook with the given policy and hook
// section.
func actHook(t *testing.T, id string, policy generation.Policy, spec string) *generation.Plugin {
	t.Helper()
	raw, err := os.ReadFile("testdata/acthook.wasm")
	require.NoError(t, err)
	manifest := `{"abi":1,"name":"acthook","version":"0.1.0","kind":"hook"` + spec + `}`
	wasm, err := plugin.EmbedManifest(raw, []byte(manifest))
	require.NoError(t, err)
	rt, err := plugin.Load(context.Background(), wasm, plugin.Config{ID: id, Kind: plugin.KindHook, PoolSize: 1, MemoryPages: 96,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	return &generation.Plugin{ID: id, Manifest: rt.Manifest(), Policy: policy, PoolSize: 1, Runtime: rt}
}

func TestHookChainActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := actHook(t, "a", generation.FailClosed, "")
	b := actHook(t, "b", generation.FailClosed, `,"hook":{"channels":["content"]}`)
	c, err := pipeline.OpenHookChain(ctx, []*generation.Plugin{a, b}, []byte(`{}`))
	require.NoError(t, err)
	defer c.Close(ctx)

	out, err := c.Delta(ctx, "hello", []int32{1}, plugin.ChannelContent)
	require.NoError(t, err)
	require.Equal(t, pipeline.HookOutput{Text: "hello"}, out, "both pass")
	// a replaces with "<r>R…", which b passes (its first byte is '<').
	out, err = c.Delta(ctx, "Rx", nil, plugin.ChannelContent)
	require.NoError(t, err)
	require.Equal(t, "<r>Rx", out.Text)
	// a redacts to "***".
	out, err = c.Delta(ctx, "Dsecret", nil, plugin.ChannelContent)
	require.NoError(t, err)
	require.Equal(t, "***", out.Text)
	// a holds the text back; b sees nothing.
	out, err = c.Delta(ctx, "Hheld", nil, plugin.ChannelContent)
	require.NoError(t, err)
	require.Equal(t, "", out.Text)
	// b does not see reasoning; a stops the choice on "S".
	out, err = c.Delta(ctx, "Sx", nil, plugin.ChannelReasoning)
	require.NoError(t, err)
	require.Equal(t, pipeline.HookOutput{Text: "<s>", Finish: ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER, Message: "hook a stopped the output"}, out)
	_, err = c.Delta(ctx, "more", nil, plugin.ChannelContent)
	require.ErrorIs(t, err, pipeline.ErrChainEnded)
	require.Equal(t, []string{"hook a redacted output once", "hook a stopped the output"}, c.AnnotationTexts())
}

func TestHookChainEndReleasesHeldText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := actHook(t, "a", generation.FailClosed, "")
	b := actHook(t, "b", generation.FailClosed, "")
	c, err := pipeline.OpenHookChain(ctx, []*generation.Plugin{a, b}, []byte(`{}`))
	require.NoError(t, err)
	defer c.Close(ctx)
	out, err := c.Delta(ctx, "Hkept ", nil, plugin.ChannelContent)
	require.NoError(t, err)
	require.Empty(t, out.Text)
	// At the end a releases "Hkept ", which b (seeing 'H') holds in turn and
	// releases at its own end.
	out, err = c.End(ctx, ulanv1.FinishReason_FINISH_REASON_STOP)
	require.NoError(t, err)
	require.Equal(t, pipeline.HookOutput{Text: "Hkept ", Finish: ulanv1.FinishReason_FINISH_REASON_STOP}, out)
}

func TestHookChainFailurePolicies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// fail_open: the trapping hook is skipped from then on, the text goes on.
	// (after sees reasoning only, so the text that traps open passes it.)
	open := actHook(t, "open", generation.FailOpen, "")
	after := actHook(t, "after", generation.FailClosed, `,"hook":{"channels":["reasoning"]}`)
	c, err := pipeline.OpenHookChain(ctx, []*generation.Plugin{open, after}, []byte(`{}`))
	require.NoError(t, err)
	out, err := c.Delta(ctx, "Trap me", nil, plugin.ChannelContent)
	require.NoError(t, err)
	require.Equal(t, pipeline.HookOutput{Text: "Trap me"}, out, "what open could not check goes on")
	out, err = c.Delta(ctx, "Tx", nil, plugin.ChannelReasoning)
	require.NoError(t, err)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_ERROR, out.Finish, "after still runs, and fails closed")
	c.Close(ctx)
	c, err = pipeline.OpenHookChain(ctx, []*generation.Plugin{open, after}, []byte(`{}`))
	require.NoError(t, err)
	_, err = c.Delta(ctx, "Trap me", nil, plugin.ChannelContent)
	require.NoError(t, err)
	out, err = c.Delta(ctx, "Rx", nil, plugin.ChannelReasoning)
	require.NoError(t, err)
	require.Equal(t, "<r>Rx", out.Text, "open no longer runs; after replaces")
	out, err = c.End(ctx, ulanv1.FinishReason_FINISH_REASON_LENGTH)
	require.NoError(t, err)
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_LENGTH, out.Finish)
	require.Len(t, c.AnnotationTexts(), 1)
	require.Contains(t, c.AnnotationTexts()[0], "hook open failed and was skipped for the rest of the output (fail_open)")
	require.Contains(t, c.AnnotationTexts()[0], "unreachable")
	c.Close(ctx)

	// fail_closed: a safety hook's failure is a content filter, any other's
	// an error; the choice ends.
	for _, tc := range []struct {
		spec string
		want ulanv1.FinishReason
	}{
		{`,"hook":{"class":"safety"}`, ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER},
		{"", ulanv1.FinishReason_FINISH_REASON_ERROR},
	} {
		h := actHook(t, "closed", generation.FailClosed, tc.spec)
		c, err := pipeline.OpenHookChain(ctx, []*generation.Plugin{h}, []byte(`{}`))
		require.NoError(t, err)
		out, err := c.Delta(ctx, "Trap", nil, plugin.ChannelContent)
		require.NoError(t, err)
		require.Equal(t, tc.want, out.Finish)
		require.Empty(t, out.Text, "nothing unchecked goes out")
		require.Contains(t, out.Message, "hook closed failed (fail_closed)")
		_, err = c.End(ctx, ulanv1.FinishReason_FINISH_REASON_STOP)
		require.ErrorIs(t, err, pipeline.ErrChainEnded)
		c.Close(ctx)
		require.Eventually(t, func() bool { s := h.Runtime.Stats(); return s.Idle == 1 && s.Replacements == 1 }, 5e9, 1e7,
			"the trapped instance was replaced")
	}
}

// TestHookChainHoldbackBound: a hook that answers more bytes in a row with no
// text than its manifest's max_holdback_bytes (1 MiB when it declares none)
// fails; under fail_open what it held goes on as it was, so no text is lost.
func TestHookChainHoldbackBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := func(h *generation.Plugin) *pipeline.HookChain {
		c, err := pipeline.OpenHookChain(ctx, []*generation.Plugin{h}, []byte(`{}`))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}
	send := func(c *pipeline.HookChain, text string) pipeline.HookOutput {
		out, err := c.Delta(ctx, text, nil, plugin.ChannelContent)
		require.NoError(t, err)
		return out
	}
	const bound = `,"hook":{"max_holdback_bytes":8}`

	c := open(actHook(t, "closed", generation.FailClosed, bound))
	require.Empty(t, send(c, "Habc").Text)
	require.Equal(t, "x", send(c, "x").Text, "passed: the count starts again")
	require.Empty(t, send(c, "Habcd").Text)
	out := send(c, "Hefg")
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_ERROR, out.Finish)
	require.Empty(t, out.Text, "nothing unchecked goes out")
	require.Contains(t, out.Message, "hook closed failed (fail_closed): it held back 9 bytes in a row, more than its bound of 8")

	c = open(actHook(t, "open", generation.FailOpen, bound))
	require.Empty(t, send(c, "Habcd").Text)
	require.Equal(t, "HabcdHefg", send(c, "Hefg").Text, "what the hook held goes on")
	require.Equal(t, "Hx", send(c, "Hx").Text, "the hook is skipped from then on")
	require.Len(t, c.AnnotationTexts(), 1)
	require.Contains(t, c.AnnotationTexts()[0], "hook open failed and was skipped for the rest of the output (fail_open): it held back 9 bytes")

	// A trap under fail_open loses nothing either.
	c = open(actHook(t, "trap", generation.FailOpen, ""))
	require.Empty(t, send(c, "Hkept ").Text)
	require.Equal(t, "Hkept Trap", send(c, "Trap").Text)

	// Without a declared bound, 1 MiB.
	c = open(actHook(t, "default", generation.FailClosed, ""))
	require.Empty(t, send(c, "H"+strings.Repeat("x", plugin.MaxHookText-1)).Text)
	out = send(c, "Hy")
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_ERROR, out.Finish)
	require.Contains(t, out.Message, fmt.Sprintf("it held back %d bytes in a row, more than its bound of %d", plugin.MaxHookText+2, plugin.MaxHookText))
}

// TestHookChainLongRelease: at the end, hooks' releases that add up to more
// than one call may carry reach the hooks after them in pieces, rather than
// failing the next hook for text it was never asked about.
func TestHookChainLongRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// content holds a content delta, reasoning a reasoning one, each just
	// under 1 MiB, and each releases it after "<e>": 2 MiB reach last, which
	// passes them.
	content := actHook(t, "content", generation.FailClosed, `,"hook":{"channels":["content"]}`)
	reasoning := actHook(t, "reasoning", generation.FailClosed, `,"hook":{"channels":["reasoning"]}`)
	last := actHook(t, "last", generation.FailClosed, "")
	c, err := pipeline.OpenHookChain(ctx, []*generation.Plugin{content, reasoning, last}, []byte(`{}`))
	require.NoError(t, err)
	defer c.Close(ctx)
	held := "H" + strings.Repeat("x", plugin.MaxHookText-4)
	for _, ch := range []plugin.HookChannel{plugin.ChannelContent, plugin.ChannelReasoning} {
		out, err := c.Delta(ctx, held, nil, ch)
		require.NoError(t, err)
		require.Empty(t, out.Text)
	}
	out, err := c.End(ctx, ulanv1.FinishReason_FINISH_REASON_STOP)
	require.NoError(t, err)
	require.Empty(t, c.AnnotationTexts())
	require.Equal(t, ulanv1.FinishReason_FINISH_REASON_STOP, out.Finish, out.Message)
	require.Equal(t, "<e>"+held+"<e>"+held, out.Text)
}
