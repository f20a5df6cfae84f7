package deepseekv4

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/arch/internal/ggufkeys"
	"github.com/ulan-ai/ulan/engine/gguf"
)

// Params are the hyperparameters of a DeepSeek-V4 model (spec §1.1).
type Params struct {
	Vocab        int
	Hidden       int // hidden_size, D
	Layers       int // decoder blocks, MTP not counted
	Heads        int // H
	HeadDim      int // head_dim: q, the shared k=v and the output per head
	RopeDim      int // qk_rope_head_dim: trailing channels that rotate
	QLoRA        int // q_lora_rank
	OGroups      int // o_groups, G
	OLoRA        int // o_lora_rank per group
	Window       int // sliding_window, the current token included
	Ratios       []int
	IndexHeads   int // index_n_heads
	IndexHeadDim int // index_head_dim
	IndexTopK    int // index_topk
	Experts      int
	ExpertsUsed  int
	Shared       int
	ExpertFFN    int // moe_intermediate_size
	HashLayers   int // num_hash_layers
	NormTopK     bool
	RoutedScale  float32
	// ClampExp and ClampShared are the SwiGLU limits of the routed and the
	// shared experts per layer (0: none).
	ClampExp, ClampShared []float32
	HCMult                int // hc_mult
	HCIters               int // hc_sinkhorn_iters
	HCEps                 float32
	Eps                   float32 // rms_norm_eps
	Context               int
	RopeBase              float32 // rope_theta: ratio-0 layers, no YaRN
	CompressBase          float32 // compress_rope_theta: compressed layers, with YaRN
	YarnFactor            float32
	YarnOrigContext       int
	YarnBetaFast          float32
	YarnBetaSlow          float32
	// NextN is the number of MTP blocks the file declares.
	NextN int
}

// Rope is the rotary embedding of layer i (spec §2.3, trap 2): the main
// table without YaRN on ratio-0 layers, the compress table with YaRN (and
// no magnitude scaling) on compressed ones.
func (p Params) Rope(i int) engine.RopeSpec {
	if p.Ratios[i] == 0 {
		return engine.RopeSpec{Dims: p.RopeDim, Base: p.RopeBase}
	}
	return p.compressRope()
}

func (p Params) compressRope() engine.RopeSpec {
	return engine.RopeSpec{
		Dims:        p.RopeDim,
		Base:        p.CompressBase,
		Factor:      p.YarnFactor,
		OrigContext: p.YarnOrigContext,
		BetaFast:    p.YarnBetaFast,
		BetaSlow:    p.YarnBetaSlow,
	}
}

// KQScale is the softmax scale, head_dim^(−1/2) and nothing else.
func (p Params) KQScale() float32 { return float32(1 / math.Sqrt(float64(p.HeadDim))) }

// IndexScale is the indexer weights' factor dI^(−1/2)·HI^(−1/2).
func (p Params) IndexScale() float32 {
	return float32(1 / math.Sqrt(float64(p.IndexHeadDim*p.IndexHeads)))
}

// Route is the router: sqrt-softplus scores, the bias (if any) only
// selecting, normalised and scaled weights.
func (p Params) Route() engine.RouteSpec {
	return engine.RouteSpec{Scoring: engine.SqrtSoftplus, TopK: p.ExpertsUsed, Normalize: p.NormTopK, Scale: p.RoutedScale}
}

// Hyper is the hyper-connection spec.
func (p Params) Hyper() engine.HyperSpec {
	return engine.HyperSpec{Streams: p.HCMult, Iters: p.HCIters, Eps: p.HCEps}
}

// llama.cpp's expert_gating_func for sqrt(softplus).
const gatingSqrtSoftplus = 4

// paramsFromGGUF reads the deepseek4 keys (spec §5.5,
// llamacpp-reference.md). A missing key or an impossible value is an error
// naming it.
func paramsFromGGUF(f *gguf.File) (Params, error) {
	arch, err := f.Arch()
	if err != nil {
		return Params{}, err
	}
	r := ggufkeys.New(f, arch, "deepseekv4")
	p := Params{
		Hidden:       r.U32("embedding_length", true),
		Layers:       r.U32("block_count", true),
		Heads:        r.U32("attention.head_count", true),
		HeadDim:      r.U32("attention.key_length", true),
		RopeDim:      r.U32("rope.dimension_count", true),
		QLoRA:        r.U32("attention.q_lora_rank", true),
		OGroups:      r.U32("attention.output_group_count", true),
		OLoRA:        r.U32("attention.output_lora_rank", true),
		Window:       r.U32("attention.sliding_window", true),
		IndexHeads:   r.U32("attention.indexer.head_count", true),
		IndexHeadDim: r.U32("attention.indexer.key_length", true),
		IndexTopK:    r.U32("attention.indexer.top_k", true),
		Experts:      r.U32("expert_count", true),
		ExpertsUsed:  r.U32("expert_used_count", true),
		Shared:       r.U32("expert_shared_count", true),
		ExpertFFN:    r.U32("expert_feed_forward_length", true),
		HashLayers:   r.U32("hash_layer_count", false),
		NormTopK:     r.Bool("expert_weights_norm"),
		RoutedScale:  r.F32("expert_weights_scale", 1),
		HCMult:       r.U32("hyper_connection.count", true),
		HCIters:      r.U32("hyper_connection.sinkhorn_iterations", true),
		HCEps:        r.F32("hyper_connection.epsilon", -1),
		Eps:          r.F32("attention.layer_norm_rms_epsilon", -1),
		Context:      r.U32("context_length", true),
		RopeBase:     r.F32("rope.freq_base", 10000),
		CompressBase: r.F32("attention.compress_rope_freq_base", -1),
		NextN:        r.U32("nextn_predict_layers", false),
	}
	if v := r.U32("attention.value_length", false); v != 0 && v != p.HeadDim {
		r.Fail("attention.value_length", fmt.Sprintf("%d differs from key_length %d (V4 shares k and v)", v, p.HeadDim))
	}
	if kv := r.U32("attention.head_count_kv", false); kv > 1 {
		r.Fail("attention.head_count_kv", fmt.Sprintf("%d, want 1 (one shared k=v head)", kv))
	}
	if g := r.U32("expert_gating_func", true); r.Err() == nil && g != gatingSqrtSoftplus {
		r.Fail("expert_gating_func", fmt.Sprintf("%d, want %d (sqrtsoftplus)", g, gatingSqrtSoftplus))
	}
	p.Ratios = r.Ints("attention.compress_ratios", p.Layers)
	p.ClampExp = r.PerLayer("swiglu_clamp_exp", p.Layers, nil)
	p.ClampShared = r.PerLayer("swiglu_clamp_shexp", p.Layers, p.ClampExp)
	if t, err := f.String(r.Key("rope.scaling.type")); err == nil && t == "yarn" {
		p.YarnFactor = r.F32("rope.scaling.factor", -1)
		p.YarnOrigContext = r.U32("rope.scaling.original_context_length", true)
		p.YarnBetaFast = r.F32("rope.scaling.yarn_beta_fast", 32)
		p.YarnBetaSlow = r.F32("rope.scaling.yarn_beta_slow", 1)
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
			errs = append(errs, fmt.Errorf("deepseekv4: "+format, args...))
		}
	}
	check(p.Vocab > 0, "vocabulary size unknown (no vocab_size key and no tokenizer.ggml.tokens)")
	check(p.Hidden > 0 && p.Layers > 0 && p.Heads > 0 && p.QLoRA > 0, "hidden %d, layers %d, heads %d, q_lora_rank %d must be positive", p.Hidden, p.Layers, p.Heads, p.QLoRA)
	check(p.RopeDim > 0 && p.RopeDim%2 == 0 && p.RopeDim <= p.HeadDim && p.RopeDim <= p.IndexHeadDim,
		"rope.dimension_count %d must be even, positive and at most head_dim %d and indexer key_length %d", p.RopeDim, p.HeadDim, p.IndexHeadDim)
	check(p.OGroups > 0 && p.Heads%p.OGroups == 0 && p.OLoRA > 0, "output_group_count %d must divide head_count %d (output_lora_rank %d)", p.OGroups, p.Heads, p.OLoRA)
	check(p.Window > 0, "attention.sliding_window must be positive")
	check(p.IndexHeads > 0 && p.IndexTopK > 0, "indexer head_count %d and top_k %d must be positive", p.IndexHeads, p.IndexTopK)
	check(p.Experts > 0 && p.ExpertsUsed > 0 && p.ExpertsUsed <= p.Experts, "expert_used_count %d of expert_count %d", p.ExpertsUsed, p.Experts)
	check(p.Shared <= 1, "expert_shared_count %d: V4 has one shared expert", p.Shared)
	check(p.HashLayers <= p.Layers, "hash_layer_count %d > block_count %d", p.HashLayers, p.Layers)
	check(p.HCMult > 0 && p.HCIters > 0, "hyper_connection.count %d and sinkhorn_iterations %d must be positive", p.HCMult, p.HCIters)
	check(p.ExpertFFN > 0, "expert_feed_forward_length must be positive")
	check(p.Context > 0, "context_length must be positive")
	check(finitePositive(p.Eps), "attention.layer_norm_rms_epsilon %v must be positive", p.Eps)
	check(finitePositive(p.HCEps), "hyper_connection.epsilon %v must be positive", p.HCEps)
	check(finitePositive(p.RopeBase), "rope.freq_base %v must be positive", p.RopeBase)
	if slices.ContainsFunc(p.Ratios, func(r int) bool { return r > 0 }) {
		check(finitePositive(p.CompressBase), "attention.compress_rope_freq_base %v must be positive", p.CompressBase)
	}
	check(finitePositive(p.RoutedScale), "expert_weights_scale %v must be positive", p.RoutedScale)
	for i, r := range p.Ratios {
		check(r == 0 || r == 4 || r == 128, "attention.compress_ratios[%d] = %d, want 0, 4 or 128", i, r)
	}
	if p.YarnFactor != 0 {
		check(p.YarnFactor >= 1 && !math.IsInf(float64(p.YarnFactor), 0) && p.YarnOrigContext > 0, "rope.scaling.factor %v with original context %d", p.YarnFactor, p.YarnOrigContext)
	}
	return errors.Join(errs...)
}

// finitePositive reports whether v is a positive number (not NaN or +Inf).
func finitePositive(v float32) bool { return v > 0 && !math.IsInf(float64(v), 1) }
