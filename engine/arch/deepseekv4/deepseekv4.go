// Package deepseekv4 is the DeepSeek-V4 architecture ("deepseek_v4" in
// Hugging Face configs, "deepseek4" in GGUF): four residual streams mixed by
// manifold-constrained hyper-connections, one shared key=value head per
// layer attending over a 128-token sliding window plus compressed entries
// (CSA: ratio 4 with the lightning indexer's top-k; HCA: ratio 128), and a
// Mixture-of-Experts FFN with sqrt-softplus routing, hash-routed first
// layers and a clamped SwiGLU. It follows
// shared/research/deepseek-architecture.md §2 and §4 and reads top to
// bottom: the weights, the cache, Forward, attention, the FFN. The
// hyperparameters are in config.go, weight loading in weights.go; kernels
// and threads live in the backend.
package deepseekv4

import (
	"strconv"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/gguf"
)

func init() {
	engine.Register(Load, "deepseek4", "deepseek_v4")
}

// layer holds one block's weights, row-major [out, in], and where its
// cache tensors sit in Forward's caches.
type layer struct {
	ratio int // compress_ratios[i]: 0 window only, 4 CSA, 128 HCA

	hcAttnFn, hcAttnScale, hcAttnBase engine.Tensor // [(2+hc)·hc, hc·D], [3], [(2+hc)·hc]
	hcFFNFn, hcFFNScale, hcFFNBase    engine.Tensor

	attnNorm engine.Tensor // [D]
	qA       engine.Tensor // [Lq, D]
	qANorm   engine.Tensor // [Lq]
	qB       engine.Tensor // [H·hd, Lq]
	kv       engine.Tensor // [hd, D]
	kvNorm   engine.Tensor // [hd]
	sinks    engine.Tensor // [H]
	outA     engine.Tensor // [G, Lo, H·hd/G]: wo_a, one matrix per group
	outB     engine.Tensor // [D, G·Lo]

	// Compressed layers: the compressor (c = 2 for CSA).
	compKV, compGate engine.Tensor // [c·hd, D]
	compApe          engine.Tensor // [ratio, c·hd]
	compNorm         engine.Tensor // [hd]
	// CSA layers: the lightning indexer and its compressor.
	idxQB, idxProj         engine.Tensor // [HI·dI, Lq], [HI, D]
	idxKV, idxGate, idxApe engine.Tensor // [2dI, D], [2dI, D], [4, 2dI]
	idxNorm                engine.Tensor // [dI]

	ffnNorm              engine.Tensor // [D]
	router               engine.Tensor // [X, D]
	bias                 engine.Tensor // [X]; layers ≥ HashLayers
	tid2eid              engine.Tensor // I32 [vocab, k]; layers < HashLayers
	gateExps, upExps     engine.Tensor // [X, F, D]
	downExps             engine.Tensor // [X, D, F]
	gateShared, upShared engine.Tensor // [F, D]
	downShared           engine.Tensor // [D, F]

	// Indices into Forward's caches (−1: none).
	ring, entries, keys, compState, idxState int
}

// mtpBlock is a multi-token-prediction block a file may carry (llama.cpp's
// converter drops them): loaded and checked, not used by Forward yet.
type mtpBlock struct {
	layer
	ehProj, enorm, hnorm, headNorm engine.Tensor
	// The block's own collapse of the streams (a directory's mtp.K.hc_head_*;
	// GGUF files have none).
	hcHeadFn, hcHeadScale, hcHeadBase engine.Tensor
}

// Model is a loaded DeepSeek-V4 model.
type Model struct {
	p      Params
	info   engine.Info
	embed  engine.Tensor // [V, D]
	norm   engine.Tensor // [D]
	output engine.Tensor // [V, D]
	// The final collapse of the streams: [hc, hc·D], [1], [hc].
	hcHeadFn, hcHeadScale, hcHeadBase engine.Tensor
	layers                            []layer
	mtp                               []mtpBlock
	layout                            engine.CacheLayout
	// observe, when set (by tests, with the eager CPU backend), sees the
	// indexer's selection ("lid_top_k") and the routed experts
	// ("ffn_moe_topk") of every layer as they are made, named as in
	// llama.cpp's graph.
	observe func(layer int, name string, t engine.Tensor)
}

var _ engine.Model = (*Model)(nil)

// Load builds the model from a deepseek4 GGUF file on backend b.
func Load(f *gguf.File, b engine.Backend) (engine.Model, error) {
	p, err := paramsFromGGUF(f)
	if err != nil {
		return nil, err
	}
	w := weights{f: f, b: b, used: map[string]bool{}}
	m := build(p, &w)
	if w.err != nil {
		return nil, w.err
	}
	if err := w.checkUnused(p); err != nil {
		return nil, err
	}
	name, _ := f.String("general.name")
	m.info = info(name, p, &w, len(m.mtp))
	return m, nil
}

// build loads every weight and lays out the cache.
func build(p Params, w *weights) *Model {
	// The layers grow as they load, not from block_count up front: a
	// file claiming millions of blocks fails at its first missing one
	// instead of allocating for all of them.
	m := &Model{p: p}
	D, V, hc := p.Hidden, p.Vocab, p.HCMult
	m.embed = w.get("token_embd.weight", V, D)
	m.norm = w.get("output_norm.weight", D)
	m.output = w.get("output.weight", V, D)
	m.hcHeadFn = w.get("output_hc_fn.weight", hc, hc*D)
	m.hcHeadScale = w.get("output_hc_scale.weight", 1)
	m.hcHeadBase = w.get("output_hc_base.weight", hc)
	for i := 0; i < p.Layers && w.err == nil; i++ {
		m.layers = append(m.layers, loadLayer(p, w, i, p.Ratios[i], i < p.HashLayers))
	}
	// MTP blocks follow the decoder blocks (blk.Layers…), when present.
	for n := p.Layers; n < p.Layers+p.NextN && w.err == nil && w.has(blk(n, "nextn.eh_proj.weight")); n++ {
		mb := mtpBlock{layer: loadLayer(p, w, n, 0, false)}
		mb.ehProj = w.get(blk(n, "nextn.eh_proj.weight"), D, 2*D)
		mb.enorm = w.get(blk(n, "nextn.enorm.weight"), D)
		mb.hnorm = w.get(blk(n, "nextn.hnorm.weight"), D)
		if w.err == nil && w.has(blk(n, "nextn.shared_head_norm.weight")) {
			mb.headNorm = w.get(blk(n, "nextn.shared_head_norm.weight"), D)
		}
		m.mtp = append(m.mtp, mb)
	}
	m.layout = m.cacheLayout()
	return m
}

// loadLayer loads block i with compression ratio, hash-routed or biased.
func loadLayer(p Params, w *weights, i, ratio int, hash bool) layer {
	l := layer{ratio: ratio}
	D, H, hd, hc := p.Hidden, p.Heads, p.HeadDim, p.HCMult
	G, Lo, Lq := p.OGroups, p.OLoRA, p.QLoRA
	mix := (2 + hc) * hc
	n := func(s string) string { return blk(i, s) }
	l.hcAttnFn = w.get(n("hc_attn_fn.weight"), mix, hc*D)
	l.hcAttnScale = w.get(n("hc_attn_scale.weight"), 3)
	l.hcAttnBase = w.get(n("hc_attn_base.weight"), mix)
	l.hcFFNFn = w.get(n("hc_ffn_fn.weight"), mix, hc*D)
	l.hcFFNScale = w.get(n("hc_ffn_scale.weight"), 3)
	l.hcFFNBase = w.get(n("hc_ffn_base.weight"), mix)

	l.attnNorm = w.get(n("attn_norm.weight"), D)
	l.qA = w.get(n("attn_q_a.weight"), Lq, D)
	l.qANorm = w.get(n("attn_q_a_norm.weight"), Lq)
	l.qB = w.get(n("attn_q_b.weight"), H*hd, Lq)
	l.kv = w.get(n("attn_kv.weight"), hd, D)
	l.kvNorm = w.get(n("attn_kv_a_norm.weight"), hd)
	l.sinks = w.get(n("attn_sinks.weight"), H)
	// wo_a's rows g·Lo … g·Lo+Lo−1 act on group g's heads (trap 14).
	l.outA = w.view(n("attn_output_a.weight"), []int{G * Lo, H * hd / G}, []int{G, Lo, H * hd / G})
	l.outB = w.get(n("attn_output_b.weight"), D, G*Lo)
	if ratio > 0 {
		c := 1
		if ratio == 4 {
			c = 2
		}
		l.compKV = w.get(n("attn_compressor_kv.weight"), c*hd, D)
		l.compGate = w.get(n("attn_compressor_gate.weight"), c*hd, D)
		l.compApe = w.get(n("attn_compressor_ape.weight"), ratio, c*hd)
		l.compNorm = w.get(n("attn_compressor_norm.weight"), hd)
	}
	if ratio == 4 {
		HI, dI := p.IndexHeads, p.IndexHeadDim
		l.idxQB = w.get(n("indexer.attn_q_b.weight"), HI*dI, Lq)
		l.idxProj = w.get(n("indexer.proj.weight"), HI, D)
		l.idxKV = w.get(n("indexer_compressor_kv.weight"), 2*dI, D)
		l.idxGate = w.get(n("indexer_compressor_gate.weight"), 2*dI, D)
		l.idxApe = w.get(n("indexer_compressor_ape.weight"), 4, 2*dI)
		l.idxNorm = w.get(n("indexer_compressor_norm.weight"), dI)
	}

	X, F := p.Experts, p.ExpertFFN
	l.ffnNorm = w.get(n("ffn_norm.weight"), D)
	l.router = w.get(n("ffn_gate_inp.weight"), X, D)
	if hash {
		l.tid2eid = w.get(n("ffn_gate_tid2eid.weight"), p.Vocab, p.ExpertsUsed)
	} else if w.err == nil && w.has(n("exp_probs_b.bias")) {
		l.bias = w.get(n("exp_probs_b.bias"), X)
	}
	l.gateExps = w.get(n("ffn_gate_exps.weight"), X, F, D)
	l.upExps = w.get(n("ffn_up_exps.weight"), X, F, D)
	l.downExps = w.get(n("ffn_down_exps.weight"), X, D, F)
	if p.Shared > 0 {
		l.gateShared = w.get(n("ffn_gate_shexp.weight"), F, D)
		l.upShared = w.get(n("ffn_up_shexp.weight"), F, D)
		l.downShared = w.get(n("ffn_down_shexp.weight"), D, F)
	}
	return l
}

// Info describes the model.
func (m *Model) Info() engine.Info { return m.info }

// Params returns the hyperparameters.
func (m *Model) Params() Params { return m.p }

// Cache is the V4 KV cache (spec §4.1), per layer:
//
//	every layer   ring of Window raw kv rows [Window, hd]        state, slot p mod Window
//	CSA (ratio 4) compressed entries [hd]                         paged, one row per 4 tokens
//	              indexer keys [dI]                               paged, one row per 4 tokens
//	              compressor state [8, 2·(2hd)]  (kv | score)     state, slot p mod 8
//	              indexer compressor state [8, 2·(2dI)]           state, slot p mod 8
//	HCA (128)     compressed entries [hd]                         paged, one row per 128 tokens
//	              compressor state [128, 2·hd]                    state, slot p mod 128
//
// The compressor state keeps the last c·ratio positions' projections, so
// CSA's entry w finds window w−1's first halves there.
func (m *Model) Cache() engine.CacheLayout { return m.layout }

func (m *Model) cacheLayout() engine.CacheLayout {
	var lay engine.CacheLayout
	p := m.p
	hd, dI := p.HeadDim, p.IndexHeadDim
	type stateRef struct {
		at   *int
		rows int
		w    int
	}
	var states []stateRef
	for i := range m.layers {
		l := &m.layers[i]
		l.entries, l.keys, l.compState, l.idxState = -1, -1, -1, -1
		states = append(states, stateRef{&l.ring, p.Window, hd})
		switch l.ratio {
		case 4:
			l.entries = len(lay.Paged)
			lay.Paged = append(lay.Paged, engine.PagedCache{Every: 4, Width: hd})
			l.keys = len(lay.Paged)
			lay.Paged = append(lay.Paged, engine.PagedCache{Every: 4, Width: dI})
			states = append(states, stateRef{&l.compState, 8, 4 * hd}, stateRef{&l.idxState, 8, 4 * dI})
		case 128:
			l.entries = len(lay.Paged)
			lay.Paged = append(lay.Paged, engine.PagedCache{Every: 128, Width: hd})
			states = append(states, stateRef{&l.compState, 128, 2 * hd})
		}
	}
	for _, s := range states {
		*s.at = len(lay.Paged) + len(lay.State)
		lay.State = append(lay.State, engine.StateCache{Rows: s.rows, Width: s.w})
	}
	return lay
}

// Forward runs the batch through every block (spec §2.0): the embedding is
// copied into hc streams; each sub-block reads a mix of them (mHC pre),
// and its output is spread back over them (mHC post); the streams
// collapse (hc_head) before the final norm and head.
func (m *Model) Forward(ctx engine.Context, b *engine.Batch, caches []engine.Tensor) engine.Tensor {
	p := m.p
	T, D, hc := len(b.Tokens), p.Hidden, p.HCMult
	e := ctx.Embed(m.embed, b)
	x := e
	for range hc - 1 {
		x = ctx.Concat(x, e)
	}
	x = ctx.Reshape(x, T, hc, D)
	for i := range m.layers {
		l := &m.layers[i]
		in, post, comb := ctx.HyperPre(x, m.mix(ctx, x, l.hcAttnFn), l.hcAttnScale, l.hcAttnBase, p.Hyper())
		y := m.attention(ctx, l, ctx.RMSNorm(in, l.attnNorm, p.Eps), b, caches, i)
		x = ctx.HyperPost(y, x, post, comb)

		in, post, comb = ctx.HyperPre(x, m.mix(ctx, x, l.hcFFNFn), l.hcFFNScale, l.hcFFNBase, p.Hyper())
		y = m.moe(ctx, l, ctx.RMSNorm(in, l.ffnNorm, p.Eps), b, i)
		x = ctx.HyperPost(y, x, post, comb)
	}
	// Only the wanted rows collapse and go through the head.
	x = ctx.Reshape(ctx.Rows(ctx.Reshape(x, T, hc*D), b.Outputs), len(b.Outputs), hc, D)
	h := ctx.HyperHead(x, m.mix(ctx, x, m.hcHeadFn), m.hcHeadScale, m.hcHeadBase, p.Hyper())
	return ctx.Logits(ctx.RMSNorm(h, m.norm, p.Eps), m.output)
}

// mix is the streams flattened to [T, hc·D], RMS-normalised without a
// weight, times fn: the mHC mixing logits.
func (m *Model) mix(ctx engine.Context, x, fn engine.Tensor) engine.Tensor {
	s := x.Shape()
	flat := ctx.Reshape(x, s[0], s[1]*s[2])
	return ctx.MatMul(ctx.RMSNorm(flat, nil, m.p.Eps), fn)
}

// attention is one layer's shared-KV attention (spec §2.3–2.6). Per token:
//
//	qr = norm(x·wq_aᵀ, q_norm)
//	q  = rope(rmsnorm(qr·wq_bᵀ per head))              [H, hd], no norm weight
//	kv = rope(norm(x·wkvᵀ, kv_norm))                    [hd], the key and the value
//	keys = window(p−Window+1 … p) ∪ entries             HCA: all visible; CSA: indexer's top-k
//	o  = rope⁻¹(softmax_sink(q·keysᵀ/√hd)·keys, p)       per head
//	out = wo_b · concat_g wo_a[g]·o[group g]
func (m *Model) attention(ctx engine.Context, l *layer, x engine.Tensor, b *engine.Batch, caches []engine.Tensor, i int) engine.Tensor {
	p := m.p
	T, H, hd := len(b.Tokens), p.Heads, p.HeadDim
	rope := p.Rope(i)
	qr := ctx.RMSNorm(ctx.MatMul(x, l.qA), l.qANorm, p.Eps)
	q := ctx.Reshape(ctx.MatMul(qr, l.qB), T, H, hd)
	q = ctx.Rope(ctx.RMSNorm(q, nil, p.Eps), b, rope)
	kv := ctx.Rope(ctx.RMSNorm(ctx.MatMul(x, l.kv), l.kvNorm, p.Eps), b, rope)

	var entries, sel engine.Tensor
	if l.ratio > 0 {
		// The step's windows complete into entries before anyone reads
		// them: a token sees entry w once w < (p+1)/ratio (trap 9).
		entries = ctx.Compress(ctx.MatMul(x, l.compKV), ctx.MatMul(x, l.compGate), caches[l.compState], caches[l.entries], b,
			engine.CompressSpec{Ratio: l.ratio, Overlap: l.ratio == 4, Ape: l.compApe, Norm: l.compNorm, Eps: p.Eps, Rope: rope})
	}
	if l.ratio == 4 {
		keys := ctx.Compress(ctx.MatMul(x, l.idxKV), ctx.MatMul(x, l.idxGate), caches[l.idxState], caches[l.keys], b,
			engine.CompressSpec{Ratio: 4, Overlap: true, Ape: l.idxApe, Norm: l.idxNorm, Eps: p.Eps, Rope: rope})
		qI := ctx.Rope(ctx.Reshape(ctx.MatMul(qr, l.idxQB), T, p.IndexHeads, p.IndexHeadDim), b, rope)
		sel = ctx.IndexTopK(qI, ctx.MatMul(x, l.idxProj), keys, b, engine.IndexSpec{Ratio: 4, TopK: p.IndexTopK, Scale: p.IndexScale()})
		if m.observe != nil {
			m.observe(i, "lid_top_k", sel)
		}
	}
	ring := caches[l.ring]
	o := ctx.SparseAttention(q, kv, ring, entries, sel, b, engine.SparseSpec{Scale: p.KQScale(), Window: p.Window, Ratio: l.ratio, Sinks: l.sinks})
	ctx.WindowStore(ring, kv, b, p.Window)
	// Values carry the keys' rotation: undo it at the query's position.
	inv := rope
	inv.Inverse = true
	o = ctx.Rope(o, b, inv)
	G := p.OGroups
	o = ctx.MatMulHeads(ctx.Reshape(o, T, G, H*hd/G), l.outA)
	return ctx.MatMul(ctx.Reshape(o, T, G*p.OLoRA), l.outB)
}

// moe routes each token to ExpertsUsed experts (spec §2.7): sqrt-softplus
// scores; in the first HashLayers layers the experts are the token's row of
// tid2eid, later the top-k of score + bias (the bias only selects); weights
// normalised and scaled; SwiGLU clamped (gate ≤ L, up in [−L, L]) in the
// routed and the shared expert.
func (m *Model) moe(ctx engine.Context, l *layer, x engine.Tensor, b *engine.Batch, i int) engine.Tensor {
	p := m.p
	logits := ctx.MatMul(x, l.router)
	var ids, weights engine.Tensor
	if l.tid2eid != nil {
		ids, weights = ctx.RouteHash(logits, l.tid2eid, b, p.Route())
	} else {
		ids, weights = ctx.Route(logits, l.bias, p.Route())
	}
	if m.observe != nil {
		m.observe(i, "ffn_moe_topk", ids)
	}
	y := ctx.ExpertFFN(x, ids, weights, l.gateExps, l.upExps, l.downExps, p.ClampExp[i])
	if l.gateShared != nil {
		shared := ctx.MatMul(ctx.SwiGLU(ctx.MatMul(x, l.gateShared), ctx.MatMul(x, l.upShared), p.ClampShared[i]), l.downShared)
		y = ctx.Add(y, shared)
	}
	return y
}

// info describes the model; active parameters count what one token reads:
// everything but the routed experts, plus ExpertsUsed of them per layer
// (the embedding counts one row).
func info(name string, p Params, w *weights, mtp int) engine.Info {
	D, X, F := uint64(p.Hidden), uint64(p.Experts), uint64(p.ExpertFFN)
	routed := uint64(p.Layers) * X * 3 * D * F
	activeRouted := uint64(p.Layers) * uint64(p.ExpertsUsed) * 3 * D * F
	embed := uint64(p.Vocab) * D
	active := w.total - routed + activeRouted - embed + D
	activeBytes := w.bytes - w.routedBytes - w.embedBytes + w.embedBytes/uint64(max(p.Vocab, 1))
	activeBytes += w.routedBytes / X * uint64(p.ExpertsUsed)
	i := func(v int) string { return strconv.Itoa(v) }
	fl := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	ratios := ""
	for k, r := range p.Ratios {
		if k > 0 {
			ratios += ","
		}
		ratios += i(r)
	}
	return engine.Info{
		Architecture: "deepseek4",
		Name:         name,
		Vocab:        p.Vocab,
		Context:      p.Context,
		Layers:       p.Layers,
		TotalParams:  w.total,
		ActiveParams: active,
		ActiveBytes:  activeBytes,
		Params: [][2]string{
			{"hidden_size", i(p.Hidden)}, {"num_hidden_layers", i(p.Layers)}, {"num_attention_heads", i(p.Heads)},
			{"head_dim", i(p.HeadDim)}, {"qk_rope_head_dim", i(p.RopeDim)}, {"q_lora_rank", i(p.QLoRA)},
			{"o_groups", i(p.OGroups)}, {"o_lora_rank", i(p.OLoRA)}, {"sliding_window", i(p.Window)},
			{"compress_ratios", ratios}, {"index_n_heads", i(p.IndexHeads)}, {"index_head_dim", i(p.IndexHeadDim)},
			{"index_topk", i(p.IndexTopK)}, {"n_routed_experts", i(p.Experts)}, {"num_experts_per_tok", i(p.ExpertsUsed)},
			{"n_shared_experts", i(p.Shared)}, {"moe_intermediate_size", i(p.ExpertFFN)}, {"num_hash_layers", i(p.HashLayers)},
			{"scoring_func", "sqrtsoftplus"}, {"norm_topk_prob", strconv.FormatBool(p.NormTopK)},
			{"routed_scaling_factor", fl(p.RoutedScale)}, {"hc_mult", i(p.HCMult)}, {"hc_sinkhorn_iters", i(p.HCIters)},
			{"hc_eps", fl(p.HCEps)}, {"rms_norm_eps", fl(p.Eps)}, {"max_position_embeddings", i(p.Context)},
			{"rope_theta", fl(p.RopeBase)}, {"compress_rope_theta", fl(p.CompressBase)},
			{"rope_scaling.factor", fl(p.YarnFactor)}, {"rope_scaling.original_max_position_embeddings", i(p.YarnOrigContext)},
			{"vocab_size", i(p.Vocab)}, {"mtp_blocks", i(mtp)},
		},
	}
}
