package safetensors

import (
	"strconv"
	"strings"
)

// Tensor names of DeepSeek V2, V2-Lite, V3 and R1 checkpoints on Hugging
// Face, with PyTorch shapes ([out_features, in_features] for a linear
// weight). H is hidden_size, V vocab_size, n num_attention_heads, r
// qk_rope_head_dim, d qk_nope_head_dim, v v_head_dim, c kv_lora_rank,
// q q_lora_rank, E n_routed_experts, m moe_intermediate_size, s
// n_shared_experts, I intermediate_size.
//
//	model.embed_tokens.weight                            [V, H]
//	model.norm.weight                                    [H]
//	lm_head.weight                                       [V, H]   absent if tie_word_embeddings
//
// Each decoder layer i < num_hidden_layers, under LayerPrefix(i) =
// "model.layers.i.":
//
//	input_layernorm.weight                               [H]
//	post_attention_layernorm.weight                      [H]
//	self_attn.q_a_proj.weight                            [q, H]        } with q_lora_rank
//	self_attn.q_a_layernorm.weight                       [q]           }
//	self_attn.q_b_proj.weight                            [n(d+r), q]   }
//	self_attn.q_proj.weight                              [n(d+r), H]   q_lora_rank null (V2-Lite)
//	self_attn.kv_a_proj_with_mqa.weight                  [c+r, H]
//	self_attn.kv_a_layernorm.weight                      [c]
//	self_attn.kv_b_proj.weight                           [n(d+v), c]
//	self_attn.o_proj.weight                              [H, nv]
//
// A dense layer (i < first_k_dense_replace) has
//
//	mlp.gate_proj.weight, mlp.up_proj.weight             [I, H]
//	mlp.down_proj.weight                                 [H, I]
//
// and an MoE layer (Config.IsMoELayer) has
//
//	mlp.gate.weight                                      [E, H]   the router
//	mlp.gate.e_score_correction_bias                     [E]      topk_method noaux_tc (V3), F32
//	mlp.experts.j.gate_proj.weight, ….up_proj.weight     [m, H]   for each expert j < E
//	mlp.experts.j.down_proj.weight                       [H, m]
//	mlp.shared_experts.gate_proj.weight, ….up_proj.weight [sm, H] with n_shared_experts > 0
//	mlp.shared_experts.down_proj.weight                  [H, sm]
//
// FP8 checkpoints (Config.QuantizationConfig) store the attention and MLP
// projections (every *_proj and *_proj_with_mqa weight above, marked
// WeightSpec.Projection; not the router, norms, embedding or lm_head) as
// F8_E4M3, each with an F32 ScaleName(weight) tensor of shape
// ScaleShape(rows, cols, 128, 128). A loader should go by the dtype in the
// file: an F8_E4M3 weight needs its scale, whatever the list above says.
//
// V3 and R1 also store num_nextn_predict_layers multi-token-prediction
// layers after the decoder layers, as model.layers.61 in V3: a full MoE
// decoder layer plus embed_tokens.weight, enorm.weight, hnorm.weight,
// eh_proj.weight [H, 2H], shared_head.norm.weight and shared_head.head.weight.
// Inference without speculative decoding skips them: see IsMTPTensor.
const (
	// EmbedTokens is the token embedding, [vocab_size, hidden_size].
	EmbedTokens = "model.embed_tokens.weight"
	// FinalNorm is the RMSNorm after the last layer, [hidden_size].
	FinalNorm = "model.norm.weight"
	// LMHead is the output projection, [vocab_size, hidden_size].
	LMHead = "lm_head.weight"
	// ScaleSuffix turns an FP8 weight's name into its scale's name.
	ScaleSuffix = "_scale_inv"
)

// layersPrefix starts the name of every per-layer tensor.
const layersPrefix = "model.layers."

// LayerPrefix returns the prefix of layer i's tensors, "model.layers.i.".
func LayerPrefix(layer int) string { return layersPrefix + strconv.Itoa(layer) + "." }

// ExpertPrefix returns the prefix of routed expert j of layer i,
// "model.layers.i.mlp.experts.j.".
func ExpertPrefix(layer, expert int) string {
	return LayerPrefix(layer) + "mlp.experts." + strconv.Itoa(expert) + "."
}

// ScaleName returns the name of the block scales of an FP8 weight:
// "….q_a_proj.weight" gives "….q_a_proj.weight_scale_inv".
func ScaleName(weight string) string { return weight + ScaleSuffix }

// ScaleShape returns the shape of the block scales of a [rows, cols] FP8
// weight quantized in blockRows×blockCols blocks: one scale per block,
// [ceil(rows/blockRows), ceil(cols/blockCols)]. The blocks must be
// positive.
func ScaleShape(rows, cols, blockRows, blockCols int) []int {
	return []int{(rows + blockRows - 1) / blockRows, (cols + blockCols - 1) / blockCols}
}

// LayerOf returns the layer index of a per-layer tensor name
// ("model.layers.12.mlp.gate.weight" gives 12) and whether name is one.
func LayerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, layersPrefix)
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok || num == "" || (len(num) > 1 && num[0] == '0') {
		return 0, false
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || strconv.Itoa(i) != num {
		return 0, false
	}
	return i, true
}

// IsMoELayer reports whether decoder layer i has routed experts, as
// transformers decides it: n_routed_experts > 0, i ≥ first_k_dense_replace
// and i a multiple of moe_layer_freq (0 counts as 1). MTP layers are MoE
// layers too.
func (c *Config) IsMoELayer(layer int) bool {
	freq := max(c.MoELayerFreq, 1)
	return c.NRoutedExperts > 0 && layer >= c.FirstKDenseReplace && layer%freq == 0
}

// IsMTPLayer reports whether layer i is a multi-token-prediction layer:
// num_hidden_layers ≤ i < num_hidden_layers + num_nextn_predict_layers
// (layer 61 in V3 and R1).
func (c *Config) IsMTPLayer(layer int) bool {
	return layer >= c.NumHiddenLayers && layer < c.NumHiddenLayers+c.NumNextNPredictLayers
}

// IsMTPTensor reports whether the named tensor belongs to an MTP layer, so
// that a loader can skip it.
func (c *Config) IsMTPTensor(name string) bool {
	i, ok := LayerOf(name)
	return ok && c.IsMTPLayer(i)
}

// WeightSpec is one tensor a checkpoint should have.
type WeightSpec struct {
	// Name is the Hugging Face name.
	Name string
	// Shape is the PyTorch shape, outermost first.
	Shape []int
	// Projection marks a linear projection: FP8 checkpoints store it as
	// F8_E4M3 with a ScaleName(Name) tensor beside it.
	Projection bool
}

// Weights lists the tensors of the model without its MTP layers and without
// FP8 scales: the embedding, each layer's LayerWeights, the final norm and
// lm_head (unless tie_word_embeddings). c should be valid (see Validate).
func (c *Config) Weights() []WeightSpec {
	out := []WeightSpec{{Name: EmbedTokens, Shape: []int{c.VocabSize, c.HiddenSize}}}
	for i := range c.NumHiddenLayers {
		out = append(out, c.LayerWeights(i)...)
	}
	out = append(out, WeightSpec{Name: FinalNorm, Shape: []int{c.HiddenSize}})
	if !c.TieWordEmbeddings {
		out = append(out, WeightSpec{Name: LMHead, Shape: []int{c.VocabSize, c.HiddenSize}})
	}
	return out
}

// LayerWeights lists the tensors of decoder layer i (the MTP-only tensors
// excepted): norms, attention, then the dense MLP or the router, experts
// and shared experts.
func (c *Config) LayerWeights(layer int) []WeightSpec {
	p := LayerPrefix(layer)
	h := c.HiddenSize
	heads := c.NumAttentionHeads
	qk := c.QKNopeHeadDim + c.QKRopeHeadDim
	vec := func(name string, n int) WeightSpec { return WeightSpec{Name: p + name, Shape: []int{n}} }
	mat := func(name string, rows, cols int) WeightSpec {
		return WeightSpec{Name: p + name, Shape: []int{rows, cols}, Projection: true}
	}

	out := []WeightSpec{vec("input_layernorm.weight", h), vec("post_attention_layernorm.weight", h)}
	if c.QLoRARank != nil {
		q := *c.QLoRARank
		out = append(out,
			mat("self_attn.q_a_proj.weight", q, h),
			vec("self_attn.q_a_layernorm.weight", q),
			mat("self_attn.q_b_proj.weight", heads*qk, q))
	} else {
		out = append(out, mat("self_attn.q_proj.weight", heads*qk, h))
	}
	out = append(out,
		mat("self_attn.kv_a_proj_with_mqa.weight", c.KVLoRARank+c.QKRopeHeadDim, h),
		vec("self_attn.kv_a_layernorm.weight", c.KVLoRARank),
		mat("self_attn.kv_b_proj.weight", heads*(c.QKNopeHeadDim+c.VHeadDim), c.KVLoRARank),
		mat("self_attn.o_proj.weight", h, heads*c.VHeadDim))

	if !c.IsMoELayer(layer) {
		return append(out,
			mat("mlp.gate_proj.weight", c.IntermediateSize, h),
			mat("mlp.up_proj.weight", c.IntermediateSize, h),
			mat("mlp.down_proj.weight", h, c.IntermediateSize))
	}
	e, m := c.NRoutedExperts, c.MoEIntermediateSize
	out = append(out, WeightSpec{Name: p + "mlp.gate.weight", Shape: []int{e, h}})
	if c.TopkMethod == "noaux_tc" {
		out = append(out, vec("mlp.gate.e_score_correction_bias", e))
	}
	for j := range e {
		x := "mlp.experts." + strconv.Itoa(j) + "."
		out = append(out,
			mat(x+"gate_proj.weight", m, h),
			mat(x+"up_proj.weight", m, h),
			mat(x+"down_proj.weight", h, m))
	}
	if s := c.NSharedExperts * m; s > 0 {
		out = append(out,
			mat("mlp.shared_experts.gate_proj.weight", s, h),
			mat("mlp.shared_experts.up_proj.weight", s, h),
			mat("mlp.shared_experts.down_proj.weight", h, s))
	}
	return out
}
