package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/plugin"
)

func TestPluginInspect(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../host/plugin/testdata/hook.wasm")
	require.NoError(t, err)
	withMan, err := plugin.EmbedManifest(raw, []byte(`{"abi":1,"name":"demo","version":"0.2.0","kind":"hook","needs":{"memory_pages":16,"imports":["log"]}}`))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "demo.wasm")
	require.NoError(t, os.WriteFile(path, withMan, 0o600))

	code, out, errOut := ulan(t, "", "plugin", "inspect", path)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "plugin    demo 0.2.0 (hook)")
	require.Contains(t, out, "hook_delta(i64, i32, i32, i32, i32, i32) → (i64)")

	code, out, _ = ulan(t, "", "plugin", "inspect", "--json", path)
	require.Equal(t, 0, code)
	var v struct {
		ABI      int `json:"abi"`
		Manifest struct{ Kind string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, 1, v.ABI)
	require.Equal(t, "hook", v.Manifest.Kind)

	code, _, errOut = ulan(t, "", "plugin", "inspect", "../../README.md")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not a valid WebAssembly module")
}

func TestPluginBuildGoAndC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	t.Parallel()
	dir := t.TempDir()
	man := filepath.Join(dir, "m.json")
	require.NoError(t, os.WriteFile(man, []byte(`{"abi":1,"name":"gohook","version":"0.1.0","kind":"hook"}`), 0o600))
	out := filepath.Join(dir, "gohook.wasm")
	code, stdout, errOut := ulan(t, "", "plugin", "build", "../../host/plugin/testdata/gohook", "--manifest", man, "-o", out)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, stdout, "built "+out)
	code, stdout, _ = ulan(t, "", "plugin", "inspect", out)
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "plugin    gohook 0.1.0 (hook)")

	if _, err := exec.LookPath("clang"); err == nil {
		cdir := filepath.Join(dir, "c")
		require.NoError(t, os.Mkdir(cdir, 0o700))
		src, err := os.ReadFile("../../host/plugin/testdata/chook.c")
		require.NoError(t, err)
		abs, err := filepath.Abs("../../sdk/c/ulan_plugin.h")
		require.NoError(t, err)
		src = []byte(strings.Replace(string(src), `"../../../sdk/c/ulan_plugin.h"`, `"`+abs+`"`, 1))
		require.NoError(t, os.WriteFile(filepath.Join(cdir, "chook.c"), src, 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(cdir, "manifest.json"), []byte(`{"abi":1,"name":"chook","version":"0.1.0","kind":"hook"}`), 0o600))
		code, stdout, errOut = ulan(t, "", "plugin", "build", cdir)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, stdout, filepath.Join(cdir, "c.wasm"))
	}
	code, _, errOut = ulan(t, "", "plugin", "build", dir, "--manifest", man)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no .go or .c files")
}

// TestPluginNew scaffolds a plugin of each kind outside the repository,
// runs its own (native) test, builds it, and runs the conformance suite on
// it, which loads it with the runtime and drives its kind's contract.
func TestPluginNew(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	dir := t.TempDir()
	for _, kind := range []string{"hook", "sampler", "tokenizer"} {
		target := filepath.Join(dir, "my-"+kind)
		code, out, errOut := ulan(t, "", "plugin", "new", "--kind", kind, "--ulan-src", root, target)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, "created "+target)
		test := exec.Command("go", "test", "./...")
		test.Dir = target
		b, err := test.CombinedOutput()
		require.NoError(t, err, "%s", b)
		code, _, errOut = ulan(t, "", "plugin", "build", target)
		require.Equal(t, 0, code, errOut)
		if raceEnabled && kind != "hook" {
			continue // host/plugin's TestConform covers the other kinds
		}
		code, out, errOut = ulan(t, "", "plugin", "test", filepath.Join(target, "my-"+kind+".wasm"))
		require.Equal(t, 0, code, "%s%s", out, errOut)
		require.Contains(t, out, "PASS")
	}
	code, out, _ := ulan(t, "", "plugin", "test", "../../host/plugin/testdata/hostile.wasm")
	require.Equal(t, 1, code)
	require.Contains(t, out, "FAIL  carries a valid manifest")
	if _, err := exec.LookPath("clang"); err == nil {
		target := filepath.Join(dir, "my-c")
		code, _, errOut := ulan(t, "", "plugin", "new", "--lang", "c", target)
		require.Equal(t, 0, code, errOut)
		code, _, errOut = ulan(t, "", "plugin", "build", target)
		require.Equal(t, 0, code, errOut)
		code, out, errOut = ulan(t, "", "plugin", "test", filepath.Join(target, "my-c.wasm"))
		require.Equal(t, 0, code, "%s%s", out, errOut)
	}
	code, _, errOut := ulan(t, "", "plugin", "new", "--kind", "sampler", "--lang", "c", filepath.Join(dir, "x"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "only hooks")
	code, _, errOut = ulan(t, "", "plugin", "new", "Bad_Name")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "plugin name")
}
