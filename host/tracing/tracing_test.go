package tracing_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/tracing"
)

// TestFromEnv: tracing is off unless the environment asks for it, and the console
// exporter writes the spans it is given.
func TestFromEnv(t *testing.T) {
	ctx := context.Background()
	for name, env := range map[string][]string{
		"nothing set":  nil,
		"none":         {"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318"},
		"sdk disabled": {"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=console"},
	} {
		p, err := tracing.FromEnv(ctx, env, nil)
		require.NoError(t, err, name)
		require.False(t, p.Enabled(), name)
		require.NoError(t, p.Shutdown(ctx), name)
	}

	p, err := tracing.FromEnv(ctx, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318"}, nil)
	require.NoError(t, err)
	require.Equal(t, "otlp", p.Exporter, "an endpoint alone turns OTLP on")
	require.NoError(t, p.Shutdown(ctx))

	for _, env := range [][]string{{"OTEL_TRACES_EXPORTER=zipkin"}, {"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}} {
		_, err := tracing.FromEnv(ctx, env, nil)
		require.ErrorContains(t, err, "not supported")
	}

	var out bytes.Buffer
	p, err = tracing.FromEnv(ctx, []string{"OTEL_TRACES_EXPORTER=console"}, &out)
	require.NoError(t, err)
	require.True(t, p.Enabled())
	_, span := p.Tracer("test").Start(ctx, "hello")
	span.End()
	require.NoError(t, p.Shutdown(ctx))
	require.Contains(t, out.String(), `"Name":"hello"`)
	require.Contains(t, out.String(), `"Value":"ulan"`, "service.name")
}
