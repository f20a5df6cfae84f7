package testmodel

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// TestV4HFDir writes TinyV4HF as a release-format directory and its F32
// reference GGUF and checks the directory against spec §5.1 (names without
// "model.", dtypes, FP8 scale and FP4 packed shapes, I64 tables when
// asked) and the reference against the directory decoded here, element by
// element: wkv and a shared expert through DequantFP8E8M0 (trap 15, partial
// edge blocks), one routed expert's w1 through DequantFP4 (trap 16), a
// BF16 norm widened, the hash table.
func TestV4HFDir(t *testing.T) {
	if raceEnabled {
		t.Skip("drawing the directory and its reference takes half a minute under -race; engine/arch/deepseekv4's TestHFDirErrors writes a directory there")
	}
	c := TinyV4HF()
	opts := []HFOption{WithFP8Block(32), WithI64Tables(), WithMTP()}
	root := t.TempDir()
	dir := filepath.Join(root, "hf")
	require.NoError(t, c.WriteHFDir(dir, 9, opts...))
	path := filepath.Join(root, "ref.gguf")
	require.NoError(t, c.WriteFile(path, 9, WithV4HFReference(opts...)))

	m, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	defer m.Close()
	cfg, err := m.Config()
	require.NoError(t, err)
	require.Equal(t, safetensors.ModelTypeV4, cfg.ModelType)
	require.Equal(t, []int{0, 4, 128, 4, 0}, cfg.CompressRatios)
	require.Equal(t, []int{32, 32}, cfg.V4BlockSize())
	require.Equal(t, 1, cfg.NumNextNPredictLayers)

	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	ref := func(name string) []float32 {
		ti, ok := f.Tensor(name)
		require.True(t, ok, name)
		require.Equal(t, gguf.TypeF32, ti.Type, name)
		raw := f.Data(ti)
		v := make([]float32, len(raw)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return v
	}
	get := func(name string, dt safetensors.DType, shape ...int) safetensors.Tensor {
		ti, ok := m.Tensor(name)
		require.True(t, ok, name)
		require.Equal(t, dt, ti.DType, name)
		require.Equal(t, shape, ti.Shape, name)
		return ti
	}
	for _, n := range m.Names() {
		require.False(t, strings.HasPrefix(n, "model."), n)
	}

	// FP8 with E8M0 scales: wkv [128, 64] in 4×2 blocks; w2 [64, 32].
	for _, tc := range []struct {
		hf, gguf   string
		rows, cols int
	}{
		{"layers.1.attn.wkv", "blk.1.attn_kv.weight", c.HeadDim, c.Hidden},
		{"layers.2.attn.wq_a", "blk.2.attn_q_a.weight", c.QLoRA, c.Hidden},
		{"layers.0.ffn.shared_experts.w2", "blk.0.ffn_down_shexp.weight", c.Hidden, c.ExpertFFN},
	} {
		w := get(tc.hf+".weight", safetensors.F8_E4M3, tc.rows, tc.cols)
		s := get(tc.hf+".scale", safetensors.F8_E8M0, (tc.rows+31)/32, (tc.cols+31)/32)
		v, err := DequantFP8E8M0(w.Data, s.Data, tc.rows, tc.cols, 32, 32)
		require.NoError(t, err)
		require.Equal(t, ref(tc.gguf), v, tc.hf)
	}
	// FP4: expert 3's w1 of layer 2, [F, D] as I8 [F, D/2].
	F, D := c.ExpertFFN, c.Hidden
	w := get("layers.2.ffn.experts.3.w1.weight", safetensors.I8, F, D/2)
	s := get("layers.2.ffn.experts.3.w1.scale", safetensors.F8_E8M0, F, D/32)
	v, err := DequantFP4(w.Data, s.Data, F, D)
	require.NoError(t, err)
	require.Equal(t, ref("blk.2.ffn_gate_exps.weight")[3*F*D:4*F*D], v)
	get("layers.2.ffn.experts.7.w2.weight", safetensors.I8, D, F/2)
	get("layers.2.ffn.experts.7.w2.scale", safetensors.F8_E8M0, D, F/32)

	// BF16 norm, widened exactly.
	n := get("layers.3.attn.kv_norm.weight", safetensors.BF16, c.HeadDim)
	want := ref("blk.3.attn_kv_a_norm.weight")
	for i := range want {
		require.Equal(t, want[i], safetensors.BF16ToFloat32(binary.LittleEndian.Uint16(n.Data[2*i:])))
	}
	// F32 as drawn; the tables I64 here, I32 in the GGUF.
	get("layers.1.hc_attn_fn", safetensors.F32, 24, 4*D)
	get("hc_head_base", safetensors.F32, 4)
	get("layers.2.attn.compressor.ape", safetensors.F32, 128, c.HeadDim)
	get("layers.1.attn.indexer.compressor.ape", safetensors.F32, 4, 2*c.IndexHeadDim)
	get("embed.weight", safetensors.BF16, c.Vocab, D)
	tab := get("layers.1.ffn.gate.tid2eid", safetensors.I64, c.Vocab, c.ExpertsUsed)
	ti, ok := f.Tensor("blk.1.ffn_gate_tid2eid.weight")
	require.True(t, ok)
	require.Equal(t, gguf.TypeI32, ti.Type)
	raw := f.Data(ti)
	for i := range c.Vocab * c.ExpertsUsed {
		require.Equal(t, int64(int32(binary.LittleEndian.Uint32(raw[4*i:]))), int64(binary.LittleEndian.Uint64(tab.Data[8*i:])))
	}
	_, ok = m.Tensor("layers.2.ffn.gate.tid2eid")
	require.False(t, ok, "layer 2 routes by the biased top-k")
	get("layers.2.ffn.gate.bias", safetensors.F32, c.Experts)

	// The MTP block: its own projections, norms and hc_head, and a full
	// window-only block.
	get("mtp.0.e_proj.weight", safetensors.F8_E4M3, D, D)
	get("mtp.0.h_proj.scale", safetensors.F8_E8M0, 2, 2)
	get("mtp.0.norm.weight", safetensors.BF16, D)
	get("mtp.0.hc_head_fn", safetensors.F32, 4, 4*D)
	get("mtp.0.attn.wo_a.weight", safetensors.F8_E4M3, c.OutGroups*c.OutLoRA, c.Heads*c.HeadDim/c.OutGroups)
	get("mtp.0.ffn.experts.0.w3.weight", safetensors.I8, F, D/2)
	_, ok = m.Tensor("mtp.0.attn.compressor.ape")
	require.False(t, ok)
	_, ok = f.Tensor("blk.4.attn_kv.weight")
	require.False(t, ok, "the GGUF has no MTP block, as llama.cpp's converter writes none")
}

// TestV4HFDirRejects: options that cannot make a V4 directory fail.
func TestV4HFDirRejects(t *testing.T) {
	c := TinyV4HF()
	require.ErrorContains(t, c.WriteHFDir(t.TempDir(), 1, WithFP8Block(0)), "FP8 block 0")
	require.ErrorContains(t, c.WriteHFDir(t.TempDir(), 1, WithTransformersNames(), WithMTP()), "no MTP block")
	c.Hidden = 48 // FP4 rows must be whole 32-value blocks
	require.ErrorContains(t, c.WriteHFDir(t.TempDir(), 1), "whole 32-value blocks")
}
