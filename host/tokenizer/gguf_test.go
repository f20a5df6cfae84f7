package tokenizer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

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
	require.NoError(t, testmodel.WriteTokenizerFile(path, "deepseek-v3"))
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

// TestFromGGUFPreTokenizers: a tokenizer rebuilt from GGUF metadata with
// each other pre-tokenizer this package knows (DeepSeek-LLM/V2's and
// DeepSeek-Coder's) encodes the corpus and the extra cases exactly as
// transformers.js does with that pre-tokenizer
// (testdata/gen_pretokenizers.mjs made testdata/pretokenizers_ref.json),
// and decodes each back to its text.
func TestFromGGUFPreTokenizers(t *testing.T) {
	raw, err := os.ReadFile("testdata/pretokenizers_ref.json")
	require.NoError(t, err)
	var ref struct {
		PreTokenizers map[string][]struct {
			Name string  `json:"name"`
			Text string  `json:"text"`
			IDs  []int32 `json:"ids"`
		} `json:"pretokenizers"`
	}
	require.NoError(t, json.Unmarshal(raw, &ref))
	require.Len(t, ref.PreTokenizers, 2)
	for pre, cases := range ref.PreTokenizers {
		t.Run(pre, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tok.gguf")
			require.NoError(t, testmodel.WriteTokenizerFile(path, pre))
			f, err := gguf.Open(path)
			require.NoError(t, err)
			defer f.Close()
			tok, err := tokenizer.FromGGUF(f)
			require.NoError(t, err)
			var mismatched []string
			for _, c := range cases {
				got, err := tok.Encode(c.Text, hf.ParseSpecial)
				require.NoError(t, err, c.Name)
				if !slices.Equal(c.IDs, got) {
					mismatched = append(mismatched, fmt.Sprintf("%s %q: want %v, got %v", c.Name, c.Text, c.IDs, got))
					continue
				}
				if !utf8.ValidString(c.Text) {
					continue // invalid bytes decode as U+FFFD (the corpus's documented behaviour)
				}
				text, err := tok.Decode(got, 0)
				require.NoError(t, err, c.Name)
				require.Equal(t, c.Text, text, c.Name)
			}
			require.Empty(t, mismatched, "%d of %d cases differ from transformers.js", len(mismatched), len(cases))
		})
	}
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
