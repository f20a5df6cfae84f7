package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/tokenizer"
)

// The plugin's logic runs natively under `go test`, with the SDK's Go
// version of the host's regex split.
func TestWordsAndBytes(t *testing.T) {
	w := &words{}
	require.NoError(t, w.configure([]byte(`{"words": ["hello", "world"]}`)))
	require.Equal(t, 261, w.Info().VocabSize, "256 bytes, <|endoftext|>, and two words with and without a space")

	ids, err := w.Encode("hello world, héllo!", tokenizer.AddSpecial)
	require.NoError(t, err)
	require.Equal(t, []int32{eot, 257, 260, ',', ' ', 'h', 0xc3, 0xa9, 'l', 'l', 'o', '!'}, ids)
	text, err := w.Decode(ids, tokenizer.SkipSpecial)
	require.NoError(t, err)
	require.Equal(t, "hello world, héllo!", text)

	ids, err = w.Encode("hello<|endoftext|>", tokenizer.ParseSpecial)
	require.NoError(t, err)
	require.Equal(t, []int32{257, eot}, ids)
	ids, err = w.Encode("<|endoftext|>", 0)
	require.NoError(t, err)
	require.Len(t, ids, len("<|endoftext|>"), "special text is plain text without ParseSpecial")

	_, err = w.Decode([]int32{999}, 0)
	require.ErrorContains(t, err, "outside the vocabulary")
}

func TestRenderChat(t *testing.T) {
	prompt, err := (&words{}).RenderChat(tokenizer.Chat{
		Messages:            []tokenizer.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "hello"}},
		AddGenerationPrompt: true,
	})
	require.NoError(t, err)
	require.Equal(t, "system: Be brief.<|endoftext|>user: hello<|endoftext|>assistant: ", prompt)
}
