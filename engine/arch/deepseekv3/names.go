package deepseekv3

import (
	"strconv"
	"strings"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

// hfLayerNames maps a block's GGUF tensor names (after "blk.N.") to Hugging
// Face's (after "model.layers.N."), as llama.cpp's convert_hf_to_gguf.py
// names them for deepseek2. The routed experts (one HF tensor per expert,
// stacked in GGUF) and kv_b_proj (split into attn_k_b and attn_v_b) are
// not one-to-one and are handled by the directory source.
var hfLayerNames = map[string]string{
	"attn_norm.weight":      "input_layernorm.weight",
	"attn_q_a.weight":       "self_attn.q_a_proj.weight",
	"attn_q_a_norm.weight":  "self_attn.q_a_layernorm.weight",
	"attn_q_b.weight":       "self_attn.q_b_proj.weight",
	"attn_q.weight":         "self_attn.q_proj.weight",
	"attn_kv_a_mqa.weight":  "self_attn.kv_a_proj_with_mqa.weight",
	"attn_kv_a_norm.weight": "self_attn.kv_a_layernorm.weight",
	"attn_output.weight":    "self_attn.o_proj.weight",
	"ffn_norm.weight":       "post_attention_layernorm.weight",
	"ffn_gate.weight":       "mlp.gate_proj.weight",
	"ffn_up.weight":         "mlp.up_proj.weight",
	"ffn_down.weight":       "mlp.down_proj.weight",
	"ffn_gate_inp.weight":   "mlp.gate.weight",
	"exp_probs_b.bias":      "mlp.gate.e_score_correction_bias",
	"ffn_gate_shexp.weight": "mlp.shared_experts.gate_proj.weight",
	"ffn_up_shexp.weight":   "mlp.shared_experts.up_proj.weight",
	"ffn_down_shexp.weight": "mlp.shared_experts.down_proj.weight",
	// The multi-token-prediction layer's own tensors (llama.cpp's
	// blk.N.nextn.*).
	"nextn.enorm.weight":            "enorm.weight",
	"nextn.hnorm.weight":            "hnorm.weight",
	"nextn.eh_proj.weight":          "eh_proj.weight",
	"nextn.embed_tokens.weight":     "embed_tokens.weight",
	"nextn.shared_head_norm.weight": "shared_head.norm.weight",
	"nextn.shared_head_head.weight": "shared_head.head.weight",
}

// hfExpertNames maps the stacked expert tensors to each expert's
// projection under safetensors.ExpertPrefix.
var hfExpertNames = map[string]string{
	"ffn_gate_exps.weight": "gate_proj.weight",
	"ffn_up_exps.weight":   "up_proj.weight",
	"ffn_down_exps.weight": "down_proj.weight",
}

// hfGlobalNames maps the tensors outside the blocks.
var hfGlobalNames = map[string]string{
	"token_embd.weight":  safetensors.EmbedTokens,
	"output_norm.weight": safetensors.FinalNorm,
	"output.weight":      safetensors.LMHead,
}

// splitBlk splits "blk.N.rest" into N and rest.
func splitBlk(name string) (int, string, bool) {
	num, rest, ok := strings.Cut(strings.TrimPrefix(name, "blk."), ".")
	if !ok || !strings.HasPrefix(name, "blk.") {
		return 0, "", false
	}
	n, err := strconv.Atoi(num)
	return n, rest, err == nil && n >= 0
}

// hfName is the Hugging Face name of a one-to-one GGUF tensor, or false
// for experts, attn_k_b, attn_v_b and unknown names.
func hfName(name string) (string, bool) {
	if n, ok := hfGlobalNames[name]; ok {
		return n, true
	}
	layer, rest, ok := splitBlk(name)
	if !ok {
		return "", false
	}
	n, ok := hfLayerNames[rest]
	if !ok {
		return "", false
	}
	return safetensors.LayerPrefix(layer) + n, true
}
