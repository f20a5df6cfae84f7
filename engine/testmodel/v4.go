package testmodel

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/ulan-ai/ulan/engine/gguf"
)

// V4 describes a deepseek4 (DeepSeek-V4) model to generate: the fields of
// its config.json (spec §1.1), written as GGUF arch "deepseek4" the way
// llama.cpp's converter writes it and its loader reads it (spec §5.5).
//
// llama.cpp (de3ff81) runs such a file only when HCMult is 4, every ratio
// is 0, 4 or 128 and IndexHeadDim is a multiple of 64 (its indexer's
// Hadamard rotation is built from 64-wide blocks); it always uses YaRN
// betas 32 and 1, whatever the file says. Validate checks what any engine
// needs; the presets also keep to llama.cpp's limits.
type V4 struct {
	// Name is general.name.
	Name string
	// Vocab is the vocabulary size; it must be the tokenizer's, 129280
	// (DeepSeek's real tokenizer is always written).
	Vocab int
	// Hidden is hidden_size (D), the width of each residual stream.
	Hidden int
	// Layers is num_hidden_layers (no MTP block is written).
	Layers int
	// Heads is num_attention_heads (H); there is one shared K=V head.
	Heads int
	// HeadDim is head_dim: the width of q, of the shared kv and of each
	// head's attention output.
	HeadDim int
	// RopeDim is qk_rope_head_dim: the trailing channels of each head (and
	// of each indexer head) that rotate.
	RopeDim int
	// QLoRA is q_lora_rank, the query bottleneck.
	QLoRA int
	// OutGroups and OutLoRA are o_groups and o_lora_rank: the grouped
	// low-rank output projection.
	OutGroups, OutLoRA int
	// SlidingWindow is the raw-kv window length (includes the current
	// token).
	SlidingWindow int
	// CompressRatios is compress_ratios for the decoder layers, one per
	// layer: 0 sliding window only, 4 CSA (with the lightning indexer), 128
	// HCA. The file's attention.compress_ratios has one more entry, 0, for
	// the MTP block, as DeepSeek's config.json lists it.
	CompressRatios []int
	// IndexHeads, IndexHeadDim and IndexTopK are index_n_heads,
	// index_head_dim (a power of two) and index_topk.
	IndexHeads, IndexHeadDim, IndexTopK int
	// Experts, ExpertsUsed and Shared are n_routed_experts,
	// num_experts_per_tok and n_shared_experts.
	Experts, ExpertsUsed, Shared int
	// ExpertFFN is moe_intermediate_size, the routed and shared experts'
	// width.
	ExpertFFN int
	// HashLayers is num_hash_layers: layers below it route by the
	// ffn_gate_tid2eid table, the others by the biased sqrt-softplus top-k.
	HashLayers int
	// RoutedScale is routed_scaling_factor.
	RoutedScale float32
	// SwigluLimit is swiglu_limit, the clamp of the routed and shared
	// experts' SwiGLU (gate ≤ limit, up in [−limit, limit]).
	SwigluLimit float32
	// HCMult, HCIters and HCEps are hc_mult, hc_sinkhorn_iters and hc_eps.
	HCMult, HCIters int
	HCEps           float32
	// NormEps is rms_norm_eps.
	NormEps float32
	// RopeBase is rope_theta (ratio-0 layers, no YaRN); CompressRopeBase is
	// compress_rope_theta (ratio > 0 layers, with YaRN).
	RopeBase, CompressRopeBase float32
	// YarnFactor, YarnOrigContext, YarnBetaFast and YarnBetaSlow are
	// rope_scaling's factor, original_max_position_embeddings, beta_fast
	// and beta_slow (applied to compressed layers only).
	YarnFactor                 float32
	YarnOrigContext            int
	YarnBetaFast, YarnBetaSlow float32
	// Context is max_position_embeddings.
	Context int
	// Type is the storage type of the matrices: F32, F16, BF16 or Q8_0.
	// Norms, the router, the selection bias, attention sinks, compressor
	// ape and the mHC parameters stay F32 (as they are F32 in DeepSeek's
	// checkpoints and llama.cpp's converter keeps them), the hash tables
	// are I32, and Q8_0 matrices whose rows are not whole 32-value blocks
	// stay F32, as llama.cpp's quantizer leaves them.
	Type gguf.Type
}

// Attention kinds of a V4 layer, by compress ratio.
const (
	// RatioSliding marks a layer with only the sliding window.
	RatioSliding = 0
	// RatioCSA marks a compressed-sparse-attention layer (overlapping
	// windows of 4, the lightning indexer's top-k).
	RatioCSA = 4
	// RatioHCA marks a heavily-compressed-attention layer (windows of 128,
	// every entry visible).
	RatioHCA = 128
)

// TinyV4 is the golden model: 4 layers, one of each attention kind plus a
// second CSA layer (ratios 0, 4, 128, 4), the first two layers hash-routed
// and the last two routed by the biased top-k, a 16-token window and
// index_topk 4, so that a 360-token prompt makes 2 HCA entries and 90 CSA
// entries of which the indexer keeps 4 (it selects from position 19 on).
// Its 32 indexer heads make an all-zero ReLU score (a tie) improbable; with
// seed 1 the indexer's 4th and 5th scores differ by at least 9e-5 at every
// position of the goldens' run, far above f32 rounding. Hidden 8 keeps the
// two vocabulary-sized tables at 8 MB in F32 (the file is 16 MB, most of
// the rest the tokenizer and the two hash tables). Its head
// and indexer widths are multiples of 64, as llama.cpp needs for the
// indexer, and differ from each other, so that llama.cpp adds no Hadamard
// rotation to the main attention. The SwiGLU limit is 1.5 instead of
// DeepSeek's 10, so that the clamp acts on a few percent of the experts'
// values.
func TinyV4() V4 {
	return V4{
		Name: "ulan-test-tiny-v4", Vocab: vocabSize, Hidden: 8, Layers: 4,
		Heads: 4, HeadDim: 128, RopeDim: 32, QLoRA: 32, OutGroups: 2, OutLoRA: 16,
		SlidingWindow: 16, CompressRatios: []int{RatioSliding, RatioCSA, RatioHCA, RatioCSA},
		IndexHeads: 32, IndexHeadDim: 64, IndexTopK: 4,
		Experts: 8, ExpertsUsed: 2, Shared: 1, ExpertFFN: 32, HashLayers: 2,
		RoutedScale: 1.5, SwigluLimit: 1.5, HCMult: 4, HCIters: 20, HCEps: 1e-6, NormEps: 1e-6,
		RopeBase: 10000, CompressRopeBase: 160000,
		YarnFactor: 4, YarnOrigContext: 64, YarnBetaFast: 32, YarnBetaSlow: 1,
		Context: 4096, Type: gguf.TypeF32,
	}
}

// DemoV4 is the model `ulan serve` runs when given none, sized like DemoV3
// (hidden 128, 4 layers, Q8_0, 49 MB, nearly all of it the two
// vocabulary-sized tables): every part of a V4 model (a sliding, a CSA and
// an HCA layer then a second CSA one, a hash-routed layer, 32 experts top-6
// with a shared expert, V4's own window of 128, rope bases, YaRN factor 16
// over 65536 positions and a context of 1M tokens).
func DemoV4() V4 {
	return V4{
		Name: "ulan-demo-v4 (random weights)", Vocab: vocabSize, Hidden: 128, Layers: 4,
		Heads: 8, HeadDim: 128, RopeDim: 64, QLoRA: 96, OutGroups: 2, OutLoRA: 64,
		SlidingWindow: 128, CompressRatios: []int{RatioSliding, RatioCSA, RatioHCA, RatioCSA},
		IndexHeads: 8, IndexHeadDim: 64, IndexTopK: 64,
		Experts: 32, ExpertsUsed: 6, Shared: 1, ExpertFFN: 64, HashLayers: 1,
		RoutedScale: 1.5, SwigluLimit: 10, HCMult: 4, HCIters: 20, HCEps: 1e-6, NormEps: 1e-6,
		RopeBase: 10000, CompressRopeBase: 160000,
		YarnFactor: 16, YarnOrigContext: 65536, YarnBetaFast: 32, YarnBetaSlow: 1,
		Context: 1 << 20, Type: gguf.TypeQ8_0,
	}
}

// BenchV4 is the mid-size model of the long-context decode benchmark
// (1.64 GB in Q8_0): V4-Flash's proportions scaled down — head dim 512 with
// 64 rope channels, window 128, 8 layers (one sliding, four CSA, three HCA,
// alternating as in Flash), the indexer's 128-wide heads with index_topk
// 256, 32 experts top-6 of width 512 with a shared expert, two hash-routed
// layers, Flash's rope and YaRN settings and a context of 1M tokens.
func BenchV4() V4 {
	return V4{
		Name: "ulan-bench-v4", Vocab: vocabSize, Hidden: 2048, Layers: 8,
		Heads: 16, HeadDim: 512, RopeDim: 64, QLoRA: 512, OutGroups: 4, OutLoRA: 512,
		SlidingWindow:  128,
		CompressRatios: []int{RatioSliding, RatioCSA, RatioHCA, RatioCSA, RatioHCA, RatioCSA, RatioHCA, RatioCSA},
		IndexHeads:     32, IndexHeadDim: 128, IndexTopK: 256,
		Experts: 32, ExpertsUsed: 6, Shared: 1, ExpertFFN: 512, HashLayers: 2,
		RoutedScale: 1.5, SwigluLimit: 10, HCMult: 4, HCIters: 20, HCEps: 1e-6, NormEps: 1e-6,
		RopeBase: 10000, CompressRopeBase: 160000,
		YarnFactor: 16, YarnOrigContext: 65536, YarnBetaFast: 32, YarnBetaSlow: 1,
		Context: 1 << 20, Type: gguf.TypeQ8_0,
	}
}

// Validate reports the first thing that makes c an impossible V4 model.
func (c V4) Validate() error {
	pos := []struct {
		name string
		v    int
	}{
		{"Hidden", c.Hidden}, {"Layers", c.Layers}, {"Heads", c.Heads}, {"HeadDim", c.HeadDim},
		{"RopeDim", c.RopeDim}, {"QLoRA", c.QLoRA}, {"OutGroups", c.OutGroups}, {"OutLoRA", c.OutLoRA},
		{"SlidingWindow", c.SlidingWindow}, {"Experts", c.Experts}, {"ExpertsUsed", c.ExpertsUsed},
		{"Shared", c.Shared}, {"ExpertFFN", c.ExpertFFN}, {"HCMult", c.HCMult}, {"HCIters", c.HCIters},
		{"Context", c.Context},
	}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("testmodel: V4 %q: %s = %d, must be positive", c.Name, p.name, p.v)
		}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("testmodel: V4 %q: "+format, append([]any{c.Name}, args...)...)
	}
	switch {
	case c.Vocab != vocabSize:
		return bad("Vocab = %d, must be %d (DeepSeek's tokenizer is always written)", c.Vocab, vocabSize)
	case c.RopeDim%2 != 0 || c.RopeDim > c.HeadDim:
		return bad("RopeDim = %d must be even and at most HeadDim = %d", c.RopeDim, c.HeadDim)
	case c.Heads%c.OutGroups != 0:
		return bad("Heads = %d is not a multiple of OutGroups = %d", c.Heads, c.OutGroups)
	case len(c.CompressRatios) != c.Layers:
		return bad("%d CompressRatios for %d layers", len(c.CompressRatios), c.Layers)
	case c.ExpertsUsed > c.Experts:
		return bad("ExpertsUsed = %d > Experts = %d", c.ExpertsUsed, c.Experts)
	case c.HashLayers < 0 || c.HashLayers > c.Layers:
		return bad("HashLayers = %d, must be in [0, %d]", c.HashLayers, c.Layers)
	case c.RoutedScale <= 0 || c.SwigluLimit <= 0 || c.HCEps <= 0 || c.NormEps <= 0:
		return bad("RoutedScale, SwigluLimit, HCEps and NormEps must be positive")
	case c.RopeBase <= 0 || c.CompressRopeBase <= 0:
		return bad("RopeBase and CompressRopeBase must be positive")
	case c.YarnFactor > 1 && (c.YarnOrigContext <= 0 || c.YarnBetaFast <= c.YarnBetaSlow || c.YarnBetaSlow <= 0):
		return bad("YaRN needs YarnOrigContext > 0 and YarnBetaFast > YarnBetaSlow > 0")
	}
	csa := false
	for l, r := range c.CompressRatios {
		switch r {
		case RatioSliding, RatioHCA:
		case RatioCSA:
			csa = true
		default:
			return bad("CompressRatios[%d] = %d, must be 0, 4 or 128", l, r)
		}
	}
	if csa {
		switch {
		case c.IndexHeads <= 0 || c.IndexTopK <= 0:
			return bad("CSA layers need IndexHeads and IndexTopK > 0")
		case c.IndexHeadDim <= 0 || c.IndexHeadDim&(c.IndexHeadDim-1) != 0:
			return bad("IndexHeadDim = %d, must be a power of two (the indexer's Hadamard transform)", c.IndexHeadDim)
		case c.RopeDim > c.IndexHeadDim:
			return bad("RopeDim = %d > IndexHeadDim = %d", c.RopeDim, c.IndexHeadDim)
		}
	}
	switch c.Type {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0:
	default:
		return bad("Type %v, use F32, F16, BF16 or Q8_0", c.Type)
	}
	return nil
}

// Write writes the model to w. Each tensor's values depend only on the seed
// and the tensor's name (the V3 generator's draws, see testmodel.go).
func (c V4) Write(w io.Writer, seed uint64, opts ...WriteOption) error {
	gw, err := c.writer(seed, opts)
	if err != nil {
		return err
	}
	_, err = gw.WriteTo(w)
	return err
}

// WriteFile writes the model to path.
func (c V4) WriteFile(path string, seed uint64, opts ...WriteOption) error {
	gw, err := c.writer(seed, opts)
	if err != nil {
		return err
	}
	return gw.WriteFile(path)
}

func (c V4) writer(seed uint64, opts []WriteOption) (*gguf.Writer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.fp8Reference {
		return nil, errors.New("testmodel: V4 has no FP8 reference checkpoint")
	}
	tok, err := loadTokenizer()
	if err != nil {
		return nil, err
	}
	if len(tok.tokens) != c.Vocab {
		return nil, fmt.Errorf("testmodel: tokenizer has %d tokens, V4 %q wants %d", len(tok.tokens), c.Name, c.Vocab)
	}
	w := &gguf.Writer{}
	a := func(k string, v any) { w.Add("deepseek4."+k, v) }
	u := func(v int) uint32 { return uint32(v) }
	w.Add("general.architecture", "deepseek4")
	w.Add("general.name", c.Name)
	fileType := map[gguf.Type]uint32{gguf.TypeF32: 0, gguf.TypeF16: 1, gguf.TypeQ8_0: 7, gguf.TypeBF16: 32}[c.Type]
	w.Add("general.file_type", fileType)
	w.Add("general.quantization_version", uint32(2))
	a("context_length", u(c.Context))
	a("embedding_length", u(c.Hidden))
	a("embedding_length_out", u(c.Hidden*c.HCMult))
	a("block_count", u(c.Layers))
	a("vocab_size", u(c.Vocab))
	a("attention.head_count", u(c.Heads))
	a("attention.head_count_kv", uint32(1))
	a("attention.key_length", u(c.HeadDim))
	a("attention.value_length", u(c.HeadDim))
	a("attention.layer_norm_rms_epsilon", c.NormEps)
	a("attention.q_lora_rank", u(c.QLoRA))
	a("attention.output_group_count", u(c.OutGroups))
	a("attention.output_lora_rank", u(c.OutLoRA))
	a("attention.sliding_window", u(c.SlidingWindow))
	ratios := make([]int32, 0, c.Layers+1)
	for _, r := range c.CompressRatios {
		ratios = append(ratios, int32(r))
	}
	a("attention.compress_ratios", append(ratios, 0)) // the MTP block's entry
	a("attention.compress_rope_freq_base", c.CompressRopeBase)
	a("attention.indexer.head_count", u(c.IndexHeads))
	a("attention.indexer.key_length", u(c.IndexHeadDim))
	a("attention.indexer.top_k", u(c.IndexTopK))
	a("rope.dimension_count", u(c.RopeDim))
	a("rope.freq_base", c.RopeBase)
	if c.YarnFactor > 1 {
		a("rope.scaling.type", "yarn")
		a("rope.scaling.factor", c.YarnFactor)
		a("rope.scaling.original_context_length", u(c.YarnOrigContext))
		a("rope.scaling.yarn_beta_fast", c.YarnBetaFast)
		a("rope.scaling.yarn_beta_slow", c.YarnBetaSlow)
	}
	a("expert_feed_forward_length", u(c.ExpertFFN))
	a("expert_count", u(c.Experts))
	a("expert_used_count", u(c.ExpertsUsed))
	a("expert_shared_count", u(c.Shared))
	a("expert_weights_scale", c.RoutedScale)
	a("expert_weights_norm", true)
	a("expert_gating_func", uint32(4)) // sqrt(softplus)
	a("hash_layer_count", u(c.HashLayers))
	clamp := make([]float32, c.Layers)
	for i := range clamp {
		clamp[i] = c.SwigluLimit
	}
	a("swiglu_clamp_exp", clamp)
	a("swiglu_clamp_shexp", clamp)
	a("hyper_connection.count", u(c.HCMult))
	a("hyper_connection.sinkhorn_iterations", u(c.HCIters))
	a("hyper_connection.epsilon", c.HCEps)
	tok.add(w, "deepseek-v3", o.chatTemplate)

	t := c.declare(seed)
	if o.v4Reference != nil {
		return w, c.addHFReference(w, t, *o.v4Reference)
	}
	t.draw(w, o.progress)
	return w, nil
}

// declare lists the model's tensors by their GGUF names (spec §5.5; shapes
// row-major [out, in], which GGUF stores fastest dimension first).
func (c V4) declare(seed uint64) *tensors {
	E, V, hc := c.Hidden, c.Vocab, c.HCMult
	mix := (2 + hc) * hc
	t := &tensors{seed: seed, typ: c.Type}
	t.matrix("token_embd.weight", 1, V, E)
	t.ones("output_norm.weight", E)
	t.matrix("output.weight", 1/math.Sqrt(float64(E)), V, E)
	c.mhc(t, "output_hc", hc, 1)
	for l := range c.Layers {
		n := func(s string) string { return fmt.Sprintf("blk.%d.%s", l, s) }
		H, hd := c.Heads, c.HeadDim
		t.ones(n("attn_norm.weight"), E)
		t.f32(n("attn_sinks.weight"), 0.5, H)
		t.proj(n("attn_q_a.weight"), c.QLoRA, E)
		t.ones(n("attn_q_a_norm.weight"), c.QLoRA)
		t.proj(n("attn_q_b.weight"), H*hd, c.QLoRA)
		t.proj(n("attn_kv.weight"), hd, E)
		t.ones(n("attn_kv_a_norm.weight"), hd)
		t.proj(n("attn_output_a.weight"), c.OutGroups*c.OutLoRA, H*hd/c.OutGroups)
		t.proj(n("attn_output_b.weight"), E, c.OutGroups*c.OutLoRA)
		c.mhc(t, n("hc_attn"), mix, 3)
		c.mhc(t, n("hc_ffn"), mix, 3)
		if r := c.CompressRatios[l]; r != RatioSliding {
			coff := 1
			if r == RatioCSA {
				coff = 2
			}
			c.compressor(t, n("attn_compressor"), coff*hd, hd, r)
			if r == RatioCSA {
				t.proj(n("indexer.proj.weight"), c.IndexHeads, E)
				t.proj(n("indexer.attn_q_b.weight"), c.IndexHeads*c.IndexHeadDim, c.QLoRA)
				c.compressor(t, n("indexer_compressor"), 2*c.IndexHeadDim, c.IndexHeadDim, r)
			}
		}
		t.f32(n("ffn_gate_inp.weight"), 1/math.Sqrt(float64(E)), c.Experts, E)
		if l < c.HashLayers {
			t.table(n("ffn_gate_tid2eid.weight"), V, c.ExpertsUsed, c.Experts)
		} else {
			t.f32(n("exp_probs_b.bias"), 0.1, c.Experts)
		}
		t.ones(n("ffn_norm.weight"), E)
		F := c.ExpertFFN
		t.proj3(n("ffn_gate_exps.weight"), c.Experts, F, E)
		t.proj3(n("ffn_up_exps.weight"), c.Experts, F, E)
		t.proj3(n("ffn_down_exps.weight"), c.Experts, E, F)
		t.proj(n("ffn_gate_shexp.weight"), F*c.Shared, E)
		t.proj(n("ffn_up_shexp.weight"), F*c.Shared, E)
		t.proj(n("ffn_down_shexp.weight"), E, F*c.Shared)
	}
	return t
}

// mhc declares one set of hyper-connection parameters: fn {hc·D, out}
// small enough that the mixing logits are about N(0, 1) (the mixing input
// is RMS-normalised over hc·D values), base N(0, 0.5²), scale 1 ± 0.2 — so
// that pre, post and the Sinkhorn matrix are clearly not uniform, yet
// bounded.
func (c V4) mhc(t *tensors, prefix string, out, scales int) {
	in := c.HCMult * c.Hidden
	t.f32(prefix+"_fn.weight", 1/math.Sqrt(float64(in)), out, in)
	t.f32(prefix+"_base.weight", 0.5, out)
	t.specs = append(t.specs, spec{name: prefix + "_scale.weight", typ: gguf.TypeF32, shape: []int{scales}, std: 0.2, one: true})
}

// compressor declares a compressor's kv and gate projections (width out),
// its ape (one row of out values per position in the window of ratio
// tokens; F32, small) and its norm (width hd).
func (c V4) compressor(t *tensors, prefix string, out, hd, ratio int) {
	t.proj(prefix+"_kv.weight", out, c.Hidden)
	t.proj(prefix+"_gate.weight", out, c.Hidden)
	t.f32(prefix+"_ape.weight", 0.25, ratio, out)
	t.ones(prefix+"_norm.weight", hd)
}

// table declares an I32 hash-routing table of rows × k distinct expert ids
// below experts.
func (t *tensors) table(name string, rows, k, experts int) {
	t.specs = append(t.specs, spec{name: name, typ: gguf.TypeI32, shape: []int{rows, k}, experts: experts})
}

// tableData draws the table a row at a time: a partial Fisher–Yates
// shuffle of 0..experts−1 from the tensor's PCG stream (a uniform below n
// is the high word of the 64-bit draw times n), so every row holds k
// distinct ids.
func (s spec) tableData(seed uint64, report func(int)) []byte {
	rows, k := s.shape[0], s.shape[1]
	out := make([]byte, s.size())
	hi, lo := seed, stream(s.name)
	perm := make([]int32, s.experts)
	for r := range rows {
		for i := range perm {
			perm[i] = int32(i)
		}
		for i := range k {
			var x uint64
			hi, lo, x = pcg(hi, lo)
			j, _ := bits.Mul64(x, uint64(s.experts-i))
			perm[i], perm[i+int(j)] = perm[i+int(j)], perm[i]
			v := uint32(perm[i])
			o := 4 * (r*k + i)
			out[o], out[o+1], out[o+2], out[o+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
	}
	report(len(out))
	return out
}
