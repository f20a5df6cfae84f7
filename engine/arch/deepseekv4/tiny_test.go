package deepseekv4

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
)

// tinyConfig is the tiny V4 of spec §1.1 (ratios 0, 4, 128, 4 so that all
// three attention kinds run), with a small window and index_topk so that a
// few hundred tokens slide the window and make the indexer select, and
// SwiGLU clamps low enough to bite on some layers.
type tinyConfig struct {
	Vocab, D, Layers, H, HD, RD, Lq, G, Lo, Window int
	Ratios                                         []int
	HI, DI, TopK, X, K, F, Hash                    int
	Clamp                                          []float32
	Scale                                          float32
	// MTP adds a multi-token-prediction block (blk.Layers, window only)
	// after every other tensor, so that the main weights stay the same.
	MTP bool
}

func tiny() tinyConfig {
	return tinyConfig{
		Vocab: 512, D: 64, Layers: 4, H: 4, HD: 64, RD: 16, Lq: 32, G: 2, Lo: 16, Window: 8,
		Ratios: []int{0, 4, 128, 4},
		HI:     4, DI: 32, TopK: 4, X: 8, K: 2, F: 32, Hash: 1,
		Clamp: []float32{10, 0.5, 1, 10},
		Scale: 1.5,
	}
}

// tinyWeights are a seeded model's tensors by GGUF name, row-major.
type tinyWeights map[string][]float32

// tables are the i32 tensors (tid2eid) by name.
type tinyTables map[string][]int32

// build writes the model as a GGUF file, returning its bytes and weights.
func (c tinyConfig) build(t testing.TB, seed uint64) ([]byte, tinyWeights, tinyTables) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	ws, tabs := tinyWeights{}, tinyTables{}
	w := &gguf.Writer{}
	a := func(k string, v any) { w.Add("deepseek4."+k, v) }
	w.Add("general.architecture", "deepseek4")
	w.Add("general.name", "tiny-v4-test")
	u := func(v int) uint32 { return uint32(v) }
	a("context_length", u(4096))
	a("embedding_length", u(c.D))
	a("block_count", u(c.Layers))
	a("vocab_size", u(c.Vocab))
	a("attention.head_count", u(c.H))
	a("attention.head_count_kv", u(1))
	a("attention.key_length", u(c.HD))
	a("attention.value_length", u(c.HD))
	a("attention.layer_norm_rms_epsilon", float32(1e-6))
	a("attention.q_lora_rank", u(c.Lq))
	a("attention.output_lora_rank", u(c.Lo))
	a("attention.output_group_count", u(c.G))
	a("attention.sliding_window", u(c.Window))
	ratios := make([]int32, len(c.Ratios)+1) // + the MTP entry, as files carry
	for i, r := range c.Ratios {
		ratios[i] = int32(r)
	}
	a("attention.compress_ratios", ratios)
	a("attention.compress_rope_freq_base", float32(160000))
	a("attention.indexer.head_count", u(c.HI))
	a("attention.indexer.key_length", u(c.DI))
	a("attention.indexer.top_k", u(c.TopK))
	a("rope.dimension_count", u(c.RD))
	a("rope.freq_base", float32(10000))
	a("rope.scaling.type", "yarn")
	a("rope.scaling.factor", float32(4))
	a("rope.scaling.original_context_length", u(64))
	a("expert_count", u(c.X))
	a("expert_used_count", u(c.K))
	a("expert_shared_count", u(1))
	a("expert_feed_forward_length", u(c.F))
	a("expert_weights_scale", c.Scale)
	a("expert_weights_norm", true)
	a("expert_gating_func", u(4))
	a("hash_layer_count", u(c.Hash))
	a("swiglu_clamp_exp", c.Clamp)
	a("hyper_connection.count", u(4))
	a("hyper_connection.sinkhorn_iterations", u(20))
	a("hyper_connection.epsilon", float32(1e-6))
	if c.MTP {
		a("nextn_predict_layers", u(1))
	}

	add := func(name string, std, mean float64, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(mean + std*rng.NormFloat64())
		}
		ws[name] = v
		dims := make([]uint64, len(shape))
		for i, d := range shape {
			dims[len(shape)-1-i] = uint64(d)
		}
		data := make([]byte, 4*n)
		for i, x := range v {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
		}
		w.AddTensor(name, gguf.TypeF32, dims, data)
	}
	proj := func(name string, out, in int) { add(name, 1/math.Sqrt(float64(in)), 0, out, in) }
	norm := func(name string, n int) { add(name, 0.1, 1, n) }
	D, hc := c.D, 4
	mix := (2 + hc) * hc
	add("token_embd.weight", 1, 0, c.Vocab, D)
	norm("output_norm.weight", D)
	proj("output.weight", c.Vocab, D)
	proj("output_hc_fn.weight", hc, hc*D)
	add("output_hc_scale.weight", 0.2, 1, 1)
	add("output_hc_base.weight", 0.3, 0, hc)
	block := func(l, ratio int, hash bool) {
		n := func(s string) string { return blk(l, s) }
		for _, sub := range []string{"attn", "ffn"} {
			proj(n("hc_"+sub+"_fn.weight"), mix, hc*D)
			add(n("hc_"+sub+"_scale.weight"), 0.2, 1, 3)
			add(n("hc_"+sub+"_base.weight"), 0.3, 0, mix)
		}
		norm(n("attn_norm.weight"), D)
		add(n("attn_sinks.weight"), 1, 0, c.H)
		proj(n("attn_q_a.weight"), c.Lq, D)
		norm(n("attn_q_a_norm.weight"), c.Lq)
		proj(n("attn_q_b.weight"), c.H*c.HD, c.Lq)
		proj(n("attn_kv.weight"), c.HD, D)
		norm(n("attn_kv_a_norm.weight"), c.HD)
		proj(n("attn_output_a.weight"), c.G*c.Lo, c.H*c.HD/c.G)
		proj(n("attn_output_b.weight"), D, c.G*c.Lo)
		if r := ratio; r > 0 {
			co := 1
			if r == 4 {
				co = 2
			}
			proj(n("attn_compressor_kv.weight"), co*c.HD, D)
			proj(n("attn_compressor_gate.weight"), co*c.HD, D)
			add(n("attn_compressor_ape.weight"), 0.5, 0, r, co*c.HD)
			norm(n("attn_compressor_norm.weight"), c.HD)
			if r == 4 {
				proj(n("indexer.attn_q_b.weight"), c.HI*c.DI, c.Lq)
				proj(n("indexer.proj.weight"), c.HI, D)
				proj(n("indexer_compressor_kv.weight"), 2*c.DI, D)
				proj(n("indexer_compressor_gate.weight"), 2*c.DI, D)
				add(n("indexer_compressor_ape.weight"), 0.5, 0, 4, 2*c.DI)
				norm(n("indexer_compressor_norm.weight"), c.DI)
			}
		}
		norm(n("ffn_norm.weight"), D)
		proj(n("ffn_gate_inp.weight"), c.X, D)
		if hash {
			tab := make([]int32, c.Vocab*c.K)
			data := make([]byte, 4*len(tab))
			for v := range c.Vocab {
				perm := rng.Perm(c.X)
				for j := range c.K {
					tab[v*c.K+j] = int32(perm[j])
				}
			}
			for i, x := range tab {
				binary.LittleEndian.PutUint32(data[4*i:], uint32(x))
			}
			tabs[n("ffn_gate_tid2eid.weight")] = tab
			w.AddTensor(n("ffn_gate_tid2eid.weight"), gguf.TypeI32, []uint64{uint64(c.K), uint64(c.Vocab)}, data)
		} else {
			add(n("exp_probs_b.bias"), 0.3, 0, c.X)
		}
		add(n("ffn_gate_exps.weight"), 2/math.Sqrt(float64(D)), 0, c.X, c.F, D)
		add(n("ffn_up_exps.weight"), 2/math.Sqrt(float64(D)), 0, c.X, c.F, D)
		add(n("ffn_down_exps.weight"), 1/math.Sqrt(float64(c.F)), 0, c.X, D, c.F)
		add(n("ffn_gate_shexp.weight"), 2/math.Sqrt(float64(D)), 0, c.F, D)
		add(n("ffn_up_shexp.weight"), 2/math.Sqrt(float64(D)), 0, c.F, D)
		add(n("ffn_down_shexp.weight"), 1/math.Sqrt(float64(c.F)), 0, D, c.F)
	}
	for l := range c.Layers {
		block(l, c.Ratios[l], l < c.Hash)
	}
	if c.MTP {
		block(c.Layers, 0, false)
		proj(blk(c.Layers, "nextn.eh_proj.weight"), D, 2*D)
		norm(blk(c.Layers, "nextn.enorm.weight"), D)
		norm(blk(c.Layers, "nextn.hnorm.weight"), D)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), ws, tabs
}

// load parses and loads a tiny model on a CPU backend with threads
// goroutines.
func loadTiny(t testing.TB, file []byte, threads int) *Model {
	t.Helper()
	f, err := gguf.Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(f, cpu.New(cpu.WithThreads(threads)))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*Model)
}

// harness runs a model over sequences with its own block tables, so that
// tests can lay out steps freely and read the cache.
type harness struct {
	m      *Model
	b      engine.Backend
	caches []engine.Tensor
	bs     int
	blocks int // per sequence
	pos    []int
}

func newHarness(t testing.TB, m *Model, b engine.Backend, seqs, tokens int) *harness {
	t.Helper()
	lay := m.Cache()
	if err := lay.Validate(); err != nil {
		t.Fatal(err)
	}
	bs := lay.BlockSize(16)
	h := &harness{m: m, b: b, bs: bs, blocks: (tokens + bs - 1) / bs, pos: make([]int, seqs)}
	for _, p := range lay.Paged {
		c, err := b.Cache(seqs*h.blocks*(bs/p.Every), p.Width, engine.F32)
		if err != nil {
			t.Fatal(err)
		}
		h.caches = append(h.caches, c)
	}
	for _, s := range lay.State {
		c, err := b.Cache(seqs*s.Rows, s.Width, engine.F32)
		if err != nil {
			t.Fatal(err)
		}
		// Stale values from "an earlier sequence": nothing may read them.
		ctx := b.NewContext()
		v, _ := ctx.Floats(c)
		for i := range v {
			(v)[i] = float32(math.NaN())
		}
		ctx.Close()
		h.caches = append(h.caches, c)
	}
	return h
}

// step runs one step of (sequence, tokens) parts, in reverse sequence
// order when reverse is set (block tables are reversed too, so that rows
// do not line up with sequence numbers), and returns every token's logits
// per part.
func (h *harness) step(t testing.TB, parts []part) [][][]float32 {
	t.Helper()
	b := &engine.Batch{BlockSize: h.bs}
	for i, pt := range parts {
		blocks := make([]int32, h.blocks)
		for k := range blocks {
			// Sequence s owns blocks s, s+n, s+2n, … of the shared cache.
			blocks[k] = int32(pt.seq + k*len(h.pos))
		}
		b.Seqs = append(b.Seqs, engine.BatchSeq{Blocks: blocks, State: int32(len(h.pos) - 1 - pt.seq)})
		for j, tok := range pt.tokens {
			p := h.pos[pt.seq] + j
			b.Tokens = append(b.Tokens, tok)
			b.Positions = append(b.Positions, int32(p))
			b.Seq = append(b.Seq, int32(i))
			b.Slots = append(b.Slots, int32(b.Slot(i, p)))
			b.Outputs = append(b.Outputs, len(b.Tokens)-1)
		}
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := h.b.NewContext()
	defer ctx.Close()
	logits := h.m.Forward(ctx, b, h.caches)
	if err := ctx.Compute(logits); err != nil {
		t.Fatal(err)
	}
	v, err := ctx.Floats(logits)
	if err != nil {
		t.Fatal(err)
	}
	V := h.m.p.Vocab
	out := make([][][]float32, len(parts))
	k := 0
	for i, pt := range parts {
		for range pt.tokens {
			out[i] = append(out[i], append([]float32(nil), v[k*V:(k+1)*V]...))
			k++
		}
		h.pos[pt.seq] += len(pt.tokens)
	}
	return out
}

type part struct {
	seq    int
	tokens []int32
}

// entries returns compressed entry rows [0, n) of sequence seq from the
// paged cache tensor idx.
func (h *harness) entries(t testing.TB, idx, seq, every, n int) [][]float32 {
	t.Helper()
	ctx := h.b.NewContext()
	defer ctx.Close()
	v, err := ctx.Floats(h.caches[idx])
	if err != nil {
		t.Fatal(err)
	}
	wd := h.caches[idx].Shape()[1]
	b := &engine.Batch{BlockSize: h.bs, Seqs: make([]engine.BatchSeq, seq+1)}
	blocks := make([]int32, h.blocks)
	for k := range blocks {
		blocks[k] = int32(seq + k*len(h.pos))
	}
	b.Seqs[seq].Blocks = blocks
	var out [][]float32
	for w := range n {
		r := b.PagedRow(seq, w*every, every)
		out = append(out, append([]float32(nil), v[r*wd:(r+1)*wd]...))
	}
	return out
}

func randomTokens(n, vocab int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(rng.IntN(vocab))
	}
	return out
}
