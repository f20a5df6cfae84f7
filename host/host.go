// Package host is ulan's server: one listener that serves the public API over
// Connect, gRPC and gRPC-web (HTTP/1.1 and h2c, or TLS), with CORS for
// browsers, request ids, structured logs and a graceful drain on shutdown.
//
// The handlers live in host/api, the configuration in host/config and the plugin
// generations in host/generation; this package wires them to a listener and owns the
// server's lifetime.
package host

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/auth"
	"github.com/ulan-ai/ulan/host/certs"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/internal/reqid"
	"github.com/ulan-ai/ulan/host/metrics"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// Errors the server's streams end with when it stops; they reach clients as
// the message of FINISH_REASON_CANCELLED.
var (
	errDrainTimeout = errors.New("server is shutting down and its drain time ran out")
	errForced       = errors.New("server was stopped")
)

// cancelGrace is how long cancelled streams get to write their final message
// before their connections are closed.
const cancelGrace = 2 * time.Second

// forceGrace is the same for Close, which must be quick.
const forceGrace = 200 * time.Millisecond

// maxHeaderBytes bounds a request's header block (HTTP/1.1 request line and headers;
// HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE, enforced while decoding). net/http's default
// is 1 MiB; a stream holds its headers for as long as it runs, so 250 streams on one
// HTTP/2 connection could pin 250 MiB. 64 KiB is what Envoy allows, and a Connect, gRPC
// or gRPC-web call needs a few hundred bytes. A larger header gets 431 (HTTP/1.1) or a
// refused stream (HTTP/2).
const maxHeaderBytes = 64 << 10

// Option configures a Server.
type Option func(*options)

type options struct {
	inference api.Inference
	logger    *slog.Logger
	gen       *generation.Generation
	deps      generation.Deps
	live      *generation.Live
	src       *config.Sources
	onSwap    func(config.Config, *generation.Generation)
	metrics   *metrics.Metrics
	tracing   trace.TracerProvider
}

// WithInference sets what runs the model. The default answers every
// inference request with Unavailable (no model is loaded).
func WithInference(inf api.Inference) Option {
	return func(o *options) { o.inference = inf }
}

// WithGeneration sets the plugin generation the server starts with, built by
// generation.Build from the same configuration, and the dependencies (compilation
// cache, logger) that PluginService.ValidateConfig's dry runs build with. The caller
// keeps the generation: it closes it once Serve has returned. Without this option New
// builds the generation itself, which it can only do for a configuration without
// plugins (pipelines of built-ins need nothing to be released).
func WithGeneration(g *generation.Generation, deps generation.Deps) Option {
	return func(o *options) { o.gen, o.deps = g, deps }
}

// WithReload makes the configuration live: PluginService.Reload and Server.Reload
// re-read it from src (the file, environment and flags it was loaded from), build the
// next plugin generation and swap it into live, which must hold the generation given
// with WithGeneration and be the one the inference pipeline leases from. onSwap, when
// not nil, is called after each swap with the new configuration and generation (to
// follow the new plugin files, say).
func WithReload(src config.Sources, live *generation.Live, onSwap func(config.Config, *generation.Generation)) Option {
	return func(o *options) { o.src, o.live, o.onSwap = &src, live, onSwap }
}

// WithMetrics serves m on /metrics (behind the admin key when one is configured),
// counts every call in it, and records reloads and the current generation.
func WithMetrics(m *metrics.Metrics) Option {
	return func(o *options) { o.metrics = m }
}

// WithTracing makes a span of every call with tp (connectrpc.com/otelconnect): the
// pipeline's own spans (tokenize, prefill, decode, plugin calls) become its children. A
// caller's W3C trace context (traceparent, tracestate) starts a new trace linked to the
// caller's, not a child of it (otelconnect's default for servers that do not trust their
// callers); a malformed traceparent is ignored. The server reads it with its own
// propagator, not the process-wide one (which is a no-op unless someone sets it), and
// takes no baggage from callers.
func WithTracing(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracing = tp }
}

// WithLogger sets the logger. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Server serves ulan's API on one listener.
type Server struct {
	rt     *configRuntime
	cfg    config.Config
	log    *slog.Logger
	api    *api.API
	http   *http.Server
	tls    *tls.Config   // nil for plain HTTP
	certs  *certs.Source // the certificate, reloaded when its files change; nil without TLS
	keys   *auth.Keys    // the API keys the server starts with; reloads swap them in gate
	gate   *auth.Gate    // the API keys and allowed origins, swapped together by reloads
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	forced bool
}

// New builds a server from a validated configuration. Its PluginService reports the
// plugin generation given with WithGeneration, or one New builds when the configuration
// has no plugins.
func New(cfg config.Config, opts ...Option) (*Server, error) {
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("host: invalid configuration: %w", err)
	}
	if o.deps.Logger == nil {
		o.deps.Logger = o.logger
	}
	if o.gen == nil {
		if len(cfg.Plugins) > 0 {
			return nil, errors.New("host: the configuration has plugins: load them with generation.Build and pass the generation with WithGeneration")
		}
		g, err := generation.Build(context.Background(), cfg, o.deps)
		if err != nil {
			return nil, fmt.Errorf("host: pipelines:\n%w", err)
		}
		o.gen = g
	}
	if o.live == nil {
		o.live = generation.NewLive(o.gen, cfg.Server.DrainTimeout, o.logger)
	}
	keys, err := authKeys(cfg)
	if err != nil {
		return nil, err
	}
	rt := newConfigRuntime(cfg, o.live, o.deps, o.logger)
	rt.src, rt.onSwap, rt.metrics = o.src, o.onSwap, o.metrics
	var interceptors []connect.Interceptor
	routes := map[string]http.Handler{}
	if o.metrics != nil {
		interceptors = append(interceptors, o.metrics.Interceptor())
		routes[auth.MetricsPath] = o.metrics.Handler()
		if g := o.live.Current(); g != nil {
			o.metrics.SetGeneration(g.Number())
		}
		o.metrics.SetPluginSource(func() []metrics.PluginStats { return pluginStats(o.live) })
	}
	if o.tracing != nil {
		otel, err := otelconnect.NewInterceptor(otelconnect.WithTracerProvider(o.tracing), otelconnect.WithoutMetrics(),
			otelconnect.WithPropagator(propagation.TraceContext{}))
		if err != nil {
			return nil, fmt.Errorf("host: tracing: %w", err)
		}
		interceptors = append(interceptors, otel)
	}
	a := api.New(api.Config{
		Interceptors: interceptors,
		Routes:       routes,
		Inference:    o.inference,
		Plugins:      rt,
		Limits: api.Limits{
			MaxRequestBytes: int64(cfg.Limits.MaxRequestBytes),
			MaxPromptBytes:  int64(cfg.Limits.MaxPromptBytes),
			MaxTokens:       cfg.Limits.MaxTokens,
		},
		Logger: o.logger,
	})
	a.SetServing(true)
	base, cancel := context.WithCancelCause(context.Background())
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP2(true) // used only over TLS
	s := &Server{cfg: cfg, log: o.logger, api: a, cancel: cancel, rt: rt, keys: keys}
	if t := cfg.Server.TLS; t.CertFile != "" {
		src, err := certs.New(t.CertFile, t.KeyFile, certs.WithLogger(o.logger), certs.WithOnReload(o.metrics.CertReload))
		if err != nil {
			cancel(nil)
			return nil, fmt.Errorf("host: server.tls: %w", err)
		}
		s.certs, s.tls = src, src.TLSConfig()
	}
	s.http = &http.Server{
		Handler:           s.handler(),
		Protocols:         protocols,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(o.logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// handler stacks the middleware around the API: request ids outermost, so
// that even a CORS preflight or an oversized body is logged with one; then
// the gate: CORS, so that preflights are answered and refused calls still carry
// CORS headers, around the API keys, which refuse a call before its body is
// read. A reload swaps the gate's keys and origins together.
func (s *Server) handler() http.Handler {
	var h http.Handler = s.api
	// The transport cap sits a little above the message cap, so that an
	// oversized message is refused by connect with a clear ResourceExhausted
	// naming the limit, not by a cut-off body.
	h = http.MaxBytesHandler(h, int64(s.cfg.Limits.MaxRequestBytes)+64<<10)
	s.gate = auth.NewGate(h, nil, s.keys, auth.CORSOptions{
		AllowedOrigins: s.cfg.Server.CORS.AllowedOrigins,
		MaxAge:         s.cfg.Server.CORS.MaxAge,
		AllowedHeaders: []string{reqid.Header},
		ExposedHeaders: []string{api.GenerationIDHeader, reqid.Header},
	})
	s.rt.gate = s.gate
	return reqid.Middleware(s.gate)
}

// pluginStats reports the pools of the plugins that live generations hold, each once,
// labelled with the generation that loaded it.
func pluginStats(live *generation.Live) []metrics.PluginStats {
	var out []metrics.PluginStats
	seen := map[*generation.Plugin]bool{}
	for _, g := range live.Generations() {
		for _, p := range g.Plugins() {
			if seen[p] || p.Runtime == nil {
				continue
			}
			seen[p] = true
			st := p.Runtime.Stats()
			out = append(out, metrics.PluginStats{ID: p.ID, Generation: p.LoadedBy, PoolSize: st.Size, Idle: st.Idle,
				Replacements: st.Replacements, BreakerOpen: st.Unhealthy})
		}
	}
	return out
}

// authKeys builds the configured API and admin keys.
func authKeys(cfg config.Config) (*auth.Keys, error) {
	apiKeys, adminKeys, err := cfg.Server.Auth.Resolve()
	if err != nil {
		return nil, fmt.Errorf("host: server.auth:\n%w", err)
	}
	keys, err := auth.New(apiKeys, adminKeys)
	if err != nil {
		return nil, fmt.Errorf("host: server.auth: %w", err)
	}
	return keys, nil
}

// Reload re-reads the configuration and swaps in its plugin generation, as
// PluginService.Reload does; trigger says what asked ("signal", "watch"). It returns the
// result GetStatus reports from now on, or nil when the server was built without
// WithReload.
func (s *Server) Reload(ctx context.Context, trigger string) *ulanv1.ReloadResult {
	if s.rt.src == nil {
		return nil
	}
	return s.rt.reload(ctx, trigger)
}

// Handler returns the server's HTTP handler, for serving it in memory.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Listen opens the configured address.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Server.Listen)
	if err != nil {
		return nil, fmt.Errorf("host: listen on %s (server.listen): %w", s.cfg.Server.Listen, err)
	}
	return ln, nil
}

// Serve serves on ln until ctx is done, then drains: health turns to
// NOT_SERVING, new connections are refused, and streams in flight may finish
// for up to server.drain_timeout. Streams still running then are cancelled
// (they end with FINISH_REASON_CANCELLED) and their connections closed. Close
// cuts the drain short. Serve returns nil after a drain that completed or
// timed out, and an error when the listener failed or Close forced the stop.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
		defer s.certs.Close()
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", s.tls != nil)
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	select {
	case err := <-errc:
		if s.wasForced() {
			return errForced
		}
		return fmt.Errorf("host: serve: %w", err)
	case <-ctx.Done():
	}
	s.drain()
	<-errc // http.ErrServerClosed, once Shutdown or Close has begun
	if s.wasForced() {
		return errForced
	}
	return nil
}

func (s *Server) wasForced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forced
}

func (s *Server) drain() {
	s.api.SetServing(false)
	timeout := s.cfg.Server.DrainTimeout
	s.log.Info("draining", "drain_timeout", timeout)
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.http.Shutdown(dctx)
	if err == nil {
		s.log.Info("drained")
		return
	}
	s.log.Warn("drain time ran out; cancelling streams still running")
	s.cancel(errDrainTimeout)
	gctx, gcancel := context.WithTimeout(context.Background(), cancelGrace)
	defer gcancel()
	if err := s.http.Shutdown(gctx); err != nil {
		_ = s.http.Close()
	}
}

// Close stops the server at once: every stream is cancelled and every
// connection closed. A second SIGTERM calls it.
func (s *Server) Close() error {
	s.mu.Lock()
	s.forced = true
	s.mu.Unlock()
	s.cancel(errForced)
	// Cancelled streams get a moment to write their final message.
	ctx, cancel := context.WithTimeout(context.Background(), forceGrace)
	defer cancel()
	if err := s.http.Shutdown(ctx); err == nil {
		return nil
	}
	return s.http.Close()
}

// NewLogger builds the server's logger from the log section of the
// configuration, writing to w. Records logged with a request's context carry
// its request id.
func NewLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.Level))) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(reqid.Handler{Handler: h})
}
