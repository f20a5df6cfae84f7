// Package plugin runs WebAssembly plugins in wazero sandboxes. Each plugin
// gets its own runtime with its memory cap, so that one plugin cannot starve
// another; modules are compiled once, through an on-disk cache in a private
// directory, and instantiated into a pre-warmed pool. Every call has a
// deadline. An instance that traps, runs out of memory or times out is
// discarded and replaced in the background with backoff, and a plugin that
// keeps failing trips a circuit breaker, so a bad plugin loses its instances,
// never the server.
//
// This package knows the ABI's module shape (a wasip1 reactor exporting
// memory, _initialize and the ulan_abi_1 marker, with host imports in the
// ulan_v1 namespace), not the kinds built on it; sdk/ABI.md describes both.
package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/ulan-ai/ulan/host/plugin/internal/meter"
)

// ABI names (sdk/ABI.md).
const (
	// MarkerExport is the export that marks a module as a ulan plugin of ABI
	// major version 1. It is never called.
	MarkerExport = "ulan_abi_1"
	// ReconfigureExport is the optional export that takes a new plugin config
	// in place (sdk/ABI.md §5).
	ReconfigureExport = "ulan_reconfigure"
	// HostModule is the namespace of the host's imports for ABI 1.
	HostModule = "ulan_v1"
	// wasiModule is wasip1's import namespace.
	wasiModule = wasi_snapshot_preview1.ModuleName
	// statusUnsupported is the ABI's status for an optional feature a plugin
	// lacks (sdk/ABI.md §3).
	statusUnsupported = 4
)

// Tier is how much the operator trusts a plugin.
type Tier uint8

const (
	// Sandboxed interrupts a call at its deadline: the module is metered
	// (package meter: a counter at every loop turn and function entry, and
	// a call into the host every 4,096 of them, which stops a call past
	// its deadline), or, if the meter cannot rewrite it, run under
	// wazero's WithCloseOnContextDone, which exits to Go at every loop
	// turn. The default.
	Sandboxed Tier = iota
	// Trusted runs without interruption checks, for the operator's own
	// plugins: calls are faster, but a call that never returns cannot be
	// stopped and hangs the process.
	Trusted
)

// Grants are what a plugin may use beyond computation.
type Grants struct {
	// Clock provides ulan_v1.now_ns and real WASI clocks.
	Clock bool
}

// Config configures one plugin.
type Config struct {
	// ID names the plugin in logs, errors and metrics.
	ID string
	// Tier is how far the plugin is trusted.
	Tier Tier
	// Grants are the capabilities the operator grants.
	Grants Grants
	// MemoryPages caps each instance's linear memory (64 KiB pages);
	// 0 means 1024 (64 MiB).
	MemoryPages uint32
	// CallTimeout bounds every call; 0 means 1 s.
	CallTimeout time.Duration
	// InitTimeout bounds instantiation and _initialize; 0 means 10 s.
	InitTimeout time.Duration
	// PoolSize is the number of warm instances; 0 means 2.
	PoolSize int
	// LogBytes caps what one instance may write to stdout and stderr
	// (forwarded to the log); 0 means 64 KiB.
	LogBytes int
	// Logger receives the plugin's output and the runtime's notes; nil
	// means slog.Default(). What the plugin says (its log import, its
	// stdout and stderr lines) carries the attribute Said.
	Logger *slog.Logger
	// Cache, if not nil, is the compilation cache (see OpenCache).
	Cache wazero.CompilationCache
	// Kind, when set, makes Load check the module's manifest: its kind,
	// exports, config schema and needs; and makes every instance start with
	// ulan_init(PluginConfig). Empty loads the bare module (the runtime's own
	// tests and tooling).
	Kind Kind
	// PluginConfig is the plugin's configuration, JSON, validated against
	// the manifest's config_schema.
	PluginConfig json.RawMessage
	// Observer, if not nil, is told about every call and every wait for an
	// instance (see Observer); nil observes nothing, at no cost.
	Observer Observer
	// Shelf, if not nil, keeps the runtime when the last plugin on it closes, and
	// Load takes a shelved runtime of the same module and setup instead of compiling.
	Shelf *Shelf
	// ModuleSHA256 is the module's SHA-256 in hex when the caller has it (it saves
	// hashing the module for the Shelf); it must be the module's.
	ModuleSHA256 string

	// unmetered makes Load run a sandboxed module under wazero's checks,
	// as it does one the meter cannot rewrite (for tests).
	unmetered bool
}

func (c *Config) defaults() {
	if c.MemoryPages == 0 {
		c.MemoryPages = 1024
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = time.Second
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 2
	}
	if c.LogBytes <= 0 {
		c.LogBytes = 64 << 10
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// compiler is what compile needs of a wazero.Runtime.
type compiler interface {
	CompileModule(ctx context.Context, wasm []byte) (wazero.CompiledModule, error)
}

// compile compiles wasm with rt, turning a panic of the compiler into an
// error: a module is the plugin author's input, and one that trips a bug
// in wazero's decoder or validator (as meter.CheckCounts's type check
// guards against) must cost its load, not the server.
func compile(ctx context.Context, rt compiler, wasm []byte) (m wazero.CompiledModule, err error) {
	defer func() {
		if v := recover(); v != nil {
			m, err = nil, fmt.Errorf("the WebAssembly compiler failed on it: %v", v)
		}
	}()
	return rt.CompileModule(ctx, wasm)
}

// Said marks the log records that carry what a plugin says itself (its
// log import's messages, its stdout and stderr lines), apart from the
// runtime's notes about it (an instance replaced after a trap, an answer
// refused).
var Said = slog.String("source", "plugin")

// Plugin is a compiled module with its pool of instances.
type Plugin struct {
	cfg      Config
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	log      *slog.Logger
	obs      Observer // cfg.Observer
	pool     *pool
	breaker  *breaker
	manifest Manifest
	*shared
}

// shared is what the plugins of one runtime share: the runtime, and the state its host
// module's functions keep per instance (keyed by api.Module, so instances of a plugin
// and of one derived from it never meet). A plugin made by Derive shares its parent's.
type shared struct {
	refs    atomic.Int32 // plugins using the runtime; the last to close closes it
	errText sync.Map     // api.Module → the text its last set_error gave
	// tokStates and patterns hold the tokenizer primitives' registrations
	// (api.Module → *tokState) and compiled patterns (string → *Pattern).
	tokStates sync.Map
	patterns  sync.Map
	// smpStates holds each sampler instance's sequence histories
	// (api.Module → *smpState); vocab the vocabulary token_bytes reads.
	smpStates sync.Map
	vocab     atomic.Pointer[[][]byte]
	sum       [sha256.Size]byte // the module's SHA-256, the Shelf's key
	// metered says the module was rewritten by package meter and imports
	// meter.Module's tick (meterTick).
	metered bool
	// noReconfigure is set once the module has answered ulan_reconfigure
	// with StatusUnsupported.
	noReconfigure atomic.Bool
}

// forget drops what the host keeps per instance, when it is closed.
func (p *Plugin) forget(m *instance) {
	p.errText.Delete(m.mod)
	p.tokStates.Delete(m.mod)
	p.smpStates.Delete(m.mod)
}

// takeError returns and clears the error text an instance set.
func (p *Plugin) takeError(m *instance) string {
	if v, ok := p.errText.LoadAndDelete(m.mod); ok {
		return v.(string)
	}
	return ""
}

// Load compiles a module, checks its shape and pre-warms its pool. A module
// that is not a reactor, lacks the marker or imports something the host does
// not provide (or the operator did not grant) is refused, naming what is
// wrong.
func Load(ctx context.Context, wasm []byte, cfg Config) (*Plugin, error) {
	cfg.defaults()
	// Counts wazero would allocate by, before it reads what they count.
	if err := meter.CheckCounts(wasm); err != nil {
		return nil, fmt.Errorf("plugin %s: not a valid WebAssembly module: %w", cfg.ID, err)
	}
	var sum [sha256.Size]byte
	if cfg.Shelf != nil {
		sum = moduleSum(wasm, &cfg)
		if base := cfg.Shelf.take(keyOf(sum, &cfg)); base != nil {
			base.refs.Store(1)
			return base.build(ctx, cfg, nil)
		}
	}
	// Fewer data segments make every instance start faster (mergeDataSegments).
	code := mergeDataSegments(wasm)
	// A sandboxed module is metered: it calls meterTick every meterQuantum
	// loop turns and function entries, where a call past its deadline
	// stops. A module the meter cannot rewrite runs under wazero's own
	// check instead, a full exit to Go at every loop turn (RATIONALE.md,
	// "How is a sandboxed call stopped?").
	metered := false
	if cfg.Tier == Sandboxed {
		m, err := meter.Instrument(code, meterQuantum)
		if cfg.unmetered {
			err = errors.New("the test asked for no meter")
		}
		if err == nil {
			code, metered = m, true
		} else {
			cfg.Logger.Info("plugin not metered: wazero's slower termination checks stop it instead", "plugin", cfg.ID, "reason", err)
		}
	}
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(cfg.MemoryPages).
		WithCloseOnContextDone(cfg.Tier == Sandboxed && !metered).
		WithCustomSections(cfg.Kind != "")
	if cfg.Cache != nil {
		rc = rc.WithCompilationCache(cfg.Cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	p := &Plugin{cfg: cfg, rt: rt, log: cfg.Logger.With("plugin", cfg.ID), obs: cfg.Observer, shared: &shared{sum: sum, metered: metered}}
	p.refs.Store(1)
	fail := func(err error) (*Plugin, error) {
		_ = rt.Close(ctx)
		if ce := (*CallError)(nil); errors.As(err, &ce) && ce.Plugin == cfg.ID {
			return nil, err // already names the plugin
		}
		return nil, fmt.Errorf("plugin %s: %w", cfg.ID, err)
	}
	compiled, err := compile(ctx, rt, code)
	if err != nil {
		return fail(fmt.Errorf("not a valid WebAssembly module: %w", err))
	}
	p.compiled = compiled
	if err := checkShape(compiled); err != nil {
		return fail(err)
	}
	if err := p.instantiateHost(ctx, compiled); err != nil {
		return fail(err)
	}
	if cfg.Kind != "" {
		if err := p.checkManifest(compiled); err != nil {
			return fail(err)
		}
	}
	p.breaker = newBreaker()
	p.pool, err = newPool(ctx, p)
	if err != nil {
		return fail(err)
	}
	return p, nil
}

// checkManifest checks the manifest against the operator's configuration:
// the kind, the exports it requires, the config schema, the grants.
func (p *Plugin) checkManifest(m wazero.CompiledModule) error {
	man, err := ReadManifest(m)
	if err != nil {
		return err
	}
	if man.Kind != p.cfg.Kind {
		return fmt.Errorf("the module is a %s plugin, configured as a %s", man.Kind, p.cfg.Kind)
	}
	if err := checkExports(m, man.Kind); err != nil {
		return err
	}
	if err := checkConfig(man.ConfigSchema, p.cfg.PluginConfig); err != nil {
		return err
	}
	if err := checkNeeds(man.Needs, p.cfg); err != nil {
		return err
	}
	p.manifest = man
	return nil
}

// Manifest returns the plugin's manifest (zero for a bare module).
func (p *Plugin) Manifest() Manifest { return p.manifest }

// LSEOnDemand reports whether the plugin reads a row's log-sum-exp only
// through the row_lse import (its manifest's sampler.lse is on_demand), so
// that a caller of SamplerBatch.Step need not compute it ahead.
func (p *Plugin) LSEOnDemand() bool {
	return p.manifest.Sampler != nil && p.manifest.Sampler.LSE == LSEOnDemand
}

// checkShape enforces the ABI's module shape.
func checkShape(m wazero.CompiledModule) error {
	exports := m.ExportedFunctions()
	if _, ok := m.ExportedMemories()["memory"]; !ok {
		return errors.New(`the module exports no memory named "memory"`)
	}
	if _, ok := exports[MarkerExport]; !ok {
		return fmt.Errorf("not a ulan plugin of ABI 1: no %s export", MarkerExport)
	}
	if _, ok := exports["_initialize"]; !ok {
		if _, cmd := exports["_start"]; cmd {
			return errors.New("a command module (exports _start): plugins must be reactors (build with -buildmode=c-shared, or -mexec-model=reactor)")
		}
		return errors.New("no _initialize export: plugins must be wasip1 reactors")
	}
	return nil
}

// hostFunc is one host import.
type hostFunc struct {
	fn      api.GoModuleFunction
	params  []api.ValueType
	results []api.ValueType
	grant   func(*Config) bool
}

// instantiateHost provides the host imports the module uses, refusing any it
// imports that the host lacks or the operator did not grant.
func (p *Plugin) instantiateHost(ctx context.Context, m wazero.CompiledModule) error {
	funcs := p.hostFuncs()
	for _, f := range m.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch mod {
		case wasiModule:
		case HostModule:
			hf, ok := funcs[name]
			if !ok {
				return fmt.Errorf("imports %s.%s, which the host does not provide", mod, name)
			}
			if hf.grant != nil && !hf.grant(&p.cfg) {
				return fmt.Errorf("imports %s.%s, which needs a grant the operator did not give (or is not for a %s plugin)", mod, name, kindName(p.cfg.Kind))
			}
			if !slices.Equal(f.ParamTypes(), hf.params) || !slices.Equal(f.ResultTypes(), hf.results) {
				return fmt.Errorf("imports %s.%s with the wrong signature", mod, name)
			}
		case meter.Module:
			if !p.metered || name != meter.Tick { // meter refuses a module that imports from it
				return fmt.Errorf("imports %s.%s: only %s and %s imports are allowed", mod, name, HostModule, wasiModule)
			}
		default:
			return fmt.Errorf("imports %s.%s: only %s and %s imports are allowed", mod, name, HostModule, wasiModule)
		}
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, p.rt); err != nil {
		return fmt.Errorf("wasi: %w", err)
	}
	if p.metered {
		_, err := p.rt.NewHostModuleBuilder(meter.Module).NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(meterTick), nil, []api.ValueType{api.ValueTypeI32}).Export(meter.Tick).
			Instantiate(ctx)
		if err != nil {
			return fmt.Errorf("meter module: %w", err)
		}
	}
	b := p.rt.NewHostModuleBuilder(HostModule)
	for name, hf := range funcs {
		if hf.grant != nil && !hf.grant(&p.cfg) {
			continue
		}
		b = b.NewFunctionBuilder().WithGoModuleFunction(hf.fn, hf.params, hf.results).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("host module: %w", err)
	}
	return nil
}

// meterQuantum is how many of a metered module's checks (loop turns and
// function entries) pass between two calls of meterTick: a few µs of work in
// a tight loop, a few hundred ns of ticks in a busy one.
const meterQuantum = 1 << 12

// meterTick is a metered module's meter.Tick: it stops a call whose context
// is done, as wazero's WithCloseOnContextDone would (with the exit codes
// classify reads), and answers the count to the next tick. Being a call
// into Go, it is also where the Go scheduler can preempt a long call.
func meterTick(ctx context.Context, _ api.Module, stack []uint64) {
	if err := ctx.Err(); err != nil {
		code := uint32(sys.ExitCodeDeadlineExceeded)
		if errors.Is(err, context.Canceled) {
			code = sys.ExitCodeContextCanceled
		}
		panic(sys.NewExitError(code))
	}
	stack[0] = meterQuantum
}

// maxLogLine bounds one ulan_v1.log message.
const maxLogLine = 4096

func (p *Plugin) hostFuncs() map[string]hostFunc {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	funcs := samplerPrimitives()
	for name, f := range p.tokenizerPrimitives() {
		funcs[name] = f
	}
	for name, f := range p.samplerStatePrimitives() {
		funcs[name] = f
	}
	for name, f := range map[string]hostFunc{
		// log(level, ptr, len): level 0 debug, 1 info, 2 warn, 3 error.
		"log": {
			params: []api.ValueType{i32, i32, i32},
			fn: api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
				level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
				msg, ok := m.Memory().Read(ptr, min(n, maxLogLine))
				if !ok {
					msg = []byte("(log message outside the plugin's memory)")
				}
				p.log.Log(ctx, slog.Level(4*(min(max(level, 0), 3)-1)), strings.ToValidUTF8(string(msg), "\uFFFD"), Said)
			}),
		},
		// set_error(ptr, len): the text of the error the export returns next.
		"set_error": {
			params: []api.ValueType{i32, i32},
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, stack []uint64) {
				msg, ok := m.Memory().Read(uint32(stack[0]), min(uint32(stack[1]), maxLogLine))
				if ok {
					p.errText.Store(m, strings.ToValidUTF8(string(msg), "\uFFFD"))
				}
			}),
		},
		// now_ns() i64: a monotonic clock, with the clock grant.
		"now_ns": {
			results: []api.ValueType{i64},
			grant:   func(c *Config) bool { return c.Grants.Clock },
			fn: api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
				stack[0] = uint64(time.Since(processStart).Nanoseconds())
			}),
		},
	} {
		funcs[name] = f
	}
	return funcs
}

var processStart = time.Now()

func kindName(k Kind) string {
	if k == "" {
		return "bare"
	}
	return string(k)
}

// instantiate makes one instance: no filesystem, environment, arguments or
// network; fake clocks and deterministic randomness unless granted; output
// to the log within a budget; _initialize run under InitTimeout.
func (p *Plugin) instantiate(ctx context.Context) (*instance, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.InitTimeout)
	defer cancel()
	out := newLogWriter(p.log, p.cfg.LogBytes)
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize").
		WithStdout(out).
		WithStderr(out)
	if p.cfg.Grants.Clock {
		mc = mc.WithSysWalltime().WithSysNanotime()
	}
	m, err := p.rt.InstantiateModule(ctx, p.compiled, mc)
	if err != nil {
		ce := classify(ctx, "_initialize", err)
		ce.Plugin = p.cfg.ID
		return nil, ce
	}
	inst := &instance{mod: m, fns: map[string]api.Function{}}
	if p.cfg.Kind != "" {
		if err := p.initInstance(ctx, inst); err != nil {
			_ = m.Close(ctx)
			return nil, err
		}
	}
	return inst, nil
}

// initInstance hands the plugin its config: the bytes go into a buffer from
// ulan_alloc, then ulan_init(ptr, len) must return 0.
func (p *Plugin) initInstance(ctx context.Context, inst *instance) error {
	status, err := p.handConfig(ctx, inst, "ulan_init", p.cfg.PluginConfig)
	if err == nil && status != 0 {
		err = p.refusal(inst, "ulan_init", status)
	}
	return err
}

// handConfig writes a plugin config into a buffer from ulan_alloc and calls
// export(ptr, len) — ulan_init or ulan_reconfigure — returning its status.
func (p *Plugin) handConfig(ctx context.Context, inst *instance, export string, config json.RawMessage) (int32, error) {
	cfg := []byte(config)
	if len(cfg) == 0 {
		cfg = []byte("{}")
	}
	res, err := inst.function("ulan_alloc").Call(ctx, uint64(len(cfg)))
	if err != nil {
		return 0, classify(ctx, "ulan_alloc", err)
	}
	ptr := uint32(res[0])
	if ptr == 0 || !inst.mod.Memory().Write(ptr, cfg) {
		return 0, fmt.Errorf("ulan_alloc(%d) gave no usable buffer", len(cfg))
	}
	res, err = inst.function(export).Call(ctx, uint64(ptr), uint64(len(cfg)))
	if err != nil {
		return 0, classify(ctx, export, err)
	}
	if _, err := inst.function("ulan_free").Call(ctx, uint64(ptr)); err != nil {
		return 0, classify(ctx, "ulan_free", err)
	}
	return int32(res[0]), nil
}

// refusal is the error for an export that refused the config with status.
func (p *Plugin) refusal(inst *instance, export string, status int32) error {
	msg := p.takeError(inst)
	if msg == "" {
		msg = "no message"
	}
	return fmt.Errorf("%s refused the config: status %d: %s", export, status, msg)
}

// Call calls an export with scalar parameters on a pooled instance, within
// the plugin's call deadline (and ctx's). Any failure discards the instance.
func (p *Plugin) Call(ctx context.Context, export string, params ...uint64) (_ []uint64, err error) {
	defer p.observe(export, p.started(), &err)
	if err := p.breaker.allow(); err != nil {
		return nil, &CallError{Plugin: p.cfg.ID, Export: export, Kind: KindUnhealthy, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	m, err := p.pool.checkout(ctx)
	if err != nil {
		return nil, &CallError{Plugin: p.cfg.ID, Export: export, Kind: KindTimeout, Err: fmt.Errorf("no instance free before the deadline: %w", err)}
	}
	res, err := p.callOn(ctx, m, export, params)
	var ce *CallError
	if errors.As(err, &ce) && ce.Kind != KindMissing {
		p.pool.discard(m)
		return nil, err
	}
	if err == nil {
		p.breaker.success()
	}
	p.pool.put(m)
	return res, err
}

// callOn calls an export on an instance the caller holds, within ctx. A
// failure other than a missing export leaves the instance unusable: the
// caller must discard it. A failure counts against the circuit breaker; a
// success is recorded by the caller once it has checked the call's outputs
// (see broke), so that answers it refuses count as failures too.
func (p *Plugin) callOn(ctx context.Context, m *instance, export string, params []uint64) (_ []uint64, err error) {
	ctx, span := p.span(ctx, export)
	defer func() { endSpan(span, err) }()
	fn := m.function(export)
	if fn == nil {
		return nil, &CallError{Plugin: p.cfg.ID, Export: export, Kind: KindMissing, Err: errors.New("no such export")}
	}
	res, err := p.call(ctx, m, fn, params)
	if err != nil {
		p.breaker.failure()
		ce := classify(ctx, export, err)
		ce.Plugin = p.cfg.ID
		p.log.Warn("plugin call failed; instance replaced", "export", export, "kind", ce.Kind.String(), "err", ce.Err)
		return nil, ce
	}
	return res, nil
}

// broke records that a call returned but broke the ABI's contract (a
// malformed or oversized output, invalid UTF-8, a token that is not a
// candidate, an unusable buffer). The caller discards the instance, as after
// a trap, since its state can no longer be trusted; and like a trap it counts
// as a failed call for the circuit breaker, so that a plugin that keeps
// answering garbage is marked unhealthy instead of being re-instantiated on
// every call.
func (p *Plugin) broke(err error) {
	p.breaker.failure()
	p.log.Warn("plugin output refused; instance replaced", "err", err)
}

// call runs fn. In a trusted runtime nothing can interrupt a guest: a
// trusted plugin that loops forever hangs its caller, and since compiled
// wasm has no preemption points, the Go runtime's next stop-the-world with
// it (see RATIONALE.md, "What does the trusted tier give up?").
func (p *Plugin) call(ctx context.Context, _ *instance, fn api.Function, params []uint64) ([]uint64, error) {
	return fn.Call(ctx, params...)
}

// Stats describe a plugin's pool and health.
type Stats struct {
	Idle, Size   int
	Replacements int
	Unhealthy    bool
}

// Stats returns the pool's state.
func (p *Plugin) Stats() Stats {
	idle, size, repl := p.pool.stats()
	return Stats{Idle: idle, Size: size, Replacements: repl, Unhealthy: p.breaker.open()}
}

// Close closes every instance and, unless a plugin derived from it (or the one it was
// derived from) still runs on it, the runtime — or puts it on cfg.Shelf.
func (p *Plugin) Close(ctx context.Context) error {
	p.pool.close()
	return p.release(ctx)
}

// release drops p's reference to the runtime, shelving or closing it with the last.
func (p *Plugin) release(ctx context.Context) error {
	if p.refs.Add(-1) > 0 {
		return nil
	}
	if p.cfg.Shelf.put(p) {
		return nil
	}
	return p.rt.Close(ctx)
}

// SameRuntime reports whether p and q run on one runtime (one was derived from the
// other, or both from a third).
func (p *Plugin) SameRuntime(q *Plugin) bool { return q != nil && p.shared == q.shared }

// ErrNotDerivable reports that Derive cannot make the plugin asked for from this one:
// the runtime it would share is set up for other grants or limits.
var ErrNotDerivable = errors.New("plugin: the configuration changes more than the plugin's config, pool and deadlines")

// Derive returns a plugin of the same module with cfg — a new plugin config, pool size,
// call or init deadline, observer — on the same runtime and compiled module, so that a
// reload that changes only those skips compiling the module again. When the module
// exports ulan_reconfigure, p's idle instances take cfg.PluginConfig in place and move
// to the new plugin (p replaces them only if it misses them while it drains); the rest
// are new instances, initialised with cfg.PluginConfig. The two plugins' pools, breakers
// and sessions are independent. It returns ErrNotDerivable when cfg changes what the
// runtime was built for (tier, memory limit, grants, kind, id) and the plugin must be
// loaded afresh; cfg.PluginConfig is checked against the manifest's schema as Load does.
// Each plugin is closed on its own; the runtime closes with the last.
func (p *Plugin) Derive(ctx context.Context, cfg Config) (*Plugin, error) {
	return p.derive(ctx, cfg, true)
}

// DeriveFresh is Derive with new instances only, p's left alone: for a dry run,
// which must not take instances from a plugin that is serving.
func (p *Plugin) DeriveFresh(ctx context.Context, cfg Config) (*Plugin, error) {
	return p.derive(ctx, cfg, false)
}

func (p *Plugin) derive(ctx context.Context, cfg Config, reuse bool) (*Plugin, error) {
	cfg.defaults()
	if cfg.ID != p.cfg.ID || cfg.Tier != p.cfg.Tier || cfg.MemoryPages != p.cfg.MemoryPages ||
		cfg.Grants != p.cfg.Grants || cfg.Kind != p.cfg.Kind {
		return nil, ErrNotDerivable
	}
	if p.refs.Add(1) <= 1 {
		p.refs.Add(-1)
		return nil, fmt.Errorf("plugin %s: deriving from a closed plugin", cfg.ID)
	}
	var from *Plugin
	if reuse {
		from = p
	}
	return p.build(ctx, cfg, from)
}

// build makes a plugin with cfg on p's runtime, which the caller has counted it in
// (refs): its pool holds instances of from reconfigured for it (when from is not nil
// and the module can) and new ones for the rest. On failure it releases the runtime.
func (p *Plugin) build(ctx context.Context, cfg Config, from *Plugin) (*Plugin, error) {
	q := &Plugin{cfg: cfg, rt: p.rt, compiled: p.compiled, log: cfg.Logger.With("plugin", cfg.ID), obs: cfg.Observer,
		shared: p.shared, breaker: newBreaker()}
	fail := func(err error) (*Plugin, error) {
		_ = q.release(ctx)
		return nil, fmt.Errorf("plugin %s: %w", cfg.ID, err)
	}
	if cfg.Kind != "" {
		if err := q.checkManifest(q.compiled); err != nil {
			return fail(err)
		}
	}
	var ready []*instance
	if from != nil {
		var err error
		if ready, err = from.lendReconfigured(ctx, cfg); err != nil {
			return fail(err)
		}
	}
	var err error
	if q.pool, err = newPool(ctx, q, ready...); err != nil {
		return fail(err)
	}
	return q, nil
}

// lendReconfigured takes up to cfg's pool size of p's idle instances and hands them
// cfg's plugin config through ulan_reconfigure, when the module exports it: warm instances
// instead of new ones (p's pool replaces those it lent only when it misses them).
// A plugin that answers StatusUnsupported gets its instances back unchanged and
// is not asked again; one that refuses the config fails the derivation, and the
// instances it was handing are closed, since what they hold is uncertain.
func (p *Plugin) lendReconfigured(ctx context.Context, cfg Config) ([]*instance, error) {
	if cfg.Kind == "" || p.noReconfigure.Load() {
		return nil, nil
	}
	if _, ok := p.compiled.ExportedFunctions()[ReconfigureExport]; !ok {
		return nil, nil
	}
	lent := p.pool.lend(cfg.PoolSize)
	ctx, cancel := context.WithTimeout(ctx, cfg.InitTimeout)
	defer cancel()
	for i, m := range lent {
		status, err := p.handConfig(ctx, m, ReconfigureExport, cfg.PluginConfig)
		if err == nil && status == statusUnsupported {
			p.noReconfigure.Store(true)
			closeAll(p, lent[:i]) // reconfigured before it changed its mind
			for _, m := range lent[i:] {
				p.pool.giveBack(m)
			}
			return nil, nil
		}
		if err == nil && status != 0 {
			err = p.refusal(m, ReconfigureExport, status)
		}
		if err != nil {
			closeAll(p, lent)
			return nil, err
		}
		p.log.Debug("instance reconfigured", "instance", i)
	}
	return lent, nil
}

// closeInstance closes an instance no pool holds, and drops its host state.
func (p *Plugin) closeInstance(m *instance) {
	p.forget(m)
	_ = m.Close(context.Background())
}

// closeAll closes instances no pool holds.
func closeAll(p *Plugin, ms []*instance) {
	for _, m := range ms {
		p.closeInstance(m)
	}
}

// ErrorKind classifies a failed call.
type ErrorKind uint8

// Error kinds.
const (
	KindTrap      ErrorKind = iota + 1 // the guest trapped (unreachable, bounds, stack, out of memory)
	KindTimeout                        // the deadline passed
	KindExit                           // the guest exited (proc_exit)
	KindMissing                        // no such export
	KindUnhealthy                      // the circuit breaker is open
	// KindStatus and KindInvalid are what Classify and Observer say of
	// failures that are no CallError: a StatusError, and an output the
	// host refused.
	KindStatus  // the plugin answered with an error status
	KindInvalid // the host refused the plugin's output
)

func (k ErrorKind) String() string {
	switch k {
	case KindTrap:
		return "trap"
	case KindTimeout:
		return "timeout"
	case KindExit:
		return "exit"
	case KindMissing:
		return "missing export"
	case KindUnhealthy:
		return "unhealthy"
	case KindStatus:
		return "status"
	case KindInvalid:
		return "invalid output"
	}
	return "unknown"
}

// CallError is a failed plugin call.
type CallError struct {
	Plugin string
	Export string
	Kind   ErrorKind
	Err    error
}

func (e *CallError) Error() string {
	return fmt.Sprintf("plugin %s: %s: %s: %v", e.Plugin, e.Export, e.Kind, e.Err)
}

func (e *CallError) Unwrap() error { return e.Err }

func classify(ctx context.Context, export string, err error) *CallError {
	ce := &CallError{Export: export, Kind: KindTrap, Err: err}
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled):
		cause := context.Cause(ctx)
		if cause == nil {
			// This call's context is live: the module was closed by the
			// deadline of an earlier call that returned just as it passed.
			cause = errors.New("the instance was closed by an earlier call's deadline")
		}
		ce.Kind, ce.Err = KindTimeout, fmt.Errorf("did not return within its deadline: %w", cause)
	case errors.As(err, &exit):
		ce.Kind = KindExit
	}
	return ce
}
