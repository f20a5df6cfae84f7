package hf_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// TestBundleRoundTrip: a tokenizer loaded from its bundle gives the same
// ids, text and vocabulary as the one loaded from tokenizer.json.
func TestBundleRoundTrip(t *testing.T) {
	tok := loadDeepSeek(t)
	b, err := tok.Bundle()
	require.NoError(t, err)
	back, err := hf.LoadBundle(b, native{})
	require.NoError(t, err)
	require.Equal(t, tok.VocabSize(), back.VocabSize())
	require.Equal(t, tok.BOS(), back.BOS())
	require.Equal(t, tok.EOS(), back.EOS())
	require.Equal(t, tok.ChatTemplate(), back.ChatTemplate())
	require.Equal(t, tok.DecodeIsConcat(), back.DecodeIsConcat())
	for _, c := range loadCorpus(t) {
		ids, err := back.Encode(c.Text, hf.ParseSpecial)
		require.NoError(t, err, c.Name)
		assertIDs(t, c, ids)
	}
	for id := range int32(tok.VocabSize()) {
		require.Equal(t, tok.TokenBytes(id), back.TokenBytes(id), "token %d", id)
	}
	again, err := back.Bundle()
	require.NoError(t, err)
	require.Equal(t, b, again, "a bundle's bundle is itself")
}

// tinyTokenizer is a small byte-level tokenizer.json for bundle tests.
func tinyTokenizer() []byte {
	vocab := `"a":0,"b":1,"ab":2`
	for b := range 256 {
		if b != 'a' && b != 'b' {
			vocab += `,` + quote(hfByteChar(b)) + `:` + itoa(3+b)
		}
	}
	return []byte(`{"model":{"type":"BPE","vocab":{` + vocab + `},"merges":["a b"]},
		"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},
		"decoder":{"type":"ByteLevel"},
		"added_tokens":[{"id":300,"content":"<x>","special":true}]}`)
}

func FuzzLoadBundle(f *testing.F) {
	tok, err := hf.Load(tinyTokenizer(), nil, native{})
	require.NoError(f, err)
	b, err := tok.Bundle()
	require.NoError(f, err)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte("ulantok1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := hf.LoadBundle(data, native{})
		if err != nil {
			return
		}
		ids, err := tok.Encode("ab <x> ba", hf.ParseSpecial)
		if err != nil {
			return
		}
		_, _ = tok.Decode(ids, 0)
	})
}

func TestBundleErrors(t *testing.T) {
	tok, err := hf.Load(tinyTokenizer(), nil, native{})
	require.NoError(t, err)
	ids, err := tok.Encode("ab<x>", hf.ParseSpecial)
	require.NoError(t, err)
	require.Equal(t, []int32{2, 300}, ids)
	b, err := tok.Bundle()
	require.NoError(t, err)
	for name, data := range map[string][]byte{
		"empty":     nil,
		"magic":     []byte("notatok!"),
		"truncated": b[:len(b)-5],
		"trailing":  append(append([]byte(nil), b...), 0),
	} {
		_, err := hf.LoadBundle(data, native{})
		require.ErrorIs(t, err, hf.ErrBundle, name)
	}
}
