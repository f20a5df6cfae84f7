package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ulan-ai/ulan/host/plugin"
)

func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Build and inspect WebAssembly plugins",
	}
	cmd.AddCommand(newPluginNewCmd(), newPluginBuildCmd(), newPluginInspectCmd(), newPluginTestCmd())
	return cmd
}

func newPluginInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a plugin's ABI version, manifest, exports and imports",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			d, err := plugin.Describe(cmd.Context(), wasm)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				type view struct {
					ABI      int              `json:"abi"`
					Reactor  bool             `json:"reactor"`
					Manifest *plugin.Manifest `json:"manifest,omitempty"`
					Problem  string           `json:"manifest_problem,omitempty"`
					Exports  []string         `json:"exports"`
					Imports  []string         `json:"imports"`
				}
				v := view{ABI: d.ABI, Reactor: d.Reactor, Manifest: d.Manifest, Exports: d.Exports, Imports: d.Imports}
				if d.ManifestErr != nil {
					v.Problem = d.ManifestErr.Error()
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			abi := "none (no ulan_abi_1 export: not a ulan plugin)"
			if d.ABI > 0 {
				abi = fmt.Sprint(d.ABI)
			}
			shape := "reactor"
			if !d.Reactor {
				shape = "not a reactor (no _initialize): ulan refuses it"
			}
			fmt.Fprintf(out, "abi       %s\nshape     %s\n", abi, shape)
			if d.Manifest != nil {
				m := d.Manifest
				fmt.Fprintf(out, "plugin    %s %s (%s)\n", m.Name, m.Version, m.Kind)
				fmt.Fprintf(out, "needs     memory_pages=%d call_timeout_ms=%d imports=[%s] trust=%s\n",
					m.Needs.MemoryPages, m.Needs.CallTimeoutMS, strings.Join(m.Needs.Imports, " "), orNone(m.Needs.Trust))
			} else {
				fmt.Fprintf(out, "manifest  %v\n", d.ManifestErr)
			}
			fmt.Fprintln(out, "exports")
			for _, e := range d.Exports {
				fmt.Fprintln(out, "  "+e)
			}
			fmt.Fprintln(out, "imports")
			for _, i := range d.Imports {
				fmt.Fprintln(out, "  "+i)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newPluginBuildCmd() *cobra.Command {
	var manifest, out string
	cmd := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build a Go or C plugin and embed its manifest",
		Long: `Build the plugin in DIR (default .) for wasip1 and embed manifest.json (or
--manifest) as its ulan.manifest section. A directory with .go files builds
with the Go toolchain (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared
-trimpath, so the same sources give the same module on any machine);
one with .c files builds with clang (--target=wasm32-wasi
-mexec-model=reactor -O2; needs Debian's clang, lld, wasi-libc and
libclang-rt-14-dev-wasm32).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if manifest == "" {
				manifest = filepath.Join(dir, "manifest.json")
			}
			man, err := os.ReadFile(manifest)
			if err != nil {
				return fmt.Errorf("manifest: %w", err)
			}
			if out == "" {
				abs, err := filepath.Abs(dir)
				if err != nil {
					return err
				}
				out = filepath.Join(dir, filepath.Base(abs)+".wasm")
			}
			raw, err := buildPlugin(cmd, dir)
			if err != nil {
				return err
			}
			wasm, err := plugin.EmbedManifest(raw, man)
			if err != nil {
				return err
			}
			if _, err := plugin.Describe(cmd.Context(), wasm); err != nil {
				return err
			}
			if err := os.WriteFile(out, wasm, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "built %s (%d bytes)\n", out, len(wasm))
			return nil
		},
	}
	cmd.Flags().StringVar(&manifest, "manifest", "", "manifest JSON (default DIR/manifest.json)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default DIR/<dir name>.wasm)")
	return cmd
}

// cToolchainHint says how to install the C toolchain that `ulan plugin
// build` runs for C plugins.
const cToolchainHint = "on Debian or Ubuntu: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32"

// buildPlugin compiles the Go or C sources in dir and returns the module.
func buildPlugin(cmd *cobra.Command, dir string) ([]byte, error) {
	goFiles, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	cFiles, _ := filepath.Glob(filepath.Join(dir, "*.c"))
	tmp, err := os.MkdirTemp("", "ulan-plugin-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	raw := filepath.Join(tmp, "plugin.wasm")
	var build *exec.Cmd
	switch {
	case len(goFiles) > 0:
		build = exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false", "-o", raw, ".")
		build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	case len(cFiles) > 0:
		for _, tool := range []string{"clang", "wasm-ld"} {
			if _, err := exec.LookPath(tool); err != nil {
				return nil, fmt.Errorf("%s: C plugins build with clang for wasm32-wasi, and %s is not installed (%s)", dir, tool, cToolchainHint)
			}
		}
		build = exec.Command("clang", append([]string{"--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-o", raw}, cFiles...)...)
	default:
		return nil, fmt.Errorf("%s: no .go or .c files", dir)
	}
	build.Dir = dir
	if len(goFiles) == 0 {
		build.Dir = ""
	}
	build.Stdout, build.Stderr = cmd.ErrOrStderr(), cmd.ErrOrStderr()
	if err := build.Run(); err != nil {
		if len(goFiles) == 0 {
			// clang's own message says what failed; a missing stdlib.h or
			// libclang_rt.builtins-wasm32.a means an incomplete toolchain.
			return nil, fmt.Errorf("%s: %w (if a header or library of wasm32-wasi is missing: %s)", strings.Join(build.Args, " "), err, cToolchainHint)
		}
		return nil, fmt.Errorf("%s: %w", strings.Join(build.Args, " "), err)
	}
	return os.ReadFile(raw)
}

func newPluginTestCmd() *cobra.Command {
	var configFile string
	var pages uint32
	cmd := &cobra.Command{
		Use:   "test FILE",
		Short: "Run the conformance suite on a built plugin and print a pass/fail report",
		Long: `Run the conformance suite on a built plugin and print a pass/fail report.
What the plugin logs (its log import) and writes to stdout and stderr goes to
stderr; the runtime's own notes about failed calls are left out, since the
report's FAIL lines say what failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var config []byte
			if configFile != "" {
				if config, err = os.ReadFile(configFile); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			failed := 0
			checks := plugin.Conform(cmd.Context(), wasm, config, pages, pluginSays(cmd.ErrOrStderr()))
			checks = append(checks, authorChecks(cmd.Context(), wasm, config)...)
			for _, c := range checks {
				if c.Err != nil {
					failed++
					fmt.Fprintf(out, "FAIL  %s: %v\n", c.Name, c.Err)
				} else {
					fmt.Fprintf(out, "ok    %s\n", c.Name)
				}
			}
			if failed > 0 {
				fmt.Fprintf(out, "%d checks failed\n", failed)
				return exitError{code: 1}
			}
			fmt.Fprintln(out, "PASS")
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "the plugin's configuration (JSON)")
	cmd.Flags().Uint32Var(&pages, "memory-pages", 0, "memory cap in 64 KiB pages (default: the manifest's need, at least 256)")
	return cmd
}

// pluginSays returns a logger to w, without timestamps, that passes on
// only what a plugin says itself (its log import's messages, its stdout and
// stderr lines: plugin.Said) and drops the runtime's notes about it (an
// instance replaced after a trap, an answer refused), which `ulan plugin
// test` reports as FAIL lines already.
func pluginSays(w io.Writer) *slog.Logger {
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return slog.New(saidHandler{slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: noTime})})
}

// saidHandler passes on the records that carry plugin.Said.
type saidHandler struct{ slog.Handler }

func (h saidHandler) Handle(ctx context.Context, r slog.Record) error {
	said := false
	r.Attrs(func(a slog.Attr) bool {
		said = a.Equal(plugin.Said)
		return !said
	})
	if !said {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h saidHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return saidHandler{h.Handler.WithAttrs(as)}
}

func (h saidHandler) WithGroup(name string) slog.Handler {
	return saidHandler{h.Handler.WithGroup(name)}
}

// authorChecks are the checks `ulan plugin test` runs after host/plugin's
// Conform, for two mistakes its short workloads cannot see: a hook that
// holds content back and never lets it go, and a plugin that keeps what
// it is handed (memory it never frees), which only fails in production
// once its instance reaches the memory cap. They load the module afresh
// with exactly the limits its manifest declares; a module that does not
// load gets no extra checks (Conform has said why).
func authorChecks(ctx context.Context, wasm, config []byte) []plugin.Check {
	d, err := plugin.Describe(ctx, wasm)
	if err != nil || d.Manifest == nil || d.ABI != 1 || !d.Reactor {
		return nil
	}
	man := *d.Manifest
	load := func() (*plugin.Plugin, error) { // one instance, which both checks use in turn
		return plugin.Load(ctx, wasm, plugin.Config{ID: man.Name, Kind: man.Kind, PluginConfig: config,
			MemoryPages: man.Needs.MemoryPages, CallTimeout: time.Duration(man.Needs.CallTimeoutMS) * time.Millisecond,
			InitTimeout: time.Minute, PoolSize: 1, Grants: plugin.Grants{Clock: true}, Tier: plugin.Sandboxed,
			Logger: slog.New(slog.DiscardHandler)})
	}
	p, err := load()
	if err != nil {
		return nil
	}
	defer p.Close(ctx)
	var checks []plugin.Check
	if man.Kind == plugin.KindHook {
		checks = append(checks, plugin.Check{Name: "hook_end releases held-back content", Err: checkHoldback(ctx, p, man.Hook)})
	}
	pages := man.Needs.MemoryPages
	if pages == 0 {
		pages = 1024 // the host's default grant
	}
	name, err := checkFrees(ctx, p, man.Kind, int64(pages)<<16, freesBudget)
	if name != "" {
		checks = append(checks, plugin.Check{Name: name, Err: err})
	}
	return checks
}

// holdbackText is the content checkHoldback streams: plain prose, nothing
// a redaction preset matches, in deltas of about 16 bytes cut on rune
// boundaries.
const holdbackText = "The river ran past the old mill, and the miller counted sacks of grain " +
	"while his daughter read aloud from a book about distant mountains. Café au lait, " +
	"naïve questions, 東京 at night 🌙 and a long walk home before the rain began."

// checkHoldback streams holdbackText on the content channel and requires
// the hook to let text through by hook_end (sdk/ABI.md §6.3: an empty
// REPLACE holds text back, which the hook must release later), and, when
// its manifest declares hook.max_holdback_bytes, never to answer with
// nothing for more bytes than that in a row. A STOP ends the stream and
// the check.
func checkHoldback(ctx context.Context, p *plugin.Plugin, h *plugin.HookSpec) error {
	if h != nil && len(h.Channels) > 0 && !slices.Contains(h.Channels, "content") {
		return nil // the hook never sees content
	}
	s, err := p.OpenHook(ctx, []byte(`{"request_id":"holdback"}`))
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	var emitted strings.Builder
	silent, worst := 0, 0 // bytes answered with nothing, in a row
	for rest := holdbackText; rest != ""; {
		n := min(16, len(rest))
		for n < len(rest) && !utf8.RuneStart(rest[n]) {
			n++
		}
		delta := rest[:n]
		rest = rest[n:]
		r, err := s.Delta(ctx, delta, nil, plugin.ChannelContent)
		if err != nil {
			return err
		}
		text := delta
		if r.Action != plugin.HookPass {
			text = r.Emit
		}
		emitted.WriteString(text)
		if text == "" {
			silent += len(delta)
			worst = max(worst, silent)
		} else {
			silent = 0
		}
		if r.Action == plugin.HookStop {
			return nil
		}
	}
	r, err := s.End(ctx, 1)
	if err != nil {
		return err
	}
	emitted.WriteString(r.Emit)
	if emitted.Len() == 0 {
		return fmt.Errorf("%d bytes of content went in and nothing came out, not even from hook_end: "+
			"text held back (REPLACE with an empty text) must be released by a later delta or by hook_end's result", len(holdbackText))
	}
	if worst > h.HoldbackBound() {
		return fmt.Errorf("held back %d bytes in a row (answered deltas with no text), more than the bound of %d (hook.max_holdback_bytes), "+
			"past which the host fails the hook: release text sooner or declare a larger bound", worst, h.HoldbackBound())
	}
	return nil
}

// freesBudget is how long checkFrees may run: a slow plugin (a regex hook,
// a real tokenizer) gets less traffic, never a failure for its speed.
const freesBudget = 5 * time.Second

// checkFrees runs twice the plugin's memory cap (mem bytes) of traffic
// through one instance, in sessions it opens and closes, or as much as it
// can in budget: hook deltas of 4 KiB; sampler steps of 32 fresh sequences
// × 256 candidates (the whole vocabulary); tokenizer texts of 16 KiB
// encoded and decoded. A plugin that keeps what it is handed, or leaks its
// output buffers or a session's state, runs out of memory here. It returns
// the check's name (with the traffic it ran), "" for no check.
func checkFrees(ctx context.Context, p *plugin.Plugin, kind plugin.Kind, mem int64, budget time.Duration) (string, error) {
	const fix = " (free what each call allocates, and a session's state in its close export; or raise needs.memory_pages if the plugin truly needs more)"
	stop := time.Now().Add(budget)
	total := 2 * mem
	var sent int64
	done := func(what string, err error) (string, error) {
		if err != nil {
			// Running out of memory traps, stalls past the deadline or
			// answers an error status; an answer the host refused (a NaN
			// logit) is another mistake, reported by its own check.
			if plugin.Classify(err) != plugin.KindInvalid {
				return "frees its memory: " + what, fmt.Errorf("after %d MiB: %w%s", sent>>20, err, fix)
			}
			return "frees its memory: " + what, fmt.Errorf("after %d MiB: %w", sent>>20, err)
		}
		name := fmt.Sprintf("frees its memory: %d MiB of %s", sent>>20, what)
		if sent < total {
			name += fmt.Sprintf(" (of %d MiB: stopped after %v)", total>>20, budget)
		}
		return name, nil
	}
	switch kind {
	case plugin.KindHook:
		delta := strings.Repeat("Memory: naïve café — 東京 🌍 ", 150)[:4<<10]
		delta = strings.ToValidUTF8(delta, "")
		const what = "hook deltas of 4 KiB, in sessions of 16"
		for sent < total && time.Now().Before(stop) {
			s, err := p.OpenHook(ctx, []byte(`{"request_id":"memory"}`))
			if err != nil {
				return done(what, err)
			}
			for i := 0; i < 16 && sent < total; i++ {
				r, err := s.Delta(ctx, delta, nil, plugin.ChannelContent)
				if err != nil {
					s.Close(ctx)
					return done(what, err)
				}
				sent += int64(len(delta))
				if r.Action == plugin.HookStop {
					break
				}
			}
			_, err = s.End(ctx, 1)
			s.Close(ctx)
			if err != nil {
				return done(what, err)
			}
		}
		return done(what, nil)
	case plugin.KindSampler:
		const vocab, rows = 256, 32
		what := fmt.Sprintf("sampler steps, %d sequences opened and closed a step", rows)
		v := make([][]byte, vocab)
		ids := make([]int32, vocab)
		logits := make([]float32, vocab)
		var sum float64
		for i := range vocab {
			v[i] = []byte{byte(i)}
			ids[i] = int32(i)
			logits[i] = 8 - float32(i)/16
			sum += math.Exp(float64(logits[i] - logits[0]))
		}
		lse := logits[0] + float32(math.Log(sum))
		p.SetVocabulary(v)
		b, err := p.OpenSamplerBatch(ctx)
		if err != nil {
			return done(what, err)
		}
		defer b.Close(ctx)
		for step := 0; sent < total && time.Now().Before(stop); step++ {
			in := make([]plugin.SamplerRow, rows)
			for i := range in {
				open := fmt.Sprintf(`{"sampling": {"temperature": %g, "top_p": 0.95, "top_k": 40, "seed": "%d"}, "vocab_size": %d}`,
					[]float32{0.7, 1, 0}[i%3], step*rows+i, vocab)
				h, err := b.Open(ctx, []byte(open))
				if err != nil {
					return done(what, err)
				}
				in[i] = plugin.SamplerRow{Handle: h, U0: float32(i) / rows, U1: 0.5, LSE: lse, IDs: ids, Logits: logits}
				if p.LSEOnDemand() {
					in[i].LSE, in[i].LoadLSE = float32(math.NaN()), func() float32 { return lse }
				}
			}
			if _, err := b.Step(ctx, in); err != nil {
				return done(what, err)
			}
			for _, r := range in {
				if err := b.CloseSequence(ctx, r.Handle); err != nil {
					return done(what, err)
				}
			}
			sent += rows * vocab * 12 // ids, logits and outputs, 4 bytes each
		}
		return done(what, nil)
	case plugin.KindTokenizer:
		const what = "text encoded and decoded, 16 KiB a call"
		info, err := p.TokenizerInfo(ctx)
		if err != nil {
			return done(what, err)
		}
		text := strings.Repeat("The naïve café in 東京 opened at 9:45 — 🌍 1234567 tokens!\n", 300)[:16<<10]
		text = strings.ToValidUTF8(text, "")
		for ; sent < total && time.Now().Before(stop); sent += int64(len(text)) {
			ids, err := p.Encode(ctx, text, 0, info.VocabSize)
			if err != nil {
				return done(what, err)
			}
			if _, err := p.Decode(ctx, ids, 0); err != nil {
				return done(what, err)
			}
		}
		return done(what, nil)
	}
	return "", nil
}
