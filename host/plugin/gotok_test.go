package plugin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGoSDKTokenizer runs a tokenizer built with the Go SDK whose pieces and
// merges come from the host's primitives.
func TestGoSDKTokenizer(t *testing.T) {
	t.Parallel()
	wasm := buildGo(t, "gotok", `{"abi":1,"name":"gotok","version":"0.1.0","kind":"tokenizer","needs":{"memory_pages":256}}`)
	p, err := loadWithLog(wasm, Config{ID: "gotok", Kind: KindTokenizer, PoolSize: 1, MemoryPages: 256}, &syncBuffer{})
	require.NoError(t, err)
	defer p.Close(context.Background())
	ctx := context.Background()

	info, err := p.TokenizerInfo(ctx)
	require.NoError(t, err)
	require.Equal(t, TokenizerInfo{VocabSize: 260, BOS: 259, EOS: []int32{259}, DecodeIsConcat: true, Features: []string{FeatureChatTemplate}}, info)
	prompt, err := p.Chat(ctx, ChatRequest{Messages: []ChatMessage{{Role: "user", Content: "hi"}}, AddGenerationPrompt: true})
	require.NoError(t, err)
	require.Equal(t, "<|user|>hi\n<|assistant|>", prompt)
	require.NoError(t, conformChat(ctx, p))
	vocab, err := p.Vocab(ctx, info.VocabSize)
	require.NoError(t, err)
	require.Len(t, vocab, 260)
	require.Equal(t, "ab", string(vocab[256]))
	require.Equal(t, "<eos>", string(vocab[259]))

	ids, err := p.Encode(ctx, "abc ab 1234", 0, info.VocabSize)
	require.NoError(t, err)
	require.Equal(t, []int32{257, ' ', 256, ' ', 258, '3', '4'}, ids)
	ids, err = p.Encode(ctx, "ab", 1, info.VocabSize) // AddSpecial
	require.NoError(t, err)
	require.Equal(t, []int32{259, 256}, ids)

	text, err := p.Decode(ctx, []int32{259, 257, ' ', 258}, 0)
	require.NoError(t, err)
	require.Equal(t, "<eos>abc 12", text)
	text, err = p.Decode(ctx, []int32{259, 257}, 4) // SkipSpecial
	require.NoError(t, err)
	require.Equal(t, "abc", text)

	// A lone byte of a multi-byte character is not valid UTF-8: refused.
	_, err = p.Decode(ctx, []int32{0xc3}, 0)
	require.ErrorContains(t, err, "not valid UTF-8")
	// The instance that produced it was replaced; the plugin still answers.
	require.Eventually(t, func() bool {
		ids, err := p.Encode(ctx, "ab", 0, info.VocabSize)
		return err == nil && len(ids) == 1
	}, 5e9, 1e7)
}
