// Package api serves ulan's public API (proto/ulan/v1) with connect-go: the
// inference, model and plugin services, gRPC health and reflection, request
// validation, generation ids and cancellation, and the one mapping from
// domain errors to Connect codes.
//
// The work behind the API sits behind two interfaces owned here, Inference and
// Plugins, so the handlers neither know nor care whether a model is loaded.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// Inference runs validated requests against the loaded model. Requests reach
// it only after the handlers have checked every field against the API's
// rules, so implementations check only what depends on the model (vocabulary
// size, context length, pipeline names).
//
// Errors should be the sentinels of this package (ErrNoModel, ErrNotFound …)
// or *FieldError, possibly wrapped; anything else is reported to the client
// as an internal error and logged.
type Inference interface {
	// Generate continues a raw prompt, writing its output to out.
	Generate(ctx context.Context, req *ulanv1.GenerateRequest, out Stream) error
	// Chat answers a conversation, writing its output to out.
	Chat(ctx context.Context, req *ulanv1.ChatRequest, out Stream) error
	// Tokenize encodes text.
	Tokenize(ctx context.Context, req *ulanv1.TokenizeRequest) (*ulanv1.TokenizeResponse, error)
	// Detokenize decodes token ids.
	Detokenize(ctx context.Context, req *ulanv1.DetokenizeRequest) (*ulanv1.DetokenizeResponse, error)
	// Model describes the loaded model, with its KV-cache size at each of
	// contextLengths.
	Model(ctx context.Context, contextLengths []uint64) (*ulanv1.Model, error)
}

// Stream receives one generation's output. Start must come first and once;
// every choice ends with exactly one Finish. The host enforces this: a
// generation that returns without finishing a choice gets a Finished message
// with FINISH_REASON_CANCELLED or FINISH_REASON_ERROR on its behalf, so no
// stream ends without a reason.
type Stream interface {
	// Start opens the stream. The host fills in the generation id.
	Start(*ulanv1.Started) error
	// Delta sends new output of one choice.
	Delta(*ulanv1.Delta) error
	// Finish ends one choice.
	Finish(*ulanv1.Finished) error
}

// Plugins is the configuration runtime behind PluginService.
type Plugins interface {
	// List returns the current generation's plugins and pipelines.
	List(ctx context.Context) (*ulanv1.ListPluginsResponse, error)
	// Status reports the current generation and the last reload.
	Status(ctx context.Context) (*ulanv1.GetStatusResponse, error)
	// Reload re-reads the configuration and swaps in a new generation.
	Reload(ctx context.Context) (*ulanv1.ReloadResult, error)
	// Validate checks a configuration file's text without applying it.
	Validate(ctx context.Context, yaml []byte) (*ulanv1.ValidateConfigResponse, error)
}

// Limits bound what one request may ask for.
type Limits struct {
	// MaxRequestBytes caps an encoded request message; larger ones are
	// refused by the transport with ResourceExhausted.
	MaxRequestBytes int64
	// MaxPromptBytes caps the text of a prompt (or of all chat messages
	// together) and of a text to tokenize.
	MaxPromptBytes int64
	// MaxTokens caps sampling.max_tokens and sampling.min_tokens.
	MaxTokens int
}

// Config is what New needs.
type Config struct {
	// Inference runs the model; nil means no model is loaded.
	Inference Inference
	// Plugins is the configuration runtime. Required.
	Plugins Plugins
	// Limits bound requests.
	Limits Limits
	// Logger receives one record per call and the details of internal
	// errors. Nil means slog.Default().
	Logger *slog.Logger
	// Interceptors run around every call, inside the logging one (metrics).
	Interceptors []connect.Interceptor
	// Routes are plain HTTP handlers served beside the API (/metrics), by path.
	Routes map[string]http.Handler
}

// API is ulan's set of Connect handlers.
type API struct {
	mux    *http.ServeMux
	health *grpchealth.StaticChecker
	gens   *registry
}

// recoverer answers a handler that panics with Internal and logs the panic
// with its stack: a bug in one call costs that call, not the server's other
// streams (net/http would only drop the connection, and an HTTP/2 one
// carries other clients' calls too).
func recoverer(log *slog.Logger) func(context.Context, connect.Spec, http.Header, any) error {
	return func(ctx context.Context, spec connect.Spec, _ http.Header, p any) error {
		log.ErrorContext(ctx, "handler panicked", "procedure", spec.Procedure, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error in %s; the server log has its details", spec.Procedure))
	}
}

// services lists every service the API serves, for health and reflection.
var services = []string{
	ulanv1connect.InferenceServiceName,
	ulanv1connect.ModelServiceName,
	ulanv1connect.PluginServiceName,
}

// New builds the handlers.
func New(cfg Config) *API {
	if cfg.Inference == nil {
		cfg.Inference = NoModel{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{
		mux:    http.NewServeMux(),
		health: grpchealth.NewStaticChecker(services...),
		gens:   newRegistry(),
	}
	// Every handler, health and reflection included, bounds what it reads: a
	// handler without a read limit buffers a whole message, and a gzip one
	// expands without end (a MiB of gzip is a GiB of zeros).
	limits := connect.WithHandlerOptions(
		connect.WithReadMaxBytes(int(cfg.Limits.MaxRequestBytes)),
		withGzip(cfg.Limits.MaxRequestBytes),
		connect.WithRecover(recoverer(cfg.Logger)),
	)
	opts := connect.WithHandlerOptions(
		limits,
		connect.WithInterceptors(append([]connect.Interceptor{&logInterceptor{log: cfg.Logger}}, cfg.Interceptors...)...),
		// These replace connect's codecs of the same names, to name a string
		// that is not UTF-8 rather than leave the client to find it.
		connect.WithCodec(protoCodec{}),
		connect.WithCodec(jsonCodec{name: "json"}),
		connect.WithCodec(jsonCodec{name: "json; charset=utf-8"}),
	)
	for path, h := range cfg.Routes {
		a.mux.Handle(path, h)
	}
	inf := &inferenceHandler{inf: cfg.Inference, limits: cfg.Limits, gens: a.gens, log: cfg.Logger}
	a.mux.Handle(ulanv1connect.NewInferenceServiceHandler(inf, opts))
	a.mux.Handle(ulanv1connect.NewModelServiceHandler(&modelHandler{inf: cfg.Inference, log: cfg.Logger}, opts))
	a.mux.Handle(ulanv1connect.NewPluginServiceHandler(&pluginHandler{plugins: cfg.Plugins, limits: cfg.Limits, log: cfg.Logger}, opts))
	a.mux.Handle(newHealthHandler(a.health, limits))
	reflector := grpcreflect.NewStaticReflector(append(services, grpchealth.HealthV1ServiceName)...)
	a.mux.Handle(grpcreflect.NewHandlerV1(reflector, limits))
	a.mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, limits))
	return a
}

// ServeHTTP routes a call to its service.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// SetServing sets the gRPC health status of the server and of every service:
// SERVING, or NOT_SERVING while the server drains.
func (a *API) SetServing(serving bool) {
	status := grpchealth.StatusNotServing
	if serving {
		status = grpchealth.StatusServing
	}
	a.health.SetStatus("", status)
	for _, s := range services {
		a.health.SetStatus(s, status)
	}
}
