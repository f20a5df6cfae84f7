package main

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ulan-ai/ulan/sdk"
)

//go:embed scaffold/*.tmpl
var scaffolds embed.FS

var pluginName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

func newPluginNewCmd() *cobra.Command {
	var kind, lang, ulanSrc string
	cmd := &cobra.Command{
		Use:   "new --kind hook|sampler|tokenizer --lang go|c NAME",
		Short: "Scaffold a buildable plugin with a test and a manifest",
		Long: `Create directory NAME with a working plugin of the given kind: the source, a
native test of its logic (Go), and manifest.json; then
  ulan plugin build NAME
builds it. Go plugins outside the ulan source tree get a go.mod that points at
the ulan sources (--ulan-src, default: the ulan checkout above the current
directory). C plugins get NAME.c and a copy of ulan_plugin.h, and build with
clang for wasm32-wasi.

The scaffolds, alike in Go and C: a hook that masks the word "secret" in
content, a sampler that divides every logit by the request's temperature (0:
greedy) and keeps every token, and a tokenizer whose tokens are the 256 bytes
and an end of sequence, with a "role: text" chat format.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := filepath.Base(args[0])
			if !pluginName.MatchString(name) {
				return fmt.Errorf("%q: a plugin name is 1 to 63 of a-z, 0-9 and '-', starting with a letter", name)
			}
			if kind != "hook" && kind != "sampler" && kind != "tokenizer" {
				return fmt.Errorf("--kind %q: use hook, sampler or tokenizer", kind)
			}
			if lang != "go" && lang != "c" {
				return fmt.Errorf("--lang %q: use go or c", lang)
			}
			dir := args[0]
			if _, err := os.Stat(dir); err == nil {
				return fmt.Errorf("%s already exists", dir)
			}
			files := map[string][]byte{}
			render := func(tmpl, out string) error {
				b, err := scaffolds.ReadFile("scaffold/" + tmpl)
				if err != nil {
					return err
				}
				files[out] = []byte(strings.ReplaceAll(string(b), "{{NAME}}", name))
				return nil
			}
			if lang == "go" {
				if err := render(kind+".go.tmpl", "main.go"); err != nil {
					return err
				}
				if err := render(kind+"_test.go.tmpl", "main_test.go"); err != nil {
					return err
				}
				gomod, err := goModFor(dir, name, ulanSrc)
				if err != nil {
					return err
				}
				if gomod != nil {
					files["go.mod"] = gomod
				}
			} else {
				if err := render(kind+".c.tmpl", name+".c"); err != nil {
					return err
				}
				files["ulan_plugin.h"] = sdk.CHeader
			}
			pages := 256 // Go's runtime and heap
			if lang == "c" {
				pages = 64
			}
			manifest := map[string]any{
				"abi": 1, "name": name, "version": "0.1.0", "kind": kind,
				"needs": map[string]any{"memory_pages": pages, "imports": []string{"log"}},
			}
			if kind == "sampler" {
				// The scaffold's policy never reads a row's log-sum-exp,
				// so the host need not compute it (sdk/ABI.md §6.2).
				manifest["sampler"] = map[string]any{"lse": "on_demand"}
			}
			man, _ := json.MarshalIndent(manifest, "", "  ")
			files["manifest.json"] = append(man, '\n')
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for f, b := range files {
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s (%s %s plugin); build it with: ulan plugin build %s\n", dir, lang, kind, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "hook", "hook, sampler or tokenizer")
	cmd.Flags().StringVar(&lang, "lang", "go", "go or c")
	cmd.Flags().StringVar(&ulanSrc, "ulan-src", "", "the ulan source tree, for go.mod's replace (default: found above the current directory)")
	return cmd
}

// goModFor returns a go.mod for a Go plugin in dir, or nil when dir lies
// inside the ulan module (the plugin then builds as part of it).
func goModFor(dir, name, ulanSrc string) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if root := ulanRoot(filepath.Dir(abs)); root != "" && ulanSrc == "" {
		return nil, nil
	}
	if ulanSrc == "" {
		wd, _ := os.Getwd()
		ulanSrc = ulanRoot(wd)
	}
	if ulanSrc == "" || ulanRoot(ulanSrc) != mustAbs(ulanSrc) {
		return nil, errors.New("--ulan-src: give the ulan source tree (the directory with ulan's go.mod), since the Go SDK is not published as a module yet")
	}
	return []byte(fmt.Sprintf("module example.com/%s\n\ngo 1.26.0\n\nrequire github.com/ulan-ai/ulan v0.0.0\n\nreplace github.com/ulan-ai/ulan => %s\n", name, mustAbs(ulanSrc))), nil
}

// ulanRoot returns the directory at or above dir whose go.mod declares the
// ulan module, or "".
func ulanRoot(dir string) string {
	dir = mustAbs(dir)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			if strings.HasPrefix(string(b), "module github.com/ulan-ai/ulan\n") {
				return dir
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
