package deepseekv4

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
)

// TestRopeTables checks both V4 rope tables against spec §8 (trap 2): at
// position 1 each pair turns by exactly its frequency.
func TestRopeTables(t *testing.T) {
	t.Parallel()
	p := Params{RopeDim: 64, RopeBase: 10000, CompressBase: 160000, YarnFactor: 16, YarnOrigContext: 65536, YarnBetaFast: 32, YarnBetaSlow: 1, Ratios: []int{0, 4, 128}}
	freqs := func(spec engine.RopeSpec) []float64 {
		cos, sin := make([]float32, 32), make([]float32, 32)
		engine.RopeAngles(spec, 1, cos, sin)
		out := make([]float64, 32)
		for i := range out {
			out[i] = math.Atan2(float64(sin[i]), float64(cos[i]))
		}
		return out
	}
	main := freqs(p.Rope(0))
	for i, want := range map[int]float64{0: 1, 1: 0.7498942, 15: 1.3335214e-2, 16: 1e-2, 31: 1.3335214e-4} {
		require.InEpsilon(t, want, main[i], 2e-6, "main pair %d", i)
	}
	for _, layer := range []int{1, 2} {
		comp := freqs(p.Rope(layer))
		for i, want := range map[int]float64{0: 1, 1: 0.6876560, 15: 3.6355386e-3, 16: 2.2656250e-3, 20: 2.9697778e-4, 24: 1.953125e-5, 25: 5.3723127e-6, 31: 5.6805290e-7} {
			require.InEpsilon(t, want, comp[i], 2e-6, "compress pair %d (layer %d)", i, layer)
		}
	}
	require.InDelta(t, 0.044194174, Params{HeadDim: 512}.KQScale(), 1e-9)
	require.InDelta(t, 0.011048543, Params{IndexHeadDim: 128, IndexHeads: 64}.IndexScale(), 1e-9)
}

// TestCacheLayout: a window ring per layer, entries and indexer keys per
// CSA layer, entries per HCA layer, paged first (spec §4.1).
func TestCacheLayout(t *testing.T) {
	t.Parallel()
	c := tiny()
	file, _, _ := c.build(t, 1)
	m := loadTiny(t, file, 1)
	lay := m.Cache()
	require.Equal(t, []engine.PagedCache{{Every: 4, Width: 64}, {Every: 4, Width: 32}, {Every: 128, Width: 64}, {Every: 4, Width: 64}, {Every: 4, Width: 32}}, lay.Paged)
	require.Equal(t, []engine.StateCache{
		{Rows: 8, Width: 64},                                               // layer 0: ring
		{Rows: 8, Width: 64}, {Rows: 8, Width: 256}, {Rows: 8, Width: 128}, // layer 1: ring, compressor, indexer
		{Rows: 8, Width: 64}, {Rows: 128, Width: 128}, // layer 2: ring, compressor
		{Rows: 8, Width: 64}, {Rows: 8, Width: 256}, {Rows: 8, Width: 128},
	}, lay.State)
	require.Equal(t, 128, lay.BlockSize(16))
	info := m.Info()
	require.Equal(t, "deepseek4", info.Architecture)
	require.Less(t, info.ActiveParams, info.TotalParams)
	require.Positive(t, info.ActiveBytes)
}

// rewrite copies a tiny model's file, changing keys and tensors.
func rewrite(t *testing.T, file []byte, keys map[string]any, drop string, retype map[string]gguf.Type) []byte {
	t.Helper()
	f, err := gguf.Parse(file)
	require.NoError(t, err)
	w := &gguf.Writer{}
	for _, kv := range f.KVs() {
		if v, ok := keys[kv.Key]; ok {
			if v != nil {
				w.Add(kv.Key, v)
			}
			continue
		}
		w.Add(kv.Key, kv.Value)
	}
	for _, ti := range f.Tensors() {
		if ti.Name == drop {
			continue
		}
		typ, data := ti.Type, f.Data(ti)
		if nt, ok := retype[ti.Name]; ok {
			typ = nt
			data = data[:len(data)/2]
		}
		w.AddTensor(ti.Name, typ, ti.Dims, data)
	}
	var sb strings.Builder
	_, err = w.WriteTo(&sb)
	require.NoError(t, err)
	return []byte(sb.String())
}

// TestLoadErrors: bad keys and tensors are errors naming what is wrong.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	c := tiny()
	file, _, _ := c.build(t, 1)
	for _, tc := range []struct {
		name   string
		keys   map[string]any
		drop   string
		retype map[string]gguf.Type
		want   string
	}{
		{"gating", map[string]any{"deepseek4.expert_gating_func": uint32(2)}, "", nil, "expert_gating_func"},
		{"ratio", map[string]any{"deepseek4.attention.compress_ratios": []int32{0, 4, 64, 4, 0}}, "", nil, "compress_ratios[2] = 64"},
		{"short ratios", map[string]any{"deepseek4.attention.compress_ratios": []int32{0, 4}}, "", nil, "2 entries for 4 blocks"},
		{"missing key", map[string]any{"deepseek4.attention.sliding_window": nil}, "", nil, "sliding_window: missing"},
		{"groups", map[string]any{"deepseek4.attention.output_group_count": uint32(3)}, "", nil, "output_group_count 3"},
		{"missing tensor", nil, "blk.1.indexer.proj.weight", nil, "blk.1.indexer.proj.weight"},
		{"missing table", nil, "blk.0.ffn_gate_tid2eid.weight", nil, "blk.0.ffn_gate_tid2eid.weight"},
		{"f16 table", nil, "", map[string]gguf.Type{"blk.0.ffn_gate_tid2eid.weight": gguf.TypeF16}, "only the hash table is i32"},
		{"f16 norm", nil, "", map[string]gguf.Type{"blk.0.attn_norm.weight": gguf.TypeF16}, "want f32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := gguf.Parse(rewrite(t, file, tc.keys, tc.drop, tc.retype))
			require.NoError(t, err)
			_, err = Load(f, cpu.New(cpu.WithThreads(1)))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestMTPBlockLoads: a file with an MTP block (blk.Layers with nextn.*)
// loads it and runs the main model exactly as without it.
func TestMTPBlockLoads(t *testing.T) {
	t.Parallel()
	c := tiny()
	plain, _, _ := c.build(t, 1)
	c.MTP = true
	withMTP, _, _ := c.build(t, 1)
	m0, m1 := loadTiny(t, plain, 1), loadTiny(t, withMTP, 1)
	require.Len(t, m0.mtp, 0)
	require.Len(t, m1.mtp, 1)
	require.Greater(t, m1.Info().TotalParams, m0.Info().TotalParams)
	tokens := randomTokens(40, c.Vocab, 3)
	b := cpu.New(cpu.WithThreads(1))
	l0 := newHarness(t, m0, b, 1, 64).step(t, []part{{0, tokens}})[0]
	l1 := newHarness(t, m1, b, 1, 64).step(t, []part{{0, tokens}})[0]
	require.Equal(t, l0, l1)
}
