package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tetratelabs/wazero"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/metrics"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/host/scheduler"
	"github.com/ulan-ai/ulan/host/tracing"
	"github.com/ulan-ai/ulan/host/watch"
	"github.com/ulan-ai/ulan/plugins"
)

// modelName is the name requests use: general.name, else the file's base
// name without its extension.
func modelName(path string, info engine.Info) string {
	if info.Name != "" {
		return info.Name
	}
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
}

// serveFlags maps serve's flags to configuration keys; a flag the user sets
// overrides the file and the environment.
var serveFlags = map[string]string{
	"listen":        "server.listen",
	"drain-timeout": "server.drain_timeout",
	"log-level":     "log.level",
	"log-format":    "log.format",
	"model":         "model.path",
	"threads":       "model.threads",
	"kv-cache":      "model.kv_cache",
}

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Long: `Run the server. Configuration comes from built-in defaults, then the YAML
file given with --config, then ULAN_* environment variables (ULAN_SERVER_LISTEN
for server.listen), then flags; later sources win.

Without --model (model.path), serve runs a built-in demo model: a small
random-weight DeepSeek-V4-architecture model with DeepSeek's real tokenizer,
written from a fixed seed into the user's cache directory (ulan/models) on
first use. It exercises every path of the server; its words are random.

Every configured plugin is loaded at start-up; one that fails (a missing file,
a hash mismatch, a grant short of its needs, an init that refuses its config)
stops start-up with each problem listed by key.

Tracing is off unless the standard OpenTelemetry variables ask for it
(OTEL_TRACES_EXPORTER=otlp or console, or an OTEL_EXPORTER_OTLP_ENDPOINT).

The plugins and pipelines reload live: when the configuration file or a
plugin's module file changes (followed through its directory, so editors'
rename-writes and Kubernetes ConfigMap swaps count), on SIGHUP, and on
PluginService.Reload. A reload builds the next plugin generation beside the
current one and swaps it in only if everything loads; requests finish on the
generation they started on (for up to server.drain_timeout). A configuration
that fails, or that changes a key only a restart can apply, changes nothing;
GetStatus and the log say why.

SIGINT or SIGTERM starts a graceful drain (server.drain_timeout); a second
signal stops the server at once. One during start-up stops it before it serves.`,
		Args: noArgs,
	}
	f := cmd.Flags()
	configFile := f.String("config", "", "YAML configuration file")
	def := config.Default()
	f.String("listen", def.Server.Listen, "address to serve on, HOST:PORT (server.listen)")
	f.Duration("drain-timeout", def.Server.DrainTimeout, "how long streams may finish after a shutdown signal (server.drain_timeout)")
	f.String("log-level", def.Log.Level, "debug, info, warn or error (log.level)")
	f.String("log-format", def.Log.Format, "text or json (log.format)")
	f.String("model", def.Model.Path, "GGUF model file or Hugging Face model directory to load (model.path); none serves a built-in demo model with random weights")
	f.Int("threads", def.Model.Threads, "goroutines per engine operation, 0 for one per CPU (model.threads)")
	f.String("kv-cache", def.Model.KVCache.String(), "KV-cache memory budget (model.kv_cache)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		src := config.Sources{
			File:     *configFile,
			Env:      os.Environ(),
			Flags:    f,
			FlagKeys: serveFlags,
		}
		cfg, err := config.Load(src)
		if err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		log := host.NewLogger(cfg.Log, cmd.ErrOrStderr())
		return serve(cmd.Context(), src, cfg, log, cmd.ErrOrStderr())
	}
	return cmd
}

// serve runs the server until the first SIGINT/SIGTERM, drains, and stops at
// once on a second signal. Meanwhile it reloads the configuration (read from
// src) when its file or a plugin file changes and on SIGHUP.
func serve(ctx context.Context, src config.Sources, cfg config.Config, log *slog.Logger, stderr io.Writer) error {
	var w *watch.Watcher
	var (
		mu      sync.Mutex
		running = cfg // the configuration serving now
	)
	onSwap := func(next config.Config, _ *generation.Generation) {
		mu.Lock()
		running = next
		mu.Unlock()
		if w != nil {
			if err := w.SetFiles(watchedFiles(src.File, next)); err != nil {
				log.Warn("following the new configuration's files", "err", err)
			}
		}
	}
	// After a reload that failed, the files of the configuration it tried are followed
	// too: when it failed for want of a module file, writing that file reloads again.
	afterFailure := func() {
		if w == nil {
			return
		}
		mu.Lock()
		cur := running
		mu.Unlock()
		var tried *config.Config
		if next, err := config.Load(src); err == nil {
			tried = &next
		}
		if err := w.SetFiles(followedFiles(src.File, cur, tried)); err != nil {
			log.Warn("following the configuration's files", "err", err)
		}
	}
	srv, release, err := newServer(ctx, cfg, log, stderr, src, onSwap)
	if err != nil {
		return err
	}
	// Released once Serve has returned: no request runs on the model or the
	// generation any more.
	defer release()
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	// serve needs to see the second signal too, so it listens itself and
	// detaches from main's signal context, which ends at the first.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// A signal that came while the model and plugins loaded ended ctx
	// before sigs listened: stop, as a drain of no requests would.
	if ctx.Err() != nil {
		log.Info("signal received during start-up; stopping without serving")
		return ln.Close()
	}
	ctx, drain := context.WithCancel(context.WithoutCancel(ctx))
	defer drain()
	go onSignals(sigs, log, drain, func() { _ = srv.Close() })
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var changes <-chan watch.Change
	if src.File != "" {
		if w, err = watch.New(watch.Options{Files: watchedFiles(src.File, cfg), Debounce: reloadDebounce, Logger: log}); err != nil {
			log.Warn("not following the configuration file; reload with SIGHUP or PluginService.Reload", "err", err)
		} else {
			defer w.Close()
			changes = w.Changes()
		}
	}
	go reloadOn(ctx, srv, hup, changes, log, afterFailure)
	return srv.Serve(ctx, ln)
}

// reloadDebounce is how quiet the configuration's files must stay before a change
// reloads: long enough for a write in several syscalls or a swap of several renames,
// short enough that a reload lands well within 100 ms of the write.
const reloadDebounce = 20 * time.Millisecond

// reloadOn reloads the server's configuration on SIGHUP and on each change the
// watcher reports, until ctx is done; failed is called after each reload that failed.
func reloadOn(ctx context.Context, srv *host.Server, hup <-chan os.Signal, changes <-chan watch.Change, log *slog.Logger, failed func()) {
	reload := func(trigger string) {
		if res := srv.Reload(ctx, trigger); res != nil && !res.Ok {
			failed()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload("signal")
		case ch, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			if ch.Err != nil {
				log.Warn("following the configuration's files", "err", ch.Err)
			}
			if len(ch.Files) > 0 {
				log.Info("configuration files changed", "files", ch.Files)
				reload("watch")
			}
		}
	}
}

// watchedFiles lists the files a reload reads: the configuration file and the
// module files of its plugins (built-in ones have none).
func watchedFiles(file string, cfg config.Config) []string {
	files := []string{file}
	for _, p := range cfg.Plugins {
		if !strings.HasPrefix(p.Module, generation.BuiltinPrefix) && !slices.Contains(files, p.Module) {
			files = append(files, p.Module)
		}
	}
	return files
}

// followedFiles lists the files to follow: those of the running configuration and,
// when a reload failed, those of the configuration it tried (tried, nil when the file
// did not load), whose module files may not exist yet. A file whose directory does not
// exist cannot be followed (watch.Watcher.SetFiles would refuse them all) and is left
// out; the configuration file's own change reloads once the operator fixes the path.
func followedFiles(file string, running config.Config, tried *config.Config) []string {
	files := watchedFiles(file, running)
	if tried == nil {
		return files
	}
	for _, f := range watchedFiles(file, *tried) {
		if slices.Contains(files, f) {
			continue
		}
		if fi, err := os.Stat(filepath.Dir(f)); err != nil || !fi.IsDir() {
			continue
		}
		files = append(files, f)
	}
	return files
}

// newServer loads the model (model.path, or the built-in demo model when
// that is empty) and the plugins and builds the server on them; release
// closes what they hold, once the server is done.
func newServer(ctx context.Context, cfg config.Config, log *slog.Logger, stderr io.Writer, src config.Sources, onSwap func(config.Config, *generation.Generation)) (srv *host.Server, release func(), err error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	tp, err := tracing.FromEnv(ctx, os.Environ(), stderr)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("flushing the last spans", "err", err)
		}
	})
	if tp.Enabled() {
		log.Info("tracing on", "exporter", tp.Exporter)
	}
	m := metrics.New()
	deps := generation.Deps{Logger: log, Builtins: plugins.Builtins(), Observer: m.PluginObserver, Forget: m.ForgetPlugin}
	// Opened even without plugins: a reload may add some.
	if cache := openPluginCache(log); cache != nil {
		closers = append(closers, func() { _ = cache.Close(context.Background()) })
		deps.Cache = cache
	}
	// Retired plugins' compiled runtimes wait here a while, so that switching a
	// module back (a rollback) skips compiling it; closed after the generations.
	deps.Shelf = plugin.NewShelf(shelfRuntimes, shelfTime)
	closers = append(closers, func() { _ = deps.Shelf.Close(context.Background()) })
	// The model loads before the plugins, since tokenizer plugins are handed
	// its tokenizer.
	path := cfg.Model.Path
	if path == "" {
		p, cleanup, err := demoModel(builtinDemo, log, stderr)
		if err != nil {
			return nil, nil, fmt.Errorf("no model given (model.path), and the built-in demo model: %w", err)
		}
		closers = append(closers, cleanup)
		path = p
	}
	threads := cfg.Model.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	lm, err := loadModel(path, threads, stderr)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() { _ = lm.Close() })
	r, err := engine.NewRunner(lm.model, lm.backend, engine.RunnerConfig{CacheBytes: int64(cfg.Model.KVCache)})
	if err != nil {
		return nil, nil, fmt.Errorf("model.kv_cache: %w", err)
	}
	info := lm.model.Info()
	name := modelName(path, info)
	log.Info("model loaded", "model", name, "path", path, "architecture", info.Architecture,
		"parameters", info.TotalParams, "kv_cache_tokens", r.CacheTokens(), "threads", threads)
	if cfg.Model.Path == "" {
		log.Info("no model given: serving the built-in demo model, whose weights and so whose words are random; "+
			"serve a DeepSeek checkpoint with --model FILE (model.path)", "model", name)
	}
	tok, err := lm.tokenizer()
	if err != nil {
		log.Warn("the model's tokenizer cannot be rebuilt; Tokenize and Detokenize are unavailable", "err", err)
	} else if deps.ModelTokenizer, err = tok.Bundle(); err != nil {
		return nil, nil, fmt.Errorf("the model's tokenizer: %w", err)
	}
	if tok != nil {
		deps.ModelVocab = tok.VocabSize()
	}
	model := &pipeline.Model{
		Name:      name,
		Format:    lm.format(),
		DTypes:    lm.dtypes(),
		Backend:   lm.backend.Name(),
		Runner:    r,
		Tokenizer: tok,
		Scheduler: scheduler.Config{MaxRunning: cfg.Model.MaxRunning, MaxQueue: cfg.Model.MaxQueue, StepTokens: cfg.Model.StepTokens},
	}
	gen, err := generation.Build(ctx, cfg, deps)
	if err != nil {
		return nil, nil, fmt.Errorf("plugins:\n%w", err)
	}
	live := generation.NewLive(gen, cfg.Server.DrainTimeout, log)
	closers = append(closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.DrainTimeout+time.Second)
		defer cancel()
		if err := live.Close(ctx); err != nil {
			log.Warn("closing the plugin generations", "err", err)
		}
	})
	if len(cfg.Plugins) > 0 || len(cfg.Pipelines) > 0 {
		log.Info("plugins loaded", "generation", gen.Number(), "plugins", len(gen.Plugins()),
			"pipelines", len(gen.Pipelines()), "took", gen.Took())
	}
	model.Live, model.Metrics = live, m
	var traced []host.Option
	if tp.Enabled() {
		model.Tracer = tp
		traced = append(traced, host.WithTracing(tp))
	}
	pl := pipeline.New(*model)
	closers = append(closers, pl.Close)
	perToken := r.CacheBytesPerToken()
	m.SetSchedulerSource(func() metrics.SchedulerStats {
		st := pl.Stats()
		return metrics.SchedulerStats{Queued: st.Queued, Running: st.Running, KVUsedTokens: st.CacheUsed, KVTotalTokens: st.CacheTokens,
			KVUsedBytes: perToken * int64(st.CacheUsed), KVTotalBytes: perToken * int64(st.CacheTokens)}
	})
	opts := append([]host.Option{host.WithLogger(log), host.WithGeneration(gen, deps), host.WithInference(pl),
		host.WithReload(src, live, onSwap), host.WithMetrics(m)}, traced...)
	srv, err = host.New(cfg, opts...)
	if err != nil {
		return nil, nil, err
	}
	return srv, closeAll, nil
}

// openPluginCache opens the on-disk compilation cache for plugins in the user's cache
// directory (ulan/wasm under $XDG_CACHE_HOME or ~/.cache). Without one, plugins still
// load, compiled afresh at each start, so a cache that cannot be opened (no home, or a
// directory others may write, which plugin.OpenCache refuses) is only a warning.
// The plugin shelf's size and time (plugin.Shelf): a few modules' machine code,
// tens of MB at most, for ten minutes.
const (
	shelfRuntimes = 4
	shelfTime     = 10 * time.Minute
)

func openPluginCache(log *slog.Logger) wazero.CompilationCache {
	dir, err := os.UserCacheDir()
	if err != nil {
		log.Warn("no plugin compilation cache: plugins compile at every start", "err", err)
		return nil
	}
	cache, err := plugin.OpenCache(filepath.Join(dir, "ulan", "wasm"))
	if err != nil {
		log.Warn("no plugin compilation cache: plugins compile at every start", "err", err)
		return nil
	}
	return cache
}

// onSignals drains on the first signal and forces a stop on the second.
func onSignals(sigs <-chan os.Signal, log *slog.Logger, drain, force func()) {
	sig, ok := <-sigs
	if !ok {
		return
	}
	log.Info("signal received; draining (send again to stop at once)", "signal", sig.String())
	drain()
	sig, ok = <-sigs
	if !ok {
		return
	}
	log.Warn("second signal received; stopping at once", "signal", sig.String())
	force()
}
