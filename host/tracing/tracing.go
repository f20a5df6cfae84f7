// Package tracing sets up OpenTelemetry tracing from the standard OTEL_* environment
// variables, and is off unless they ask for it.
//
// Tracing is on when OTEL_TRACES_EXPORTER names an exporter ("otlp" or "console"), or,
// with OTEL_TRACES_EXPORTER unset, when an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). It is off when
// none of these is set, when OTEL_TRACES_EXPORTER is "none", and when
// OTEL_SDK_DISABLED is "true". The OTLP exporter speaks HTTP/protobuf and reads the rest
// of its settings (headers, timeout, TLS, compression) from the same variables; the
// SDK reads the sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG) and the resource
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) itself.
//
// The server's spans: one per RPC (connectrpc.com/otelconnect), and inside Generate and
// Chat ones for tokenizing, prefill, sampled decode steps and plugin calls (see
// host/pipeline).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the service.name spans carry unless OTEL_SERVICE_NAME says otherwise.
const ServiceName = "ulan"

// Provider is the tracer provider of the server, and how to flush and stop it.
type Provider struct {
	trace.TracerProvider
	// Exporter names what spans go to: "otlp", "console", or "" when tracing is off.
	Exporter string
	shutdown func(context.Context) error
}

// Shutdown flushes the spans not yet exported and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.shutdown == nil {
		return nil
	}
	return p.shutdown(ctx)
}

// Enabled reports whether spans are exported.
func (p *Provider) Enabled() bool { return p.Exporter != "" }

// FromEnv builds the provider the environment asks for: env holds "NAME=value" entries
// as os.Environ returns them, and decides whether tracing is on and which exporter
// serves; console spans go to console. The OTLP exporter and the resource read their
// own settings from the process environment. With tracing off it returns a no-op
// provider.
func FromEnv(ctx context.Context, env []string, console io.Writer) (*Provider, error) {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "OTEL_") {
			vars[k] = v
		}
	}
	off := &Provider{TracerProvider: noop.NewTracerProvider()}
	if strings.EqualFold(vars["OTEL_SDK_DISABLED"], "true") {
		return off, nil
	}
	exporter := strings.ToLower(strings.TrimSpace(vars["OTEL_TRACES_EXPORTER"]))
	if exporter == "" && (vars["OTEL_EXPORTER_OTLP_ENDPOINT"] != "" || vars["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != "") {
		exporter = "otlp"
	}
	var exp sdktrace.SpanExporter
	var err error
	switch exporter {
	case "", "none":
		return off, nil
	case "otlp":
		proto := vars["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
		if proto == "" {
			proto = vars["OTEL_EXPORTER_OTLP_PROTOCOL"]
		}
		if proto != "" && proto != "http/protobuf" {
			return nil, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL %q is not supported; use http/protobuf", proto)
		}
		exp, err = otlptracehttp.New(ctx)
	case "console":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
	default:
		return nil, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER %q is not supported; use otlp, console or none", exporter)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: the %s exporter: %w", exporter, err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: the resource: %w", err)
	}
	if name := vars["OTEL_SERVICE_NAME"]; name != "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(name)))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{TracerProvider: tp, Exporter: exporter, shutdown: tp.Shutdown}, nil
}
