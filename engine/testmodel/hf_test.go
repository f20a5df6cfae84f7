package testmodel

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// TestHFDirLayout writes TinyV3 (with an MTP layer) and TinyV2 in every
// dtype and checks the directory against the layout engine/safetensors
// documents: a valid config, every tensor it lists with its shape, an F32
// scale beside each FP8 projection, and nothing else.
func TestHFDirLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		c     V3
		dtype string
		opts  []HFOption
	}{
		{"v3-bf16-mtp", TinyV3(), HFBF16, []HFOption{WithMTP(), WithShards(3)}},
		{"v3-fp8", TinyV3(), HFFP8, nil},
		{"v2-f32", TinyV2(), HFF32, []HFOption{WithShards(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "m")
			require.NoError(t, tc.c.WriteHFDir(dir, 7, tc.dtype, tc.opts...))
			m, err := safetensors.OpenDir(dir)
			require.NoError(t, err)
			defer m.Close()
			cfg, err := m.Config()
			require.NoError(t, err)
			require.NoError(t, cfg.Validate())
			want := map[string]bool{}
			for _, w := range cfg.Weights() {
				want[w.Name] = true
				ti, ok := m.Tensor(w.Name)
				require.True(t, ok, w.Name)
				require.Equal(t, w.Shape, ti.Shape, w.Name)
				if tc.dtype == HFFP8 && w.Projection {
					require.Equal(t, safetensors.F8_E4M3, ti.DType, w.Name)
					s, ok := m.Tensor(safetensors.ScaleName(w.Name))
					require.True(t, ok, w.Name)
					require.Equal(t, safetensors.ScaleShape(w.Shape[0], w.Shape[1], 128, 128), s.Shape)
					want[s.Name] = true
				}
			}
			for _, n := range m.Names() {
				if cfg.IsMTPTensor(n) {
					continue
				}
				require.True(t, want[n], "unexpected tensor %s", n)
			}
			if tc.name == "v3-bf16-mtp" {
				require.Equal(t, 1, cfg.NumNextNPredictLayers)
				_, ok := m.Tensor("model.layers.3.eh_proj.weight")
				require.True(t, ok)
				_, ok = m.Tensor("model.layers.3.mlp.experts.15.down_proj.weight")
				require.True(t, ok)
			}
		})
	}
}

// TestHFDirSameDraws: an expert and kv_b_proj of a BF16 directory hold the
// bytes the BF16 GGUF writer stores for the same seed.
func TestHFDirSameDraws(t *testing.T) {
	t.Parallel()
	c := TinyV3()
	c.Type = gguf.TypeBF16
	dir := t.TempDir()
	require.NoError(t, c.WriteHFDir(dir, 3, HFBF16))
	var buf bytes.Buffer
	require.NoError(t, c.Write(&buf, 3))
	f, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)
	m, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	defer m.Close()

	ti, ok := f.Tensor("blk.1.ffn_down_exps.weight")
	require.True(t, ok)
	per := c.Hidden * c.ExpertFFN * 2
	e5, ok := m.Tensor(safetensors.ExpertPrefix(1, 5) + "down_proj.weight")
	require.True(t, ok)
	require.Equal(t, f.Data(ti)[5*per:6*per], e5.Data)

	// kv_b_proj row h·(nope+v)+i, column j is attn_k_b[h][j][i] (i < nope).
	kb, _ := f.Tensor("blk.2.attn_k_b.weight")
	kv, _ := m.Tensor(safetensors.LayerPrefix(2) + "self_attn.kv_b_proj.weight")
	kd, kvd := f.Data(kb), kv.Data
	h, i, j := 3, 5, 7
	at := func(b []byte, idx int) []byte { return b[2*idx : 2*idx+2] }
	require.Equal(t, at(kd, (h*c.KVLoRA+j)*c.NopeDim+i), at(kvd, (h*(c.NopeDim+c.ValueDim)+i)*c.KVLoRA+j))
}

func TestKVBRoundTrip(t *testing.T) {
	t.Parallel()
	H, c, nope, v := 3, 5, 4, 2
	kb, vb := make([]float32, H*c*nope), make([]float32, H*v*c)
	for i := range kb {
		kb[i] = float32(i)
	}
	for i := range vb {
		vb[i] = -float32(i)
	}
	k2, v2 := splitKVB(mergeKVB(kb, vb, H, c, nope, v), H, c, nope, v)
	require.Equal(t, kb, k2)
	require.Equal(t, vb, v2)
}

// TestToE4M3 checks the encoder against every code's value and midpoint.
func TestToE4M3(t *testing.T) {
	t.Parallel()
	for b := range 0x7F {
		require.Equal(t, byte(b), toE4M3(e4m3Values[b]))
		require.Equal(t, byte(b)|0x80, toE4M3(-e4m3Values[b]))
	}
	require.Equal(t, byte(0x38), toE4M3(1.0625), "ties to even")
	require.Equal(t, byte(0x3A), toE4M3(1.1875), "ties to even")
	require.Equal(t, byte(0x7E), toE4M3(460))
}
