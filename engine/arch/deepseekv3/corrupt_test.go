package deepseekv3_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// corruptVocab is the vocabulary of the small base image the corruption
// tests edit: TinyV3's tables cut to their first rows and the tokenizer to
// its first tokens, so that each case writes a file of about a megabyte.
const corruptVocab = 512

var (
	baseOnce  sync.Once
	baseImage *testmodel.Image
	baseErr   error
)

// base is TinyV3 (F32, seed 1) with a corruptVocab-token vocabulary: a
// valid model every case starts from.
func base(t *testing.T) *testmodel.Image {
	t.Helper()
	baseOnce.Do(func() {
		var buf bytes.Buffer
		if baseErr = testmodel.TinyV3().Write(&buf, 1); baseErr != nil {
			return
		}
		f, err := gguf.Parse(buf.Bytes())
		if baseErr = err; err != nil {
			return
		}
		im := testmodel.ImageOf(f)
		for _, kv := range im.KVs {
			switch v := kv.Value.(type) {
			case []string:
				if kv.Key == "tokenizer.ggml.tokens" {
					im.Set(kv.Key, v[:corruptVocab])
				} else if kv.Key == "tokenizer.ggml.merges" {
					im.Delete(kv.Key)
				}
			case []int32:
				if kv.Key == "tokenizer.ggml.token_type" {
					im.Set(kv.Key, v[:corruptVocab])
				}
			}
		}
		im.Set("deepseek2.vocab_size", uint32(corruptVocab))
		for _, name := range []string{"token_embd.weight", "output.weight"} {
			ti := im.Tensor(name)
			ti.Dims[1] = corruptVocab
			ti.Data = bytes.Clone(ti.Data[:corruptVocab*ti.Dims[0]*4])
		}
		for i := range im.Tensors {
			im.Tensors[i].Data = bytes.Clone(im.Tensors[i].Data)
		}
		baseImage = im
	})
	require.NoError(t, baseErr)
	return baseImage.Clone()
}

// loadBytes parses a GGUF image and loads it on the CPU backend, checking
// that loading a file of n bytes never takes much more memory than the file
// holds: a header must not make the loader allocate what it claims.
func loadBytes(t *testing.T, data []byte) (engine.Model, error) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := gguf.Parse(data)
	var m engine.Model
	if err == nil {
		m, err = engine.LoadGGUF(f, cpu.New(cpu.WithThreads(1)))
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	require.Less(t, allocated, uint64(64<<20)+4*uint64(len(data)), "loading a %d-byte file allocated %d bytes", len(data), allocated)
	return m, err
}

func TestCorruptBaseLoads(t *testing.T) {
	data, err := base(t).Bytes()
	require.NoError(t, err)
	m, err := loadBytes(t, data)
	require.NoError(t, err)
	require.Equal(t, corruptVocab, m.Info().Vocab)
}

// TestCorruptGGUF breaks a valid deepseek2 file in one place at a time and
// loads it through engine.LoadGGUF: each must fail with an error naming
// the key or tensor, never panic, allocate what a header claims or load a
// silently different model.
func TestCorruptGGUF(t *testing.T) {
	const kvA = "blk.1.attn_kv_a_mqa.weight"
	set := func(key string, v any) func(*testmodel.Image) {
		return func(im *testmodel.Image) { im.Set(key, v) }
	}
	for _, tc := range []struct {
		name string
		edit func(im *testmodel.Image)
		want []string
	}{
		{"shape", func(im *testmodel.Image) {
			ti := im.Tensor(kvA)
			ti.Dims[0], ti.Dims[1] = ti.Dims[1], ti.Dims[0]
		}, []string{kvA, "shape {40,64}, want {64,40}"}},
		{"missing-tensor", func(im *testmodel.Image) { im.DeleteTensor("blk.2.ffn_up_exps.weight") },
			[]string{"blk.2.ffn_up_exps.weight", "not found"}},
		{"missing-output", func(im *testmodel.Image) { im.DeleteTensor("output.weight") },
			[]string{"output.weight", "not found"}},
		{"extra-tensor", func(im *testmodel.Image) {
			im.Tensors = append(im.Tensors, testmodel.ImageTensor{Name: "blk.1.attn_bogus.weight", Type: gguf.TypeF32, Dims: []uint64{8}, Data: make([]byte, 32)})
		}, []string{"blk.1.attn_bogus.weight", "not part of"}},
		{"extra-layer", func(im *testmodel.Image) {
			// A file with more blocks than block_count says would load as
			// a shallower model: silent truncation.
			im.Set("deepseek2.block_count", uint32(2))
		}, []string{"blk.2.", "not part of"}},
		{"wrong-dtype", func(im *testmodel.Image) {
			ti := im.Tensor(kvA)
			ti.Type = gguf.TypeI32
		}, []string{kvA, "type I32 is not supported"}},
		{"norm-not-f32", func(im *testmodel.Image) {
			ti := im.Tensor("blk.0.attn_norm.weight")
			ti.Type, ti.Data = gguf.TypeF16, ti.Data[:len(ti.Data)/2]
		}, []string{"blk.0.attn_norm.weight", "want f32"}},
		{"zero-heads", set("deepseek2.attention.head_count", uint32(0)), []string{"heads 0"}},
		{"zero-layers", set("deepseek2.block_count", uint32(0)), []string{"layers 0"}},
		{"huge-layers", set("deepseek2.block_count", uint32(1<<31)), []string{"blk.3.attn_norm.weight", "not found"}},
		{"huge-hidden", set("deepseek2.embedding_length", uint32(1<<31)), []string{"token_embd.weight", "shape"}},
		{"zero-experts", set("deepseek2.expert_count", uint32(0)), []string{"expert_count 0"}},
		{"used-over-experts", set("deepseek2.expert_used_count", uint32(17)), []string{"expert_used_count 17 of expert_count 16"}},
		{"zero-expert-ffn", set("deepseek2.expert_feed_forward_length", uint32(0)), []string{"expert_feed_forward_length"}},
		{"dense-over-layers", set("deepseek2.leading_dense_block_count", uint32(4)), []string{"leading_dense_block_count 4 > block_count 3"}},
		{"groups-not-dividing", set("deepseek2.expert_group_count", uint32(3)), []string{"expert_group_count 3"}},
		{"odd-rope", set("deepseek2.rope.dimension_count", uint32(7)), []string{"rope.dimension_count 7"}},
		{"key-length-under-rope", set("deepseek2.attention.key_length_mla", uint32(8)), []string{"key_length_mla 8"}},
		{"head-dims", set("deepseek2.attention.value_length_mla", uint32(17)), []string{"blk.0.attn_v_b.weight", "shape"}},
		{"kv-lora", set("deepseek2.attention.kv_lora_rank", uint32(31)), []string{"attn_kv_a_mqa.weight", "shape"}},
		{"negative-as-int32", set("deepseek2.attention.head_count", int32(-4)), []string{"deepseek2.attention.head_count", "int32"}},
		{"wrong-key-type", set("deepseek2.block_count", "three"), []string{"deepseek2.block_count", "string"}},
		{"missing-key", func(im *testmodel.Image) { im.Delete("deepseek2.embedding_length") },
			[]string{"deepseek2.embedding_length", "missing"}},
		{"zero-eps", set("deepseek2.attention.layer_norm_rms_epsilon", float32(0)), []string{"layer_norm_rms_epsilon"}},
		{"bad-rope-base", set("deepseek2.rope.freq_base", float32(-1)), []string{"rope.freq_base"}},
		{"zero-context", set("deepseek2.context_length", uint32(0)), []string{"context_length"}},
		{"vocab-over-table", set("deepseek2.vocab_size", uint32(corruptVocab+1)), []string{"token_embd.weight", "shape"}},
		{"tokenizer-over-vocab", func(im *testmodel.Image) {
			im.Set("deepseek2.vocab_size", uint32(corruptVocab-1))
			for _, name := range []string{"token_embd.weight", "output.weight"} {
				ti := im.Tensor(name)
				ti.Dims[1]--
				ti.Data = ti.Data[:ti.Dims[0]*ti.Dims[1]*4]
			}
		}, []string{"deepseek2.vocab_size", "511 is less than the 512 tokens of tokenizer.ggml.tokens"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := base(t)
			tc.edit(im)
			data, err := im.Bytes()
			require.NoError(t, err)
			_, err = loadBytes(t, data)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestCorruptGGUFBytes patches the bytes of a valid file where the Writer
// would refuse to: data cut short, offsets past the end or onto another
// tensor's data, a header claiming more than the file holds.
func TestCorruptGGUFBytes(t *testing.T) {
	good, err := base(t).Bytes()
	require.NoError(t, err)
	le := binary.LittleEndian
	const kvA = "blk.1.attn_kv_a_mqa.weight"
	patch := func(edit func(t *testing.T, b []byte) []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return edit(t, bytes.Clone(good)) }
	}
	offsetOf := func(t *testing.T, b []byte, name string) int {
		i, err := testmodel.TensorOffsetAt(b, name)
		require.NoError(t, err)
		return i
	}
	for _, tc := range []struct {
		name string
		data func(t *testing.T) []byte
		want []string
	}{
		{"truncated", patch(func(t *testing.T, b []byte) []byte { return b[:len(b)-100] }),
			[]string{"blk.2.ffn_down_shexp.weight", "outside"}},
		{"truncated-header", patch(func(t *testing.T, b []byte) []byte { return b[:1000] }),
			[]string{"gguf:", "offset"}},
		{"offset-past-end", patch(func(t *testing.T, b []byte) []byte {
			le.PutUint64(b[offsetOf(t, b, kvA):], uint64(len(b))&^31)
			return b
		}), []string{kvA, "outside"}},
		{"offset-overflow", patch(func(t *testing.T, b []byte) []byte {
			le.PutUint64(b[offsetOf(t, b, kvA):], ^uint64(31))
			return b
		}), []string{kvA, "outside"}},
		{"overlap", patch(func(t *testing.T, b []byte) []byte {
			// kv_a's data moved onto the start of its neighbour's.
			o := le.Uint64(b[offsetOf(t, b, "blk.1.attn_kv_a_norm.weight"):])
			le.PutUint64(b[offsetOf(t, b, kvA):], o)
			return b
		}), []string{kvA, "overlap"}},
		{"huge-dims", patch(func(t *testing.T, b []byte) []byte {
			i, err := testmodel.TensorInfoAt(b, kvA)
			require.NoError(t, err)
			le.PutUint64(b[i+8+len(kvA)+4:], 1<<40)
			return b
		}), []string{kvA}},
		{"huge-tensor-count", patch(func(t *testing.T, b []byte) []byte {
			le.PutUint64(b[8:], 1<<40)
			return b
		}), []string{"header", "cannot fit"}},
		{"huge-string", patch(func(t *testing.T, b []byte) []byte {
			// The first key's length.
			le.PutUint64(b[24:], 1<<40)
			return b
		}), []string{"key #0", "exceeds"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadBytes(t, tc.data(t))
			require.Error(t, err)
			var fe *gguf.FormatError
			require.True(t, errors.As(err, &fe), "%T: %v", err, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

var (
	hfOnce sync.Once
	hfDir  string
	hfErr  error
)

// hfBase is TinyV3 (seed 1) as an FP8 Hugging Face directory in two
// shards, written once per test binary.
func hfBase(t *testing.T) string {
	t.Helper()
	hfOnce.Do(func() {
		hfDir = filepath.Join(modelsDir, "corrupt-hf-fp8")
		hfErr = testmodel.TinyV3().WriteHFDir(hfDir, 1, testmodel.HFFP8)
	})
	require.NoError(t, hfErr)
	return hfDir
}

// withConfig makes a directory that links to hfBase's shards and index
// and holds config as its config.json (none if config is nil).
func withConfig(t *testing.T, config []byte) string {
	t.Helper()
	src := hfBase(t)
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() == safetensors.ConfigFile {
			continue
		}
		require.NoError(t, os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())))
	}
	if config != nil {
		require.NoError(t, os.WriteFile(filepath.Join(dir, safetensors.ConfigFile), config, 0o644))
	}
	return dir
}

// editConfig is hfBase's config.json with fields set (a nil value deletes
// the field).
func editConfig(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(hfBase(t), safetensors.ConfigFile))
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(raw, &c))
	for k, v := range fields {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	out, err := json.Marshal(c)
	require.NoError(t, err)
	return out
}

// loadDirErr opens and loads a directory, returning the first error,
// with the same bound on what loading may allocate as loadBytes.
func loadDirErr(t *testing.T, dir string) error {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	defer func() {
		runtime.ReadMemStats(&after)
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(256<<20), "loading allocated %d bytes", after.TotalAlloc-before.TotalAlloc)
	}()
	sm, err := safetensors.OpenDir(dir)
	if err != nil {
		return err
	}
	defer sm.Close()
	_, err = engine.LoadDir(sm, cpu.New(cpu.WithThreads(1)))
	return err
}

func TestCorruptHFBaseLoads(t *testing.T) {
	require.NoError(t, loadDirErr(t, withConfig(t, editConfig(t, nil))))
}

// TestCorruptHFConfig loads the FP8 directory with one config.json field
// broken at a time: each must fail naming the field (or the tensor it
// disagrees with), without loading a silently different model.
func TestCorruptHFConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config []byte
		want   []string
	}{
		{"no-config", nil, []string{"config.json"}},
		{"not-json", []byte(`{"model_type": "deepseek_v3",`), []string{"config.json"}},
		{"model-type-number", editConfig(t, map[string]any{"model_type": 3}), []string{"model_type"}},
		{"string-for-int", editConfig(t, map[string]any{"hidden_size": "64"}), []string{"hidden_size", "JSON string where an integer belongs"}},
		{"float-for-int", editConfig(t, map[string]any{"num_hidden_layers": 2.5}), []string{"num_hidden_layers"}},
		{"huge-int", editConfig(t, map[string]any{"vocab_size": 1e20}), []string{"vocab_size"}},
		{"missing-heads", editConfig(t, map[string]any{"num_attention_heads": nil}), []string{"num_attention_heads", "must be positive"}},
		{"negative-experts", editConfig(t, map[string]any{"n_routed_experts": -16}), []string{"n_routed_experts", "must be positive, got -16"}},
		{"used-over-experts", editConfig(t, map[string]any{"num_experts_per_tok": 17}), []string{"num_experts_per_tok", "17 is more than n_routed_experts (16)"}},
		{"odd-rope", editConfig(t, map[string]any{"qk_rope_head_dim": 7}), []string{"qk_rope_head_dim", "7 is odd"}},
		{"fewer-layers", editConfig(t, map[string]any{"num_hidden_layers": 2}), []string{`tensor "model.layers.2.`, "past the 2 layers config.json describes"}},
		{"huge-layers", editConfig(t, map[string]any{"num_hidden_layers": 1 << 30}), []string{"model.layers.3.", "is missing"}},
		{"head-dims", editConfig(t, map[string]any{"v_head_dim": 8}), []string{"kv_b_proj", "shape"}},
		{"vocab-over-table", editConfig(t, map[string]any{"vocab_size": 129281}), []string{"model.embed_tokens.weight", "shape"}},
		{"block-size", editConfig(t, map[string]any{"quantization_config": map[string]any{"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": []int{64, 64}, "activation_scheme": "dynamic"}}),
			[]string{"config.json", "quantization_config.weight_block_size [64 64] is not supported"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := loadDirErr(t, withConfig(t, tc.config))
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestCorruptHFShard breaks one shard's bytes: a header length no file
// could hold, a header cut short, tensor data cut short.
func TestCorruptHFShard(t *testing.T) {
	shard := safetensors.ShardName(1, 2)
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
		want []string
	}{
		{"header-length-2^62", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b, 1<<62)
			return b
		}, []string{shard, "header"}},
		{"header-length-past-end", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b, uint64(len(b)))
			return b
		}, []string{shard, "header"}},
		{"header-cut", func(b []byte) []byte { return b[:100] }, []string{shard}},
		{"data-cut", func(b []byte) []byte { return b[:len(b)-100] }, []string{shard, "tensor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := withConfig(t, editConfig(t, nil))
			path := filepath.Join(dir, shard)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.Remove(path))
			require.NoError(t, os.WriteFile(path, tc.edit(b), 0o644))
			err = loadDirErr(t, dir)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}
