package testmodel

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
)

// TestV4TinyFile writes the golden model twice and once with another seed,
// and reads it back: the same seed gives the same bytes, and the file holds
// the keys (with the GGUF types llama.cpp's deepseek4 loader demands) and
// exactly the tensors of spec §5.5.
func TestV4TinyFile(t *testing.T) {
	t.Parallel()
	c := TinyV4()
	write := func(seed uint64) []byte {
		var b bytes.Buffer
		require.NoError(t, c.Write(&b, seed))
		return b.Bytes()
	}
	a, b := write(1), write(1)
	require.Equal(t, a, b, "same seed, same bytes")
	// The file llama.cpp's goldens were made from (engine/arch/deepseekv4/testdata).
	sums, err := os.ReadFile("../arch/deepseekv4/testdata/models.sha256")
	require.NoError(t, err)
	sum := sha256.Sum256(a)
	require.Contains(t, string(sums), hex.EncodeToString(sum[:])+"  tiny-v4-f32.gguf",
		"the generator no longer writes the model the V4 goldens were made from; run their gen_goldens.sh")
	for _, s := range c.declare(1).specs {
		if s.name == "blk.0.ffn_gate_tid2eid.weight" || s.name == "blk.1.attn_q_b.weight" {
			nop := func(int) {}
			require.NotEqual(t, s.data(1, nop), s.data(2, nop), "%s: the seed matters", s.name)
		}
	}

	f, err := gguf.Parse(a)
	require.NoError(t, err)
	arch, err := f.Arch()
	require.NoError(t, err)
	require.Equal(t, "deepseek4", arch)
	u32 := map[string]int{
		"context_length": c.Context, "embedding_length": c.Hidden, "embedding_length_out": 4 * c.Hidden,
		"block_count": c.Layers, "vocab_size": c.Vocab, "attention.head_count": c.Heads,
		"attention.head_count_kv": 1, "attention.key_length": c.HeadDim, "attention.value_length": c.HeadDim,
		"attention.q_lora_rank": c.QLoRA, "attention.output_group_count": c.OutGroups,
		"attention.output_lora_rank": c.OutLoRA, "attention.sliding_window": c.SlidingWindow,
		"attention.indexer.head_count": c.IndexHeads, "attention.indexer.key_length": c.IndexHeadDim,
		"attention.indexer.top_k": c.IndexTopK, "rope.dimension_count": c.RopeDim,
		"rope.scaling.original_context_length": c.YarnOrigContext, "expert_feed_forward_length": c.ExpertFFN,
		"expert_count": c.Experts, "expert_used_count": c.ExpertsUsed, "expert_shared_count": c.Shared,
		"expert_gating_func": 4, "hash_layer_count": c.HashLayers, "hyper_connection.count": 4,
		"hyper_connection.sinkhorn_iterations": c.HCIters,
	}
	for k, want := range u32 {
		got, err := f.Uint32("deepseek4." + k)
		require.NoError(t, err, k)
		require.EqualValues(t, want, got, k)
	}
	f32 := map[string]float32{
		"attention.layer_norm_rms_epsilon": c.NormEps, "attention.compress_rope_freq_base": 160000,
		"rope.freq_base": 10000, "rope.scaling.factor": c.YarnFactor, "rope.scaling.yarn_beta_fast": 32,
		"rope.scaling.yarn_beta_slow": 1, "expert_weights_scale": c.RoutedScale, "hyper_connection.epsilon": c.HCEps,
	}
	for k, want := range f32 {
		got, err := f.Float32("deepseek4." + k)
		require.NoError(t, err, k)
		require.Equal(t, want, got, k)
	}
	norm, err := f.Bool("deepseek4.expert_weights_norm")
	require.NoError(t, err)
	require.True(t, norm)
	yarn, err := f.String("deepseek4.rope.scaling.type")
	require.NoError(t, err)
	require.Equal(t, "yarn", yarn)
	ratios, err := f.Int32s("deepseek4.attention.compress_ratios")
	require.NoError(t, err)
	require.Equal(t, []int32{0, 4, 128, 4, 0}, ratios, "per layer, then the MTP block's 0")
	for _, k := range []string{"swiglu_clamp_exp", "swiglu_clamp_shexp"} {
		clamp, err := f.Float32s("deepseek4." + k)
		require.NoError(t, err, k)
		require.Equal(t, slices.Repeat([]float32{c.SwigluLimit}, c.Layers), clamp, k)
	}
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	require.Len(t, tokens, c.Vocab)

	// The tensors: names, types and ggml shapes (fastest dimension first).
	E, V, H, hd, F, X := uint64(c.Hidden), uint64(c.Vocab), uint64(c.Heads), uint64(c.HeadDim), uint64(c.ExpertFFN), uint64(c.Experts)
	IH, ID := uint64(c.IndexHeads), uint64(c.IndexHeadDim)
	type want struct {
		typ  gguf.Type
		dims []uint64
	}
	F32 := gguf.TypeF32
	ws := map[string]want{
		"token_embd.weight": {F32, []uint64{E, V}}, "output_norm.weight": {F32, []uint64{E}},
		"output.weight": {F32, []uint64{E, V}}, "output_hc_fn.weight": {F32, []uint64{4 * E, 4}},
		"output_hc_base.weight": {F32, []uint64{4}}, "output_hc_scale.weight": {F32, []uint64{1}},
	}
	for l, r := range c.CompressRatios {
		n := func(s string) string { return fmt.Sprintf("blk.%d.%s", l, s) }
		add := func(name string, typ gguf.Type, dims ...uint64) { ws[n(name)] = want{typ, dims} }
		add("attn_norm.weight", F32, E)
		add("attn_sinks.weight", F32, H)
		add("attn_q_a.weight", F32, E, uint64(c.QLoRA))
		add("attn_q_a_norm.weight", F32, uint64(c.QLoRA))
		add("attn_q_b.weight", F32, uint64(c.QLoRA), H*hd)
		add("attn_kv.weight", F32, E, hd)
		add("attn_kv_a_norm.weight", F32, hd)
		add("attn_output_a.weight", F32, H*hd/uint64(c.OutGroups), uint64(c.OutGroups*c.OutLoRA))
		add("attn_output_b.weight", F32, uint64(c.OutGroups*c.OutLoRA), E)
		for _, hc := range []string{"hc_attn", "hc_ffn"} {
			add(hc+"_fn.weight", F32, 4*E, 24)
			add(hc+"_base.weight", F32, 24)
			add(hc+"_scale.weight", F32, 3)
		}
		if r != 0 {
			coff := uint64(1)
			if r == 4 {
				coff = 2
			}
			add("attn_compressor_kv.weight", F32, E, coff*hd)
			add("attn_compressor_gate.weight", F32, E, coff*hd)
			add("attn_compressor_ape.weight", F32, coff*hd, uint64(r))
			add("attn_compressor_norm.weight", F32, hd)
		}
		if r == 4 {
			add("indexer.proj.weight", F32, E, IH)
			add("indexer.attn_q_b.weight", F32, uint64(c.QLoRA), IH*ID)
			add("indexer_compressor_kv.weight", F32, E, 2*ID)
			add("indexer_compressor_gate.weight", F32, E, 2*ID)
			add("indexer_compressor_ape.weight", F32, 2*ID, 4)
			add("indexer_compressor_norm.weight", F32, ID)
		}
		add("ffn_gate_inp.weight", F32, E, X)
		if l < c.HashLayers {
			add("ffn_gate_tid2eid.weight", gguf.TypeI32, uint64(c.ExpertsUsed), V)
		} else {
			add("exp_probs_b.bias", F32, X)
		}
		add("ffn_norm.weight", F32, E)
		add("ffn_gate_exps.weight", F32, E, F, X)
		add("ffn_up_exps.weight", F32, E, F, X)
		add("ffn_down_exps.weight", F32, F, E, X)
		add("ffn_gate_shexp.weight", F32, E, F)
		add("ffn_up_shexp.weight", F32, E, F)
		add("ffn_down_shexp.weight", F32, F, E)
	}
	got := map[string]want{}
	for _, ti := range f.Tensors() {
		got[ti.Name] = want{ti.Type, ti.Dims}
	}
	require.Equal(t, ws, got)

	// The hash tables hold k distinct expert ids per token, and use them all.
	for l := range c.HashLayers {
		ti, ok := f.Tensor(fmt.Sprintf("blk.%d.ffn_gate_tid2eid.weight", l))
		require.True(t, ok)
		data := f.Data(ti)
		k := c.ExpertsUsed
		require.LessOrEqual(t, c.Experts, 64, "one bit per expert below")
		used := make([]int, c.Experts)
		bad := 0
		for row := range c.Vocab {
			seen := uint64(0)
			for i := range k {
				id := binary.LittleEndian.Uint32(data[4*(row*k+i):])
				if id >= uint32(c.Experts) || seen&(1<<id) != 0 {
					bad++
					break
				}
				seen |= 1 << id
				used[id]++
			}
		}
		require.Zero(t, bad, "rows of layer %d with an id out of range or repeated", l)
		for e, n := range used {
			// Uniform draws: each expert appears about V·k/X times.
			require.InDelta(t, c.Vocab*k/c.Experts, n, float64(c.Vocab*k/c.Experts)/10, "expert %d", e)
		}
	}
}

// TestV4Presets holds the presets to what they are for: the golden model
// exercises every attention kind, both routings and the indexer's
// selection on a 300-token prompt; the benchmark model is 1–2 GB; all
// three keep to llama.cpp's limits. Sizes come from the declared tensors,
// without drawing a byte.
func TestV4Presets(t *testing.T) {
	t.Parallel()
	tiny := TinyV4()
	require.NoError(t, tiny.Validate())
	require.Contains(t, tiny.CompressRatios, RatioSliding)
	require.Contains(t, tiny.CompressRatios, RatioCSA)
	require.Contains(t, tiny.CompressRatios, RatioHCA)
	require.Greater(t, tiny.HashLayers, 0, "hash-routed layers")
	require.Less(t, tiny.HashLayers, tiny.Layers, "biased layers")
	const prompt = 300
	require.GreaterOrEqual(t, prompt/RatioHCA, 2, "HCA entries")
	require.Greater(t, prompt/RatioCSA, tiny.IndexTopK, "the indexer selects: more CSA entries than index_topk")
	require.Less(t, prompt, tiny.Context)
	require.Less(t, size(tiny.declare(1)), int64(12<<20), "the tiny model stays small")

	for _, c := range []V4{tiny, DemoV4(), BenchV4()} {
		require.NoError(t, c.Validate(), c.Name)
		require.Equal(t, 4, c.HCMult, "%s: llama.cpp asserts hc_mult == 4", c.Name)
		require.Zero(t, c.IndexHeadDim%64, "%s: llama.cpp's indexer rotation is 64-wide blocks", c.Name)
		require.NotEqual(t, c.HeadDim, c.IndexHeadDim, c.Name)
		require.Equal(t, float32(32), c.YarnBetaFast, "%s: llama.cpp uses beta_fast 32", c.Name)
		require.Equal(t, float32(1), c.YarnBetaSlow, "%s: llama.cpp uses beta_slow 1", c.Name)
	}
	bench := size(BenchV4().declare(1))
	require.Greater(t, bench, int64(1e9))
	require.Less(t, bench, int64(2e9))
	demo := DemoV4().declare(1)
	require.Less(t, size(demo), int64(64<<20))
	for _, s := range demo.specs {
		if s.proj {
			require.Equal(t, gguf.TypeQ8_0, s.typ, "%s: Q8_0 rows are whole blocks in the demo", s.name)
		}
	}
}

func size(t *tensors) int64 {
	var n int64
	for _, s := range t.specs {
		n += int64(s.size())
	}
	return n
}

// TestV4Validate: impossible configurations fail with an error naming the
// field, before anything is written.
func TestV4Validate(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		edit func(*V4)
		msg  string
	}{
		"ratio":       {func(c *V4) { c.CompressRatios[2] = 64 }, "CompressRatios[2] = 64"},
		"ratios":      {func(c *V4) { c.CompressRatios = c.CompressRatios[:3] }, "3 CompressRatios for 4 layers"},
		"vocab":       {func(c *V4) { c.Vocab = 512 }, "Vocab = 512"},
		"groups":      {func(c *V4) { c.OutGroups = 3 }, "OutGroups = 3"},
		"rope":        {func(c *V4) { c.RopeDim = 256 }, "RopeDim = 256"},
		"index dim":   {func(c *V4) { c.IndexHeadDim = 48 }, "IndexHeadDim = 48"},
		"used":        {func(c *V4) { c.ExpertsUsed = 9 }, "ExpertsUsed = 9"},
		"hash":        {func(c *V4) { c.HashLayers = 5 }, "HashLayers = 5"},
		"hidden":      {func(c *V4) { c.Hidden = 0 }, "Hidden = 0"},
		"type":        {func(c *V4) { c.Type = gguf.TypeQ4_K }, "Type"},
		"yarn":        {func(c *V4) { c.YarnOrigContext = 0 }, "YarnOrigContext"},
		"index heads": {func(c *V4) { c.IndexTopK = 0 }, "IndexTopK"},
	} {
		c := TinyV4()
		tc.edit(&c)
		err := c.Validate()
		require.ErrorContains(t, err, tc.msg, name)
		require.ErrorContains(t, c.Write(&bytes.Buffer{}, 1), tc.msg, name)
	}
}
