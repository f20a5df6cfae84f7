package safetensors_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

// v4FlashConfig has the fields spec §1.1 lists for DeepSeek-V4-Flash's
// config.json (legacy names, 43 layers plus the MTP block's ratio).
const v4FlashConfig = `{
  "architectures": ["DeepseekV4ForCausalLM"],
  "model_type": "deepseek_v4",
  "vocab_size": 129280,
  "hidden_size": 4096,
  "num_hidden_layers": 43,
  "num_attention_heads": 64,
  "num_key_value_heads": 1,
  "head_dim": 512,
  "qk_rope_head_dim": 64,
  "q_lora_rank": 1024,
  "o_groups": 8,
  "o_lora_rank": 1024,
  "sliding_window": 128,
  "compress_ratios": [0, 0, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128,
                      4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 0],
  "compress_rope_theta": 160000,
  "rope_theta": 10000,
  "rope_scaling": {"type": "yarn", "factor": 16, "original_max_position_embeddings": 65536, "beta_fast": 32, "beta_slow": 1},
  "max_position_embeddings": 1048576,
  "index_n_heads": 64,
  "index_head_dim": 128,
  "index_topk": 512,
  "n_routed_experts": 256,
  "n_shared_experts": 1,
  "num_experts_per_tok": 6,
  "moe_intermediate_size": 2048,
  "num_hash_layers": 3,
  "scoring_func": "sqrtsoftplus",
  "topk_method": "noaux_tc",
  "norm_topk_prob": true,
  "routed_scaling_factor": 1.5,
  "swiglu_limit": 10.0,
  "hc_mult": 4,
  "hc_sinkhorn_iters": 20,
  "hc_eps": 1e-6,
  "rms_norm_eps": 1e-6,
  "num_nextn_predict_layers": 1,
  "first_k_dense_replace": 0,
  "hidden_act": "silu",
  "tie_word_embeddings": false,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "expert_dtype": "fp4",
  "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "scale_fmt": "ue8m0", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
}`

func TestParseConfigV4(t *testing.T) {
	c, err := safetensors.ParseConfig([]byte(v4FlashConfig))
	require.NoError(t, err)
	require.Equal(t, safetensors.ModelTypeV4, c.ModelType)
	require.Equal(t, 512, c.HeadDim)
	require.Equal(t, 8, c.OGroups)
	require.Equal(t, 1024, c.OLoRARank)
	require.Equal(t, 128, c.SlidingWindow)
	require.Len(t, c.CompressRatios, 44)
	require.Equal(t, []int{0, 0, 4, 128}, c.CompressRatios[:4])
	require.Equal(t, 160000.0, c.CompressRopeTheta)
	require.Equal(t, [3]int{64, 128, 512}, [3]int{c.IndexNHeads, c.IndexHeadDim, c.IndexTopK})
	require.Equal(t, 3, c.NumHashLayers)
	require.Equal(t, 10.0, c.SwigluLimit)
	require.Equal(t, [2]int{4, 20}, [2]int{c.HCMult, c.HCSinkhornIters})
	require.Equal(t, 1e-6, c.HCEps)
	require.Equal(t, "fp4", c.ExpertDtype)
	require.Equal(t, "ue8m0", c.QuantizationConfig.ScaleFmt)
	require.Equal(t, []int{128, 128}, c.V4BlockSize())
	require.Equal(t, 1024, *c.QLoRARank)
	require.Equal(t, 16.0, c.RopeScaling.Factor)
}

func TestConfigInvalidV4(t *testing.T) {
	for _, c := range []struct {
		field string
		value any
		want  string
	}{
		{"head_dim", "<absent>", "head_dim: must be positive"},
		{"qk_rope_head_dim", 1024, "qk_rope_head_dim: 1024 is more than head_dim (512)"},
		{"q_lora_rank", "<absent>", "q_lora_rank: is missing"},
		{"o_groups", 7, "o_groups: 7 does not divide num_attention_heads (64)"},
		{"o_lora_rank", 0, "o_lora_rank: must be positive"},
		{"sliding_window", "<absent>", "sliding_window: must be positive"},
		{"compress_ratios", []int{0, 4}, "compress_ratios: has 2 entries for 43 layers"},
		{"compress_ratios", append([]int{0, 8}, make([]int, 42)...), "compress_ratios[1]: 8 is not 0, 4 or 128"},
		{"index_head_dim", 96, "index_head_dim: 96 is not a power of two"},
		{"index_topk", 0, "index_topk: must be positive"},
		{"compress_rope_theta", "<absent>", "compress_rope_theta: must be a positive number"},
		{"num_hash_layers", 44, "num_hash_layers: 44 is more than num_hidden_layers (43)"},
		{"num_key_value_heads", 64, "num_key_value_heads: 64, want 1"},
		{"hc_mult", 0, "hc_mult: must be positive"},
		{"hc_eps", "<absent>", "hc_eps: must be a positive number"},
		{"swiglu_limit", -1, "swiglu_limit: must not be negative"},
		{"scoring_func", "sigmoid", `scoring_func: "sigmoid" is not one of ["sqrtsoftplus"]`},
		{"topk_method", "greedy", `topk_method: "greedy" is not one of ["noaux_tc"]`},
		{"expert_dtype", "int4", `expert_dtype: "int4" is not one of`},
		{"quantization_config", map[string]any{"quant_method": "fp8", "scale_fmt": "fp32"}, `quantization_config.scale_fmt: "fp32" is not supported`},
		{"quantization_config", map[string]any{"quant_method": "fp8", "weight_block_size": []int{32}}, "quantization_config.weight_block_size: has 1 elements"},
		{"num_experts_per_tok", 257, "num_experts_per_tok: 257 is more than n_routed_experts (256)"},
		{"compress_ratios", "x", "safetensors: compress_ratios: JSON string where a list belongs"},
		{"hc_eps", "small", "safetensors: hc_eps: JSON string where a number belongs"},
	} {
		t.Run(c.field, func(t *testing.T) {
			_, err := safetensors.ParseConfig(withField(t, v4FlashConfig, c.field, c.value))
			require.ErrorContains(t, err, c.want)
			var fe *safetensors.FormatError
			require.ErrorAs(t, err, &fe)
		})
	}
	// No weight_block_size: the loader takes each block from its scale.
	c, err := safetensors.ParseConfig(withField(t, v4FlashConfig, "quantization_config", map[string]any{"quant_method": "fp8", "scale_fmt": "ue8m0"}))
	require.NoError(t, err)
	require.Nil(t, c.V4BlockSize())
	// A V4 config does not need V3's MLA fields.
	_, err = safetensors.ParseConfig(withField(t, v4FlashConfig, "kv_lora_rank", "<absent>"))
	require.NoError(t, err)
}
