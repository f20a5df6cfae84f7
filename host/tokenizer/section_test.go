package tokenizer_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/tokenizer"
)

// TestGGUFSection rebuilds DeepSeek-V3's tokenizer section from its
// tokenizer.json and tokenizer_config.json and requires the one testmodel
// writes (which llama.cpp loads), key for key.
func TestGGUFSection(t *testing.T) {
	tj, err := testmodel.TokenizerJSON()
	require.NoError(t, err)
	pre, ok := tokenizer.PreTokenizerName(tj)
	require.True(t, ok)
	require.Equal(t, "deepseek-v3", pre)
	kvs, err := tokenizer.GGUFSection(tj, testmodel.TokenizerConfigJSON(), 129280, pre)
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "tok.gguf")
	require.NoError(t, testmodel.WriteTokenizerFile(path, "deepseek-v3"))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var want []gguf.KV
	for _, kv := range f.KVs() {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			want = append(want, kv)
		}
	}
	require.Equal(t, want, kvs)
}

func TestGGUFSectionForms(t *testing.T) {
	tj := []byte(`{"added_tokens":[{"id":3,"content":"<|x|>","special":false},{"id":4,"content":"hi","special":false}],
		"pre_tokenizer":{"type":"Whitespace"},
		"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]}}`)
	_, ok := tokenizer.PreTokenizerName(tj)
	require.False(t, ok)
	cfg := []byte(`{"bos_token":"a","eos_token":{"content":"<|x|>"},"chat_template":[{"name":"default","template":"T"}]}`)
	kvs, err := tokenizer.GGUFSection(tj, cfg, 6, "gpt2")
	require.NoError(t, err)
	got := map[string]any{}
	for _, kv := range kvs {
		got[kv.Key] = kv.Value
	}
	require.Equal(t, []string{"a", "b", "ab", "<|x|>", "hi", "[PAD5]"}, got["tokenizer.ggml.tokens"])
	require.Equal(t, []int32{1, 1, 1, 3, 4, 5}, got["tokenizer.ggml.token_type"])
	require.Equal(t, []string{"a b"}, got["tokenizer.ggml.merges"])
	require.Equal(t, uint32(0), got["tokenizer.ggml.bos_token_id"])
	require.Equal(t, uint32(3), got["tokenizer.ggml.eos_token_id"])
	require.Equal(t, "T", got["tokenizer.chat_template"])
	require.NotContains(t, got, "tokenizer.ggml.padding_token_id")

	_, err = tokenizer.GGUFSection(tj, nil, 3, "gpt2")
	require.ErrorContains(t, err, "outside the vocabulary of 3")
	_, err = tokenizer.GGUFSection([]byte(`{"model":{"type":"Unigram"}}`), nil, 3, "gpt2")
	require.ErrorContains(t, err, `model type "Unigram", want BPE`)
}
