package safetensors_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

// v3Config has the fields of DeepSeek-V3's config.json (R1's is the same
// apart from the architecture's name), with auto_map left out.
const v3Config = `{
  "architectures": ["DeepseekV3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "aux_loss_alpha": 0.001,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "ep_size": 1,
  "first_k_dense_replace": 3,
  "hidden_act": "silu",
  "hidden_size": 7168,
  "initializer_range": 0.02,
  "intermediate_size": 18432,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v3",
  "moe_intermediate_size": 2048,
  "moe_layer_freq": 1,
  "n_group": 8,
  "n_routed_experts": 256,
  "n_shared_experts": 1,
  "norm_topk_prob": true,
  "num_attention_heads": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 61,
  "num_key_value_heads": 128,
  "num_nextn_predict_layers": 1,
  "pretraining_tp": 1,
  "q_lora_rank": 1536,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "quantization_config": {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [128, 128]
  },
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "beta_fast": 32,
    "beta_slow": 1,
    "factor": 40,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
    "original_max_position_embeddings": 4096,
    "type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid",
  "seq_aux": true,
  "tie_word_embeddings": false,
  "topk_group": 4,
  "topk_method": "noaux_tc",
  "torch_dtype": "bfloat16",
  "transformers_version": "4.33.1",
  "use_cache": true,
  "v_head_dim": 128,
  "vocab_size": 129280
}`

// v2LiteConfig is DeepSeek-V2-Lite's config.json with eos_token_id
// written as a list (as generation configs do) and rope_scaling's type as
// newer transformers spell it, leaving beta_fast and beta_slow to their
// defaults.
const v2LiteConfig = `{
  "architectures": ["DeepseekV2ForCausalLM"],
  "bos_token_id": 100000,
  "eos_token_id": [100001, 100008],
  "first_k_dense_replace": 1,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "intermediate_size": 10944,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v2",
  "moe_intermediate_size": 1408,
  "moe_layer_freq": 1,
  "n_group": 1,
  "n_routed_experts": 64,
  "n_shared_experts": 2,
  "norm_topk_prob": false,
  "num_attention_heads": 16,
  "num_experts_per_tok": 6,
  "num_hidden_layers": 27,
  "num_key_value_heads": 16,
  "q_lora_rank": null,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "factor": 40,
    "mscale": 0.707,
    "mscale_all_dim": 0.707,
    "original_max_position_embeddings": 4096,
    "rope_type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 1.0,
  "scoring_func": "softmax",
  "tie_word_embeddings": false,
  "topk_group": 1,
  "topk_method": "greedy",
  "torch_dtype": "bfloat16",
  "v_head_dim": 128,
  "vocab_size": 102400
}`

func intp(v int) *int { return &v }

func TestParseConfigV3(t *testing.T) {
	c, err := safetensors.ParseConfig([]byte(v3Config))
	require.NoError(t, err)
	require.Equal(t, &safetensors.Config{
		Architectures:         []string{"DeepseekV3ForCausalLM"},
		ModelType:             "deepseek_v3",
		VocabSize:             129280,
		HiddenSize:            7168,
		IntermediateSize:      18432,
		MoEIntermediateSize:   2048,
		NumHiddenLayers:       61,
		NumAttentionHeads:     128,
		NumKeyValueHeads:      128,
		NSharedExperts:        1,
		NRoutedExperts:        256,
		NumExpertsPerTok:      8,
		RoutedScalingFactor:   2.5,
		KVLoRARank:            512,
		QLoRARank:             intp(1536),
		QKRopeHeadDim:         64,
		QKNopeHeadDim:         128,
		VHeadDim:              128,
		NGroup:                8,
		TopkGroup:             4,
		TopkMethod:            "noaux_tc",
		ScoringFunc:           "sigmoid",
		NormTopkProb:          true,
		FirstKDenseReplace:    3,
		MoELayerFreq:          1,
		HiddenAct:             "silu",
		RMSNormEps:            1e-6,
		RopeTheta:             10000,
		MaxPositionEmbeddings: 163840,
		NumNextNPredictLayers: 1,
		BOSTokenID:            intp(0),
		EOSTokenID:            safetensors.TokenIDs{1},
		RopeScaling: &safetensors.RopeScaling{
			Type: "yarn", Factor: 40, OriginalMaxPositionEmbeddings: 4096,
			BetaFast: 32, BetaSlow: 1, MScale: 1, MScaleAllDim: 1,
		},
		QuantizationConfig: &safetensors.QuantizationConfig{
			QuantMethod: "fp8", Fmt: "e4m3", WeightBlockSize: []int{128, 128}, ActivationScheme: "dynamic",
		},
	}, c)

	require.NoError(t, c.Validate())
	c2 := *c
	c2.NumExpertsPerTok, c2.RMSNormEps = 0, 0
	err = c2.Validate()
	require.ErrorContains(t, err, "safetensors: num_experts_per_tok: must be positive, got 0")
	require.ErrorContains(t, err, "safetensors: rms_norm_eps: must be a positive number, got 0")

	require.False(t, c.IsMoELayer(2))
	require.True(t, c.IsMoELayer(3))
	require.True(t, c.IsMoELayer(60))
	require.False(t, c.IsMTPLayer(60))
	require.True(t, c.IsMTPLayer(61))
	require.False(t, c.IsMTPLayer(62))
	require.True(t, c.IsMTPTensor("model.layers.61.eh_proj.weight"))
	require.True(t, c.IsMTPTensor("model.layers.61.mlp.experts.255.down_proj.weight_scale_inv"))
	require.False(t, c.IsMTPTensor("model.layers.60.mlp.gate.weight"))
	require.False(t, c.IsMTPTensor("model.embed_tokens.weight"))
}

func TestParseConfigV2Lite(t *testing.T) {
	c, err := safetensors.ParseConfig([]byte(v2LiteConfig))
	require.NoError(t, err)
	require.Nil(t, c.QLoRARank)
	require.Equal(t, safetensors.TokenIDs{100001, 100008}, c.EOSTokenID)
	require.Equal(t, 100000, *c.BOSTokenID)
	require.Nil(t, c.QuantizationConfig)
	require.Equal(t, &safetensors.RopeScaling{
		Type: "yarn", Factor: 40, OriginalMaxPositionEmbeddings: 4096,
		BetaFast: 32, BetaSlow: 1, MScale: 0.707, MScaleAllDim: 0.707,
	}, c.RopeScaling)
	require.Equal(t, "greedy", c.TopkMethod)
	require.Equal(t, "softmax", c.ScoringFunc)
	require.Zero(t, c.NumNextNPredictLayers)
	require.False(t, c.IsMTPLayer(27))
	require.False(t, c.IsMoELayer(0))
	require.True(t, c.IsMoELayer(1))
}

// withField returns base with field set to value (or removed if value is
// the string "<absent>").
func withField(t *testing.T, base string, field string, value any) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(base), &m))
	if value == "<absent>" {
		delete(m, field)
	} else {
		m[field] = value
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestConfigInvalid(t *testing.T) {
	for _, c := range []struct {
		field string
		value any
		want  string
	}{
		{"model_type", "<absent>", "model_type: is missing"},
		{"vocab_size", 0, "vocab_size: must be positive, got 0"},
		{"hidden_size", -1, "hidden_size: must be positive, got -1"},
		{"hidden_size", int64(1) << 40, "hidden_size: 1099511627776 is too large"},
		{"num_hidden_layers", "<absent>", "num_hidden_layers: must be positive"},
		{"n_routed_experts", 0, "n_routed_experts: must be positive"},
		{"num_experts_per_tok", 300, "num_experts_per_tok: 300 is more than n_routed_experts (256)"},
		{"num_experts_per_tok", 129, "num_experts_per_tok: 129 experts cannot come from topk_group (4) groups of 32"},
		{"n_group", 7, "n_group: n_routed_experts (256) is not a multiple of 7"},
		{"n_group", "<absent>", `n_group: must be set for topk_method "noaux_tc"`},
		{"topk_group", 9, "topk_group: 9 is not between 1 and n_group (8)"},
		{"topk_group", 0, "topk_group: 0 is not between 1"},
		{"q_lora_rank", 0, "q_lora_rank: must be positive, got 0"},
		{"kv_lora_rank", "<absent>", "kv_lora_rank: must be positive"},
		{"qk_rope_head_dim", 63, "qk_rope_head_dim: 63 is odd"},
		{"n_shared_experts", -1, "n_shared_experts: must not be negative"},
		{"first_k_dense_replace", 62, "first_k_dense_replace: 62 is more than num_hidden_layers (61)"},
		{"rms_norm_eps", 0, "rms_norm_eps: must be a positive number, got 0"},
		{"rope_theta", "<absent>", "rope_theta: must be a positive number"},
		{"routed_scaling_factor", -2.5, "routed_scaling_factor: must be a positive number"},
		{"topk_method", "gready", `topk_method: "gready" is not one of`},
		{"scoring_func", "relu", `scoring_func: "relu" is not one of`},
		{"hidden_act", "gelu", `hidden_act: "gelu" is not one of`},
		{"bos_token_id", 129280, "bos_token_id: 129280 is outside the vocabulary"},
		{"eos_token_id", []int{1, -3}, "eos_token_id: -3 is outside the vocabulary"},
		{"rope_scaling", map[string]any{"type": "ntk", "factor": 40}, `rope_scaling.type: "ntk" is not one of`},
		{"rope_scaling", map[string]any{"type": "yarn", "factor": 0, "original_max_position_embeddings": 4096}, "rope_scaling.factor: must be a positive number"},
		{"rope_scaling", map[string]any{"type": "yarn", "factor": 40}, "rope_scaling.original_max_position_embeddings: must be positive"},
		{"quantization_config", map[string]any{"quant_method": "awq"}, `quantization_config.quant_method: "awq" is not supported`},
		{"quantization_config", map[string]any{"quant_method": "fp8", "fmt": "e5m2", "weight_block_size": []int{128, 128}}, `quantization_config.fmt: "e5m2" is not supported`},
		{"quantization_config", map[string]any{"quant_method": "fp8", "weight_block_size": []int{128}}, "quantization_config.weight_block_size: has 1 elements"},
		{"quantization_config", map[string]any{"quant_method": "fp8", "weight_block_size": []int{128, 0}}, "quantization_config.weight_block_size[1]: must be positive"},
		{"quantization_config", map[string]any{"quant_method": "fp8", "weight_block_size": []int{128, 128}, "activation_scheme": "static"}, `quantization_config.activation_scheme: "static" is not supported`},
		{"hidden_size", "7168", "hidden_size: JSON string where an integer belongs"},
		{"eos_token_id", "one", "eos_token_id: JSON string where a token id or a list of ids belongs"},
		{"eos_token_id", map[string]any{}, "eos_token_id: JSON object where a token id"},
		{"rope_scaling", map[string]any{"factor": "x"}, "rope_scaling.factor: JSON string where a number belongs"},
		{"q_lora_rank", "x", "q_lora_rank: JSON string where an integer belongs"},
	} {
		t.Run(c.field, func(t *testing.T) {
			_, err := safetensors.ParseConfig(withField(t, v3Config, c.field, c.value))
			require.ErrorContains(t, err, c.want)
			var fe *safetensors.FormatError
			require.ErrorAs(t, err, &fe)
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := safetensors.ParseConfig([]byte(`{"model_type":"deepseek_v3"}`))
	require.Error(t, err)
	for _, field := range []string{"vocab_size", "hidden_size", "n_routed_experts", "kv_lora_rank", "topk_method", "scoring_func", "rope_theta"} {
		require.Contains(t, err.Error(), "safetensors: "+field+":")
	}
}

func TestConfigBadJSON(t *testing.T) {
	_, err := safetensors.ParseConfig([]byte(`{"hidden_size": 7168,`))
	require.ErrorContains(t, err, "config: bad JSON")
}
