package deepseekv4

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/convert"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// ConvertDir lays a DeepSeek-V4 Hugging Face directory out as llama.cpp's
// converter does for deepseek4 (spec §5.5): the deepseek4.* metadata keys
// and general.architecture (no general.file_type, no tokenizer), and every
// tensor the model reads, by GGUF name, in the order Load reads them, each
// loaded only when convert asks for it: FP8 and FP4 weights in their
// stored form (convert decodes them), tid2eid as I32, no transposes. The
// names and checks are hf.go's, the very mapping LoadDir uses. MTP blocks
// are left out, as llama.cpp's converter drops every mtp.* tensor. Every
// tensor is found and checked before ConvertDir returns; errors name the
// tensor and its file.
func ConvertDir(m *safetensors.Model, cfg *safetensors.Config) ([]gguf.KV, []convert.Tensor, error) {
	p, err := paramsFromConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", m.Dir(), err)
	}
	if err := checkLayers(m, p.Layers, p.NextN); err != nil {
		return nil, nil, err
	}
	p.NextN = 0 // no MTP blocks
	src := &hfSource{m: m, p: p, block: cfg.V4BlockSize()}
	var list convert.Lister
	w := weights{src: src, b: &list}
	build(p, &w)
	if w.err != nil {
		return nil, nil, w.err
	}
	tensors := make([]convert.Tensor, len(list.Got))
	for i, g := range list.Got {
		shape := g.Shape
		if strings.HasSuffix(g.Name, "attn_output_a.weight") {
			// Handed over as [G, Lo, in]; stored as one [G·Lo, in] matrix.
			shape = []int{shape[0] * shape[1], shape[2]}
		}
		tensors[i] = convert.Tensor{
			Name: g.Name, Shape: shape, DType: g.DType,
			Load: func() ([]engine.WeightPart, error) { return loadParts(src, g.Name, shape) },
		}
	}
	return ggufKVs(p, cfg), tensors, nil
}

// loadParts loads one tensor's parts from src, as the backend would get
// them.
func loadParts(src source, name string, shape []int) ([]engine.WeightPart, error) {
	one := convert.Lister{Keep: true}
	if _, _, _, err := src.load(&one, name, shape, shape); err != nil {
		return nil, fmt.Errorf("deepseekv4: %w", err)
	}
	if len(one.Got) != 1 {
		return nil, fmt.Errorf("deepseekv4: tensor %q: loaded %d times", name, len(one.Got))
	}
	return one.Got[0].Parts, nil
}

// ggufKVs are the deepseek4 keys llama.cpp reads, in the order testmodel's
// V4 writer (which follows llama.cpp's converter) writes them.
func ggufKVs(p Params, cfg *safetensors.Config) []gguf.KV {
	var kvs []gguf.KV
	add := func(k string, v any) { kvs = append(kvs, gguf.KV{Key: "deepseek4." + k, Value: v}) }
	u := func(v int) uint32 { return uint32(v) }
	kvs = append(kvs, gguf.KV{Key: "general.architecture", Value: "deepseek4"})
	add("context_length", u(p.Context))
	add("embedding_length", u(p.Hidden))
	add("embedding_length_out", u(p.Hidden*p.HCMult))
	add("block_count", u(p.Layers))
	add("vocab_size", u(p.Vocab))
	add("attention.head_count", u(p.Heads))
	add("attention.head_count_kv", uint32(1))
	add("attention.key_length", u(p.HeadDim))
	add("attention.value_length", u(p.HeadDim))
	add("attention.layer_norm_rms_epsilon", p.Eps)
	add("attention.q_lora_rank", u(p.QLoRA))
	add("attention.output_group_count", u(p.OGroups))
	add("attention.output_lora_rank", u(p.OLoRA))
	add("attention.sliding_window", u(p.Window))
	// All of config.json's entries, the MTP blocks' included, as the
	// converter writes them.
	ratios := make([]int32, len(cfg.CompressRatios))
	for i, r := range cfg.CompressRatios {
		ratios[i] = int32(r)
	}
	add("attention.compress_ratios", ratios)
	add("attention.compress_rope_freq_base", p.CompressBase)
	add("attention.indexer.head_count", u(p.IndexHeads))
	add("attention.indexer.key_length", u(p.IndexHeadDim))
	add("attention.indexer.top_k", u(p.IndexTopK))
	add("rope.dimension_count", u(p.RopeDim))
	add("rope.freq_base", p.RopeBase)
	if p.YarnFactor > 1 {
		add("rope.scaling.type", "yarn")
		add("rope.scaling.factor", p.YarnFactor)
		add("rope.scaling.original_context_length", u(p.YarnOrigContext))
		add("rope.scaling.yarn_beta_fast", p.YarnBetaFast)
		add("rope.scaling.yarn_beta_slow", p.YarnBetaSlow)
	}
	add("expert_feed_forward_length", u(p.ExpertFFN))
	add("expert_count", u(p.Experts))
	add("expert_used_count", u(p.ExpertsUsed))
	add("expert_shared_count", u(p.Shared))
	add("expert_weights_scale", p.RoutedScale)
	add("expert_weights_norm", p.NormTopK)
	add("expert_gating_func", uint32(gatingSqrtSoftplus))
	add("hash_layer_count", u(p.HashLayers))
	add("swiglu_clamp_exp", slices.Clone(p.ClampExp))
	add("swiglu_clamp_shexp", slices.Clone(p.ClampShared))
	add("hyper_connection.count", u(p.HCMult))
	add("hyper_connection.sinkhorn_iterations", u(p.HCIters))
	add("hyper_connection.epsilon", p.HCEps)
	return kvs
}
