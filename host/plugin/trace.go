package plugin

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the spans of plugin calls.
const tracerName = "github.com/ulan-ai/ulan/host/plugin"

// spanLinksKey carries the links a call's span gets: a batched sampler step serves
// several traced requests, its span is under one of them and linked to the rest.
type spanLinksKey struct{}

// span starts the span of one call of export when ctx carries a recording span (a
// traced request's tokenizer, hook and sampler calls), with the tracer provider of
// that span; otherwise it returns ctx and nil, having cost one context lookup.
func (p *Plugin) span(ctx context.Context, export string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, nil
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("ulan.plugin.id", p.cfg.ID), attribute.String("ulan.plugin.export", export))}
	if links, ok := ctx.Value(spanLinksKey{}).([]trace.Link); ok {
		opts = append(opts, trace.WithLinks(links...))
	}
	return parent.TracerProvider().Tracer(tracerName).Start(ctx, "plugin "+p.cfg.ID+" "+export, opts...)
}

// endSpan ends a call's span (nil does nothing), marking it failed with err.
func endSpan(s trace.Span, err error) {
	if s == nil {
		return
	}
	if err != nil {
		s.RecordError(err)
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
}
