package deepseekv3

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/arch/internal/ggufkeys"
	"github.com/ulan-ai/ulan/engine/gguf"
)

func blk(i int, name string) string { return "blk." + strconv.Itoa(i) + "." + name }

// source is where a model's weights come from: a GGUF file or a Hugging
// Face directory. Weights are asked for by their GGUF names (names.go maps
// them to Hugging Face's) and row-major shapes.
type source interface {
	// has reports whether the weight exists.
	has(name string) bool
	// load makes the backend tensor of a weight, checking its shape and
	// type, and returns it with its parameter count and stored bytes.
	load(b engine.Backend, name string, shape []int) (t engine.Tensor, params, bytes uint64, err error)
}

// weights loads tensors from a source, keeping the first error, which
// names the tensor (and, for a directory, the file).
type weights struct {
	src   source
	b     engine.Backend
	err   error
	total uint64 // parameters
	bytes uint64 // stored bytes of all weights
	// routedBytes and embedBytes are the stored bytes of the routed experts
	// and of the embedding table.
	routedBytes, embedBytes uint64
}

func (w *weights) get(name string, shape ...int) engine.Tensor {
	if w.err != nil {
		return nil
	}
	t, params, size, err := w.src.load(w.b, name, shape)
	if err != nil {
		w.err = fmt.Errorf("deepseekv3: %w", err)
		return nil
	}
	w.total += params
	w.bytes += size
	switch {
	case strings.HasSuffix(name, "_exps.weight"):
		w.routedBytes += size
	case name == "token_embd.weight":
		w.embedBytes += size
	}
	return t
}

// ggufSource reads weights from a GGUF file, noting which it loaded.
type ggufSource struct {
	f    *gguf.File
	used map[string]bool
}

func (s ggufSource) has(name string) bool {
	_, ok := s.f.Tensor(name)
	return ok
}

// load checks each shape (given row-major, outermost first; GGUF lists it
// the other way round, trap 20).
func (s ggufSource) load(b engine.Backend, name string, shape []int) (engine.Tensor, uint64, uint64, error) {
	dims := make([]uint64, len(shape))
	for i, d := range shape {
		dims[len(shape)-1-i] = uint64(d)
	}
	ti, err := s.f.ExpectOneOf(name, nil, dims...)
	if err != nil {
		return nil, 0, 0, err
	}
	s.used[name] = true
	dt, ok := ggufkeys.DTypes[ti.Type]
	if !ok {
		return nil, 0, 0, fmt.Errorf("tensor %q: type %v is not supported yet (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)", name, ti.Type)
	}
	// Norms, biases and the router feed f32 arithmetic directly.
	if len(shape) == 1 && dt != engine.F32 {
		return nil, 0, 0, fmt.Errorf("tensor %q: type %v, want f32 for a vector", name, ti.Type)
	}
	t, err := b.Weight(name, dt, slices.Clone(shape), s.f.Data(ti))
	if err != nil {
		return nil, 0, 0, err
	}
	if c, ok := t.(engine.DataCopier); ok && c.CopiedData() {
		s.f.Release(ti)
	}
	return t, ti.NumElements(), ti.Size, nil
}

// checkUnused fails for a tensor of f that the model did not load, as
// llama.cpp's loader does ("wrong number of tensors"): a tensor left over
// means the metadata describes another model than the file holds, and
// loading what the metadata names would run that other model without a
// word (a block_count of 2 over 3 stored blocks loads a shallower model).
// Two kinds are let through: the unsplit attn_kv_b that files of older
// converters (and ik_llama.cpp's) carry beside attn_k_b and attn_v_b, and
// the blocks of the nextn_predict_layers MTP layers after the decoder
// blocks, which Forward does not use.
func checkUnused(f *gguf.File, p Params, used map[string]bool) error {
	nextn := 0
	if arch, err := f.Arch(); err == nil {
		if v, err := f.Uint32(arch + ".nextn_predict_layers"); err == nil {
			nextn = int(min(v, 1<<16))
		}
	}
	for _, t := range f.Tensors() {
		if used[t.Name] {
			continue
		}
		i, rest, ok := splitBlk(t.Name)
		if ok && (rest == "attn_kv_b.weight" || i >= p.Layers && i < p.Layers+nextn) {
			continue
		}
		return fmt.Errorf("deepseekv3: tensor %q is not part of a deepseek2 model of %d blocks (block_count) as the metadata describes it", t.Name, p.Layers)
	}
	return nil
}

// info describes the model; active parameters count what one token reads:
// everything but the routed experts, plus ExpertsUsed of them per MoE layer
// (the embedding counts one row).
func info(arch, name string, p Params, w *weights) engine.Info {
	total := w.total
	E, X, F := uint64(p.Hidden), uint64(p.Experts), uint64(p.ExpertFFN)
	moeLayers := uint64(p.Layers - p.DenseLayers)
	routed := moeLayers * X * 3 * E * F
	activeRouted := moeLayers * uint64(p.ExpertsUsed) * 3 * E * F
	embed := uint64(p.Vocab) * E
	active := total - routed + activeRouted - embed + E
	activeBytes := w.bytes - w.routedBytes - w.embedBytes + w.embedBytes/uint64(max(p.Vocab, 1))
	if p.Experts > 0 {
		activeBytes += w.routedBytes / uint64(p.Experts) * uint64(p.ExpertsUsed)
	}
	yesno := func(b bool) string { return strconv.FormatBool(b) }
	i := func(v int) string { return strconv.Itoa(v) }
	fl := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	scoring := "softmax"
	if p.Scoring == engine.Sigmoid {
		scoring = "sigmoid"
	}
	return engine.Info{
		Architecture: arch,
		Name:         name,
		Vocab:        p.Vocab,
		Context:      p.Context,
		Layers:       p.Layers,
		TotalParams:  total,
		ActiveParams: active,
		ActiveBytes:  activeBytes,
		Params: [][2]string{
			{"hidden_size", i(p.Hidden)}, {"num_hidden_layers", i(p.Layers)}, {"first_k_dense_replace", i(p.DenseLayers)},
			{"intermediate_size", i(p.DenseFFN)}, {"moe_intermediate_size", i(p.ExpertFFN)},
			{"num_attention_heads", i(p.Heads)}, {"q_lora_rank", i(p.QLoRA)}, {"kv_lora_rank", i(p.KVLoRA)},
			{"qk_nope_head_dim", i(p.NopeDim)}, {"qk_rope_head_dim", i(p.RopeDim)}, {"v_head_dim", i(p.ValueDim)},
			{"n_routed_experts", i(p.Experts)}, {"num_experts_per_tok", i(p.ExpertsUsed)}, {"n_shared_experts", i(p.Shared)},
			{"n_group", i(p.Groups)}, {"topk_group", i(p.GroupsUsed)}, {"scoring_func", scoring},
			{"norm_topk_prob", yesno(p.NormTopK)}, {"routed_scaling_factor", fl(p.RoutedScale)},
			{"rms_norm_eps", fl(p.Eps)}, {"max_position_embeddings", i(p.Context)}, {"rope_theta", fl(p.RopeBase)},
			{"rope_scaling.factor", fl(p.YarnFactor)}, {"rope_scaling.original_max_position_embeddings", i(p.YarnOrigContext)},
			{"rope_scaling.mscale_all_dim", fl(p.MscaleAllDim)}, {"vocab_size", i(p.Vocab)},
			{"softmax_scale", fl(p.KQScale())},
		},
	}
}
