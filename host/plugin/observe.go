package plugin

import (
	"errors"
	"fmt"
	"time"
)

// Observer is told about a plugin's calls, for metrics, without this package
// knowing what records them. Set it in Config.Observer; nil observes nothing
// and costs the call path nothing beyond a nil check (no clock reads, no
// allocation). Its methods run on the calling goroutine, concurrently: they
// must be cheap, must not block and must not call the plugin.
type Observer interface {
	// Call reports one call of the plugin's API in this package: Plugin.Call,
	// each tokenizer method (each chunk of Vocab), SamplerBatch.Open, Step,
	// CloseSequence and Close, OpenHook and HookSession.Delta, End and Close.
	// export names the export the call is for; d runs from the call's
	// start (its breaker check and wait for an instance, for the calls that
	// take one from the pool) to the host's last check of the answer; kind
	// is 0 for a success, else how it failed (see Classify). A call refused before it reached the plugin (a caller's
	// error, such as a row with more ids than logits, or a call on a session
	// whose instance failed earlier, which was reported then) is not
	// reported. OpenSamplerBatch calls no export: it is reported, as
	// "smp_open", only when it fails (breaker open, no instance in time).
	Call(export string, d time.Duration, kind ErrorKind)
	// PoolWait reports a checkout that found no idle instance and waited d,
	// whether an instance came or the deadline passed first. A checkout
	// that finds an idle instance is not reported.
	PoolWait(d time.Duration)
}

// StatusError is an error status a plugin answered with, as the ABI lets an
// export do (a negative handle or packed result, a non-zero status): the
// plugin ran and refused, so its instance stays in use and the call counts
// as a success for the circuit breaker. Classify gives KindStatus.
type StatusError struct {
	// Plugin and Export name the call.
	Plugin, Export string
	// Status is the status, positive.
	Status int64
	// Message is the text the plugin gave through set_error, or "no
	// message".
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("plugin %s: %s: status %d: %s", e.Plugin, e.Export, e.Status, e.Message)
}

// refused marks an error as an output the host refused (errors.Is(err,
// errBadOutput)) without changing its text.
type refused struct{ error }

func (r refused) Is(target error) bool { return target == errBadOutput }
func (r refused) Unwrap() error        { return r.error }

// Classify says how a call of this package's API failed: 0 for nil; the
// Kind of a CallError (KindTrap, KindTimeout, KindExit, KindMissing,
// KindUnhealthy); KindStatus for a StatusError; KindInvalid for anything
// else, which from this package means an output the host refused (a
// malformed record, an id outside the vocabulary, invalid UTF-8) or a call
// on a session whose instance had already failed.
func Classify(err error) ErrorKind {
	if err == nil {
		return 0
	}
	if ce, ok := errors.AsType[*CallError](err); ok {
		return ce.Kind
	}
	if _, ok := errors.AsType[*StatusError](err); ok {
		return KindStatus
	}
	return KindInvalid
}

// started is when a call starts: the clock when someone observes the plugin,
// else the zero time (sparing the clock read).
func (p *Plugin) started() time.Time {
	if p.obs == nil {
		return time.Time{}
	}
	return time.Now()
}

// observe reports a call that started at start and ended with *err, if
// someone observes the plugin. Deferred: defer p.observe(export,
// p.started(), &err) with err the named result.
func (p *Plugin) observe(export string, start time.Time, err *error) {
	if p.obs == nil || errors.Is(*err, errSessionDead) {
		return
	}
	p.obs.Call(export, time.Since(start), Classify(*err))
}
