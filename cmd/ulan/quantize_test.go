package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// TestQuantizeLikeLlamaCpp: `model quantize --type q6_k` of the seeded
// tiny-quant model in F32 writes every tensor in the type and with the
// bytes llama.cpp's llama-quantize Q6_K gave it (the hashes the k-quant
// goldens carry, engine/arch/deepseekv3/testdata): Q6_K, Q8_0 for the rows
// Q6_K's 256-value blocks do not fit, F32 for vectors and the router. Then
// the file quantized again to q4_k holds Q4_K and its Q5_0 fallback.
func TestQuantizeLikeLlamaCpp(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("writes and quantizes a 270 MB model (CI runs it without -race)")
	}
	t.Parallel()
	dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-quantize-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	src := filepath.Join(dir, "tiny-quant-f32.gguf")
	require.NoError(t, testmodel.TinyQuant().WriteFile(src, 1))

	out := filepath.Join(dir, "q6_k.gguf")
	code, _, errOut := ulan(t, "", "model", "quantize", "--type", "q6_k", src, out)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "wrote "+out+": tensors F32 (kept) ")

	raw, err := os.ReadFile("../../engine/arch/deepseekv3/testdata/tiny-quant-q6_k.tensors.json")
	require.NoError(t, err)
	var want []struct {
		Name   string   `json:"name"`
		Type   string   `json:"type"`
		Dims   []uint64 `json:"dims"`
		SHA256 string   `json:"sha256"`
	}
	require.NoError(t, json.Unmarshal(raw, &want))
	f := openGGUF(t, out)
	require.Len(t, f.Tensors(), len(want))
	for _, w := range want {
		ti, ok := f.Tensor(w.Name)
		require.True(t, ok, w.Name)
		require.Equal(t, w.Type, ti.Type.String(), w.Name)
		require.Equal(t, w.Dims, ti.Dims, w.Name)
		sum := sha256.Sum256(f.Data(ti))
		require.Equal(t, w.SHA256, hex.EncodeToString(sum[:]), "%s: llama-quantize wrote other bytes", w.Name)
	}
	ft, err := f.Uint32("general.file_type")
	require.NoError(t, err)
	require.Equal(t, uint32(18), ft, "llama.cpp's MOSTLY_Q6_K")

	again := filepath.Join(dir, "q4_k.gguf")
	code, _, errOut = ulan(t, "", "model", "quantize", "--type", "q4_k", out, again)
	require.Equal(t, 0, code, errOut)
	types := map[gguf.Type]int{}
	for _, ti := range openGGUF(t, again).Tensors() {
		types[ti.Type]++
	}
	require.Equal(t, map[gguf.Type]int{gguf.TypeF32: types[gguf.TypeF32], gguf.TypeQ4_K: types[gguf.TypeQ4_K], gguf.TypeQ5_0: 3}, types)
	require.Positive(t, types[gguf.TypeQ4_K])

	code, _, errOut = ulan(t, "", "model", "quantize", "--type", "q4_k", out, again)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "exists; give --force")
	code, _, errOut = ulan(t, "", "model", "quantize", "--type", "q3_k", out, again)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `--type "q3_k": use one of bf16, f16, f32, q4_0`)
}
