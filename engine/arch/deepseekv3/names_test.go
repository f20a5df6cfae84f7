package deepseekv3

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// TestHFNamesCoverLayout: every tensor the safetensors layout lists for a
// V3 config (MTP layer excepted) is reached from a GGUF name, through the
// one-to-one table, an expert, or kv_b_proj.
func TestHFNamesCoverLayout(t *testing.T) {
	t.Parallel()
	q := 32
	cfg := &safetensors.Config{
		VocabSize: 100, HiddenSize: 64, IntermediateSize: 96, MoEIntermediateSize: 32, NumHiddenLayers: 3,
		NumAttentionHeads: 4, NSharedExperts: 1, NRoutedExperts: 4, NumExpertsPerTok: 2, KVLoRARank: 32,
		QLoRARank: &q, QKRopeHeadDim: 8, QKNopeHeadDim: 16, VHeadDim: 16, FirstKDenseReplace: 1, TopkMethod: "noaux_tc",
	}
	reached := map[string]bool{}
	for g := range hfGlobalNames {
		n, ok := hfName(g)
		require.True(t, ok)
		reached[n] = true
	}
	for layer := range cfg.NumHiddenLayers {
		for g := range hfLayerNames {
			n, ok := hfName(blk(layer, g))
			require.True(t, ok, g)
			reached[n] = true
		}
		for _, proj := range hfExpertNames {
			for e := range cfg.NRoutedExperts {
				reached[safetensors.ExpertPrefix(layer, e)+proj] = true
			}
		}
		reached[safetensors.LayerPrefix(layer)+"self_attn.kv_b_proj.weight"] = true
	}
	for _, w := range cfg.Weights() {
		require.True(t, reached[w.Name], "no GGUF name reaches %s", w.Name)
	}
	_, ok := hfName("blk.x.attn_norm.weight")
	require.False(t, ok)
	_, ok = hfName("blk.1.ffn_gate_exps.weight")
	require.False(t, ok, "experts are not one-to-one")
}

// TestWidenF16: F16 norm vectors of a directory widen exactly.
func TestWidenF16(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		h    uint16
		want float32
	}{
		{0x3C00, 1}, {0xC000, -2}, {0x0001, 0x1p-24}, {0x03FF, 1023 * 0x1p-24}, {0x0400, 0x1p-14},
		{0x7BFF, 65504}, {0x7C00, float32(math.Inf(1))}, {0x3555, 0x1.554p-2},
	} {
		require.Equal(t, c.want, safetensors.F16ToFloat32(c.h), "%#04x", c.h)
	}
	require.True(t, math.Signbit(float64(safetensors.F16ToFloat32(0x8000))))
	require.True(t, math.IsNaN(float64(safetensors.F16ToFloat32(0x7E00))))
	b := widen([]byte{0x80, 0x3F, 0x00, 0xC0}, engine.BF16) // bf16 1, −2
	require.Equal(t, []byte{0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0}, b)
}
