package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// TestTestgenV4 writes the tiny deepseek4 preset through the command: the
// file is the generator's, --type applies, and the V3-only flags are
// refused with a clear error.
func TestTestgenV4(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "tiny-v4.gguf")
	code, _, stderr := ulan(t, "", "model", "testgen", "--preset", "tiny-v4", "--type", "q8_0", "--seed", "3", "--out", out)
	require.Equal(t, 0, code, stderr)
	f, err := gguf.Open(out)
	require.NoError(t, err)
	defer f.Close()
	arch, err := f.Arch()
	require.NoError(t, err)
	require.Equal(t, "deepseek4", arch)
	ft, err := f.Uint32("general.file_type")
	require.NoError(t, err)
	require.EqualValues(t, 7, ft, "--type q8_0")
	ti, ok := f.Tensor("blk.0.attn_q_b.weight")
	require.True(t, ok)
	require.Equal(t, gguf.TypeQ8_0, ti.Type)

	c := testmodel.TinyV4()
	c.Type = gguf.TypeQ8_0
	want := filepath.Join(dir, "want.gguf")
	require.NoError(t, c.WriteFile(want, 3))
	a, err := os.ReadFile(out)
	require.NoError(t, err)
	b, err := os.ReadFile(want)
	require.NoError(t, err)
	require.Equal(t, b, a, "the command writes the preset")

	code, _, stderr = ulan(t, "", "model", "testgen", "--preset", "tiny-v4", "--hf", "f32", "--out", filepath.Join(dir, "hf"))
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr, "not available for the deepseek4 preset")
}
