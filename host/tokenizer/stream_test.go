package tokenizer_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// byteTokens makes a vocabulary of single bytes: token id b is byte b.
func byteTokens(id int32) []byte { return []byte{byte(id)} }

func pushAll(s *hf.Stream, b []byte) []string {
	var outs []string
	for _, c := range b {
		outs = append(outs, s.Push(int32(c)))
	}
	return append(outs, s.Flush())
}

func TestStreamHoldsIncompleteCharacters(t *testing.T) {
	outs := pushAll(hf.NewStream(byteTokens), []byte("a€b🌍"))
	require.Equal(t, []string{"a", "", "", "€", "b", "", "", "", "🌍", ""}, outs)
	for _, o := range outs {
		require.NotContains(t, o, "\uFFFD")
	}
}

func TestStreamInvalidBytes(t *testing.T) {
	// 0xff can never start a character: out at once. A cut-off € at the
	// end: U+FFFD at the flush, as a whole decode writes it.
	outs := pushAll(hf.NewStream(byteTokens), []byte("x\xffy\xe2\x82"))
	require.Equal(t, "x\uFFFDy\uFFFD", strings.Join(outs, ""))
	require.Equal(t, "\uFFFD", outs[1], "0xff cannot start a character: out at once")
	require.Equal(t, "", outs[4], "0xe2 may start one: held")
	// A lead byte followed by a byte that cannot continue it.
	outs = pushAll(hf.NewStream(byteTokens), []byte("\xe2(\xf0\x9f"))
	require.Equal(t, "\uFFFD(\uFFFD", strings.Join(outs, ""))
}

// TestStreamEqualsDecode: streamed token by token, DeepSeek's tokenizer's
// output concatenates to what a whole decode gives, for every corpus case
// and for text whose tokens split characters.
func TestStreamEqualsDecode(t *testing.T) {
	tok := native(t)
	for _, c := range append(corpus(t), corpusCase{Name: "split", Text: "ok\xe2\x82 end 🌍👍🏽"}) {
		ids, err := tok.Encode(c.Text, hf.ParseSpecial)
		require.NoError(t, err)
		want, err := tok.Decode(ids, 0)
		require.NoError(t, err)
		s := hf.NewStream(tok.TokenBytes)
		var got strings.Builder
		for _, id := range ids {
			got.WriteString(s.Push(id))
		}
		got.WriteString(s.Flush())
		require.Equal(t, want, got.String(), c.Name)
	}
}
