package safetensors

import (
	"fmt"
	"math"
)

// ModelTypeV4 is config.json's model_type for DeepSeek-V4 (V4-Flash,
// V4-Pro).
const ModelTypeV4 = "deepseek_v4"

// V4Config holds the config.json fields DeepSeek-V4 adds to the V3 names
// Config already reads (spec §1.1), by the "legacy" names the release
// ships (HF transformers folds some of them into layer_types and
// partial_rotary_factor at load time; a loader reads these). The shared
// fields keep their V3 meaning, except that num_key_value_heads is 1 (one
// shared key=value head) and qk_rope_head_dim is the rotated tail of each
// head_dim-wide head.
type V4Config struct {
	// HeadDim is the width of each query head, of the shared key=value
	// head and of each head's attention output (512).
	HeadDim int `json:"head_dim"`
	// OGroups is the number of groups of the low-rank output projection.
	OGroups int `json:"o_groups"`
	// OLoRARank is the rank of each group's output projection.
	OLoRARank int `json:"o_lora_rank"`
	// SlidingWindow is the raw key=value window, the current token
	// included (128).
	SlidingWindow int `json:"sliding_window"`
	// CompressRatios has one entry per decoder layer and then one per MTP
	// layer: 0 sliding window only, 4 compressed sparse attention, 128
	// heavily compressed attention.
	CompressRatios []int `json:"compress_ratios"`
	// CompressRopeTheta is the rotary base of the compressed layers (which
	// also get YaRN); rope_theta is the base of the others.
	CompressRopeTheta float64 `json:"compress_rope_theta"`
	// IndexNHeads, IndexHeadDim (a power of two) and IndexTopK are the
	// lightning indexer's query heads, head width and kept entries.
	IndexNHeads int `json:"index_n_heads"`
	// IndexHeadDim: see IndexNHeads.
	IndexHeadDim int `json:"index_head_dim"`
	// IndexTopK: see IndexNHeads.
	IndexTopK int `json:"index_topk"`
	// NumHashLayers counts the leading layers that route by the tid2eid
	// table instead of the biased top-k.
	NumHashLayers int `json:"num_hash_layers"`
	// SwigluLimit clamps the routed and shared experts' SwiGLU (gate ≤ L,
	// up in [−L, L]); 0 or absent: no clamp.
	SwigluLimit float64 `json:"swiglu_limit"`
	// HCMult, HCSinkhornIters and HCEps are the hyper-connections' stream
	// count, Sinkhorn iterations and epsilon.
	HCMult int `json:"hc_mult"`
	// HCSinkhornIters: see HCMult.
	HCSinkhornIters int `json:"hc_sinkhorn_iters"`
	// HCEps: see HCMult.
	HCEps float64 `json:"hc_eps"`
	// ExpertDtype is how the routed experts are stored, "fp4" in the
	// release ("fp8" and "bf16" are accepted too; the loader goes by each
	// tensor's header). The release may write it here or inside
	// quantization_config; both are read.
	ExpertDtype string `json:"expert_dtype"`
}

// validateV4 checks what the DeepSeek-V4 loader needs and returns every
// problem found, each a *FormatError naming the config.json field:
//   - vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
//     head_dim, qk_rope_head_dim (even, at most head_dim), q_lora_rank,
//     o_groups (dividing the heads), o_lora_rank, sliding_window,
//     n_routed_experts, num_experts_per_tok (at most n_routed_experts),
//     moe_intermediate_size, hc_mult, hc_sinkhorn_iters and
//     max_position_embeddings are positive, num_hash_layers and
//     n_shared_experts are not negative; all are at most 2^31-1;
//   - compress_ratios has at least num_hidden_layers entries, each 0, 4 or
//     128; with a ratio-4 layer the indexer's fields are positive and
//     index_head_dim is a power of two; with any compressed layer
//     compress_rope_theta is positive;
//   - num_key_value_heads is 0 (absent) or 1; num_hash_layers ≤
//     num_hidden_layers;
//   - rms_norm_eps, rope_theta, hc_eps and routed_scaling_factor are
//     positive, swiglu_limit is not negative;
//   - scoring_func is sqrtsoftplus (or absent), topk_method noaux_tc (or
//     absent), hidden_act silu (or absent); YaRN has a positive factor and
//     original context;
//   - bos_token_id and eos_token_id lie in the vocabulary;
//   - quantization_config, if present, is fp8 e4m3 with ue8m0 (or absent)
//     scales, a positive [rows, cols] weight_block_size (or none: the
//     block shape then comes from each scale tensor) and dynamic
//     activations; expert_dtype is fp4, fp8, bf16 or absent.
func (c *Config) validateV4(path string) error {
	ck := &checker{path: path}
	bad, positive, nonNegative, positiveFloat, oneOf := ck.bad, ck.positive, ck.nonNegative, ck.positiveFloat, ck.oneOf

	positive("vocab_size", c.VocabSize)
	positive("hidden_size", c.HiddenSize)
	positive("num_hidden_layers", c.NumHiddenLayers)
	positive("num_attention_heads", c.NumAttentionHeads)
	positive("head_dim", c.HeadDim)
	positive("qk_rope_head_dim", c.QKRopeHeadDim)
	if c.QKRopeHeadDim%2 != 0 {
		bad("qk_rope_head_dim", "%d is odd; rotary embedding turns pairs", c.QKRopeHeadDim)
	} else if c.QKRopeHeadDim > c.HeadDim && c.HeadDim > 0 {
		bad("qk_rope_head_dim", "%d is more than head_dim (%d)", c.QKRopeHeadDim, c.HeadDim)
	}
	if c.QLoRARank == nil {
		bad("q_lora_rank", "is missing")
	} else {
		positive("q_lora_rank", *c.QLoRARank)
	}
	positive("o_groups", c.OGroups)
	if c.OGroups > 0 && c.NumAttentionHeads > 0 && c.NumAttentionHeads%c.OGroups != 0 {
		bad("o_groups", "%d does not divide num_attention_heads (%d)", c.OGroups, c.NumAttentionHeads)
	}
	positive("o_lora_rank", c.OLoRARank)
	positive("sliding_window", c.SlidingWindow)
	positive("n_routed_experts", c.NRoutedExperts)
	positive("num_experts_per_tok", c.NumExpertsPerTok)
	if c.NRoutedExperts > 0 && c.NumExpertsPerTok > c.NRoutedExperts {
		bad("num_experts_per_tok", "%d is more than n_routed_experts (%d)", c.NumExpertsPerTok, c.NRoutedExperts)
	}
	positive("moe_intermediate_size", c.MoEIntermediateSize)
	nonNegative("n_shared_experts", c.NSharedExperts)
	nonNegative("num_hash_layers", c.NumHashLayers)
	if c.NumHashLayers > c.NumHiddenLayers && c.NumHiddenLayers > 0 {
		bad("num_hash_layers", "%d is more than num_hidden_layers (%d)", c.NumHashLayers, c.NumHiddenLayers)
	}
	positive("hc_mult", c.HCMult)
	positive("hc_sinkhorn_iters", c.HCSinkhornIters)
	positive("max_position_embeddings", c.MaxPositionEmbeddings)
	nonNegative("num_nextn_predict_layers", c.NumNextNPredictLayers)
	if c.NumKeyValueHeads > 1 || c.NumKeyValueHeads < 0 {
		bad("num_key_value_heads", "%d, want 1 (one shared key=value head)", c.NumKeyValueHeads)
	}

	if len(c.CompressRatios) < c.NumHiddenLayers {
		bad("compress_ratios", "has %d entries for %d layers", len(c.CompressRatios), c.NumHiddenLayers)
	}
	csa, compressed := false, false
	for i, r := range c.CompressRatios {
		switch r {
		case 0:
		case 4:
			csa, compressed = true, true
		case 128:
			compressed = true
		default:
			bad(fmt.Sprintf("compress_ratios[%d]", i), "%d is not 0, 4 or 128", r)
		}
	}
	if csa {
		positive("index_n_heads", c.IndexNHeads)
		positive("index_topk", c.IndexTopK)
		positive("index_head_dim", c.IndexHeadDim)
		if d := c.IndexHeadDim; d > 0 && d&(d-1) != 0 {
			bad("index_head_dim", "%d is not a power of two (the indexer's Hadamard transform)", d)
		} else if d > 0 && c.QKRopeHeadDim > d {
			bad("index_head_dim", "%d is less than qk_rope_head_dim (%d)", d, c.QKRopeHeadDim)
		}
	}
	if compressed {
		positiveFloat("compress_rope_theta", c.CompressRopeTheta)
	}

	positiveFloat("rms_norm_eps", c.RMSNormEps)
	positiveFloat("rope_theta", c.RopeTheta)
	positiveFloat("hc_eps", c.HCEps)
	positiveFloat("routed_scaling_factor", c.RoutedScalingFactor)
	if !(c.SwigluLimit >= 0) || math.IsInf(c.SwigluLimit, 0) {
		bad("swiglu_limit", "must not be negative, got %v", c.SwigluLimit)
	}
	if c.ScoringFunc != "" {
		oneOf("scoring_func", c.ScoringFunc, "sqrtsoftplus")
	}
	if c.TopkMethod != "" {
		oneOf("topk_method", c.TopkMethod, "noaux_tc")
	}
	if c.HiddenAct != "" {
		oneOf("hidden_act", c.HiddenAct, "silu")
	}
	if r := c.RopeScaling; r != nil {
		oneOf("rope_scaling.type", r.Type, "yarn")
		positiveFloat("rope_scaling.factor", r.Factor)
		positive("rope_scaling.original_max_position_embeddings", r.OriginalMaxPositionEmbeddings)
	}
	if c.BOSTokenID != nil && (*c.BOSTokenID < 0 || *c.BOSTokenID >= c.VocabSize) {
		bad("bos_token_id", "%d is outside the vocabulary (vocab_size %d)", *c.BOSTokenID, c.VocabSize)
	}
	for _, id := range c.EOSTokenID {
		if id < 0 || id >= c.VocabSize {
			bad("eos_token_id", "%d is outside the vocabulary (vocab_size %d)", id, c.VocabSize)
		}
	}

	if q := c.QuantizationConfig; q != nil {
		if q.QuantMethod != "fp8" {
			bad("quantization_config.quant_method", "%q is not supported, want \"fp8\"", q.QuantMethod)
		}
		if q.Fmt != "" && q.Fmt != "e4m3" {
			bad("quantization_config.fmt", "%q is not supported, want \"e4m3\"", q.Fmt)
		}
		if q.ScaleFmt != "" && q.ScaleFmt != "ue8m0" {
			bad("quantization_config.scale_fmt", "%q is not supported, want \"ue8m0\"", q.ScaleFmt)
		}
		switch len(q.WeightBlockSize) {
		case 0:
		case 2:
			positive("quantization_config.weight_block_size[0]", q.WeightBlockSize[0])
			positive("quantization_config.weight_block_size[1]", q.WeightBlockSize[1])
		default:
			bad("quantization_config.weight_block_size", "has %d elements, want [rows, cols]", len(q.WeightBlockSize))
		}
		if q.ActivationScheme != "" && q.ActivationScheme != "dynamic" {
			bad("quantization_config.activation_scheme", "%q is not supported, want \"dynamic\"", q.ActivationScheme)
		}
		if q.ExpertDtype != "" {
			oneOf("quantization_config.expert_dtype", q.ExpertDtype, "fp4", "fp8", "bf16")
		}
	}
	if c.ExpertDtype != "" {
		oneOf("expert_dtype", c.ExpertDtype, "fp4", "fp8", "bf16")
	}
	return ck.err()
}

// V4BlockSize returns quantization_config.weight_block_size of a V4
// config, or nil when it gives none (the block shape then comes from each
// scale tensor's shape, CheckFP8Blocks).
func (c *Config) V4BlockSize() []int {
	if q := c.QuantizationConfig; q != nil && len(q.WeightBlockSize) == 2 {
		return q.WeightBlockSize
	}
	return nil
}
