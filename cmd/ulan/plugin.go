package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

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
		Args:  cobra.ExactArgs(1),
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
			for _, c := range plugin.Conform(cmd.Context(), wasm, config, pages) {
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
