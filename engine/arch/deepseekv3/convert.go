package deepseekv3

import (
	"fmt"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/convert"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// ConvertDir lays a Hugging Face directory out as llama.cpp's
// convert_hf_to_gguf.py does for deepseek2: the deepseek2.* metadata keys
// and general.architecture (no general.file_type, no tokenizer), and every
// tensor the model reads, by GGUF name and in the order Load reads them,
// each loaded only when convert asks for it. The names, the stacked experts
// and the kv_b_proj split are hf.go's and names.go's, the very mapping
// LoadDir uses. MTP layers are left out, as the converter's skip_mtp does
// for deepseek2. Every tensor is found and checked (shape, type, FP8
// scales) before ConvertDir returns; errors name the tensor and its file.
func ConvertDir(m *safetensors.Model, cfg *safetensors.Config) ([]gguf.KV, []convert.Tensor, error) {
	p, err := paramsFromConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", m.Dir(), err)
	}
	if err := checkLayers(m, p.Layers+max(cfg.NumNextNPredictLayers, 0)); err != nil {
		return nil, nil, err
	}
	src := &hfSource{m: m, p: p}
	var list convert.Lister
	w := weights{src: src, b: &list}
	build(p, &w)
	if w.err != nil {
		return nil, nil, w.err
	}
	tensors := make([]convert.Tensor, len(list.Got))
	for i, g := range list.Got {
		tensors[i] = convert.Tensor{
			Name: g.Name, Shape: g.Shape, DType: g.DType,
			Load: func() ([]engine.WeightPart, error) { return loadParts(src, g.Name, g.Shape) },
		}
	}
	return ggufKVs(p), tensors, nil
}

// loadParts loads one tensor's parts from src, as the backend would get
// them.
func loadParts(src source, name string, shape []int) ([]engine.WeightPart, error) {
	one := convert.Lister{Keep: true}
	if _, _, _, err := src.load(&one, name, shape); err != nil {
		return nil, fmt.Errorf("deepseekv3: %w", err)
	}
	if len(one.Got) != 1 {
		return nil, fmt.Errorf("deepseekv3: tensor %q: loaded %d times", name, len(one.Got))
	}
	return one.Got[0].Parts, nil
}

// ggufKVs are the deepseek2 keys llama.cpp reads, written as
// convert_hf_to_gguf.py writes them (and as testmodel does).
func ggufKVs(p Params) []gguf.KV {
	var kvs []gguf.KV
	add := func(k string, v any) { kvs = append(kvs, gguf.KV{Key: "deepseek2." + k, Value: v}) }
	u := func(v int) uint32 { return uint32(v) }
	kvs = append(kvs, gguf.KV{Key: "general.architecture", Value: "deepseek2"})
	add("context_length", u(p.Context))
	add("embedding_length", u(p.Hidden))
	add("block_count", u(p.Layers))
	add("feed_forward_length", u(p.DenseFFN))
	add("attention.head_count", u(p.Heads))
	// MLA is served as MQA over the latent.
	add("attention.head_count_kv", uint32(1))
	add("attention.layer_norm_rms_epsilon", p.Eps)
	add("attention.q_lora_rank", u(p.QLoRA)) // 0: a plain q projection (V2-Lite)
	add("attention.kv_lora_rank", u(p.KVLoRA))
	add("attention.key_length", u(p.KVLoRA+p.RopeDim))
	add("attention.value_length", u(p.KVLoRA))
	add("attention.key_length_mla", u(p.NopeDim+p.RopeDim))
	add("attention.value_length_mla", u(p.ValueDim))
	add("rope.dimension_count", u(p.RopeDim))
	add("rope.freq_base", p.RopeBase)
	add("leading_dense_block_count", u(p.DenseLayers))
	add("vocab_size", u(p.Vocab))
	add("expert_feed_forward_length", u(p.ExpertFFN))
	add("expert_count", u(p.Experts))
	add("expert_used_count", u(p.ExpertsUsed))
	add("expert_shared_count", u(p.Shared))
	if p.Groups > 1 {
		add("expert_group_count", u(p.Groups))
		add("expert_group_used_count", u(p.GroupsUsed))
	}
	add("expert_weights_scale", p.RoutedScale)
	add("expert_weights_norm", p.NormTopK)
	// llama.cpp: 1 softmax, 2 sigmoid; absent means softmax, silently.
	gating := uint32(1)
	if p.Scoring == engine.Sigmoid {
		gating = 2
	}
	add("expert_gating_func", gating)
	if p.YarnFactor > 1 {
		add("rope.scaling.type", "yarn")
		add("rope.scaling.factor", p.YarnFactor)
		add("rope.scaling.original_context_length", u(p.YarnOrigContext))
		// convert_hf_to_gguf.py's TAG_DEEPSEEK2_YARN_LOG_MUL_FIX.
		add("rope.scaling.yarn_log_multiplier", 0.1*p.MscaleAllDim)
	}
	return kvs
}
