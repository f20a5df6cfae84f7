package tokenizer

import (
	"testing"

	"github.com/stretchr/testify/require"
)

type bytesTok struct{}

func (bytesTok) Info() Info                            { return Info{VocabSize: 3} }
func (bytesTok) TokenBytes(id int32) []byte            { return []byte{'a' + byte(id), 'x'}[:1+id%2] }
func (bytesTok) Encode(string, Flags) ([]int32, error) { return nil, nil }
func (bytesTok) Decode([]int32, Flags) (string, error) { return "", nil }

func TestVocabEncoding(t *testing.T) {
	Register(bytesTok{})
	require.Equal(t, []byte{1, 0, 'a', 2, 0, 'b', 'x', 1, 0, 'c'}, vocab(current(), 0, 10), "stops at the vocabulary size")
	require.Equal(t, []byte{2, 0, 'b', 'x'}, vocab(current(), 1, 1))
}

func TestPrimitivesNatively(t *testing.T) {
	p, err := CompilePattern(`\p{N}{1,3}`)
	require.NoError(t, err)
	spans, err := p.Split("abc12345")
	require.NoError(t, err)
	require.Equal(t, [][2]int{{0, 3}, {3, 6}, {6, 8}}, spans)
	_, err = CompilePattern(`\s+(?!\S)`)
	require.ErrorContains(t, err, "pattern", "natively, no lookahead")

	m, err := RegisterMerges([]int32{1, 4}, []int32{2, 3}, []int32{4, 5})
	require.NoError(t, err)
	merged, err := m.Merge([]int32{1, 2, 3, 1, 2})
	require.NoError(t, err)
	require.Equal(t, []int32{5, 4}, merged, "as the host merges (tokprims_test.go)")
}

type chatTok struct{ bytesTok }

func (chatTok) RenderChat(c Chat) (string, error) {
	return c.Messages[0].Role + ":" + c.Messages[0].Content, nil
}

func TestChatFeatureAndRendering(t *testing.T) {
	require.Empty(t, info(bytesTok{}).Features)
	_, err := renderChat(bytesTok{}, []byte(`{"messages":[]}`))
	require.ErrorContains(t, err, "ChatRenderer")

	require.Equal(t, []string{FeatureChatTemplate}, info(chatTok{}).Features)
	got, err := renderChat(chatTok{}, []byte(`{"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":true}`))
	require.NoError(t, err)
	require.Equal(t, "user:hi", got)
	_, err = renderChat(chatTok{}, []byte(`{"messages":`))
	require.ErrorContains(t, err, "tok_chat input")
}
