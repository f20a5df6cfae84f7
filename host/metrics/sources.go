package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// SchedulerStats are the scheduler's figures a scrape reads.
type SchedulerStats struct {
	// Queued and Running count the sequences waiting for admission and the
	// live ones.
	Queued, Running int
	// KVUsedTokens and KVTotalTokens are the KV cache's use and size in
	// tokens (scheduler.Stats's CacheUsed and CacheTokens).
	KVUsedTokens, KVTotalTokens int
	// KVUsedBytes and KVTotalBytes are the same in bytes; when KVTotalBytes
	// is 0 (unknown) the byte gauges are left out.
	KVUsedBytes, KVTotalBytes int64
}

// PluginStats are one plugin's pool and health, as a scrape reads them
// (plugin.Plugin's Stats).
type PluginStats struct {
	// ID and Generation label the plugin as its PluginObserver does: its id
	// and the number of the generation that loaded it.
	ID         string
	Generation uint64
	// PoolSize is the number of warm instances the pool keeps; Idle, those
	// free now.
	PoolSize, Idle int
	// Replacements counts the instances replaced since the plugin loaded.
	Replacements int
	// BreakerOpen says the circuit breaker refuses calls now.
	BreakerOpen bool
}

// SetSchedulerSource sets the function a scrape calls, once, for the
// scheduler's figures; nil (the start) exports none. It may be called at
// any time; the function must be safe for concurrent use and quick.
func (m *Metrics) SetSchedulerSource(f func() SchedulerStats) {
	if m == nil {
		return
	}
	if f == nil {
		m.scheduler.Store(nil)
		return
	}
	m.scheduler.Store(&f)
}

// SetPluginSource sets the function a scrape calls, once, for the pools of
// the plugins loaded now (those of the serving generation, and of older
// ones still draining if the caller wishes); nil (the start) exports none.
// Of entries with the same ID and Generation only the first counts. It may
// be called at any time; the function must be safe for concurrent use and
// quick.
func (m *Metrics) SetPluginSource(f func() []PluginStats) {
	if m == nil {
		return
	}
	if f == nil {
		m.plugins.Store(nil)
		return
	}
	m.plugins.Store(&f)
}

// Descriptions of the metrics read from the sources.
var (
	queuedDesc   = prometheus.NewDesc("ulan_scheduler_queued_sequences", "Sequences waiting for admission.", nil, nil)
	runningDesc  = prometheus.NewDesc("ulan_scheduler_running_sequences", "Sequences admitted and running.", nil, nil)
	kvUsedTokens = prometheus.NewDesc("ulan_kv_cache_used_tokens", "KV-cache tokens the live sequences hold.", nil, nil)
	kvTotalToks  = prometheus.NewDesc("ulan_kv_cache_capacity_tokens", "Size of the KV cache in tokens.", nil, nil)
	kvUsedBytes  = prometheus.NewDesc("ulan_kv_cache_used_bytes", "KV-cache bytes the live sequences hold.", nil, nil)
	kvTotalBytes = prometheus.NewDesc("ulan_kv_cache_capacity_bytes", "Size of the KV cache in bytes.", nil, nil)

	pluginLabelNames = []string{"plugin", "generation"}
	poolSizeDesc     = prometheus.NewDesc("ulan_plugin_pool_instances", "Warm instances a plugin's pool keeps.", pluginLabelNames, nil)
	poolIdleDesc     = prometheus.NewDesc("ulan_plugin_pool_idle_instances", "Instances of a plugin's pool free now.", pluginLabelNames, nil)
	replacedDesc     = prometheus.NewDesc("ulan_plugin_instance_replacements_total", "Instances of a plugin replaced after a failure.", pluginLabelNames, nil)
	breakerDesc      = prometheus.NewDesc("ulan_plugin_breaker_open", "1 while a plugin's circuit breaker refuses calls, else 0.", pluginLabelNames, nil)
)

// sourceCollector reads the sources at scrape time.
type sourceCollector struct{ m *Metrics }

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queuedDesc, runningDesc, kvUsedTokens, kvTotalToks, kvUsedBytes, kvTotalBytes,
		poolSizeDesc, poolIdleDesc, replacedDesc, breakerDesc} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if f := c.m.scheduler.Load(); f != nil {
		s := (*f)()
		gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
		gauge(queuedDesc, float64(s.Queued))
		gauge(runningDesc, float64(s.Running))
		gauge(kvUsedTokens, float64(s.KVUsedTokens))
		gauge(kvTotalToks, float64(s.KVTotalTokens))
		if s.KVTotalBytes > 0 {
			gauge(kvUsedBytes, float64(s.KVUsedBytes))
			gauge(kvTotalBytes, float64(s.KVTotalBytes))
		}
	}
	if f := c.m.plugins.Load(); f != nil {
		type key struct {
			id  string
			gen uint64
		}
		seen := map[key]bool{}
		for _, p := range (*f)() {
			if k := (key{label(p.ID), p.Generation}); seen[k] {
				continue
			} else {
				seen[k] = true
			}
			gen := generationLabel(p.Generation)
			id := label(p.ID)
			metric := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
				ch <- prometheus.MustNewConstMetric(d, t, v, id, gen)
			}
			open := 0.0
			if p.BreakerOpen {
				open = 1
			}
			metric(poolSizeDesc, prometheus.GaugeValue, float64(p.PoolSize))
			metric(poolIdleDesc, prometheus.GaugeValue, float64(p.Idle))
			metric(replacedDesc, prometheus.CounterValue, float64(p.Replacements))
			metric(breakerDesc, prometheus.GaugeValue, open)
		}
	}
}
