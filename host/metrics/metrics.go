// Package metrics records the server's metrics and serves them in the
// Prometheus exposition format, on a registry of its own (never the global
// default one, so several servers can run in one process). Callers record
// through plain-Go methods and never import Prometheus; gauges of the
// scheduler and the plugins' pools are read from callbacks when a scraper
// asks, so nothing ticks in the background. A nil *Metrics records nothing.
//
// The metrics, all prefixed ulan_ (besides the go_ and process_ ones of the
// standard collectors):
//
//	ulan_requests_total{procedure,code}                      counter   RPCs handled, by final Connect code ("ok" for success)
//	ulan_prompt_tokens_total                                 counter   prompt tokens of finished requests
//	ulan_generated_tokens_total                              counter   tokens generated for finished requests
//	ulan_time_to_first_token_seconds                         histogram request received to first token sent
//	ulan_inter_token_latency_seconds                         histogram between consecutive tokens of a stream
//	ulan_scheduler_queued_sequences                          gauge     sequences waiting for admission
//	ulan_scheduler_running_sequences                         gauge     sequences admitted and running
//	ulan_kv_cache_used_tokens, ulan_kv_cache_capacity_tokens gauge     KV-cache use and size, in tokens
//	ulan_kv_cache_used_bytes, ulan_kv_cache_capacity_bytes   gauge     the same in bytes, where known
//	ulan_plugin_calls_total{plugin,generation}               counter   calls of a plugin's API
//	ulan_plugin_call_errors_total{plugin,generation,class}   counter   failed calls, by class (see PluginObserver)
//	ulan_plugin_call_duration_seconds{plugin,generation}     histogram call latency, pool wait included
//	ulan_plugin_pool_wait_seconds{plugin,generation}         histogram waits for a free instance (only calls that waited)
//	ulan_plugin_pool_instances{plugin,generation}            gauge     warm instances the pool keeps
//	ulan_plugin_pool_idle_instances{plugin,generation}       gauge     of those, the idle ones
//	ulan_plugin_instance_replacements_total{plugin,generation} counter instances replaced after a failure
//	ulan_plugin_breaker_open{plugin,generation}              gauge     1 while the circuit breaker refuses calls
//	ulan_plugin_fallbacks_total{plugin,generation}           counter   requests served by the fallback after the plugin failed
//	ulan_reloads_total{result}                               counter   configuration reloads, by result (see the Reload constants)
//	ulan_config_generation                                   gauge     number of the generation serving new requests
//
// A plugin's generation label is the number of the generation that loaded
// it: a plugin carried over unchanged into later generations keeps it, so
// its series go on across reloads; a reloaded plugin starts new ones.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric of the package.
const namespace = "ulan"

// Histogram buckets, in seconds.
var (
	// ttftBuckets span 5 ms (a short prompt, warm) to 2 min (a long prompt
	// prefilled on CPU, or a long wait for admission).
	ttftBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60, 120}
	// interTokenBuckets span 0.5 ms (a small model, or speculative tokens
	// released together) to 2.5 s (a step stalled behind prefills), finest
	// around the 10-100 ms a decode step of a large MoE takes.
	interTokenBuckets = []float64{.0005, .001, .0025, .005, .01, .02, .035, .05, .075, .1, .15, .25, .5, 1, 2.5}
	// pluginCallBuckets span 1 µs (a bare call is a few µs) to 2.5 s, past
	// the default 1 s call deadline.
	pluginCallBuckets = []float64{1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, .01, .025, .05, .1, .25, .5, 1, 2.5}
	// poolWaitBuckets span 10 µs (an instance came back at once) to 2.5 s.
	poolWaitBuckets = []float64{1e-5, 1e-4, 5e-4, 1e-3, 5e-3, .01, .05, .1, .5, 1, 2.5}
)

// Results of a reload, for Reload.
const (
	// ReloadOK: the new generation serves.
	ReloadOK = "ok"
	// ReloadInvalid: the configuration was refused; the old one serves on.
	ReloadInvalid = "invalid"
	// ReloadFailed: the new generation could not be built (a plugin did not
	// load); the old one serves on.
	ReloadFailed = "failed"
	// ReloadRestartNeeded: the change needs a restart; the old one serves on.
	ReloadRestartNeeded = "restart_needed"
)

// Metrics holds the server's metrics and the registry they are served from.
// Make one with New; its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	promptTokens    prometheus.Counter
	generatedTokens prometheus.Counter
	firstToken      prometheus.Histogram
	interToken      prometheus.Histogram
	reloads         *prometheus.CounterVec
	certReloads     *prometheus.CounterVec
	generation      prometheus.Gauge

	pluginCalls    *prometheus.CounterVec
	pluginErrors   *prometheus.CounterVec
	pluginDuration *prometheus.HistogramVec
	poolWait       *prometheus.HistogramVec
	fallbacks      *prometheus.CounterVec

	scheduler atomic.Pointer[func() SchedulerStats]
	plugins   atomic.Pointer[func() []PluginStats]
}

// New returns Metrics on a registry of their own, with the Go runtime's and
// the process's collectors registered on it too.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "requests_total",
		Help: "RPCs handled, by procedure and final Connect code (ok for success).",
	}, []string{"procedure", "code"})
	m.promptTokens = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "prompt_tokens_total",
		Help: "Prompt tokens of finished requests.",
	})
	m.generatedTokens = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "generated_tokens_total",
		Help: "Tokens generated for finished requests.",
	})
	m.firstToken = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "time_to_first_token_seconds",
		Help:    "Time from a request's arrival to its first generated token.",
		Buckets: ttftBuckets,
	})
	m.interToken = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "inter_token_latency_seconds",
		Help:    "Time between consecutive generated tokens of a stream.",
		Buckets: interTokenBuckets,
	})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "reloads_total",
		Help: "Configuration reloads, by result (ok, invalid, failed, restart_needed).",
	}, []string{"result"})
	m.certReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "tls_certificate_reloads_total",
		Help: "Reloads of the TLS certificate after its files changed, by result (ok, failed: the previous certificate kept serving).",
	}, []string{"result"})
	m.generation = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "config_generation",
		Help: "Number of the configuration generation serving new requests.",
	})
	pluginLabels := []string{"plugin", "generation"}
	m.pluginCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "plugin_calls_total",
		Help: "Calls of a plugin, successful or not.",
	}, pluginLabels)
	m.pluginErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "plugin_call_errors_total",
		Help: "Failed calls of a plugin, by class (trap, timeout, exit, missing, unhealthy, status, invalid).",
	}, []string{"plugin", "generation", "class"})
	m.pluginDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "plugin_call_duration_seconds",
		Help:    "Latency of a plugin's calls, the wait for an instance included.",
		Buckets: pluginCallBuckets,
	}, pluginLabels)
	m.poolWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "plugin_pool_wait_seconds",
		Help:    "Waits for a free instance of a plugin, by calls that found none idle.",
		Buckets: poolWaitBuckets,
	}, pluginLabels)
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "plugin_fallbacks_total",
		Help: "Times a request was served by the fallback after the plugin failed.",
	}, pluginLabels)
	for _, r := range []string{ReloadOK, ReloadInvalid, ReloadFailed, ReloadRestartNeeded} {
		m.reloads.WithLabelValues(r)
	}
	m.certReloads.WithLabelValues(ReloadOK)
	m.certReloads.WithLabelValues(ReloadFailed)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.promptTokens, m.generatedTokens, m.firstToken, m.interToken,
		m.reloads, m.certReloads, m.generation,
		m.pluginCalls, m.pluginErrors, m.pluginDuration, m.poolWait, m.fallbacks,
		sourceCollector{m},
	)
	return m
}

// Handler serves the metrics in the Prometheus exposition format. It does
// no authentication of its own.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Request counts one RPC handled: procedure as connect-go names it
// ("/ulan.v1.InferenceService/Generate"), code as connect.Code's String
// ("invalid_argument"), or "ok" for success. Interceptor calls it for every
// handler it wraps.
func (m *Metrics) Request(procedure, code string) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(label(procedure), label(code)).Inc()
}

// Tokens counts a finished request's prompt tokens (in) and generated
// tokens (out). Negative counts are ignored.
func (m *Metrics) Tokens(in, out int) {
	if m == nil {
		return
	}
	if in > 0 {
		m.promptTokens.Add(float64(in))
	}
	if out > 0 {
		m.generatedTokens.Add(float64(out))
	}
}

// FirstToken records a request's time to first token: from its arrival to
// its first generated token.
func (m *Metrics) FirstToken(d time.Duration) {
	if m == nil {
		return
	}
	m.firstToken.Observe(d.Seconds())
}

// InterToken records the time between two consecutive tokens of a stream.
func (m *Metrics) InterToken(d time.Duration) {
	if m == nil {
		return
	}
	m.interToken.Observe(d.Seconds())
}

// Reload counts a reload by its result, one of ReloadOK, ReloadInvalid,
// ReloadFailed and ReloadRestartNeeded.
func (m *Metrics) Reload(result string) {
	if m == nil {
		return
	}
	m.reloads.WithLabelValues(label(result)).Inc()
}

// CertReload counts a reload of the TLS certificate: ok when err is nil, failed when
// err kept the previous certificate serving (certs.WithOnReload's argument).
func (m *Metrics) CertReload(err error) {
	if m == nil {
		return
	}
	r := ReloadOK
	if err != nil {
		r = ReloadFailed
	}
	m.certReloads.WithLabelValues(r).Inc()
}

// SetGeneration sets the number of the generation serving new requests.
func (m *Metrics) SetGeneration(n uint64) {
	if m == nil {
		return
	}
	m.generation.Set(float64(n))
}

// generationLabel is a generation number as a label value.
func generationLabel(n uint64) string { return strconv.FormatUint(n, 10) }

// label makes s a valid label value (UTF-8), which Prometheus requires.
func label(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
