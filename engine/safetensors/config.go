package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
)

// Config is the config.json of a DeepSeek V2, V2-Lite, V3 or R1 checkpoint
// (model_type "deepseek_v2" or "deepseek_v3"), by the Hugging Face field
// names. Fields the file leaves out keep Go's zero value, except inside
// rope_scaling (see RopeScaling); ParseConfig fills in nothing else, and
// Validate says which fields a loader needs. Fields this type lacks are
// ignored. As encoding/json does, names match case-insensitively and the
// last of two equal keys wins.
type Config struct {
	// Architectures is the transformers class, e.g. ["DeepseekV3ForCausalLM"].
	Architectures []string `json:"architectures"`
	// ModelType is "deepseek_v2" (V2, V2-Lite) or "deepseek_v3" (V3, R1).
	ModelType string `json:"model_type"`
	// VocabSize is the number of token embeddings (129280 in V3).
	VocabSize int `json:"vocab_size"`
	// HiddenSize is the model width (7168 in V3, 2048 in V2-Lite).
	HiddenSize int `json:"hidden_size"`
	// IntermediateSize is the width of the dense layers' MLP.
	IntermediateSize int `json:"intermediate_size"`
	// MoEIntermediateSize is the width of one expert's MLP.
	MoEIntermediateSize int `json:"moe_intermediate_size"`
	// NumHiddenLayers counts the decoder layers, not the MTP layers.
	NumHiddenLayers int `json:"num_hidden_layers"`
	// NumAttentionHeads is the number of query heads.
	NumAttentionHeads int `json:"num_attention_heads"`
	// NumKeyValueHeads equals NumAttentionHeads in DeepSeek configs; MLA
	// does not use it.
	NumKeyValueHeads int `json:"num_key_value_heads"`
	// NSharedExperts is the number of always-active experts; their MLP is
	// NSharedExperts×MoEIntermediateSize wide.
	NSharedExperts int `json:"n_shared_experts"`
	// NRoutedExperts is the number of routed experts per MoE layer.
	NRoutedExperts int `json:"n_routed_experts"`
	// NumExpertsPerTok is how many routed experts each token uses (top-k).
	NumExpertsPerTok int `json:"num_experts_per_tok"`
	// RoutedScalingFactor multiplies the routed experts' weights (2.5 in V3).
	RoutedScalingFactor float64 `json:"routed_scaling_factor"`
	// KVLoRARank is the width of the compressed KV latent (512).
	KVLoRARank int `json:"kv_lora_rank"`
	// QLoRARank is the width of the compressed query latent, or nil when
	// queries are projected directly (V2-Lite writes null): then the
	// checkpoint has q_proj instead of q_a_proj, q_a_layernorm and q_b_proj.
	QLoRARank *int `json:"q_lora_rank"`
	// QKRopeHeadDim is the per-head width that gets rotary embedding (64).
	QKRopeHeadDim int `json:"qk_rope_head_dim"`
	// QKNopeHeadDim is the per-head width without it (128).
	QKNopeHeadDim int `json:"qk_nope_head_dim"`
	// VHeadDim is the per-head value width (128).
	VHeadDim int `json:"v_head_dim"`
	// NGroup is the number of expert groups for group-limited routing.
	NGroup int `json:"n_group"`
	// TopkGroup is how many groups a token's experts may come from.
	TopkGroup int `json:"topk_group"`
	// TopkMethod is "greedy" (V2-Lite), "group_limited_greedy" (V2) or
	// "noaux_tc" (V3: top-k on sigmoid scores plus e_score_correction_bias).
	TopkMethod string `json:"topk_method"`
	// ScoringFunc is "softmax" (V2) or "sigmoid" (V3).
	ScoringFunc string `json:"scoring_func"`
	// NormTopkProb says whether the chosen experts' weights are normalised
	// to sum to 1.
	NormTopkProb bool `json:"norm_topk_prob"`
	// FirstKDenseReplace is the number of leading layers with a dense MLP.
	FirstKDenseReplace int `json:"first_k_dense_replace"`
	// MoELayerFreq makes every MoELayerFreq-th layer after those an MoE
	// layer (1 in every DeepSeek config; 0, absent, counts as 1).
	MoELayerFreq int `json:"moe_layer_freq"`
	// HiddenAct is the MLP activation, "silu".
	HiddenAct string `json:"hidden_act"`
	// RMSNormEps is the epsilon of every RMSNorm (1e-6).
	RMSNormEps float64 `json:"rms_norm_eps"`
	// RopeTheta is the rotary base (10000).
	RopeTheta float64 `json:"rope_theta"`
	// RopeScaling is the YaRN context extension, or nil.
	RopeScaling *RopeScaling `json:"rope_scaling"`
	// MaxPositionEmbeddings is the longest context (163840).
	MaxPositionEmbeddings int `json:"max_position_embeddings"`
	// NumNextNPredictLayers counts the multi-token-prediction layers stored
	// after the decoder layers (1 in V3 and R1, absent in V2).
	NumNextNPredictLayers int `json:"num_nextn_predict_layers"`
	// BOSTokenID is the beginning-of-sequence token, or nil.
	BOSTokenID *int `json:"bos_token_id"`
	// EOSTokenID lists the end-of-sequence tokens; the file may give one id
	// or a list.
	EOSTokenID TokenIDs `json:"eos_token_id"`
	// TieWordEmbeddings says lm_head shares model.embed_tokens' weights (and
	// is then absent from the checkpoint). False in every DeepSeek model.
	TieWordEmbeddings bool `json:"tie_word_embeddings"`
	// QuantizationConfig describes FP8 block quantization (V3, R1), or is
	// nil for a BF16 checkpoint.
	QuantizationConfig *QuantizationConfig `json:"quantization_config"`

	// V4Config holds DeepSeek-V4's own fields (model_type "deepseek_v4"; see
	// config_v4.go), read from the same object.
	V4Config
}

// RopeScaling is config.json's "rope_scaling". DeepSeek uses YaRN. Fields
// absent from the file take the defaults of DeepSeek's YaRN rotary
// embedding (modeling_deepseek.py): beta_fast 32, beta_slow 1, mscale 1,
// mscale_all_dim 0.
type RopeScaling struct {
	// Type is "yarn" (or "linear", "dynamic"); newer transformers write it
	// as "rope_type", which is read too.
	Type string `json:"type"`
	// Factor is the context extension factor (40).
	Factor float64 `json:"factor"`
	// OriginalMaxPositionEmbeddings is the pre-extension context (4096).
	OriginalMaxPositionEmbeddings int `json:"original_max_position_embeddings"`
	// BetaFast and BetaSlow bound YaRN's frequency ramp (32 and 1).
	BetaFast float64 `json:"beta_fast"`
	// BetaSlow: see BetaFast.
	BetaSlow float64 `json:"beta_slow"`
	// MScale and MScaleAllDim set YaRN's attention scale (1 and 1 in V3,
	// 0.707 and 0.707 in V2-Lite).
	MScale float64 `json:"mscale"`
	// MScaleAllDim: see MScale.
	MScaleAllDim float64 `json:"mscale_all_dim"`
}

// UnmarshalJSON reads rope_scaling with DeepSeek's defaults for absent
// fields, taking "rope_type" when "type" is absent.
func (r *RopeScaling) UnmarshalJSON(b []byte) error {
	// The same fields plus rope_type; not an embedded alias of RopeScaling,
	// so that a type error names the field as "rope_scaling.factor".
	var v struct {
		Type                          string  `json:"type"`
		RopeType                      string  `json:"rope_type"`
		Factor                        float64 `json:"factor"`
		OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
		BetaFast                      float64 `json:"beta_fast"`
		BetaSlow                      float64 `json:"beta_slow"`
		MScale                        float64 `json:"mscale"`
		MScaleAllDim                  float64 `json:"mscale_all_dim"`
	}
	v.BetaFast, v.BetaSlow, v.MScale = 32, 1, 1
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Type == "" {
		v.Type = v.RopeType
	}
	*r = RopeScaling{
		Type:                          v.Type,
		Factor:                        v.Factor,
		OriginalMaxPositionEmbeddings: v.OriginalMaxPositionEmbeddings,
		BetaFast:                      v.BetaFast,
		BetaSlow:                      v.BetaSlow,
		MScale:                        v.MScale,
		MScaleAllDim:                  v.MScaleAllDim,
	}
	return nil
}

// QuantizationConfig is config.json's "quantization_config" for FP8
// checkpoints: each quantized weight is F8_E4M3 with an F32 tensor
// ScaleName(weight) of one scale per WeightBlockSize block (the weight is
// the FP8 values times the scale, block by block).
type QuantizationConfig struct {
	// QuantMethod is "fp8".
	QuantMethod string `json:"quant_method"`
	// Fmt is the FP8 format, "e4m3".
	Fmt string `json:"fmt"`
	// WeightBlockSize is the block's [rows, cols], [128, 128].
	WeightBlockSize []int `json:"weight_block_size"`
	// ActivationScheme is "dynamic": activations are quantized at run time,
	// so the checkpoint has no activation scales.
	ActivationScheme string `json:"activation_scheme"`
	// ScaleFmt is DeepSeek-V4's scale encoding, "ue8m0" (F8_E8M0 ".scale"
	// tensors, powers of two); empty in V3, whose scales are F32.
	ScaleFmt string `json:"scale_fmt"`
	// ExpertDtype is how DeepSeek-V4 stores its routed experts when
	// written here ("fp4" or "fp8"); see also V4Config.ExpertDtype.
	ExpertDtype string `json:"expert_dtype"`
}

// TokenIDs holds a token id field that config.json writes as one id or a
// list of ids (eos_token_id). null gives nil.
type TokenIDs []int

// UnmarshalJSON accepts a number, a list of numbers or null.
func (t *TokenIDs) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*t = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var ids []int
		if err := json.Unmarshal(b, &ids); err != nil {
			return err
		}
		*t = ids
		return nil
	}
	var id int
	if err := json.Unmarshal(b, &id); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			te.Type = reflect.TypeFor[TokenIDs]()
		}
		return err
	}
	*t = TokenIDs{id}
	return nil
}

// describeGoType names what a config field holds, for a type error.
func describeGoType(t reflect.Type) string {
	if t == reflect.TypeFor[TokenIDs]() {
		return "a token id or a list of ids"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	}
	return t.String()
}

// ParseConfig parses a DeepSeek config.json and validates it (see
// Validate). A field of the wrong JSON type is an error naming it.
func ParseConfig(data []byte) (*Config, error) { return parseConfig("", data) }

func parseConfig(path string, data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// V4's fields are promoted from an embedded struct, whose
			// Go name encoding/json puts in the path.
			field := strings.TrimPrefix(te.Field, "V4Config.")
			return nil, &FormatError{Path: path, Item: field, Msg: fmt.Sprintf("JSON %s where %s belongs", te.Value, describeGoType(te.Type)), Err: err}
		}
		return nil, &FormatError{Path: path, Item: "config", Msg: "bad JSON: " + err.Error(), Err: err}
	}
	if err := c.validate(path); err != nil {
		return nil, err
	}
	return &c, nil
}

// maxSize bounds every size and count in a config, so that a loader's
// products of two of them (vocab × hidden, heads × head width) cannot
// overflow an int.
const maxSize = math.MaxInt32

// Validate checks what a loader of the DeepSeek V2/V3 family needs and
// returns every problem found, each a *FormatError whose Item is the
// config.json field (joined with errors.Join):
//   - model_type is set;
//   - vocab_size, hidden_size, intermediate_size, moe_intermediate_size,
//     num_hidden_layers, num_attention_heads, kv_lora_rank,
//     qk_rope_head_dim (even), qk_nope_head_dim, v_head_dim,
//     n_routed_experts, num_experts_per_tok and max_position_embeddings
//     are positive, q_lora_rank is null or positive, and the counts that
//     may be 0 are not negative; all are at most 2^31-1;
//   - rms_norm_eps, rope_theta and routed_scaling_factor are positive;
//   - num_experts_per_tok ≤ n_routed_experts; with n_group set,
//     n_routed_experts is a multiple of it, 1 ≤ topk_group ≤ n_group and
//     the chosen groups hold at least num_experts_per_tok experts;
//     group_limited_greedy and noaux_tc need n_group;
//   - topk_method, scoring_func, hidden_act and rope_scaling.type are
//     values DeepSeek's code knows; first_k_dense_replace ≤
//     num_hidden_layers; YaRN has a positive factor and original context;
//   - bos_token_id and eos_token_id lie in the vocabulary;
//   - quantization_config, if present, is fp8 e4m3 with a positive
//     [rows, cols] weight_block_size and dynamic activations.
//
// A deepseek_v4 config is checked by its own rules instead (validateV4).
func (c *Config) Validate() error { return c.validate("") }

func (c *Config) validate(path string) error {
	if c.ModelType == ModelTypeV4 {
		return c.validateV4(path)
	}
	ck := &checker{path: path}
	bad, positive, nonNegative, positiveFloat, oneOf := ck.bad, ck.positive, ck.nonNegative, ck.positiveFloat, ck.oneOf

	if c.ModelType == "" {
		bad("model_type", "is missing")
	}
	positive("vocab_size", c.VocabSize)
	positive("hidden_size", c.HiddenSize)
	positive("intermediate_size", c.IntermediateSize)
	positive("moe_intermediate_size", c.MoEIntermediateSize)
	positive("num_hidden_layers", c.NumHiddenLayers)
	positive("num_attention_heads", c.NumAttentionHeads)
	nonNegative("num_key_value_heads", c.NumKeyValueHeads)
	nonNegative("n_shared_experts", c.NSharedExperts)
	positive("n_routed_experts", c.NRoutedExperts)
	positive("num_experts_per_tok", c.NumExpertsPerTok)
	positive("kv_lora_rank", c.KVLoRARank)
	if c.QLoRARank != nil {
		positive("q_lora_rank", *c.QLoRARank)
	}
	positive("qk_rope_head_dim", c.QKRopeHeadDim)
	if c.QKRopeHeadDim%2 != 0 {
		bad("qk_rope_head_dim", "%d is odd; rotary embedding turns pairs", c.QKRopeHeadDim)
	}
	positive("qk_nope_head_dim", c.QKNopeHeadDim)
	positive("v_head_dim", c.VHeadDim)
	positive("max_position_embeddings", c.MaxPositionEmbeddings)
	nonNegative("n_group", c.NGroup)
	nonNegative("topk_group", c.TopkGroup)
	nonNegative("first_k_dense_replace", c.FirstKDenseReplace)
	nonNegative("moe_layer_freq", c.MoELayerFreq)
	nonNegative("num_nextn_predict_layers", c.NumNextNPredictLayers)
	positiveFloat("rms_norm_eps", c.RMSNormEps)
	positiveFloat("rope_theta", c.RopeTheta)
	positiveFloat("routed_scaling_factor", c.RoutedScalingFactor)

	if c.NRoutedExperts > 0 && c.NumExpertsPerTok > c.NRoutedExperts {
		bad("num_experts_per_tok", "%d is more than n_routed_experts (%d)", c.NumExpertsPerTok, c.NRoutedExperts)
	}
	if c.NGroup > 0 && c.NRoutedExperts > 0 {
		switch {
		case c.NRoutedExperts%c.NGroup != 0:
			bad("n_group", "n_routed_experts (%d) is not a multiple of %d", c.NRoutedExperts, c.NGroup)
		case c.TopkGroup < 1 || c.TopkGroup > c.NGroup:
			bad("topk_group", "%d is not between 1 and n_group (%d)", c.TopkGroup, c.NGroup)
		case c.NumExpertsPerTok > c.TopkGroup*(c.NRoutedExperts/c.NGroup):
			bad("num_experts_per_tok", "%d experts cannot come from topk_group (%d) groups of %d", c.NumExpertsPerTok, c.TopkGroup, c.NRoutedExperts/c.NGroup)
		}
	} else if c.NGroup == 0 && c.TopkGroup != 0 {
		bad("topk_group", "is %d but n_group is not set", c.TopkGroup)
	}
	oneOf("topk_method", c.TopkMethod, "greedy", "group_limited_greedy", "noaux_tc")
	if (c.TopkMethod == "group_limited_greedy" || c.TopkMethod == "noaux_tc") && c.NGroup == 0 {
		bad("n_group", "must be set for topk_method %q", c.TopkMethod)
	}
	oneOf("scoring_func", c.ScoringFunc, "softmax", "sigmoid")
	if c.HiddenAct != "" {
		oneOf("hidden_act", c.HiddenAct, "silu")
	}
	if c.FirstKDenseReplace > c.NumHiddenLayers && c.NumHiddenLayers > 0 {
		bad("first_k_dense_replace", "%d is more than num_hidden_layers (%d)", c.FirstKDenseReplace, c.NumHiddenLayers)
	}

	if r := c.RopeScaling; r != nil {
		oneOf("rope_scaling.type", r.Type, "yarn", "linear", "dynamic")
		positiveFloat("rope_scaling.factor", r.Factor)
		if r.Type == "yarn" {
			positive("rope_scaling.original_max_position_embeddings", r.OriginalMaxPositionEmbeddings)
		}
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
		if len(q.WeightBlockSize) != 2 {
			bad("quantization_config.weight_block_size", "has %d elements, want [rows, cols]", len(q.WeightBlockSize))
		} else {
			positive("quantization_config.weight_block_size[0]", q.WeightBlockSize[0])
			positive("quantization_config.weight_block_size[1]", q.WeightBlockSize[1])
		}
		if q.ActivationScheme != "" && q.ActivationScheme != "dynamic" {
			bad("quantization_config.activation_scheme", "%q is not supported, want \"dynamic\"", q.ActivationScheme)
		}
	}
	return ck.err()
}

// checker collects a config's field errors, each a FormatError naming the
// field.
type checker struct {
	path string
	errs []error
}

func (c *checker) bad(field, format string, args ...any) {
	c.errs = append(c.errs, &FormatError{Path: c.path, Item: field, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) positive(field string, v int) {
	switch {
	case v <= 0:
		c.bad(field, "must be positive, got %d", v)
	case v > maxSize:
		c.bad(field, "%d is too large", v)
	}
}

func (c *checker) nonNegative(field string, v int) {
	switch {
	case v < 0:
		c.bad(field, "must not be negative, got %d", v)
	case v > maxSize:
		c.bad(field, "%d is too large", v)
	}
}

func (c *checker) positiveFloat(field string, v float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		c.bad(field, "must be a positive number, got %v", v)
	}
}

func (c *checker) oneOf(field, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		c.bad(field, "%q is not one of %q", v, allowed)
	}
}

func (c *checker) err() error { return errors.Join(c.errs...) }
