package tokenizer_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/tokenizer"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// TestFromGGUFMatchesTokenizerJSON: the tokenizer rebuilt from a test
// model's GGUF metadata encodes the corpus exactly as the one loaded from
// DeepSeek's tokenizer.json, and every one of the model's ids decodes.
func TestFromGGUFMatchesTokenizerJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tok.gguf")
	require.NoError(t, testmodel.WriteTokenizerFile(path))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fromGGUF, err := tokenizer.FromGGUF(f)
	require.NoError(t, err)
	nat := native(t)
	require.Equal(t, 129280, fromGGUF.VocabSize(), "every id of the model, [PAD] fillers included")
	require.Equal(t, nat.BOS(), fromGGUF.BOS())
	require.Equal(t, nat.EOS(), fromGGUF.EOS())
	require.Equal(t, nat.ChatTemplate(), fromGGUF.ChatTemplate())
	for _, c := range corpus(t) {
		want, err := nat.Encode(c.Text, hf.ParseSpecial)
		require.NoError(t, err)
		got, err := fromGGUF.Encode(c.Text, hf.ParseSpecial)
		require.NoError(t, err)
		require.Equal(t, want, got, c.Name)
	}
	pad, err := fromGGUF.Decode([]int32{129279}, hf.SkipSpecial)
	require.NoError(t, err)
	require.Empty(t, pad)
	withBOS, err := fromGGUF.Encode("x", hf.AddSpecial)
	require.NoError(t, err)
	require.Equal(t, int32(0), withBOS[0], "tokenizer.ggml.add_bos_token")
}

func TestFromGGUFRefusesWhatItCannotRebuild(t *testing.T) {
	for name, kv := range map[string]map[string]any{
		"no model":  {"tokenizer.ggml.tokens": []string{"a"}},
		"spm":       {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": []string{"a"}},
		"other pre": {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "qwen2", "tokenizer.ggml.tokens": []string{"a"}},
	} {
		t.Run(name, func(t *testing.T) {
			w := &gguf.Writer{}
			for k, v := range kv {
				w.Add(k, v)
			}
			path := filepath.Join(t.TempDir(), "t.gguf")
			require.NoError(t, w.WriteFile(path))
			f, err := gguf.Open(path)
			require.NoError(t, err)
			defer f.Close()
			_, err = tokenizer.FromGGUF(f)
			require.ErrorIs(t, err, tokenizer.ErrGGUF)
		})
	}
}
