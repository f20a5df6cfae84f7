package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/plugin"
)

// scrape returns what m's Handler serves, split into lines.
func scrape(t *testing.T, m *Metrics) []string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return strings.Split(string(b), "\n")
}

// matching returns the lines of an exposition that start with prefix.
func matching(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func TestRecorders(t *testing.T) {
	t.Parallel()
	m := New()
	m.Tokens(3, 5)
	m.Tokens(-1, 2)
	m.FirstToken(120 * time.Millisecond)
	for _, d := range []time.Duration{300 * time.Microsecond, 30 * time.Millisecond, 40 * time.Millisecond} {
		m.InterToken(d)
	}
	m.Reload(ReloadOK)
	m.Reload(ReloadFailed)
	m.Reload(ReloadFailed)
	m.SetGeneration(4)
	m.Request("/ulan.v1.InferenceService/Generate", "ok")
	m.CertReload(nil)
	m.CertReload(errors.New("key does not match"))
	m.CertReload(nil)

	require.Equal(t, 3.0, testutil.ToFloat64(m.promptTokens))
	require.Equal(t, 7.0, testutil.ToFloat64(m.generatedTokens))
	require.Equal(t, 2.0, testutil.ToFloat64(m.reloads.WithLabelValues(ReloadFailed)))
	require.Equal(t, 4.0, testutil.ToFloat64(m.generation))
	require.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("/ulan.v1.InferenceService/Generate", "ok")))

	lines := scrape(t, m)
	for _, want := range []string{
		"ulan_prompt_tokens_total 3",
		"ulan_generated_tokens_total 7",
		`ulan_reloads_total{result="ok"} 1`,
		`ulan_reloads_total{result="failed"} 2`,
		`ulan_reloads_total{result="invalid"} 0`,
		`ulan_reloads_total{result="restart_needed"} 0`,
		`ulan_tls_certificate_reloads_total{result="ok"} 2`,
		`ulan_tls_certificate_reloads_total{result="failed"} 1`,
		"ulan_config_generation 4",
		`ulan_requests_total{code="ok",procedure="/ulan.v1.InferenceService/Generate"} 1`,
		`ulan_time_to_first_token_seconds_bucket{le="0.1"} 0`,
		`ulan_time_to_first_token_seconds_bucket{le="0.25"} 1`,
		"ulan_time_to_first_token_seconds_count 1",
		`ulan_inter_token_latency_seconds_bucket{le="0.0005"} 1`,
		`ulan_inter_token_latency_seconds_bucket{le="0.035"} 2`,
		`ulan_inter_token_latency_seconds_bucket{le="0.05"} 3`,
		"ulan_inter_token_latency_seconds_count 3",
	} {
		require.Contains(t, lines, want)
	}
	require.NotEmpty(t, matching(lines, "go_goroutines "), "the Go collector is registered")
	require.NotEmpty(t, matching(lines, "go_gc_duration_seconds"), "the Go collector is registered")
}

// TestNamesAndLint: every metric of the package is prefixed ulan_ and passes
// promlint's checks (units in names, _total counters, help text).
func TestNamesAndLint(t *testing.T) {
	t.Parallel()
	m := New()
	m.SetSchedulerSource(func() SchedulerStats { return SchedulerStats{KVTotalTokens: 1, KVTotalBytes: 1} })
	m.SetPluginSource(func() []PluginStats { return []PluginStats{{ID: "p", Generation: 1}} })
	m.PluginObserver("p", 1).PoolWait(time.Millisecond)
	m.FallbackTaken("p", 1)
	m.Request("/a/b", "ok")
	m.FirstToken(time.Second)
	m.InterToken(time.Second)
	families, err := m.reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range families {
		name := f.GetName()
		require.True(t, strings.HasPrefix(name, "ulan_") || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_"), name)
		names[name] = true
	}
	for _, want := range []string{
		"ulan_requests_total", "ulan_prompt_tokens_total", "ulan_generated_tokens_total",
		"ulan_time_to_first_token_seconds", "ulan_inter_token_latency_seconds",
		"ulan_scheduler_queued_sequences", "ulan_scheduler_running_sequences",
		"ulan_kv_cache_used_tokens", "ulan_kv_cache_capacity_tokens", "ulan_kv_cache_used_bytes", "ulan_kv_cache_capacity_bytes",
		"ulan_plugin_calls_total", "ulan_plugin_call_errors_total", "ulan_plugin_pool_wait_seconds",
		"ulan_plugin_pool_instances", "ulan_plugin_pool_idle_instances", "ulan_plugin_instance_replacements_total",
		"ulan_plugin_breaker_open", "ulan_plugin_fallbacks_total", "ulan_reloads_total", "ulan_config_generation",
	} {
		require.True(t, names[want], want)
	}
	problems, err := testutil.GatherAndLint(m.reg)
	require.NoError(t, err)
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "ulan_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

func TestSources(t *testing.T) {
	t.Parallel()
	m := New()
	require.Zero(t, testutil.CollectAndCount(sourceCollector{m}), "no source, no series")

	m.SetSchedulerSource(func() SchedulerStats {
		return SchedulerStats{Queued: 2, Running: 5, KVUsedTokens: 1024, KVTotalTokens: 4096}
	})
	lines := scrape(t, m)
	for _, want := range []string{
		"ulan_scheduler_queued_sequences 2",
		"ulan_scheduler_running_sequences 5",
		"ulan_kv_cache_used_tokens 1024",
		"ulan_kv_cache_capacity_tokens 4096",
	} {
		require.Contains(t, lines, want)
	}
	require.Empty(t, matching(lines, "ulan_kv_cache_used_bytes"), "bytes unknown: left out")

	m.SetSchedulerSource(func() SchedulerStats { return SchedulerStats{KVUsedBytes: 1 << 20, KVTotalBytes: 1 << 30} })
	m.SetPluginSource(func() []PluginStats {
		return []PluginStats{
			{ID: "tok", Generation: 1, PoolSize: 2, Idle: 1, Replacements: 3},
			{ID: "smp", Generation: 2, PoolSize: 4, Idle: 4, BreakerOpen: true},
			{ID: "smp", Generation: 2, PoolSize: 9}, // a duplicate: ignored
		}
	})
	require.Equal(t, 2, testutil.CollectAndCount(sourceCollector{m}, "ulan_plugin_pool_instances"))
	lines = scrape(t, m)
	for _, want := range []string{
		"ulan_kv_cache_used_bytes 1.048576e+06",
		"ulan_kv_cache_capacity_bytes 1.073741824e+09",
		`ulan_plugin_pool_instances{generation="1",plugin="tok"} 2`,
		`ulan_plugin_pool_idle_instances{generation="1",plugin="tok"} 1`,
		`ulan_plugin_instance_replacements_total{generation="1",plugin="tok"} 3`,
		`ulan_plugin_breaker_open{generation="1",plugin="tok"} 0`,
		`ulan_plugin_pool_instances{generation="2",plugin="smp"} 4`,
		`ulan_plugin_breaker_open{generation="2",plugin="smp"} 1`,
	} {
		require.Contains(t, lines, want)
	}

	m.SetSchedulerSource(nil)
	m.SetPluginSource(nil)
	require.Zero(t, testutil.CollectAndCount(sourceCollector{m}))
}

func TestPluginObserver(t *testing.T) {
	t.Parallel()
	m := New()
	o := m.PluginObserver("tok", 3)
	for _, k := range []plugin.ErrorKind{0, 0, plugin.KindTrap, plugin.KindTimeout, plugin.KindStatus, plugin.KindInvalid, plugin.ErrorKind(200)} {
		o.Call("tok_encode", 2*time.Millisecond, k)
	}
	o.PoolWait(5 * time.Millisecond)
	m.FallbackTaken("tok", 3)
	m.FallbackTaken("tok", 3)

	errs := func(class string) float64 {
		return testutil.ToFloat64(m.pluginErrors.WithLabelValues("tok", "3", class))
	}
	require.Equal(t, 7.0, testutil.ToFloat64(m.pluginCalls.WithLabelValues("tok", "3")))
	require.Equal(t, 1.0, errs("trap"))
	require.Equal(t, 1.0, errs("timeout"))
	require.Equal(t, 1.0, errs("status"))
	require.Equal(t, 1.0, errs("invalid"))
	require.Equal(t, 1.0, errs("unknown"))
	require.Equal(t, 2.0, testutil.ToFloat64(m.fallbacks.WithLabelValues("tok", "3")))

	lines := scrape(t, m)
	for _, want := range []string{
		`ulan_plugin_calls_total{generation="3",plugin="tok"} 7`,
		`ulan_plugin_call_errors_total{class="trap",generation="3",plugin="tok"} 1`,
		`ulan_plugin_call_errors_total{class="exit",generation="3",plugin="tok"} 0`,
		`ulan_plugin_call_errors_total{class="unhealthy",generation="3",plugin="tok"} 0`,
		`ulan_plugin_call_duration_seconds_bucket{generation="3",plugin="tok",le="0.001"} 0`,
		`ulan_plugin_call_duration_seconds_bucket{generation="3",plugin="tok",le="0.0025"} 7`,
		`ulan_plugin_call_duration_seconds_count{generation="3",plugin="tok"} 7`,
		`ulan_plugin_pool_wait_seconds_count{generation="3",plugin="tok"} 1`,
		`ulan_plugin_pool_wait_seconds_bucket{generation="3",plugin="tok",le="0.005"} 1`,
		`ulan_plugin_fallbacks_total{generation="3",plugin="tok"} 2`,
	} {
		require.Contains(t, lines, want)
	}

	m.ForgetPlugin("tok", 3)
	for _, c := range []prometheus.Collector{m.pluginCalls, m.pluginErrors, m.pluginDuration, m.poolWait, m.fallbacks} {
		require.Zero(t, testutil.CollectAndCount(c), "forgotten")
	}
}

// TestObservedPlugin: a plugin loaded with PluginObserver counts its calls
// and their failures by class.
func TestObservedPlugin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wasm, err := os.ReadFile(filepath.Join("..", "plugin", "testdata", "hostile.wasm"))
	require.NoError(t, err)
	m := New()
	p, err := plugin.Load(ctx, wasm, plugin.Config{ID: "hostile", PoolSize: 1, Observer: m.PluginObserver("hostile", 2),
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer p.Close(ctx)
	m.SetPluginSource(func() []PluginStats {
		s := p.Stats()
		return []PluginStats{{ID: "hostile", Generation: 2, PoolSize: s.Size, Idle: s.Idle, Replacements: s.Replacements, BreakerOpen: s.Unhealthy}}
	})

	_, err = p.Call(ctx, "add", 1, 2)
	require.NoError(t, err)
	_, err = p.Call(ctx, "boom")
	require.Error(t, err)
	require.Eventually(t, func() bool { return p.Stats().Replacements == 1 }, 10*time.Second, time.Millisecond)

	require.Equal(t, 2.0, testutil.ToFloat64(m.pluginCalls.WithLabelValues("hostile", "2")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.pluginErrors.WithLabelValues("hostile", "2", "trap")))
	require.Equal(t, 0.0, testutil.ToFloat64(m.pluginErrors.WithLabelValues("hostile", "2", "timeout")))
	lines := scrape(t, m)
	require.Contains(t, lines, `ulan_plugin_call_duration_seconds_count{generation="2",plugin="hostile"} 2`)
	require.Contains(t, lines, `ulan_plugin_instance_replacements_total{generation="2",plugin="hostile"} 1`)
	require.Contains(t, lines, `ulan_plugin_pool_instances{generation="2",plugin="hostile"} 1`)
}

// TestNilMetrics: a nil *Metrics records nothing and gives a nil observer
// and a pass-through interceptor.
func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.Request("/a/b", "ok")
	m.Tokens(1, 1)
	m.FirstToken(time.Second)
	m.InterToken(time.Second)
	m.Reload(ReloadOK)
	m.SetGeneration(1)
	m.FallbackTaken("p", 1)
	m.ForgetPlugin("p", 1)
	m.SetSchedulerSource(func() SchedulerStats { return SchedulerStats{} })
	m.SetPluginSource(func() []PluginStats { return nil })
	require.Nil(t, m.PluginObserver("p", 1))
	require.NotNil(t, m.Interceptor())
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
}

// TestRegistriesApart: two Metrics in one process keep apart.
func TestRegistriesApart(t *testing.T) {
	t.Parallel()
	a, b := New(), New()
	a.Tokens(1, 0)
	require.Equal(t, 1.0, testutil.ToFloat64(a.promptTokens))
	require.Equal(t, 0.0, testutil.ToFloat64(b.promptTokens))
}
