package deepseekv4_test

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv4"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// corruptVocab is the vocabulary of the base image the corruption tests
// edit: TinyV4's vocabulary-sized tensors cut to their first rows.
const corruptVocab = 512

var (
	baseOnce  sync.Once
	baseImage *testmodel.Image
	baseErr   error
)

// base is TinyV4 (F32, seed 1) with a corruptVocab-token vocabulary.
func base(t *testing.T) *testmodel.Image {
	t.Helper()
	baseOnce.Do(func() {
		var buf bytes.Buffer
		if baseErr = testmodel.TinyV4().Write(&buf, 1); baseErr != nil {
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
		im.Set("deepseek4.vocab_size", uint32(corruptVocab))
		for i := range im.Tensors {
			ti := &im.Tensors[i]
			if last := len(ti.Dims) - 1; ti.Dims[last] == 129280 {
				row := uint64(len(ti.Data)) / ti.Dims[last]
				ti.Dims[last] = corruptVocab
				ti.Data = ti.Data[:corruptVocab*row]
			}
			ti.Data = bytes.Clone(ti.Data)
		}
		baseImage = im
	})
	require.NoError(t, baseErr)
	return baseImage.Clone()
}

// loadBytes parses and loads a GGUF image on the CPU backend, checking
// that a header's claims never make the loader allocate far more than the
// file holds.
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

// TestCorruptGGUF breaks a valid deepseek4 file in one place at a time and
// loads it through engine.LoadGGUF: each must fail with an error naming
// the key or tensor, never panic, allocate what a header claims or load a
// silently different model.
func TestCorruptGGUF(t *testing.T) {
	const qB = "blk.1.attn_q_b.weight"
	set := func(key string, v any) func(*testmodel.Image) {
		return func(im *testmodel.Image) { im.Set(key, v) }
	}
	for _, tc := range []struct {
		name string
		edit func(im *testmodel.Image)
		want []string
	}{
		{"shape", func(im *testmodel.Image) {
			ti := im.Tensor(qB)
			ti.Dims[0], ti.Dims[1] = ti.Dims[1], ti.Dims[0]
		}, []string{qB, "shape {512,32}, want {32,512}"}},
		{"missing-tensor", func(im *testmodel.Image) { im.DeleteTensor("blk.3.indexer.proj.weight") },
			[]string{"blk.3.indexer.proj.weight", "not found"}},
		{"missing-hash-table", func(im *testmodel.Image) { im.DeleteTensor("blk.1.ffn_gate_tid2eid.weight") },
			[]string{"blk.1.ffn_gate_tid2eid.weight", "not found"}},
		{"extra-tensor", func(im *testmodel.Image) {
			im.Tensors = append(im.Tensors, testmodel.ImageTensor{Name: "blk.0.attn_bogus.weight", Type: gguf.TypeF32, Dims: []uint64{8}, Data: make([]byte, 32)})
		}, []string{"blk.0.attn_bogus.weight", "not part of"}},
		{"extra-layer", set("deepseek4.block_count", uint32(3)), []string{"blk.3.", "not part of"}},
		{"table-not-i32", func(im *testmodel.Image) {
			im.Tensor("blk.0.ffn_gate_tid2eid.weight").Type = gguf.TypeF32
		}, []string{"blk.0.ffn_gate_tid2eid.weight", "only the hash table is i32"}},
		{"matrix-i32", func(im *testmodel.Image) { im.Tensor(qB).Type = gguf.TypeI32 },
			[]string{qB, "only the hash table is i32"}},
		{"zero-heads", set("deepseek4.attention.head_count", uint32(0)), []string{"heads 0"}},
		{"huge-layers", set("deepseek4.block_count", uint32(1<<31)), []string{"deepseek4.attention.compress_ratios", "entries for 2147483648 blocks"}},
		{"used-over-experts", set("deepseek4.expert_used_count", uint32(9)), []string{"expert_used_count 9 of expert_count 8"}},
		{"zero-experts", set("deepseek4.expert_count", uint32(0)), []string{"expert_count 0"}},
		{"zero-expert-ffn", set("deepseek4.expert_feed_forward_length", uint32(0)), []string{"expert_feed_forward_length"}},
		{"odd-rope", set("deepseek4.rope.dimension_count", uint32(31)), []string{"rope.dimension_count 31"}},
		{"rope-over-head", set("deepseek4.rope.dimension_count", uint32(256)), []string{"rope.dimension_count 256"}},
		{"value-length", set("deepseek4.attention.value_length", uint32(64)), []string{"deepseek4.attention.value_length", "64 differs from key_length 128"}},
		{"head-dim", func(im *testmodel.Image) {
			im.Set("deepseek4.attention.key_length", uint32(64))
			im.Set("deepseek4.attention.value_length", uint32(64))
		}, []string{"blk.0.attn_q_b.weight", "shape"}},
		{"groups-not-dividing", set("deepseek4.attention.output_group_count", uint32(3)), []string{"output_group_count 3"}},
		{"hash-over-layers", set("deepseek4.hash_layer_count", uint32(5)), []string{"hash_layer_count 5 > block_count 4"}},
		{"bad-ratio", set("deepseek4.attention.compress_ratios", []int32{0, 4, 64, 4, 0}), []string{"compress_ratios[2] = 64"}},
		{"short-ratios", set("deepseek4.attention.compress_ratios", []int32{0, 4}), []string{"deepseek4.attention.compress_ratios", "2 entries for 4 blocks"}},
		{"ratios-type", set("deepseek4.attention.compress_ratios", []float32{0, 4, 128, 4}), []string{"deepseek4.attention.compress_ratios", "want an int32 array"}},
		{"short-clamps", set("deepseek4.swiglu_clamp_exp", []float32{1}), []string{"deepseek4.swiglu_clamp_exp", "1 entries for 4 blocks"}},
		{"wrong-key-type", set("deepseek4.expert_count", int32(8)), []string{"deepseek4.expert_count", "int32"}},
		{"missing-key", func(im *testmodel.Image) { im.Delete("deepseek4.attention.sliding_window") },
			[]string{"deepseek4.attention.sliding_window", "missing"}},
		{"gating", set("deepseek4.expert_gating_func", uint32(2)), []string{"deepseek4.expert_gating_func", "want 4"}},
		{"zero-eps", set("deepseek4.hyper_connection.epsilon", float32(0)), []string{"hyper_connection.epsilon"}},
		{"bad-compress-base", set("deepseek4.attention.compress_rope_freq_base", float32(-1)), []string{"compress_rope_freq_base"}},
		{"zero-context", set("deepseek4.context_length", uint32(0)), []string{"context_length"}},
		{"vocab-over-table", set("deepseek4.vocab_size", uint32(corruptVocab+1)), []string{"token_embd.weight", "shape"}},
		{"tokenizer-over-vocab", func(im *testmodel.Image) {
			im.Set("deepseek4.vocab_size", uint32(corruptVocab-1))
			for i := range im.Tensors {
				ti := &im.Tensors[i]
				if last := len(ti.Dims) - 1; ti.Dims[last] == corruptVocab {
					row := uint64(len(ti.Data)) / ti.Dims[last]
					ti.Dims[last]--
					ti.Data = ti.Data[:ti.Dims[last]*row]
				}
			}
		}, []string{"deepseek4.vocab_size", "511 is less than the 512 tokens of tokenizer.ggml.tokens"}},
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

// TestCorruptGGUFBytes patches a valid file where the Writer would refuse
// to: data cut short, a tensor's data moved onto another's or past the end.
func TestCorruptGGUFBytes(t *testing.T) {
	good, err := base(t).Bytes()
	require.NoError(t, err)
	le := binary.LittleEndian
	const table = "blk.0.ffn_gate_tid2eid.weight"
	offsetOf := func(t *testing.T, b []byte, name string) int {
		i, err := testmodel.TensorOffsetAt(b, name)
		require.NoError(t, err)
		return i
	}
	for _, tc := range []struct {
		name string
		data func(t *testing.T, b []byte) []byte
		want []string
	}{
		{"truncated", func(t *testing.T, b []byte) []byte { return b[:len(b)-1] }, []string{"outside"}},
		{"offset-past-end", func(t *testing.T, b []byte) []byte {
			le.PutUint64(b[offsetOf(t, b, table):], uint64(len(b))&^31)
			return b
		}, []string{table, "outside"}},
		{"overlap", func(t *testing.T, b []byte) []byte {
			o := le.Uint64(b[offsetOf(t, b, "token_embd.weight"):])
			le.PutUint64(b[offsetOf(t, b, table):], o)
			return b
		}, []string{table, "overlap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadBytes(t, tc.data(t, bytes.Clone(good)))
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}
