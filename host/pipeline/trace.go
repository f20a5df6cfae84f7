package pipeline

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// tracerName names the pipeline's spans.
const tracerName = "github.com/ulan-ai/ulan/host/pipeline"

// decodeSpanEvery samples the decode steps that get a span of their own: the first
// and then every 32nd token, so that a long generation's trace stays readable and
// cheap while still showing how the step time moves.
const decodeSpanEvery = 32

// tracer returns the pipeline's tracer: Model.Tracer's, or one that records nothing.
func (p *Pipeline) tracer() trace.Tracer {
	if p.m.Tracer == nil {
		return noop.NewTracerProvider().Tracer(tracerName)
	}
	return p.m.Tracer.Tracer(tracerName)
}

// endSpan ends s, marking it failed with err when there is one.
func endSpan(s trace.Span, err error) {
	if err != nil {
		s.RecordError(err)
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
}

// tokenizeSpan wraps one tokenization of a request.
func (p *Pipeline) tokenizeSpan(ctx context.Context, plugin string, bytes int) (context.Context, trace.Span) {
	return p.tracer().Start(ctx, "ulan.tokenize", trace.WithAttributes(
		attribute.String("ulan.tokenizer", plugin), attribute.Int("ulan.text_bytes", bytes)))
}

// stepSpans are a choice's spans after admission: prefill until the first token, then
// decode with sampled step spans inside it.
type stepSpans struct {
	ctx     context.Context // the request's context, their parent
	tracer  trace.Tracer
	prefill trace.Span
	decode  trace.Span
	dctx    context.Context
}

func (p *Pipeline) startSteps(ctx context.Context, promptTokens int) *stepSpans {
	s := &stepSpans{ctx: ctx, tracer: p.tracer()}
	_, s.prefill = s.tracer.Start(ctx, "ulan.prefill", trace.WithAttributes(attribute.Int("ulan.prompt_tokens", promptTokens)))
	return s
}

// token records the n-th token (from 1), which arrived at now after the one before at
// prev.
func (s *stepSpans) token(n int, prev, now time.Time) {
	if n == 1 {
		s.prefill.End(trace.WithTimestamp(now))
		s.prefill = nil
		s.dctx, s.decode = s.tracer.Start(s.ctx, "ulan.decode", trace.WithTimestamp(now))
		return
	}
	if n%decodeSpanEvery == 2 || decodeSpanEvery == 1 {
		_, step := s.tracer.Start(s.dctx, "ulan.decode_step", trace.WithTimestamp(prev),
			trace.WithAttributes(attribute.Int("ulan.token_index", n)))
		step.End(trace.WithTimestamp(now))
	}
}

// end closes whichever span is open, with the choice's outcome.
func (s *stepSpans) end(tokens int, finish string, err error) {
	open := s.decode
	if s.prefill != nil {
		open = s.prefill
	}
	open.SetAttributes(attribute.Int("ulan.generated_tokens", tokens), attribute.String("ulan.finish_reason", finish))
	endSpan(open, err)
}
