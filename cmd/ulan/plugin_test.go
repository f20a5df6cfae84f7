package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
