package deepseekv3

import (
	"errors"
	"fmt"
	"math"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/arch/internal/ggufkeys"
	"github.com/ulan-ai/ulan/engine/gguf"
)

// Params are the hyperparameters of a DeepSeek-V2/V3-family model (spec
// §1.2), whatever file they came from.
type Params struct {
	Vocab       int
	Hidden      int // hidden_size, E
	Layers      int
	DenseLayers int // first_k_dense_replace
	DenseFFN    int // intermediate_size of the dense layers
	ExpertFFN   int // moe_intermediate_size, F
	Heads       int // H
	QLoRA       int // q_lora_rank; 0 means a plain q projection (V2-Lite)
	KVLoRA      int // kv_lora_rank, the latent width cached per token
	NopeDim     int // qk_nope_head_dim
	RopeDim     int // qk_rope_head_dim
	ValueDim    int // v_head_dim
	Experts     int // n_routed_experts, X
	ExpertsUsed int // num_experts_per_tok
	Shared      int // n_shared_experts
	Groups      int // n_group (≤ 1: no group limit)
	GroupsUsed  int // topk_group
	Scoring     engine.Scoring
	GroupScore  engine.GroupScore
	NormTopK    bool    // norm_topk_prob
	RoutedScale float32 // routed_scaling_factor
	Eps         float32 // rms_norm_eps
	Context     int     // max_position_embeddings
	RopeBase    float32
	// YaRN (rope_scaling); Factor ≤ 1 means none.
	YarnFactor      float32
	YarnOrigContext int
	YarnBetaFast    float32
	YarnBetaSlow    float32
	// MscaleAllDim is rope_scaling.mscale_all_dim: the softmax scale gets
	// m² with m = 0.1·MscaleAllDim·ln(factor) + 1 (spec §3.2).
	MscaleAllDim float32
}

// KQScale is the attention softmax scale: (nope+rope)^(−1/2)·m² (spec §3.2;
// trap 17: never 1/sqrt(kv_lora+rope)).
func (p Params) KQScale() float32 {
	m := float32(1)
	if p.YarnFactor > 1 {
		m = 1 + 0.1*p.MscaleAllDim*float32(math.Log(float64(p.YarnFactor)))
	}
	return m * m / float32(math.Sqrt(float64(p.NopeDim+p.RopeDim)))
}

// Rope is the rotary embedding of q_pe and k_pe: interleaved pairs, YaRN on
// every layer, cos and sin unscaled (spec §3.2).
func (p Params) Rope() engine.RopeSpec {
	return engine.RopeSpec{
		Dims:        p.RopeDim,
		Base:        p.RopeBase,
		Factor:      p.YarnFactor,
		OrigContext: p.YarnOrigContext,
		BetaFast:    p.YarnBetaFast,
		BetaSlow:    p.YarnBetaSlow,
	}
}

// Route is the router of the MoE layers.
func (p Params) Route() engine.RouteSpec {
	return engine.RouteSpec{
		Scoring:    p.Scoring,
		TopK:       p.ExpertsUsed,
		Groups:     p.Groups,
		TopKGroups: p.GroupsUsed,
		GroupScore: p.GroupScore,
		Normalize:  p.NormTopK,
		Scale:      p.RoutedScale,
	}
}

// CacheWidth is the values cached per token per layer: the latent and the
// rotated key (512 + 64 in V3).
func (p Params) CacheWidth() int { return p.KVLoRA + p.RopeDim }

// llama.cpp's expert_gating_func values.
const (
	gatingSoftmax = 1
	gatingSigmoid = 2
)

// paramsFromGGUF reads the deepseek2 keys (llamacpp-reference.md). A missing
// required key or an impossible value is an error naming the key.
func paramsFromGGUF(f *gguf.File) (Params, error) {
	arch, err := f.Arch()
	if err != nil {
		return Params{}, err
	}
	r := ggufkeys.New(f, arch, "deepseekv3")
	p := Params{
		Hidden:      r.U32("embedding_length", true),
		Layers:      r.U32("block_count", true),
		DenseLayers: r.U32("leading_dense_block_count", false),
		DenseFFN:    r.U32("feed_forward_length", false),
		ExpertFFN:   r.U32("expert_feed_forward_length", true),
		Heads:       r.U32("attention.head_count", true),
		QLoRA:       r.U32("attention.q_lora_rank", false),
		KVLoRA:      r.U32("attention.kv_lora_rank", true),
		RopeDim:     r.U32("rope.dimension_count", true),
		Experts:     r.U32("expert_count", false),
		ExpertsUsed: r.U32("expert_used_count", false),
		Shared:      r.U32("expert_shared_count", true),
		Groups:      r.U32("expert_group_count", false),
		GroupsUsed:  r.U32("expert_group_used_count", false),
		NormTopK:    r.Bool("expert_weights_norm"),
		RoutedScale: r.F32("expert_weights_scale", 1),
		Eps:         r.F32("attention.layer_norm_rms_epsilon", -1),
		Context:     r.U32("context_length", true),
		RopeBase:    r.F32("rope.freq_base", 10000),
		GroupScore:  engine.GroupTop2Sum, // what llama.cpp does for every deepseek2 file
	}
	keyK := r.U32("attention.key_length_mla", false)
	keyV := r.U32("attention.value_length_mla", false)
	if keyK == 0 || keyV == 0 {
		r.Fail("attention.key_length_mla", "missing: files with an unsplit attn_kv_b (older converters) are not supported; convert again with a current llama.cpp")
	}
	p.NopeDim, p.ValueDim = keyK-p.RopeDim, keyV
	switch g := r.U32("expert_gating_func", false); g {
	case 0, gatingSoftmax: // absent means softmax, as llama.cpp reads old V2 files
		p.Scoring = engine.Softmax
	case gatingSigmoid:
		p.Scoring = engine.Sigmoid
	default:
		r.Fail("expert_gating_func", fmt.Sprintf("%d is not softmax (1) or sigmoid (2)", g))
	}
	if t, err := f.String(r.Key("rope.scaling.type")); err == nil && t == "yarn" {
		p.YarnFactor = r.F32("rope.scaling.factor", -1)
		p.YarnOrigContext = r.U32("rope.scaling.original_context_length", true)
		p.YarnBetaFast = r.F32("rope.scaling.yarn_beta_fast", 32)
		p.YarnBetaSlow = r.F32("rope.scaling.yarn_beta_slow", 1)
		// The converter stores 0.1·mscale_all_dim (llama.cpp's
		// TAG_DEEPSEEK2_YARN_LOG_MUL_FIX keeps that for compatibility).
		p.MscaleAllDim = r.F32("rope.scaling.yarn_log_multiplier", 0) / 0.1
	}
	p.Vocab = ggufkeys.Vocab(r, f)
	if r.Err() != nil {
		return Params{}, r.Err()
	}
	return p, p.validate()
}

func (p Params) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("deepseekv3: "+format, args...))
		}
	}
	check(p.Vocab > 0, "vocabulary size unknown (no vocab_size key and no tokenizer.ggml.tokens)")
	check(p.Hidden > 0 && p.Layers > 0 && p.Heads > 0, "hidden %d, layers %d, heads %d must be positive", p.Hidden, p.Layers, p.Heads)
	check(p.RopeDim > 0 && p.RopeDim%2 == 0, "rope.dimension_count %d must be even and positive", p.RopeDim)
	check(p.NopeDim > 0 && p.ValueDim > 0 && p.KVLoRA > 0, "key_length_mla %d, value_length_mla %d, kv_lora_rank %d do not fit rope dimension %d", p.NopeDim+p.RopeDim, p.ValueDim, p.KVLoRA, p.RopeDim)
	check(p.DenseLayers <= p.Layers, "leading_dense_block_count %d > block_count %d", p.DenseLayers, p.Layers)
	if p.DenseLayers > 0 {
		check(p.DenseFFN > 0, "feed_forward_length must be set for %d dense layers", p.DenseLayers)
	}
	if p.DenseLayers < p.Layers {
		check(p.Experts > 0 && p.ExpertsUsed > 0 && p.ExpertsUsed <= p.Experts, "expert_used_count %d of expert_count %d", p.ExpertsUsed, p.Experts)
		if p.Groups > 1 {
			check(p.Experts%p.Groups == 0, "expert_count %d is not a multiple of expert_group_count %d", p.Experts, p.Groups)
			check(p.GroupsUsed > 0 && p.GroupsUsed <= p.Groups, "expert_group_used_count %d of %d groups", p.GroupsUsed, p.Groups)
			check(p.ExpertsUsed <= p.GroupsUsed*(p.Experts/max(p.Groups, 1)), "expert_used_count %d exceeds the experts of %d groups", p.ExpertsUsed, p.GroupsUsed)
		}
	}
	if p.DenseLayers < p.Layers {
		check(p.ExpertFFN > 0, "expert_feed_forward_length must be positive for %d MoE layers", p.Layers-p.DenseLayers)
	}
	check(p.Context > 0, "context_length must be positive")
	check(finitePositive(p.Eps), "attention.layer_norm_rms_epsilon %v must be positive", p.Eps)
	check(finitePositive(p.RopeBase), "rope.freq_base %v must be positive", p.RopeBase)
	check(finitePositive(p.RoutedScale), "expert_weights_scale %v must be positive", p.RoutedScale)
	if p.YarnFactor != 0 {
		check(p.YarnFactor >= 1 && !math.IsInf(float64(p.YarnFactor), 0) && p.YarnOrigContext > 0, "rope.scaling.factor %v with original context %d", p.YarnFactor, p.YarnOrigContext)
	}
	return errors.Join(errs...)
}

// finitePositive reports whether v is a positive number (not NaN or +Inf).
func finitePositive(v float32) bool { return v > 0 && !math.IsInf(float64(v), 1) }
