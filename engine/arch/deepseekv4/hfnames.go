package deepseekv4

import (
	"strconv"
	"strings"
)

// DeepSeek-V4's release checkpoint names its tensors without a "model."
// prefix (spec §5.1): embed, head, norm, hc_head_* and layers.L.*, and the
// MTP blocks as mtp.K.*. The directory loader asks for weights by the GGUF
// names llama.cpp's converter writes (spec §5.5), which these tables map.

// hfGlobalNames maps the tensors outside the blocks.
var hfGlobalNames = map[string]string{
	"token_embd.weight":      "embed.weight",
	"output_norm.weight":     "norm.weight",
	"output.weight":          "head.weight",
	"output_hc_fn.weight":    "hc_head_fn",
	"output_hc_base.weight":  "hc_head_base",
	"output_hc_scale.weight": "hc_head_scale",
}

// hfLayerNames maps a block's GGUF names (after "blk.N.") to the release's
// (after "layers.N." or, for an MTP block, "mtp.K."). The routed experts
// (one tensor per expert, stacked in GGUF) and the MTP block's eh_proj
// (e_proj and h_proj in the release) are not one-to-one and are handled
// by the directory source.
var hfLayerNames = map[string]string{
	"attn_norm.weight":               "attn_norm.weight",
	"attn_sinks.weight":              "attn.attn_sink",
	"attn_q_a.weight":                "attn.wq_a.weight",
	"attn_q_a_norm.weight":           "attn.q_norm.weight",
	"attn_q_b.weight":                "attn.wq_b.weight",
	"attn_kv.weight":                 "attn.wkv.weight",
	"attn_kv_a_norm.weight":          "attn.kv_norm.weight",
	"attn_output_a.weight":           "attn.wo_a.weight",
	"attn_output_b.weight":           "attn.wo_b.weight",
	"hc_attn_fn.weight":              "hc_attn_fn",
	"hc_attn_base.weight":            "hc_attn_base",
	"hc_attn_scale.weight":           "hc_attn_scale",
	"hc_ffn_fn.weight":               "hc_ffn_fn",
	"hc_ffn_base.weight":             "hc_ffn_base",
	"hc_ffn_scale.weight":            "hc_ffn_scale",
	"attn_compressor_kv.weight":      "attn.compressor.wkv.weight",
	"attn_compressor_gate.weight":    "attn.compressor.wgate.weight",
	"attn_compressor_ape.weight":     "attn.compressor.ape",
	"attn_compressor_norm.weight":    "attn.compressor.norm.weight",
	"indexer.attn_q_b.weight":        "attn.indexer.wq_b.weight",
	"indexer.proj.weight":            "attn.indexer.weights_proj.weight",
	"indexer_compressor_kv.weight":   "attn.indexer.compressor.wkv.weight",
	"indexer_compressor_gate.weight": "attn.indexer.compressor.wgate.weight",
	"indexer_compressor_ape.weight":  "attn.indexer.compressor.ape",
	"indexer_compressor_norm.weight": "attn.indexer.compressor.norm.weight",
	"ffn_norm.weight":                "ffn_norm.weight",
	"ffn_gate_inp.weight":            "ffn.gate.weight",
	"exp_probs_b.bias":               "ffn.gate.bias",
	"ffn_gate_tid2eid.weight":        "ffn.gate.tid2eid",
	"ffn_gate_shexp.weight":          "ffn.shared_experts.w1.weight",
	"ffn_up_shexp.weight":            "ffn.shared_experts.w3.weight",
	"ffn_down_shexp.weight":          "ffn.shared_experts.w2.weight",
	// An MTP block's own tensors (llama.cpp's blk.N.nextn.*; the
	// hc_head ones have no GGUF name in llama.cpp and are named here after
	// its pattern).
	"nextn.enorm.weight":            "enorm.weight",
	"nextn.hnorm.weight":            "hnorm.weight",
	"nextn.shared_head_norm.weight": "norm.weight",
	"nextn.hc_head_fn.weight":       "hc_head_fn",
	"nextn.hc_head_base.weight":     "hc_head_base",
	"nextn.hc_head_scale.weight":    "hc_head_scale",
}

// hfExpertNames maps the stacked expert tensors to each expert's
// projection, after "layers.N.ffn.experts.E.".
var hfExpertNames = map[string]string{
	"ffn_gate_exps.weight": "w1.weight",
	"ffn_up_exps.weight":   "w3.weight",
	"ffn_down_exps.weight": "w2.weight",
}

// ehProjName is the GGUF name of an MTP block's input projection, which
// the release stores as two halves, e_proj (the embedding's) and h_proj
// (the hidden state's).
const ehProjName = "nextn.eh_proj.weight"

// splitBlk splits "blk.N.rest" into N and rest.
func splitBlk(name string) (int, string, bool) {
	if !strings.HasPrefix(name, "blk.") {
		return 0, "", false
	}
	num, rest, ok := strings.Cut(strings.TrimPrefix(name, "blk."), ".")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(num)
	return n, rest, err == nil && n >= 0
}

// hfBlockPrefix is the release prefix of block n: "layers.n." for a
// decoder block, "mtp.k." for MTP block k = n − layers.
func hfBlockPrefix(n, layers int) string {
	if n >= layers {
		return "mtp." + strconv.Itoa(n-layers) + "."
	}
	return "layers." + strconv.Itoa(n) + "."
}

// hfScaleName is the release name of a quantized weight's scale:
// "<module>.weight" → "<module>.scale".
func hfScaleName(weight string) string {
	return strings.TrimSuffix(weight, ".weight") + ".scale"
}

// hfName is the release name of a one-to-one GGUF tensor, or false for
// the stacked experts, eh_proj and unknown names.
func hfName(name string, layers int) (string, bool) {
	if n, ok := hfGlobalNames[name]; ok {
		return n, true
	}
	b, rest, ok := splitBlk(name)
	if !ok {
		return "", false
	}
	n, ok := hfLayerNames[rest]
	if !ok {
		return "", false
	}
	return hfBlockPrefix(b, layers) + n, true
}

// Hugging Face transformers' own module names for V4 (spec §5.3), which a
// state dict saved from its DeepseekV4ForCausalLM without
// save_pretrained's renaming carries: "model." before everything but
// lm_head (read with or without it), attn→self_attn, ffn→mlp, and the
// routed experts stacked per layer (experts.gate_up_proj [X, 2F, D], w1's
// rows then w3's; experts.down_proj [X, D, F]). They are read only where
// the release name is absent, and only for the decoder (transformers
// keeps no MTP block).

// tfGlobalNames maps the tensors outside the blocks (after "model.",
// except lm_head).
var tfGlobalNames = map[string]string{
	"token_embd.weight":      "embed_tokens.weight",
	"output_norm.weight":     "norm.weight",
	"output.weight":          "lm_head.weight",
	"output_hc_fn.weight":    "hc_head.hc_fn",
	"output_hc_base.weight":  "hc_head.hc_base",
	"output_hc_scale.weight": "hc_head.hc_scale",
}

// tfLayerNames maps a block's GGUF names (after "blk.N.") to
// transformers' (after "layers.N.").
var tfLayerNames = map[string]string{
	"attn_norm.weight":               "input_layernorm.weight",
	"attn_sinks.weight":              "self_attn.sinks",
	"attn_q_a.weight":                "self_attn.q_a_proj.weight",
	"attn_q_a_norm.weight":           "self_attn.q_a_norm.weight",
	"attn_q_b.weight":                "self_attn.q_b_proj.weight",
	"attn_kv.weight":                 "self_attn.kv_proj.weight",
	"attn_kv_a_norm.weight":          "self_attn.kv_norm.weight",
	"attn_output_a.weight":           "self_attn.o_a_proj.weight",
	"attn_output_b.weight":           "self_attn.o_b_proj.weight",
	"hc_attn_fn.weight":              "attn_hc.fn",
	"hc_attn_base.weight":            "attn_hc.base",
	"hc_attn_scale.weight":           "attn_hc.scale",
	"hc_ffn_fn.weight":               "ffn_hc.fn",
	"hc_ffn_base.weight":             "ffn_hc.base",
	"hc_ffn_scale.weight":            "ffn_hc.scale",
	"attn_compressor_kv.weight":      "self_attn.compressor.kv_proj.weight",
	"attn_compressor_gate.weight":    "self_attn.compressor.gate_proj.weight",
	"attn_compressor_ape.weight":     "self_attn.compressor.position_bias",
	"attn_compressor_norm.weight":    "self_attn.compressor.kv_norm.weight",
	"indexer.attn_q_b.weight":        "self_attn.compressor.indexer.q_b_proj.weight",
	"indexer.proj.weight":            "self_attn.compressor.indexer.weights_proj.weight",
	"indexer_compressor_kv.weight":   "self_attn.compressor.indexer.kv_proj.weight",
	"indexer_compressor_gate.weight": "self_attn.compressor.indexer.gate_proj.weight",
	"indexer_compressor_ape.weight":  "self_attn.compressor.indexer.position_bias",
	"indexer_compressor_norm.weight": "self_attn.compressor.indexer.kv_norm.weight",
	"ffn_norm.weight":                "post_attention_layernorm.weight",
	"ffn_gate_inp.weight":            "mlp.gate.weight",
	"exp_probs_b.bias":               "mlp.gate.e_score_correction_bias",
	"ffn_gate_tid2eid.weight":        "mlp.gate.tid2eid",
	"ffn_gate_shexp.weight":          "mlp.shared_experts.gate_proj.weight",
	"ffn_up_shexp.weight":            "mlp.shared_experts.up_proj.weight",
	"ffn_down_shexp.weight":          "mlp.shared_experts.down_proj.weight",
}

// tfExperts maps the stacked expert tensors to transformers' stacked
// tensor (after "layers.N.mlp.experts.") and which half of its rows they
// are (0: all, 1: the first, 2: the second).
var tfExperts = map[string]struct {
	name string
	half int
}{
	"ffn_gate_exps.weight": {"gate_up_proj", 1},
	"ffn_up_exps.weight":   {"gate_up_proj", 2},
	"ffn_down_exps.weight": {"down_proj", 0},
}

// tfName is transformers' name of a one-to-one GGUF tensor of a decoder
// block or outside the blocks, without the "model." prefix (lm_head never
// has it), or false.
func tfName(name string, layers int) (string, bool) {
	if n, ok := tfGlobalNames[name]; ok {
		return n, true
	}
	b, rest, ok := splitBlk(name)
	if !ok || b >= layers {
		return "", false
	}
	n, ok := tfLayerNames[rest]
	if !ok {
		return "", false
	}
	return "layers." + strconv.Itoa(b) + "." + n, true
}
