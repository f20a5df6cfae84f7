package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// HookChain runs one streamed choice's text through a pipeline's hooks in
// order (sdk/ABI.md §6.3): each hook sees what the hooks before it let
// through, on the channels its manifest lists. When a hook fails — a trap,
// a timeout, an answer the host refuses, an open circuit breaker — its
// failure policy decides what the request sees (§8): fail_open skips the
// hook for the rest of the choice, fail_closed ends the choice
// (content_filter for a safety hook, error for any other). Either way the
// choice carries an annotation saying so. Answering more bytes in a row
// with no text than the manifest's max_holdback_bytes is a failure too, and
// a hook that fails open passes on the text it held. A HookChain is not safe for
// concurrent use: a choice's deltas come in order.
type HookChain struct {
	links []*hookLink
	notes []*ulanv1.Annotation
	ended bool
}

type hookLink struct {
	p    *generation.Plugin
	s    *plugin.HookSession
	spec *plugin.HookSpec
	off  bool // failed open: skipped from then on
	// held is the text the hook was handed since it last answered with
	// text: what it holds back, at least. It is bounded by the manifest
	// (HookSpec.HoldbackBound), and goes on as it was when the hook fails
	// open, so that a failing hook loses no text.
	held strings.Builder
	// redactions counts the hook's redactions, which redacted reports.
	redactions int
	redacted   *ulanv1.Annotation
}

// HookOutput is what leaves the chain for one delta or at the end.
type HookOutput struct {
	// Text goes out on the stream; empty when the hooks hold it back.
	Text string
	// Finish is set when the chain ends the choice: a hook stopped it, or
	// a fail_closed hook failed.
	Finish ulanv1.FinishReason
	// Message says why the chain ended the choice.
	Message string
}

// ErrChainEnded is returned for a delta after the chain ended the choice.
var ErrChainEnded = errors.New("pipeline: the hook chain already ended this choice")

// OpenHookChain opens a session with each hook, in order, passing the
// request's metadata (JSON). A hook that cannot open is skipped under
// fail_open; under fail_closed the chain is not opened and the error says
// which hook failed.
func OpenHookChain(ctx context.Context, hooks []*generation.Plugin, meta []byte) (*HookChain, error) {
	c := &HookChain{}
	for _, h := range hooks {
		if h == nil || h.Runtime == nil || h.Kind() != plugin.KindHook {
			c.Close(ctx)
			return nil, fmt.Errorf("pipeline: %v is not a loaded hook plugin", hookID(h))
		}
		l := &hookLink{p: h, spec: h.Manifest.Hook}
		s, err := h.Runtime.OpenHook(ctx, meta)
		if err != nil {
			if h.Policy == generation.FailOpen {
				l.off = true
				c.note(ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_SKIPPED, l, fmt.Sprintf("hook %s was skipped (fail_open): it could not open: %v", h.ID, err))
				c.links = append(c.links, l)
				continue
			}
			c.Close(ctx)
			return nil, fmt.Errorf("pipeline: hook %s could not open (fail_closed): %w", h.ID, err)
		}
		l.s = s
		c.links = append(c.links, l)
	}
	return c, nil
}

func hookID(h *generation.Plugin) string {
	if h == nil {
		return "<nil>"
	}
	return h.ID
}

// Delta passes one delta of channel ch through the hooks. ids are the
// delta's token ids, handed to every hook as they are.
func (c *HookChain) Delta(ctx context.Context, text string, ids []int32, ch plugin.HookChannel) (HookOutput, error) {
	if c.ended {
		return HookOutput{}, ErrChainEnded
	}
	for _, l := range c.links {
		if text == "" {
			break // held back: nothing for the later hooks to see yet
		}
		if l.off || !l.spec.Sees(ch) {
			continue
		}
		var end *HookOutput
		text, end = c.through(ctx, l, text, ids, ch)
		if end != nil {
			return *end, nil
		}
	}
	return HookOutput{Text: text}, nil
}

// through runs one hook on text and returns what it lets through, or the
// output that ends the choice. Text longer than one call may carry (a
// release of several hooks' held text, at the end) is handed over in
// pieces, with ids on the first.
func (c *HookChain) through(ctx context.Context, l *hookLink, text string, ids []int32, ch plugin.HookChannel) (string, *HookOutput) {
	if len(text) <= plugin.MaxHookText {
		return c.once(ctx, l, text, ids, ch) // every delta but a long release
	}
	var out strings.Builder
	for text != "" {
		piece := head(text, plugin.MaxHookText)
		text = text[len(piece):]
		got, end := c.once(ctx, l, piece, ids, ch)
		ids = nil
		out.WriteString(got)
		if end != nil {
			end.Text = out.String() + end.Text
			return "", end
		}
		if l.off { // failed open: the rest goes on as it was
			out.WriteString(text)
			break
		}
	}
	return out.String(), nil
}

// head returns text's longest prefix of at most n bytes that ends on a
// character boundary (or n bytes, where no boundary is near).
func head(text string, n int) string {
	if len(text) <= n {
		return text
	}
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(text[i]) {
			return text[:i]
		}
	}
	return text[:n]
}

// once runs one hook on one piece of text and keeps count of what it holds
// back: a hook that answers more than its bound in a row with no text
// fails.
func (c *HookChain) once(ctx context.Context, l *hookLink, text string, ids []int32, ch plugin.HookChannel) (string, *HookOutput) {
	r, err := l.s.Delta(ctx, text, ids, ch)
	switch {
	case err != nil || r.Action == plugin.HookStop:
	case r.Action == plugin.HookReplace && r.Emit == "": // held back (ABI §6.3)
		l.held.WriteString(text)
		if bound := l.spec.HoldbackBound(); l.held.Len() > bound {
			err = fmt.Errorf("it held back %d bytes in a row, more than its bound of %d (hook.max_holdback_bytes)", l.held.Len(), bound)
			return c.failedHolding(ctx, l, err, "")
		}
	case r.Action == plugin.HookRedact && r.Emit == "":
		// Redacted to nothing: removed, not held, and never passed on.
	default:
		l.held.Reset()
	}
	if err != nil {
		return c.failedHolding(ctx, l, err, text)
	}
	return c.apply(l, r, text)
}

// failedHolding applies l's failure policy to err, text being the piece
// the hook failed on: under fail_open, what the hook held and text go on
// as they were.
func (c *HookChain) failedHolding(ctx context.Context, l *hookLink, err error, text string) (string, *HookOutput) {
	if end := c.failed(ctx, l, err); end != nil {
		return "", end
	}
	held := l.held.String()
	l.held.Reset()
	return held + text, nil
}

// apply turns a hook's answer to text into what it lets through, or the
// output that ends the choice.
func (c *HookChain) apply(l *hookLink, r plugin.HookResult, text string) (string, *HookOutput) {
	switch r.Action {
	case plugin.HookPass:
		return text, nil
	case plugin.HookReplace:
		return r.Emit, nil
	case plugin.HookRedact:
		l.redactions++
		if l.redacted == nil {
			l.redacted = c.note(ulanv1.AnnotationKind_ANNOTATION_KIND_REDACTION, l, "")
		}
		l.redacted.Message = fmt.Sprintf("hook %s redacted output %d times", l.p.ID, l.redactions)
		if l.redactions == 1 {
			l.redacted.Message = fmt.Sprintf("hook %s redacted output once", l.p.ID)
		}
		return r.Emit, nil
	}
	// HookStop: the record's text is the last to go out.
	c.ended = true
	finish := ulanv1.FinishReason(r.FinishReason)
	if _, known := ulanv1.FinishReason_name[r.FinishReason]; !known || finish == ulanv1.FinishReason_FINISH_REASON_UNSPECIFIED {
		finish = ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER
	}
	msg := fmt.Sprintf("hook %s stopped the output", l.p.ID)
	c.note(ulanv1.AnnotationKind_ANNOTATION_KIND_HOOK_STOP, l, msg)
	return "", &HookOutput{Text: r.Emit, Finish: finish, Message: msg}
}

// failed applies l's failure policy to err: under fail_open the hook is
// skipped from now on (nil: the text goes on unchanged — the caller keeps
// it); under fail_closed the choice ends.
func (c *HookChain) failed(ctx context.Context, l *hookLink, err error) *HookOutput {
	if l.p.Policy == generation.FailOpen {
		l.off = true
		l.s.Close(ctx)
		c.note(ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_SKIPPED, l, fmt.Sprintf("hook %s failed and was skipped for the rest of the output (fail_open): %v", l.p.ID, err))
		return nil
	}
	c.ended = true
	finish := ulanv1.FinishReason_FINISH_REASON_ERROR
	if l.spec.Safety() {
		finish = ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER
	}
	msg := fmt.Sprintf("hook %s failed (fail_closed): %v", l.p.ID, err)
	c.note(ulanv1.AnnotationKind_ANNOTATION_KIND_HOOK_STOP, l, msg)
	return &HookOutput{Finish: finish, Message: msg}
}

// End tells every hook the choice finished with finish, in order; text a
// hook releases at the end (what it held back) passes through the hooks
// after it. The output's Finish is finish unless a hook stopped the choice
// or failed closed.
func (c *HookChain) End(ctx context.Context, finish ulanv1.FinishReason) (HookOutput, error) {
	if c.ended {
		return HookOutput{}, ErrChainEnded
	}
	c.ended = true
	pending := ""
	for _, l := range c.links {
		if l.off {
			continue
		}
		if pending != "" && l.spec.Sees(plugin.ChannelContent) {
			var end *HookOutput
			pending, end = c.through(ctx, l, pending, nil, plugin.ChannelContent)
			if end != nil {
				return *end, nil
			}
			if l.off { // failed open on the pending text, which goes on as it was
				continue
			}
		}
		r, err := l.s.End(ctx, int32(finish))
		if err != nil {
			released, end := c.failedHolding(ctx, l, err, "")
			if end != nil {
				return *end, nil
			}
			pending += released
			continue
		}
		l.held.Reset()
		if r.Action == plugin.HookPass {
			pending += r.Emit
			continue
		}
		text, end := c.apply(l, r, "")
		if end != nil {
			end.Text = pending + end.Text
			return *end, nil
		}
		pending += text
	}
	return HookOutput{Text: pending, Finish: finish}, nil
}

// Annotations returns what the chain did that the choice's final message
// reports: hooks skipped or failed, redactions (counted), stops.
func (c *HookChain) Annotations() []*ulanv1.Annotation {
	out := make([]*ulanv1.Annotation, len(c.notes))
	for i, n := range c.notes {
		out[i] = &ulanv1.Annotation{Kind: n.Kind, Source: n.Source, Message: n.Message}
	}
	return out
}

// AnnotationTexts returns the annotations' messages.
func (c *HookChain) AnnotationTexts() []string {
	out := make([]string, len(c.notes))
	for i, n := range c.notes {
		out[i] = n.Message
	}
	return out
}

func (c *HookChain) note(kind ulanv1.AnnotationKind, l *hookLink, msg string) *ulanv1.Annotation {
	a := &ulanv1.Annotation{Kind: kind, Source: l.p.ID, Message: msg}
	c.notes = append(c.notes, a)
	return a
}

// Close ends every hook's session and returns its instance.
func (c *HookChain) Close(ctx context.Context) {
	for _, l := range c.links {
		if l.s != nil && !l.off {
			l.s.Close(ctx)
		}
	}
}
