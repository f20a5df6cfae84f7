// Package deepseekv3 is the DeepSeek-V2/V3/R1 architecture ("deepseek_v3",
// "deepseek_v2" in Hugging Face configs; "deepseek2" in GGUF): multi-head
// latent attention in its weight-absorbed form over a latent KV cache, and a
// Mixture-of-Experts FFN with shared experts. It follows
// shared/research/deepseek-architecture.md §3 and reads top to bottom: the
// hyperparameters (config.go), the weights, attention, the FFNs, Forward.
// Weights come from a GGUF file (weights.go) or a Hugging Face directory
// (hf.go, with names.go mapping the names) through one build path.
// Kernels, threads and file parsing live elsewhere.
package deepseekv3

import (
	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/gguf"
)

func init() {
	engine.Register(Load, "deepseek2", "deepseek_v2", "deepseek_v3")
	engine.RegisterDir(LoadDir, "deepseek_v2", "deepseek_v3")
}

// layer holds one block's weights. Shapes are row-major, [out, in].
type layer struct {
	attnNorm engine.Tensor // [E]
	qA       engine.Tensor // [QLoRA, E]; nil without q-LoRA
	qANorm   engine.Tensor // [QLoRA]
	qB       engine.Tensor // [H·(nope+rope), QLoRA]
	q        engine.Tensor // [H·(nope+rope), E]; V2-Lite only
	kvA      engine.Tensor // [KVLoRA+rope, E]
	kvANorm  engine.Tensor // [KVLoRA]
	kB       engine.Tensor // [H, KVLoRA, nope]: W_UK per head, transposed (spec §3.3)
	vB       engine.Tensor // [H, v, KVLoRA]: W_UV per head
	out      engine.Tensor // [E, H·v]
	ffnNorm  engine.Tensor // [E]

	// Dense layers (index < DenseLayers).
	gate, up, down engine.Tensor

	// MoE layers.
	router               engine.Tensor // [X, E]
	bias                 engine.Tensor // [X]; e_score_correction_bias, V3 only
	gateExps, upExps     engine.Tensor // [X, F, E]
	downExps             engine.Tensor // [X, E, F]
	gateShared, upShared engine.Tensor // [F·S, E]
	downShared           engine.Tensor // [E, F·S]
}

// Model is a loaded DeepSeek-V2/V3 model.
type Model struct {
	p      Params
	info   engine.Info
	embed  engine.Tensor // [V, E]
	norm   engine.Tensor // [E]
	output engine.Tensor // [V, E]
	layers []layer
	// mtp holds the multi-token-prediction layers a directory carries
	// (V3's layer 61), loaded and checked but not used by Forward yet.
	mtp []mtpLayer
}

var _ engine.Model = (*Model)(nil)

// Load builds the model from a deepseek2 GGUF file on backend b.
func Load(f *gguf.File, b engine.Backend) (engine.Model, error) {
	p, err := paramsFromGGUF(f)
	if err != nil {
		return nil, err
	}
	src := ggufSource{f: f, used: map[string]bool{}}
	w := weights{src: src, b: b}
	m := build(p, &w)
	if w.err != nil {
		return nil, w.err
	}
	if err := checkUnused(f, p, src.used); err != nil {
		return nil, err
	}
	name, _ := f.String("general.name")
	m.info = info("deepseek2", name, p, &w)
	return m, nil
}

// build loads every weight the forward pass uses from w's source.
func build(p Params, w *weights) *Model {
	// The layers grow as they load, not from block_count up front: a
	// file claiming 2^31 blocks fails at its first missing one instead of
	// allocating for all of them.
	m := &Model{p: p}
	E, V := p.Hidden, p.Vocab
	m.embed = w.get("token_embd.weight", V, E)
	m.norm = w.get("output_norm.weight", E)
	m.output = w.get("output.weight", V, E)
	for i := 0; i < p.Layers && w.err == nil; i++ {
		m.layers = append(m.layers, loadLayer(p, w, i))
	}
	return m
}

// loadLayer loads block i: dense below DenseLayers, MoE from there on
// (MTP layers included).
func loadLayer(p Params, w *weights, i int) layer {
	var l layer
	E, H := p.Hidden, p.Heads
	qk := p.NopeDim + p.RopeDim
	n := func(s string) string { return blk(i, s) }
	l.attnNorm = w.get(n("attn_norm.weight"), E)
	if p.QLoRA > 0 {
		l.qA = w.get(n("attn_q_a.weight"), p.QLoRA, E)
		l.qANorm = w.get(n("attn_q_a_norm.weight"), p.QLoRA)
		l.qB = w.get(n("attn_q_b.weight"), H*qk, p.QLoRA)
	} else {
		l.q = w.get(n("attn_q.weight"), H*qk, E)
	}
	l.kvA = w.get(n("attn_kv_a_mqa.weight"), p.KVLoRA+p.RopeDim, E)
	l.kvANorm = w.get(n("attn_kv_a_norm.weight"), p.KVLoRA)
	l.kB = w.get(n("attn_k_b.weight"), H, p.KVLoRA, p.NopeDim)
	l.vB = w.get(n("attn_v_b.weight"), H, p.ValueDim, p.KVLoRA)
	l.out = w.get(n("attn_output.weight"), E, H*p.ValueDim)
	l.ffnNorm = w.get(n("ffn_norm.weight"), E)
	if i < p.DenseLayers {
		l.gate = w.get(n("ffn_gate.weight"), p.DenseFFN, E)
		l.up = w.get(n("ffn_up.weight"), p.DenseFFN, E)
		l.down = w.get(n("ffn_down.weight"), E, p.DenseFFN)
		return l
	}
	X, F, S := p.Experts, p.ExpertFFN, p.Shared
	l.router = w.get(n("ffn_gate_inp.weight"), X, E)
	if w.err == nil && w.src.has(n("exp_probs_b.bias")) {
		l.bias = w.get(n("exp_probs_b.bias"), X)
	}
	l.gateExps = w.get(n("ffn_gate_exps.weight"), X, F, E)
	l.upExps = w.get(n("ffn_up_exps.weight"), X, F, E)
	l.downExps = w.get(n("ffn_down_exps.weight"), X, E, F)
	if S > 0 {
		l.gateShared = w.get(n("ffn_gate_shexp.weight"), F*S, E)
		l.upShared = w.get(n("ffn_up_shexp.weight"), F*S, E)
		l.downShared = w.get(n("ffn_down_shexp.weight"), E, F*S)
	}
	return l
}

// Info describes the model.
func (m *Model) Info() engine.Info { return m.info }

// Params returns the hyperparameters.
func (m *Model) Params() Params { return m.p }

// Cache is one row per token in every layer: the latent plus the rotated
// key (spec §3.3).
func (m *Model) Cache() engine.CacheLayout {
	var l engine.CacheLayout
	for range m.p.Layers {
		l.Paged = append(l.Paged, engine.PagedCache{Every: 1, Width: m.p.CacheWidth()})
	}
	return l
}

// Forward runs the batch through every block (spec §3.1):
// h += attn(norm(h)); h += ffn(norm(h)); logits = head(norm(h)).
func (m *Model) Forward(ctx engine.Context, b *engine.Batch, caches []engine.Tensor) engine.Tensor {
	p := m.p
	h := ctx.Embed(m.embed, b)
	for i := range m.layers {
		l := &m.layers[i]
		a := m.attention(ctx, l, ctx.RMSNorm(h, l.attnNorm, p.Eps), b, caches[i])
		h = ctx.Add(a, h)
		if i == len(m.layers)-1 {
			// Only the wanted rows go through the last FFN and the head, as
			// llama.cpp's inp_out_ids does.
			h = ctx.Rows(h, b.Outputs)
		}
		x := ctx.RMSNorm(h, l.ffnNorm, p.Eps)
		if i < p.DenseLayers {
			h = ctx.Add(m.dense(ctx, l, x), h)
		} else {
			h = ctx.Add(m.moe(ctx, l, x), h)
		}
	}
	return ctx.Logits(ctx.RMSNorm(h, m.norm, p.Eps), m.output)
}

// attention is MLA in the weight-absorbed form (spec §3.3). Per token:
//
//	q       = q_b · norm(q_a · x)                    [H, nope+rope]
//	q_lat   = W_UK[h]ᵀ · q_nope[h]                   [H, KVLoRA]
//	c, k_pe = norm(kv_a · x)[:KVLoRA], rope(kv_a·x)[KVLoRA:]
//	cache  ← [c | k_pe]                              KVLoRA + rope values
//	o_lat   = softmax([q_lat | rope(q_pe)] · cacheᵀ · scale) · c
//	out     = wo · concat_h W_UV[h] · o_lat[h]
//
// which is MQA with one key of KVLoRA+rope values and its first KVLoRA as the
// value; the scale stays (nope+rope)^(−1/2)·m² (trap 17).
func (m *Model) attention(ctx engine.Context, l *layer, x engine.Tensor, b *engine.Batch, cache engine.Tensor) engine.Tensor {
	p := m.p
	T, H := len(b.Tokens), p.Heads
	var q engine.Tensor
	if l.qA != nil {
		q = ctx.MatMul(ctx.RMSNorm(ctx.MatMul(x, l.qA), l.qANorm, p.Eps), l.qB)
	} else {
		q = ctx.MatMul(x, l.q)
	}
	q = ctx.Reshape(q, T, H, p.NopeDim+p.RopeDim)
	qNope := ctx.Slice(q, 0, p.NopeDim)
	qPe := ctx.Rope(ctx.Slice(q, p.NopeDim, p.NopeDim+p.RopeDim), b, p.Rope())

	kv := ctx.MatMul(x, l.kvA)
	c := ctx.RMSNorm(ctx.Slice(kv, 0, p.KVLoRA), l.kvANorm, p.Eps)
	kPe := ctx.Rope(ctx.Slice(kv, p.KVLoRA, p.KVLoRA+p.RopeDim), b, p.Rope())
	ctx.CacheStore(cache, ctx.Concat(c, kPe), b)

	qLat := ctx.MatMulHeads(qNope, l.kB)
	oLat := ctx.Attention(ctx.Concat(qLat, qPe), cache, b, engine.AttentionSpec{ValueDim: p.KVLoRA, Scale: p.KQScale()})
	o := ctx.MatMulHeads(oLat, l.vB)
	return ctx.MatMul(ctx.Reshape(o, T, H*p.ValueDim), l.out)
}

// dense is the SwiGLU MLP of the first layers: down · (silu(gate·x) ⊙ up·x).
func (m *Model) dense(ctx engine.Context, l *layer, x engine.Tensor) engine.Tensor {
	return ctx.MatMul(ctx.SwiGLU(ctx.MatMul(x, l.gate), ctx.MatMul(x, l.up), 0), l.down)
}

// moe routes each token to ExpertsUsed experts (spec §3.4: sigmoid or
// softmax scores, the bias only selects, group-limited top-k, normalised and
// scaled weights) and adds the shared experts, which every token uses.
func (m *Model) moe(ctx engine.Context, l *layer, x engine.Tensor) engine.Tensor {
	ids, weights := ctx.Route(ctx.MatMul(x, l.router), l.bias, m.p.Route())
	y := ctx.ExpertFFN(x, ids, weights, l.gateExps, l.upExps, l.downExps, 0)
	if l.gateShared != nil {
		shared := ctx.MatMul(ctx.SwiGLU(ctx.MatMul(x, l.gateShared), ctx.MatMul(x, l.upShared), 0), l.downShared)
		y = ctx.Add(y, shared)
	}
	return y
}
