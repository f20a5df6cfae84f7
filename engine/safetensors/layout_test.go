package safetensors_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

func TestNames(t *testing.T) {
	require.Equal(t, "model.layers.7.", safetensors.LayerPrefix(7))
	require.Equal(t, "model.layers.3.mlp.experts.255.", safetensors.ExpertPrefix(3, 255))
	require.Equal(t, "model.layers.0.self_attn.q_a_proj.weight_scale_inv", safetensors.ScaleName("model.layers.0.self_attn.q_a_proj.weight"))
}

func TestScaleShape(t *testing.T) {
	for _, c := range []struct {
		rows, cols, br, bc int
		want               []int
	}{
		{7168, 2048, 128, 128, []int{56, 16}},
		{1536 + 0, 7168, 128, 128, []int{12, 56}},
		{576, 7168, 128, 128, []int{5, 56}}, // kv_a_proj_with_mqa: 576 rows, a partial block
		{129, 1, 128, 128, []int{2, 1}},
		{0, 0, 128, 128, []int{0, 0}},
	} {
		require.Equal(t, c.want, safetensors.ScaleShape(c.rows, c.cols, c.br, c.bc), "%d×%d", c.rows, c.cols)
	}
}

func TestLayerOf(t *testing.T) {
	for name, want := range map[string]int{
		"model.layers.0.input_layernorm.weight":            0,
		"model.layers.61.eh_proj.weight":                   61,
		"model.layers.12.mlp.experts.3.up_proj.weight":     12,
		"model.layers.60.mlp.gate.e_score_correction_bias": 60,
	} {
		got, ok := safetensors.LayerOf(name)
		require.True(t, ok, name)
		require.Equal(t, want, got, name)
	}
	for _, name := range []string{
		"model.embed_tokens.weight", "lm_head.weight", "model.layers.", "model.layers.1",
		"model.layers..x", "model.layers.01.x", "model.layers.-1.x", "model.layers.+1.x",
		"model.layers.x.y", "model.layers.99999999999999999999.x",
	} {
		_, ok := safetensors.LayerOf(name)
		require.False(t, ok, name)
	}
}

func TestWeightsV3(t *testing.T) {
	c, err := safetensors.ParseConfig([]byte(v3Config))
	require.NoError(t, err)
	ws := c.Weights()
	// 3 dense layers of 12 tensors (with q_lora) and 58 MoE layers of
	// 9 attention/norm tensors + gate + bias + 256×3 experts + 3 shared.
	require.Len(t, ws, 1+3*(9+3)+58*(9+2+256*3+3)+2)
	byName := map[string][]int{}
	for _, w := range ws {
		_, dup := byName[w.Name]
		require.False(t, dup, w.Name)
		byName[w.Name] = w.Shape
		require.False(t, c.IsMTPTensor(w.Name), w.Name)
	}
	for name, shape := range map[string][]int{
		"model.embed_tokens.weight":                          {129280, 7168},
		"model.layers.0.self_attn.q_a_proj.weight":           {1536, 7168},
		"model.layers.0.self_attn.q_a_layernorm.weight":      {1536},
		"model.layers.0.self_attn.q_b_proj.weight":           {128 * 192, 1536},
		"model.layers.0.self_attn.kv_a_proj_with_mqa.weight": {576, 7168},
		"model.layers.0.self_attn.kv_a_layernorm.weight":     {512},
		"model.layers.0.self_attn.kv_b_proj.weight":          {128 * 256, 512},
		"model.layers.0.self_attn.o_proj.weight":             {7168, 128 * 128},
		"model.layers.2.mlp.gate_proj.weight":                {18432, 7168},
		"model.layers.2.mlp.down_proj.weight":                {7168, 18432},
		"model.layers.3.mlp.gate.weight":                     {256, 7168},
		"model.layers.3.mlp.gate.e_score_correction_bias":    {256},
		"model.layers.60.mlp.experts.255.up_proj.weight":     {2048, 7168},
		"model.layers.60.mlp.experts.0.down_proj.weight":     {7168, 2048},
		"model.layers.3.mlp.shared_experts.gate_proj.weight": {2048, 7168},
		"model.layers.3.post_attention_layernorm.weight":     {7168},
		"model.norm.weight":                                  {7168},
		"lm_head.weight":                                     {129280, 7168},
	} {
		require.Equal(t, shape, byName[name], name)
	}
	require.NotContains(t, byName, "model.layers.3.mlp.gate_proj.weight")
	require.NotContains(t, byName, "model.layers.0.self_attn.q_proj.weight")
	for _, w := range ws {
		proj := strings.HasSuffix(w.Name, "_proj.weight") || strings.HasSuffix(w.Name, "_proj_with_mqa.weight")
		require.Equal(t, proj, w.Projection, w.Name)
	}
}

func TestWeightsV2Lite(t *testing.T) {
	c, err := safetensors.ParseConfig([]byte(v2LiteConfig))
	require.NoError(t, err)
	names := map[string][]int{}
	for _, w := range c.Weights() {
		names[w.Name] = w.Shape
	}
	require.Equal(t, []int{16 * 192, 2048}, names["model.layers.0.self_attn.q_proj.weight"])
	require.NotContains(t, names, "model.layers.0.self_attn.q_a_proj.weight")
	require.NotContains(t, names, "model.layers.1.mlp.gate.e_score_correction_bias", "greedy routing has no bias")
	require.Equal(t, []int{2 * 1408, 2048}, names["model.layers.1.mlp.shared_experts.up_proj.weight"])
	require.Equal(t, []int{10944, 2048}, names["model.layers.0.mlp.up_proj.weight"])
	require.Contains(t, names, "model.layers.26.mlp.experts.63.down_proj.weight")
	require.NotContains(t, names, "model.layers.27.input_layernorm.weight")

	c.TieWordEmbeddings = true
	for _, w := range c.Weights() {
		require.NotEqual(t, safetensors.LMHead, w.Name)
	}
}
