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
