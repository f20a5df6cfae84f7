package safetensors_test

import (
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

// tinyV3 is a V3-shaped config small enough to write in full: FP8 with
// 4×4 blocks, one dense layer, two MoE layers and one MTP layer.
const tinyV3 = `{
  "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
  "vocab_size": 32, "hidden_size": 16, "intermediate_size": 24, "moe_intermediate_size": 8,
  "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 2,
  "n_shared_experts": 1, "n_routed_experts": 8, "num_experts_per_tok": 2, "routed_scaling_factor": 2.5,
  "kv_lora_rank": 8, "q_lora_rank": 12, "qk_rope_head_dim": 4, "qk_nope_head_dim": 4, "v_head_dim": 4,
  "n_group": 2, "topk_group": 1, "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": true,
  "first_k_dense_replace": 1, "moe_layer_freq": 1, "rms_norm_eps": 1e-6, "rope_theta": 10000,
  "max_position_embeddings": 256, "num_nextn_predict_layers": 1, "bos_token_id": 0, "eos_token_id": 1,
  "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [4, 4], "activation_scheme": "dynamic"}
}`

// tinyCheckpoint builds the tensors of tinyV3 as an FP8 checkpoint would
// hold them: projections F8_E4M3 with F32 scales, the correction bias F32,
// everything else BF16, plus the MTP layer.
func tinyCheckpoint(t *testing.T) (*safetensors.Config, []safetensors.Tensor) {
	t.Helper()
	cfg, err := safetensors.ParseConfig([]byte(tinyV3))
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(5, 6))
	block := cfg.QuantizationConfig.WeightBlockSize
	specs := cfg.Weights()
	mtp := cfg.NumHiddenLayers
	specs = append(specs, cfg.LayerWeights(mtp)...)
	h, v := cfg.HiddenSize, cfg.VocabSize
	p := safetensors.LayerPrefix(mtp)
	specs = append(specs,
		safetensors.WeightSpec{Name: p + "embed_tokens.weight", Shape: []int{v, h}},
		safetensors.WeightSpec{Name: p + "enorm.weight", Shape: []int{h}},
		safetensors.WeightSpec{Name: p + "hnorm.weight", Shape: []int{h}},
		safetensors.WeightSpec{Name: p + "eh_proj.weight", Shape: []int{h, 2 * h}},
		safetensors.WeightSpec{Name: p + "shared_head.norm.weight", Shape: []int{h}},
		safetensors.WeightSpec{Name: p + "shared_head.head.weight", Shape: []int{v, h}},
	)
	var out []safetensors.Tensor
	for _, s := range specs {
		switch {
		case s.Projection:
			out = append(out, randomTensor(r, s.Name, safetensors.F8_E4M3, s.Shape...),
				randomTensor(r, safetensors.ScaleName(s.Name), safetensors.F32, safetensors.ScaleShape(s.Shape[0], s.Shape[1], block[0], block[1])...))
		case len(s.Shape) == 1 && s.Shape[0] == cfg.NRoutedExperts:
			out = append(out, randomTensor(r, s.Name, safetensors.F32, s.Shape...))
		default:
			out = append(out, randomTensor(r, s.Name, safetensors.BF16, s.Shape...))
		}
	}
	return cfg, out
}

func TestWriteDirOpenDir(t *testing.T) {
	cfg, tensors := tinyCheckpoint(t)
	// Three shards, tensors dealt round-robin so a layer spans shards.
	shards := make([][]safetensors.Tensor, 3)
	for i, tn := range tensors {
		shards[i%3] = append(shards[i%3], tn)
	}
	dir := t.TempDir()
	require.NoError(t, safetensors.WriteDir(dir, shards, json.RawMessage(tinyV3)))

	var index struct {
		Metadata  map[string]int    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, safetensors.IndexFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &index))
	total := 0
	for _, tn := range tensors {
		total += len(tn.Data)
	}
	require.Equal(t, total, index.Metadata["total_size"])
	require.Len(t, index.WeightMap, len(tensors))
	require.Equal(t, "model-00002-of-00003.safetensors", index.WeightMap[tensors[1].Name])

	m, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, dir, m.Dir())
	got, err := m.Config()
	require.NoError(t, err)
	require.Equal(t, cfg, got)
	require.JSONEq(t, tinyV3, string(m.ConfigJSON()))

	names := m.Names()
	require.True(t, sort.StringsAreSorted(names))
	require.Len(t, names, len(tensors))
	for i, want := range tensors {
		tn, ok := m.Tensor(want.Name)
		require.True(t, ok, want.Name)
		require.Equal(t, want.DType, tn.DType, want.Name)
		require.Equal(t, want.Shape, tn.Shape, want.Name)
		require.Equal(t, want.Data, tn.Data, want.Name)
		shard, ok := m.ShardOf(want.Name)
		require.True(t, ok)
		require.Equal(t, filepath.Join(dir, safetensors.ShardName(i%3+1, 3)), shard)
	}

	// What a loader does: every expected weight is there with its shape,
	// FP8 ones with their scales, and the MTP layer can be told apart.
	for _, s := range cfg.Weights() {
		tn, ok := m.Tensor(s.Name)
		require.True(t, ok, s.Name)
		require.Equal(t, s.Shape, tn.Shape, s.Name)
		if tn.DType == safetensors.F8_E4M3 {
			sc, ok := m.Tensor(safetensors.ScaleName(s.Name))
			require.True(t, ok, s.Name)
			require.Equal(t, safetensors.F32, sc.DType)
		}
	}
	mtp := 0
	for _, name := range names {
		if got.IsMTPTensor(name) {
			mtp++
		}
	}
	require.Positive(t, mtp)
	_, ok := m.Tensor("model.layers.3.eh_proj.weight")
	require.True(t, ok)
	require.True(t, got.IsMTPTensor("model.layers.3.eh_proj.weight"))

	_, ok = m.Tensor("missing")
	require.False(t, ok)
	_, ok = m.ShardOf("missing")
	require.False(t, ok)
	require.NoError(t, m.Close())
	_, ok = m.Tensor(tensors[0].Name)
	require.False(t, ok)
}

func TestOpenDirSingleFile(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	dir := t.TempDir()
	a := randomTensor(r, "b", safetensors.F32, 2, 2)
	b := randomTensor(r, "a", safetensors.BF16, 3)
	require.NoError(t, safetensors.WriteDir(dir, [][]safetensors.Tensor{{a, b}}, nil))
	_, err := os.Stat(filepath.Join(dir, safetensors.IndexFile))
	require.ErrorIs(t, err, fs.ErrNotExist, "one shard needs no index")

	// A stale index beside model.safetensors is ignored, as transformers
	// ignores it.
	require.NoError(t, os.WriteFile(filepath.Join(dir, safetensors.IndexFile), []byte(`{"weight_map":{"x":"gone.safetensors"}}`), 0o644))

	m, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, []string{"a", "b"}, m.Names())
	tn, ok := m.Tensor("b")
	require.True(t, ok)
	require.Equal(t, a.Data, tn.Data)
	require.Nil(t, m.ConfigJSON())
	_, err = m.Config()
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, safetensors.ConfigFile)
}

// The layout of the Hugging Face cache: snapshot entries are symlinks to
// blobs elsewhere. The shard name is plain, so the link is followed.
func TestOpenDirFollowsSymlinks(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	blobs, snap := t.TempDir(), t.TempDir()
	require.NoError(t, safetensors.WriteDir(blobs, [][]safetensors.Tensor{{randomTensor(r, "a", safetensors.U8, 4)}, {randomTensor(r, "b", safetensors.U8, 4)}}, nil))
	for _, name := range []string{safetensors.IndexFile, safetensors.ShardName(1, 2), safetensors.ShardName(2, 2)} {
		require.NoError(t, os.Symlink(filepath.Join(blobs, name), filepath.Join(snap, name)))
	}
	m, err := safetensors.OpenDir(snap)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, m.Names())
	require.NoError(t, m.Close())
}

// twoShards writes a directory with tensors a and b in two shards and
// returns it.
func twoShards(t *testing.T) string {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 12))
	dir := t.TempDir()
	require.NoError(t, safetensors.WriteDir(dir, [][]safetensors.Tensor{{randomTensor(r, "a", safetensors.U8, 4)}, {randomTensor(r, "b", safetensors.U8, 4)}}, json.RawMessage(`{}`)))
	return dir
}

func writeIndex(t *testing.T, dir, index string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, safetensors.IndexFile), []byte(index), 0o644))
}

func TestOpenDirErrors(t *testing.T) {
	s1, s2 := safetensors.ShardName(1, 2), safetensors.ShardName(2, 2)
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string
		is    error
	}{
		{"no model files", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, safetensors.IndexFile)))
		}, []string{"has neither model.safetensors nor model.safetensors.index.json"}, fs.ErrNotExist},
		{"missing shard", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, s2)))
		}, []string{safetensors.IndexFile, `tensor "b"`, `shard "` + s2 + `"`, "no such file"}, fs.ErrNotExist},
		{"tensor missing from its shard", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":"`+s1+`","b":"`+s2+`","ghost":"`+s1+`"}}`)
		}, []string{s1, `tensor "ghost"`, "listed for this shard in model.safetensors.index.json but not in it"}, nil},
		{"tensor in the other shard", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":"`+s2+`","b":"`+s2+`"}}`)
		}, []string{s2, `tensor "a"`, "not in it"}, nil},
		{"parent directory", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":"../`+s1+`"}}`)
		}, []string{`tensor "a"`, `shard "../` + s1 + `" is not a plain file name`}, nil},
		{"subdirectory", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":"sub/x.safetensors"}}`)
		}, []string{`shard "sub/x.safetensors" is not a plain file name`}, nil},
		{"absolute path", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":"/etc/passwd"}}`)
		}, []string{`shard "/etc/passwd" is not a plain file name`}, nil},
		{"backslash", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":"..\\x"}}`)
		}, []string{`is not a plain file name`}, nil},
		{"dot dot", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":".."}}`)
		}, []string{`shard ".." is not a plain file name`}, nil},
		{"empty shard name", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":""}}`)
		}, []string{`shard "" is empty`}, nil},
		{"shard not a string", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":1}}`)
		}, []string{`tensor "a"`, "shard: a number, not a string"}, nil},
		{"tensor listed twice", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"a":"`+s1+`","a":"`+s2+`"}}`)
		}, []string{`tensor "a"`, "listed twice in weight_map"}, nil},
		{"no weight map", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"metadata":{"total_size":8}}`)
		}, []string{`no "weight_map"`}, nil},
		{"empty weight map", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{}}`)
		}, []string{"weight_map: is empty"}, nil},
		{"weight map not an object", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":["a"]}`)
		}, []string{"weight_map: an array, not a JSON object"}, nil},
		{"index bad JSON", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":`)
		}, []string{safetensors.IndexFile, "bad JSON"}, nil},
		{"malformed shard", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, s2), rawFile(`{"b":{"dtype":"U8","shape":[4],"data_offsets":[0,5]}}`, 5), 0o644))
		}, []string{s2, `tensor "b"`, "hold 5 bytes"}, nil},
		{"config bad JSON", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, safetensors.ConfigFile), []byte(`{"a":`), 0o644))
		}, []string{safetensors.ConfigFile, "bad JSON"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := twoShards(t)
			c.setup(t, dir)
			m, err := safetensors.OpenDir(dir)
			require.Error(t, err)
			require.Nil(t, m)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			if c.is != nil {
				require.ErrorIs(t, err, c.is)
			}
		})
	}
}

func TestWriteDirRefuses(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	a := randomTensor(r, "a", safetensors.U8, 1)
	dir := t.TempDir()
	require.ErrorContains(t, safetensors.WriteDir(dir, nil, nil), "at least one shard")
	require.ErrorContains(t, safetensors.WriteDir(dir, [][]safetensors.Tensor{{a}, {a}}, nil), `tensor "a" is in shards model-00001-of-00002.safetensors and model-00002-of-00002.safetensors`)
	require.ErrorContains(t, safetensors.WriteDir(dir, [][]safetensors.Tensor{{a}}, json.RawMessage(`{`)), "config is not valid JSON")
	bad := safetensors.Tensor{Name: "bad", DType: safetensors.F32, Shape: []int{1}}
	require.ErrorContains(t, safetensors.WriteDir(dir, [][]safetensors.Tensor{{a}, {bad}}, nil), `tensor "bad"`)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing written when a shard is bad")
}

func TestConfigInDirNamesThePath(t *testing.T) {
	dir := twoShards(t) // config.json is {}
	m, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	defer m.Close()
	_, err = m.Config()
	require.ErrorContains(t, err, filepath.Join(dir, safetensors.ConfigFile)+": vocab_size: must be positive")
}
