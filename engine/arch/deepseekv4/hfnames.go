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
