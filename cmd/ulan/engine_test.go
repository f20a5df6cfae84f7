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

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyPath != "" {
		os.RemoveAll(filepath.Dir(tinyPath))
	}
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

var (
	tinyOnce sync.Once
	tinyPath string
	tinyErr  error
)

// tinyModel writes the tiny V3 test model once for the package's tests.
func tinyModel(t *testing.T) string {
	t.Helper()
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-cmd-")
		if err != nil {
			tinyErr = err
			return
		}
		tinyPath = filepath.Join(dir, "tiny-v3.gguf")
		tinyErr = testmodel.TinyV3().WriteFile(tinyPath, 1)
	})
	require.NoError(t, tinyErr)
	return tinyPath
}

// TestGenerateInProcessMatchesLlamaCpp runs `ulan generate --model` on the
// golden prompt and expects llama.cpp's greedy continuation.
func TestGenerateInProcessMatchesLlamaCpp(t *testing.T) {
	t.Parallel()
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
	code, out, errOut := ulan(t, "", "generate", "--model", tinyModel(t), "--prompt-ids", strings.Join(ids, ","), "--max-tokens", "8", "--greedy", "--json", "--threads", "2")
	require.Equal(t, 0, code, errOut)
	var res localResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	want := make([]int32, 8)
	for i := range want {
		want[i] = int32(g.Generated[i])
	}
	require.Equal(t, want, res.GeneratedIDs)
	require.Len(t, res.Steps, 8)
	require.Len(t, res.Steps[0].Top, 10)
	require.Equal(t, "length", res.FinishReason)

	code, _, errOut = ulan(t, "", "generate", "--model", tinyModel(t), "--prompt-ids", "1", "--temperature", "0.7")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "greedy only")
	code, _, errOut = ulan(t, "", "generate", "--model", tinyModel(t), "--prompt-ids", "999999999")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "outside the vocabulary")
}

func TestModelInspect(t *testing.T) {
	t.Parallel()
	code, out, errOut := ulan(t, "", "model", "inspect", tinyModel(t))
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{"architecture  deepseek2", "16.83M total", "n_routed_experts", "F32    52 tensors", "129280", "deepseek-v3", "127741",
		"480.00 MiB at 1.05M tokens (480 bytes per token)"} {
		require.Contains(t, out, want)
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	require.NoError(t, os.WriteFile(bad, []byte("GGUF\x03\x00\x00\x00"), 0o600))
	code, _, errOut = ulan(t, "", "model", "inspect", bad)
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(errOut, "ulan: "+bad+": gguf:"), errOut)
}

func TestBenchJSON(t *testing.T) {
	t.Parallel()
	code, out, errOut := ulan(t, "", "bench", "--model", tinyModel(t), "--threads", "1", "--prompt", "8", "--gen", "4", "--batch", "2",
		"--context", "64,512", "--context-gen", "2", "--json")
	require.Equal(t, 0, code, errOut)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	for _, k := range []string{"prefill_tokens_per_second", "decode_tokens_per_second", "batch_tokens_per_second", "bandwidth_bound_tokens_per_second", "peak_rss_bytes"} {
		v, ok := res[k].(float64)
		require.True(t, ok, k)
		require.Greater(t, v, 0.0, k)
	}
	require.Contains(t, []any{"avx512vnni", "avx2", "generic"}, res["kernels"], "the kernel set it ran")
	var lc struct {
		LongContext []struct {
			Context int     `json:"context"`
			Decode  float64 `json:"decode_tokens_per_second"`
			KVBytes int64   `json:"kv_cache_bytes"`
		} `json:"long_context"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &lc))
	require.Len(t, lc.LongContext, 2)
	require.Equal(t, 512, lc.LongContext[1].Context)
	require.Greater(t, lc.LongContext[1].Decode, 0.0)
	// TinyV3 caches 40 f32 values per token in each of 3 layers.
	require.Equal(t, int64(512*3*40*4), lc.LongContext[1].KVBytes)

	code, _, errOut = ulan(t, "", "bench", "--model", tinyModel(t), "--context", "5000")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "beyond the model's context of 4096")
}

// TestBenchOpTimes: --op-times adds each operation's time and calls per
// decode step at batch 1 and at the batch size, products by weight.
func TestBenchOpTimes(t *testing.T) {
	t.Parallel()
	code, out, errOut := ulan(t, "", "bench", "--model", tinyModel(t), "--threads", "1", "--prompt", "8", "--gen", "4", "--batch", "2", "--op-times", "--json")
	require.Equal(t, 0, code, errOut)
	var res struct {
		OpTimes []struct {
			Op           string  `json:"op"`
			DecodeMicros float64 `json:"decode_us_per_step"`
			DecodeCalls  float64 `json:"decode_calls_per_step"`
			BatchMicros  float64 `json:"batch_us_per_step"`
			BatchCalls   float64 `json:"batch_calls_per_step"`
		} `json:"op_times"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	ops := map[string]bool{}
	for _, o := range res.OpTimes {
		ops[o.Op] = true
		require.Positive(t, o.BatchCalls, o.Op)
		require.Positive(t, o.DecodeCalls, o.Op)
		require.Positive(t, o.BatchMicros, o.Op)
	}
	require.True(t, ops["Attention"] && ops["ExpertFFN"], "%v", ops)
	code, out, errOut = ulan(t, "", "bench", "--model", tinyModel(t), "--threads", "1", "--prompt", "8", "--gen", "2", "--batch", "2", "--op-times")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "batch 2, µs/step")
	require.Contains(t, out, "all operations")
}
