package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ulan-ai/ulan/host/plugin"
)

// classes are the class label values of ulan_plugin_call_errors_total, by
// plugin.ErrorKind: how a call failed.
var classes = [...]string{
	plugin.KindTrap:      "trap",      // the guest trapped (unreachable, bounds, stack, out of memory)
	plugin.KindTimeout:   "timeout",   // the call deadline passed, in the guest or waiting for an instance
	plugin.KindExit:      "exit",      // the guest exited (proc_exit)
	plugin.KindMissing:   "missing",   // no such export
	plugin.KindUnhealthy: "unhealthy", // refused: the circuit breaker is open
	plugin.KindStatus:    "status",    // the plugin answered with an error status
	plugin.KindInvalid:   "invalid",   // the host refused the plugin's output
}

// unknownClass is the class of an ErrorKind this package does not know.
const unknownClass = "unknown"

// PluginObserver returns the observer to set in the plugin.Config of the
// plugin with the given id, loaded by the given generation. It counts the
// plugin's calls (ulan_plugin_calls_total), its failed calls by class
// (ulan_plugin_call_errors_total: trap, timeout, exit, missing, unhealthy,
// status, invalid; each starts at 0), their latency
// (ulan_plugin_call_duration_seconds) and its waits for an instance
// (ulan_plugin_pool_wait_seconds). A nil *Metrics gives a nil observer.
func (m *Metrics) PluginObserver(pluginID string, generation uint64) plugin.Observer {
	if m == nil {
		return nil
	}
	id, gen := label(pluginID), generationLabel(generation)
	o := &pluginObserver{
		calls:    m.pluginCalls.WithLabelValues(id, gen),
		duration: m.pluginDuration.WithLabelValues(id, gen),
		wait:     m.poolWait.WithLabelValues(id, gen),
		vec:      m.pluginErrors,
		id:       id,
		gen:      gen,
	}
	for k, class := range classes {
		if class != "" {
			o.errors[k] = m.pluginErrors.WithLabelValues(id, gen, class)
		}
	}
	return o
}

// FallbackTaken counts a request the fallback served (the native sampler,
// the model's own tokenizer, a hook skipped) because the plugin with the
// given id, loaded by the given generation, failed.
func (m *Metrics) FallbackTaken(pluginID string, generation uint64) {
	if m == nil {
		return
	}
	m.fallbacks.WithLabelValues(label(pluginID), generationLabel(generation)).Inc()
}

// ForgetPlugin drops the series of the plugin with the given id, loaded by
// the given generation, once its runtime is closed (no generation holds it
// any more), so that reloads do not grow the exposition without bound.
func (m *Metrics) ForgetPlugin(pluginID string, generation uint64) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"plugin": label(pluginID), "generation": generationLabel(generation)}
	m.pluginCalls.Delete(l)
	m.pluginErrors.DeletePartialMatch(l)
	m.pluginDuration.Delete(l)
	m.poolWait.Delete(l)
	m.fallbacks.Delete(l)
}

// pluginObserver records one plugin's calls on series looked up once, so a
// call costs no label lookup and no allocation.
type pluginObserver struct {
	calls    prometheus.Counter
	errors   [len(classes)]prometheus.Counter
	duration prometheus.Observer
	wait     prometheus.Observer
	// vec, id and gen make the series of a kind classes lacks, should a
	// newer plugin package report one (class "unknown").
	vec     *prometheus.CounterVec
	id, gen string
}

func (o *pluginObserver) Call(_ string, d time.Duration, kind plugin.ErrorKind) {
	o.calls.Inc()
	if kind != 0 {
		if int(kind) < len(o.errors) && o.errors[kind] != nil {
			o.errors[kind].Inc()
		} else {
			o.vec.WithLabelValues(o.id, o.gen, unknownClass).Inc()
		}
	}
	o.duration.Observe(d.Seconds())
}

func (o *pluginObserver) PoolWait(d time.Duration) { o.wait.Observe(d.Seconds()) }
