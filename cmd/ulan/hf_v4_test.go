package main

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// TestHFDirCommandsV4 writes a DeepSeek-V4 release-format directory with
// `model testgen --hf fp8` (32×32 FP8 blocks, FP4 experts, an MTP block),
// then: generate on it gives the greedy tokens of the F32 GGUF of its
// decoded values over a 150-token prompt (an HCA entry, indexer
// selection); model inspect describes it; bench runs it; model convert
// writes a deepseek4 file that, in f32, is the reference file's tensors,
// and in f32 and bf16 (lossless for FP8 and FP4 values) gives the
// directory's logits within 1e-5; a q8_0 file loads and generates.
func TestHFDirCommandsV4(t *testing.T) {
	if raceEnabled {
		t.Skip("writing the two 40 MB models takes minutes under -race; engine/arch/deepseekv4 tests the directory there")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "tiny-v4-hf")
	code, _, errOut := ulan(t, "", "model", "testgen", "--preset", "tiny-v4-hf", "--hf", "fp8", "--block", "32", "--mtp", "--seed", "4", "--out", dir)
	require.Equal(t, 0, code, errOut)
	ref := filepath.Join(root, "ref.gguf")
	require.NoError(t, testmodel.TinyV4HF().WriteFile(ref, 4,
		testmodel.WithV4HFReference(testmodel.WithFP8Block(32), testmodel.WithMTP())))

	ids := make([]string, 150)
	for i := range ids {
		ids[i] = strconv.Itoa((i*7919 + 13) % 129280)
	}
	gen := func(model string) []int32 {
		code, out, errOut := ulan(t, "", "generate", "--model", model, "--prompt-ids", strings.Join(ids, ","), "--max-tokens", "5", "--greedy", "--json", "--threads", "2")
		require.Equal(t, 0, code, errOut)
		var res localResult
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		require.Len(t, res.GeneratedIDs, 5)
		return res.GeneratedIDs
	}
	require.Equal(t, gen(ref), gen(dir))

	code, out, errOut := ulan(t, "", "model", "inspect", dir)
	require.Equal(t, 0, code, errOut)
	for _, w := range []string{"architecture  deepseek4", "name          tiny-v4-hf", "quantization  fp8 e4m3, blocks [32 32]",
		"mtp layers    1 of 1 loaded", "compress_ratios", "0,4,128,4", "F8_E4M3", "F8_E8M0", "I8", "BF16", "in 2 files", "loads"} {
		require.Contains(t, out, w)
	}

	code, out, errOut = ulan(t, "", "bench", "--model", dir, "--threads", "1", "--prompt", "4", "--gen", "2", "--batch", "1", "--json")
	require.Equal(t, 0, code, errOut)
	var b map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &b))
	require.Greater(t, b["decode_tokens_per_second"].(float64), 0.0)

	// model convert: the f32 file holds the reference's metadata and
	// tensors (by name: the converter writes them in load order) and gives
	// the directory's logits; bf16 and q8_0 load and generate.
	tmp := t.TempDir()
	conv, _ := convertTo(t, dir, tmp, "ulan-test-tiny-v4-hf", "f32")
	require.Equal(t, openGGUF(t, ref).KVs(), openGGUF(t, conv).KVs(), "metadata")
	sameTensorsByName(t, ref, conv)
	want, got := modelLogits(t, dir), modelLogits(t, conv)
	worst := 0.0
	for i := range want {
		for j := range want[i] {
			worst = max(worst, math.Abs(float64(got[i][j]-want[i][j])))
		}
	}
	t.Logf("converted f32 file vs directory: max |Δlogit| %.3g", worst)
	require.LessOrEqual(t, worst, 1e-5)
	for _, typ := range []string{"bf16", "q8_0"} {
		conv, _ := convertTo(t, dir, tmp, "ulan-test-tiny-v4-hf", typ)
		f := openGGUF(t, conv)
		ti, ok := f.Tensor("blk.1.ffn_gate_exps.weight")
		require.True(t, ok)
		require.Equal(t, map[string]gguf.Type{"bf16": gguf.TypeBF16, "q8_0": gguf.TypeQ8_0}[typ], ti.Type, typ)
		for _, n := range []string{"blk.0.ffn_gate_tid2eid.weight", "blk.1.attn_compressor_ape.weight", "blk.2.hc_ffn_fn.weight", "blk.3.ffn_gate_inp.weight"} {
			ti, ok := f.Tensor(n)
			require.True(t, ok, n)
			require.NotEqual(t, gguf.Type(ti.Type), map[string]gguf.Type{"bf16": gguf.TypeBF16, "q8_0": gguf.TypeQ8_0}[typ], n)
		}
		require.Len(t, gen(conv), 5)
		if typ == "bf16" {
			// FP8 and FP4 values are BF16 values, and the F32 tensors of
			// the checkpoint stay F32: a bf16 conversion loses nothing.
			got := modelLogits(t, conv)
			worst := 0.0
			for i := range want {
				for j := range want[i] {
					worst = max(worst, math.Abs(float64(got[i][j]-want[i][j])))
				}
			}
			t.Logf("converted bf16 file vs directory: max |Δlogit| %.3g", worst)
			require.LessOrEqual(t, worst, 1e-5)
		}
	}

	code, _, errOut = ulan(t, "", "model", "testgen", "--preset", "tiny-v4-hf", "--hf", "bf16", "--out", filepath.Join(root, "x"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--hf fp8")
}

// sameTensorsByName requires the two files to hold the same tensors, in
// any order: names, types, dimensions and bytes.
func sameTensorsByName(t *testing.T, want, got string) {
	t.Helper()
	wf, gf := openGGUF(t, want), openGGUF(t, got)
	require.Len(t, gf.Tensors(), len(wf.Tensors()))
	for _, w := range wf.Tensors() {
		g, ok := gf.Tensor(w.Name)
		require.True(t, ok, w.Name)
		require.Equal(t, w.Type, g.Type, w.Name)
		require.Equal(t, w.Dims, g.Dims, w.Name)
		require.True(t, bytes.Equal(wf.Data(w), gf.Data(g)), "%s: bytes differ", w.Name)
	}
}
