package plugin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestStepSpanLinksRows: a batched step's span goes under the first traced row's span
// and links the other traced rows'; untraced rows are left out, and a step with no
// traced row has no span.
func TestStepSpanLinksRows(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tr := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	ctx := context.Background()
	_, a := tr.Start(ctx, "request a")
	_, b := tr.Start(ctx, "request b")
	p, _ := load(t, "ok", Config{})

	_, sp := p.span(withRowSpans(ctx, []SamplerRow{{}, {Span: a}, {}, {Span: b}}), "smp_step")
	require.NotNil(t, sp)
	sp.End()
	ended := rec.Ended()
	require.Len(t, ended, 1)
	require.Equal(t, a.SpanContext().SpanID(), ended[0].Parent().SpanID())
	require.Len(t, ended[0].Links(), 1)
	require.Equal(t, b.SpanContext().SpanID(), ended[0].Links()[0].SpanContext.SpanID())

	_, none := p.span(withRowSpans(ctx, []SamplerRow{{}, {}}), "smp_step")
	require.Nil(t, none)
}
