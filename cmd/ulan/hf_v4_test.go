package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/testmodel"
)

// TestHFDirCommandsV4 writes a DeepSeek-V4 release-format directory with
// `model testgen --hf fp8` (32×32 FP8 blocks, FP4 experts, an MTP block),
// then: generate on it gives the greedy tokens of the F32 GGUF of its
// decoded values over a 150-token prompt (an HCA entry, indexer
// selection); model inspect describes it; model convert refuses it.
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

	code, _, errOut = ulan(t, "", "model", "convert", "--type", "f32", dir, filepath.Join(root, "out.gguf"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `model_type "deepseek_v4": convert does not write deepseek4 files yet`)

	code, _, errOut = ulan(t, "", "model", "testgen", "--preset", "tiny-v4-hf", "--hf", "bf16", "--out", filepath.Join(root, "x"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--hf fp8")
}
