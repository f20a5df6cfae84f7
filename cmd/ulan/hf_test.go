package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/testmodel"
)

var (
	hfOnce sync.Once
	hfDir  string
	hfErr  error
)

// tinyHFDir writes the tiny V3 model as an F32 Hugging Face directory of
// the same draws as tinyModel's file (so the same logits), once.
func tinyHFDir(t *testing.T) string {
	t.Helper()
	hfOnce.Do(func() {
		dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-cmd-hf-")
		if err != nil {
			hfErr = err
			return
		}
		hfDir = filepath.Join(dir, "tiny-v3")
		hfErr = testmodel.TinyV3().WriteHFDir(hfDir, 1, testmodel.HFF32, testmodel.WithMTP())
	})
	require.NoError(t, hfErr)
	return hfDir
}

// TestHFDirCommands runs generate, model inspect, bench and serve on a
// Hugging Face directory: generate gives llama.cpp's greedy continuation of
// the GGUF file holding the same values, and serve loads the model and its
// tokenizer from the directory before it stops at a missing plugin.
func TestHFDirCommands(t *testing.T) {
	// Not parallel: serve's plugin compilation cache goes under
	// XDG_CACHE_HOME.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := tinyHFDir(t)
	defer os.RemoveAll(filepath.Dir(dir))
	raw, err := os.ReadFile("../../engine/arch/deepseekv3/testdata/tiny-v3-f32.golden.json")
	require.NoError(t, err)
	var g struct {
		PromptTokens []int `json:"prompt_tokens"`
		Generated    []int `json:"generated_tokens"`
	}
	require.NoError(t, json.Unmarshal(raw, &g))
	ids := make([]string, len(g.PromptTokens))
	for i, id := range g.PromptTokens {
		ids[i] = strconv.Itoa(id)
	}
	code, out, errOut := ulan(t, "", "generate", "--model", dir, "--prompt-ids", strings.Join(ids, ","), "--max-tokens", "6", "--greedy", "--json", "--threads", "2")
	require.Equal(t, 0, code, errOut)
	var res localResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	want := make([]int32, 6)
	for i := range want {
		want[i] = int32(g.Generated[i])
	}
	require.Equal(t, want, res.GeneratedIDs)

	code, out, errOut = ulan(t, "", "model", "inspect", dir)
	require.Equal(t, 0, code, errOut)
	for _, w := range []string{"architecture  deepseek_v3", "name          tiny-v3", "mtp layers", "n_routed_experts", "F32", "in 2 files", "loads"} {
		require.Contains(t, out, w)
	}

	code, out, errOut = ulan(t, "", "bench", "--model", dir, "--threads", "1", "--prompt", "4", "--gen", "2", "--batch", "1", "--json")
	require.Equal(t, 0, code, errOut)
	var b map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &b))
	require.Greater(t, b["decode_tokens_per_second"].(float64), 0.0)

	cfgDir := t.TempDir()
	file := filepath.Join(cfgDir, "ulan.yaml")
	yaml := "server:\n  listen: 127.0.0.1:0\nplugins:\n  - {id: gone, module: " + filepath.Join(cfgDir, "gone.wasm") + "}\n"
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o600))
	code, _, errOut = ulan(t, "", "serve", "--config", file, "--model", dir)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "model loaded")
	require.NotContains(t, errOut, "tokenizer cannot be rebuilt")
	require.Contains(t, errOut, "\nplugins[0].module: cannot read ")

	code, _, errOut = ulan(t, "", "model", "inspect", t.TempDir())
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "has neither model.safetensors nor model.safetensors.index.json")
}
