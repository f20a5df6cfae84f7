// Package generation builds generations: immutable snapshots of the operator's plugins
// and pipelines (sdk/ABI.md §8), numbered 1, 2, 3 … in the order they are built.
//
// Build loads every configured plugin (reads its module, checks its SHA-256, reads its
// manifest for its kind, checks the manifest's needs against the operator's grants,
// compiles it through the on-disk cache and pre-warms its pool with its config), checks
// each plugin's failure policy against its kind and each pipeline's references against
// the kinds they need, and returns the Generation, or every problem found, each keyed
// like the configuration (plugins[2].module). A request runs on the generation current
// when it arrived; Close releases a generation's plugins once nothing runs on it.
package generation

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/plugin"
)

// The values a zero in a plugin's configuration stands for (see config.Plugin).
const (
	defaultPoolSize    = 2
	defaultMemoryPages = 1024
	defaultCallTimeout = time.Second
)

// Deps are what Build needs besides the configuration.
type Deps struct {
	// Number is the generation's number; 0 means 1, the configuration the server
	// started with.
	Number uint64
	// Cache is the compilation cache (plugin.OpenCache); nil compiles every module
	// afresh.
	Cache wazero.CompilationCache
	// Shelf keeps the compiled runtimes of closed plugins for a while
	// (plugin.Shelf); nil keeps none.
	Shelf *plugin.Shelf
	// Logger receives the plugins' output and the runtime's notes; nil means
	// slog.Default().
	Logger *slog.Logger
	// Builtins are the modules a configuration names as "builtin:NAME" (the
	// first-party plugins the binary embeds, such as "tokenizer").
	Builtins map[string][]byte
	// ModelTokenizer is the loaded model's tokenizer as a bundle
	// (hf.Tokenizer.Bundle), handed to every tokenizer plugin whose config
	// names no tokenizer of its own (neither "bundle" nor "tokenizer_json").
	ModelTokenizer []byte
	// ModelVocab, when positive, is the size of the loaded model's own
	// tokenizer's vocabulary, which every tokenizer plugin's (tok_info) must
	// equal: ids from another vocabulary would run the model on the wrong
	// tokens, and its output would be detokenized with the wrong pieces.
	ModelVocab int
	// InitTimeout bounds each instance's instantiation and ulan_init; 0
	// means plugin.Config's default.
	InitTimeout time.Duration
	// Observer, when set, gives each plugin loaded for generation number gen the
	// observer of its calls (metrics.Metrics.PluginObserver); Forget is told when
	// that plugin closes.
	Observer func(pluginID string, gen uint64) plugin.Observer
	Forget   func(pluginID string, gen uint64)
	// Previous is the generation serving now, when Build makes the next one
	// for a reload: a plugin whose module, configuration, grants, pool and
	// policy are all unchanged is carried over from it (the same instances,
	// shared by both generations) instead of being loaded again.
	Previous *Generation

	dryRun bool // set by DryRun: take nothing from Previous's pools
}

// BuiltinPrefix marks a module path that names a built-in plugin.
const BuiltinPrefix = "builtin:"

// Generation is an immutable snapshot of the plugins and pipelines. Nothing in it
// changes after Build; callers must not change what its accessors return either.
type Generation struct {
	number    uint64
	builtAt   time.Time
	took      time.Duration
	plugins   []*Plugin // in configuration order
	byID      map[string]*Plugin
	pipelines []*Pipeline // in configuration order
	byName    map[string]*Pipeline
	def       *Pipeline
	carried   map[*Plugin]bool // plugins taken over from Deps.Previous
	forget    func(pluginID string, gen uint64)
	closeOnce sync.Once
	closeErr  error
}

// Plugin is one loaded plugin of a generation.
type Plugin struct {
	// ID is the operator's name for it.
	ID string
	// Module is the path it was loaded from.
	Module string
	// SHA256 is the module's hash, lowercase hex.
	SHA256 string
	// Manifest is what the module says of itself: kind, name, version, ABI, needs.
	Manifest plugin.Manifest
	// Policy is what a request sees when it fails.
	Policy Policy
	// PoolSize is the number of warm instances.
	PoolSize int
	// Runtime is the loaded plugin.
	Runtime *plugin.Plugin
	// LoadedBy is the number of the generation that loaded it: later ones may carry
	// it over, and its metrics keep this number as their generation label.
	LoadedBy uint64

	// key identifies everything the plugin was loaded from (module hash,
	// runtime configuration, policy): a reload carries the plugin over when
	// the key is unchanged.
	key [sha256.Size]byte
	// holders counts the generations that hold the plugin; the last one to
	// close closes its runtime.
	holders atomic.Int32
}

// Kind is what the plugin does, from its manifest.
func (p *Plugin) Kind() plugin.Kind { return p.Manifest.Kind }

// Pipeline is a tokenizer, a sampler and a chain of hooks.
type Pipeline struct {
	// Name is how requests select it.
	Name string
	// Tokenizer is a tokenizer plugin; nil uses the model's own tokenizer.
	Tokenizer *Plugin
	// Sampler is a sampler plugin; nil uses the built-in sampler.
	Sampler *Plugin
	// Hooks are hook plugins, run in this order.
	Hooks []*Plugin
	// Default says requests that name no pipeline run this one.
	Default bool
}

// Number is the generation's number: 1 for the configuration the server started with.
func (g *Generation) Number() uint64 { return g.number }

// BuiltAt is when Build finished.
func (g *Generation) BuiltAt() time.Time { return g.builtAt }

// Took is how long Build took.
func (g *Generation) Took() time.Duration { return g.took }

// Plugins returns the plugins in configuration order.
func (g *Generation) Plugins() []*Plugin { return append([]*Plugin(nil), g.plugins...) }

// Plugin returns the plugin with the given id.
func (g *Generation) Plugin(id string) (*Plugin, bool) {
	p, ok := g.byID[id]
	return p, ok
}

// Pipelines returns the pipelines in configuration order.
func (g *Generation) Pipelines() []*Pipeline { return append([]*Pipeline(nil), g.pipelines...) }

// Pipeline returns the pipeline with the given name.
func (g *Generation) Pipeline(name string) (*Pipeline, bool) {
	p, ok := g.byName[name]
	return p, ok
}

// Default returns the pipeline a request that names none runs: the one marked default,
// else the one named "default"; nil when there is neither, and such a request runs the
// built-in tokenizer and sampler with no hooks.
func (g *Generation) Default() *Pipeline { return g.def }

// Close releases the generation's plugins: their instances and runtimes. Call it once
// no request runs on the generation any more; later calls return the first's result.
// A plugin carried over into a later generation stays open until that one closes too.
func (g *Generation) Close(ctx context.Context) error {
	g.closeOnce.Do(func() { g.closeErr = closeAll(ctx, g.plugins, g.forget) })
	return g.closeErr
}

// closeAll lets go of ps: each plugin's runtime closes when no generation
// holds it any more.
func closeAll(ctx context.Context, ps []*Plugin, forget func(string, uint64)) error {
	var errs []error
	for _, p := range ps {
		if p == nil || p.Runtime == nil || p.holders.Add(-1) > 0 {
			continue
		}
		if forget != nil {
			forget(p.ID, p.LoadedBy)
		}
		if err := p.Runtime.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("closing plugin %s: %w", p.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Carried reports whether the plugin with the given id is the very plugin (the same
// instances) that the previous generation ran, carried over unchanged.
func (g *Generation) Carried(id string) bool {
	p, ok := g.byID[id]
	return ok && g.carried[p]
}

// Build loads cfg's plugins and pipelines into a generation. On failure it releases
// whatever it loaded and returns config.Problems listing every problem, each keyed like
// the configuration: the checks of cfg.ValidatePlugins; then, per plugin, a module that
// cannot be read, a SHA-256 that differs, a missing or bad manifest, a need the grants
// do not cover, a failure policy its kind does not allow, or a load that failed (with
// the plugin's own error text, such as what ulan_init said); then pipeline references
// to plugins of the wrong kind. Plugins load in parallel, one per CPU.
func Build(ctx context.Context, cfg config.Config, deps Deps) (*Generation, error) {
	start := time.Now()
	var problems config.Problems
	if err := cfg.ValidatePlugins(); err != nil {
		if errors.As(err, &problems) {
			return nil, problems
		}
		return nil, fmt.Errorf("validating plugins: %w", err)
	}
	if deps.Number == 0 {
		deps.Number = 1
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}

	loaded := make([]*Plugin, len(cfg.Plugins))
	kinds := map[string]plugin.Kind{} // by id, for every plugin whose manifest was read
	perPlugin := make([]config.Problems, len(cfg.Plugins))
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		sem = make(chan struct{}, runtime.GOMAXPROCS(0))
	)
	for i, pc := range cfg.Plugins {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			p, kind, ps := load(ctx, i, pc, deps)
			loaded[i], perPlugin[i] = p, ps
			if kind != "" {
				mu.Lock()
				kinds[pc.ID] = kind
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, ps := range perPlugin {
		problems = append(problems, ps...)
	}

	g := &Generation{
		forget:  deps.Forget,
		number:  deps.Number,
		byID:    make(map[string]*Plugin, len(loaded)),
		byName:  make(map[string]*Pipeline, len(cfg.Pipelines)),
		carried: map[*Plugin]bool{},
	}
	for _, p := range loaded {
		if p != nil {
			g.plugins = append(g.plugins, p)
			g.byID[p.ID] = p
			if deps.Previous != nil && deps.Previous.byID[p.ID] == p {
				g.carried[p] = true
			}
		}
	}
	for j, pc := range cfg.Pipelines {
		k := fmt.Sprintf("pipelines[%d].", j)
		ref := func(key, id string, want plugin.Kind) *Plugin {
			if kind, ok := kinds[id]; ok && kind != want {
				problems = append(problems, config.Problem{Key: key,
					Message: fmt.Sprintf("plugin %q is a %s, not a %s", id, kind, want)})
			}
			return g.byID[id]
		}
		pl := &Pipeline{Name: pc.Name, Default: pc.Default}
		if pc.Tokenizer != "" {
			pl.Tokenizer = ref(k+"tokenizer", pc.Tokenizer, plugin.KindTokenizer)
		}
		if pc.Sampler != "" {
			pl.Sampler = ref(k+"sampler", pc.Sampler, plugin.KindSampler)
		}
		for h, id := range pc.Hooks {
			pl.Hooks = append(pl.Hooks, ref(fmt.Sprintf("%shooks[%d]", k, h), id, plugin.KindHook))
		}
		g.pipelines = append(g.pipelines, pl)
		g.byName[pl.Name] = pl
		if pl.Default {
			g.def = pl
		}
	}
	if g.def == nil {
		if pl, ok := g.byName["default"]; ok {
			g.def = pl
		}
	}
	if len(problems) > 0 {
		if err := closeAll(context.WithoutCancel(ctx), g.plugins, g.forget); err != nil {
			deps.Logger.Warn("releasing the plugins of a failed build", "err", err)
		}
		return nil, problems
	}
	g.builtAt = time.Now()
	g.took = g.builtAt.Sub(start)
	return g, nil
}

// DryRun does what Build does, then releases the result: it answers whether cfg would
// build, with the same problems, for ValidateConfig.
func DryRun(ctx context.Context, cfg config.Config, deps Deps) error {
	deps.dryRun = true
	g, err := Build(ctx, cfg, deps)
	if err != nil {
		return err
	}
	if err := g.Close(context.WithoutCancel(ctx)); err != nil && deps.Logger != nil {
		deps.Logger.Warn("releasing the plugins of a dry run", "err", err)
	}
	return nil
}

// load loads plugins[i]. It returns the plugin, or nil and its problems; and its kind
// whenever its manifest could be read, so that pipelines can be checked against it.
func load(ctx context.Context, i int, pc config.Plugin, deps Deps) (*Plugin, plugin.Kind, config.Problems) {
	k := fmt.Sprintf("plugins[%d].", i)
	var ps config.Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, config.Problem{Key: k + key, Message: fmt.Sprintf(format, args...)})
	}
	var wasm []byte
	var hexSum string
	var err error
	if name, ok := strings.CutPrefix(pc.Module, BuiltinPrefix); ok {
		if wasm = deps.Builtins[name]; wasm == nil {
			add("module", "there is no built-in plugin %q", name)
			return nil, "", ps
		}
		hexSum = builtinSum(wasm)
	} else if wasm, hexSum, err = readModuleCached(pc.Module); err != nil {
		add("module", "%v", err)
		return nil, "", ps
	}
	if !isWasm(wasm) {
		// Before the hash is used: a dry run must not tell a caller the hash of any
		// file the server can read.
		add("module", "%s is not a WebAssembly binary", pc.Module)
		return nil, "", ps
	}
	if pc.SHA256 != "" && pc.SHA256 != hexSum {
		add("sha256", "%s has SHA-256 %s, not the one configured: the file changed, or the hash is wrong", pc.Module, hexSum)
		return nil, "", ps
	}
	man, err := manifestOf(wasm)
	if err != nil {
		add("module", "%s %v", pc.Module, err)
		return nil, "", ps
	}
	policy, err := ParsePolicy(pc.FailurePolicy)
	if err == nil {
		err = policy.Allows(man.Kind)
	}
	if err != nil {
		add("failure_policy", "%v", err)
	}
	rc, err := runtimeConfig(pc, man.Kind, deps)
	if err != nil {
		add("config", "%v", err)
	}
	rc.ModuleSHA256 = hexSum
	for _, p := range checkNeeds(man.Needs, rc) {
		add(p.Key, "%s", p.Message)
	}
	if len(ps) > 0 {
		return nil, man.Kind, ps
	}
	key := loadKey(hexSum, policy, rc)
	var rt *plugin.Plugin
	if prev := deps.Previous; prev != nil {
		if old := prev.byID[pc.ID]; old != nil && old.key == key && old.holders.Add(1) > 1 {
			return old, man.Kind, nil
		} else if old != nil && old.key == key {
			old.holders.Add(-1) // it closed meanwhile: load afresh
		} else if old != nil && old.SHA256 == hexSum && old.Runtime != nil {
			// The same module with another config, pool or deadline: new instances on
			// the compiled module the old plugin runs (anything else, or a failure,
			// loads afresh below and reports its problems from there).
			// A reload reconfigures the old plugin's idle instances in place when the
			// module can; a dry run leaves the serving pool alone.
			if deps.dryRun {
				rt, _ = old.Runtime.DeriveFresh(ctx, rc)
			} else {
				rt, _ = old.Runtime.Derive(ctx, rc)
			}
		}
	}
	err = nil
	if rt == nil {
		rt, err = plugin.Load(ctx, wasm, rc)
	}
	if err != nil {
		ps = append(ps, config.Problem{Key: k[:len(k)-1], Message: fmt.Sprintf("%s did not load: %v", pc.Module, err)})
		return nil, man.Kind, ps
	}
	if man.Kind == plugin.KindTokenizer && deps.ModelVocab > 0 {
		info, err := rt.TokenizerInfo(ctx)
		switch {
		case err != nil:
			ps = append(ps, config.Problem{Key: k[:len(k)-1], Message: fmt.Sprintf("%s: tok_info: %v", pc.Module, err)})
		case info.VocabSize != deps.ModelVocab:
			ps = append(ps, config.Problem{Key: k[:len(k)-1], Message: fmt.Sprintf(
				"%s has a vocabulary of %d tokens, the model's tokenizer one of %d: its ids would not be the model's", pc.Module, info.VocabSize, deps.ModelVocab)})
		}
		if len(ps) > 0 {
			_ = rt.Close(ctx)
			return nil, man.Kind, ps
		}
	}
	p := &Plugin{
		ID:       pc.ID,
		Module:   pc.Module,
		SHA256:   hexSum,
		Manifest: rt.Manifest(),
		Policy:   policy,
		PoolSize: rc.PoolSize,
		Runtime:  rt,
		LoadedBy: deps.Number,
		key:      key,
	}
	p.holders.Store(1)
	return p, man.Kind, nil
}

// loadKey digests what a plugin is loaded from: its module's hash, its failure
// policy and every field of its runtime configuration that reaches the plugin or
// bounds it (the logger and the compilation cache do neither).
func loadKey(module string, policy Policy, rc plugin.Config) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d\x00%d\x00%d\x00%d\x00%+v\x00%s\x00",
		module, policy, rc.ID, rc.Tier, rc.MemoryPages, rc.CallTimeout, rc.InitTimeout, rc.PoolSize, rc.Grants, rc.Kind)
	h.Write(rc.PluginConfig)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// runtimeConfig maps a plugin's configuration to the runtime's, with the defaults a
// zero stands for made explicit.
func runtimeConfig(pc config.Plugin, kind plugin.Kind, deps Deps) (plugin.Config, error) {
	rc := plugin.Config{
		ID:          pc.ID,
		Tier:        plugin.Sandboxed,
		MemoryPages: uint32(pc.Grants.MemoryPages), // config bounds it to 0..16384
		CallTimeout: pc.Grants.CallTimeout,
		InitTimeout: deps.InitTimeout,
		PoolSize:    pc.PoolSize,
		Logger:      deps.Logger,
		Cache:       deps.Cache,
		Shelf:       deps.Shelf,
		Kind:        kind,
	}
	if deps.Observer != nil {
		rc.Observer = deps.Observer(pc.ID, deps.Number)
	}
	if rc.MemoryPages == 0 {
		rc.MemoryPages = defaultMemoryPages
	}
	if rc.CallTimeout == 0 {
		rc.CallTimeout = defaultCallTimeout
	}
	if rc.PoolSize == 0 {
		rc.PoolSize = defaultPoolSize
	}
	if pc.Grants.Trust == "trusted" {
		rc.Tier = plugin.Trusted
	}
	for _, imp := range pc.Grants.Imports {
		if imp == "clock" {
			rc.Grants.Clock = true
		}
	}
	cfg := pc.Config
	if cfg == nil {
		cfg = map[string]any{}
	}
	if kind == plugin.KindTokenizer && len(deps.ModelTokenizer) > 0 && cfg["bundle"] == nil && cfg["tokenizer_json"] == nil {
		withModel := make(map[string]any, len(cfg)+1)
		for k, v := range cfg {
			withModel[k] = v
		}
		withModel["bundle"] = deps.ModelTokenizer // a []byte: base64 in JSON
		cfg = withModel
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return rc, fmt.Errorf("cannot be passed to the plugin as JSON: %w", err)
	}
	rc.PluginConfig = b
	return rc, nil
}

// checkNeeds checks a manifest's needs against the grants, as plugin.Load will, but
// keys each problem to the grant that falls short (relative to the plugin's key).
func checkNeeds(n plugin.Needs, rc plugin.Config) config.Problems {
	var ps config.Problems
	if n.MemoryPages > rc.MemoryPages {
		ps = append(ps, config.Problem{Key: "grants.memory_pages",
			Message: fmt.Sprintf("the plugin needs %d pages of 64KiB, and %d are granted", n.MemoryPages, rc.MemoryPages)})
	}
	if need := time.Duration(n.CallTimeoutMS) * time.Millisecond; need > rc.CallTimeout {
		ps = append(ps, config.Problem{Key: "grants.call_timeout",
			Message: fmt.Sprintf("the plugin needs calls of up to %v, and %v is granted", need, rc.CallTimeout)})
	}
	for _, imp := range n.Imports {
		switch imp {
		case "log", "set_error":
		case "clock":
			if !rc.Grants.Clock {
				ps = append(ps, config.Problem{Key: "grants.imports",
					Message: `the plugin needs the "clock" import: add clock to grant it`})
			}
		default:
			ps = append(ps, config.Problem{Key: "grants.imports",
				Message: fmt.Sprintf("the plugin needs the %q import, which this host does not provide", imp)})
		}
	}
	if n.Trust == "trusted" && rc.Tier != plugin.Trusted {
		ps = append(ps, config.Problem{Key: "grants.trust",
			Message: "the plugin asks for the trusted tier (no deadline interruption): grant it with trust: trusted"})
	}
	return ps
}
