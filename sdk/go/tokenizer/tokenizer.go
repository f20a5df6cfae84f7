// Package tokenizer is the Go guest SDK for tokenizer plugins (sdk/ABI.md
// §6.1): implement Tokenizer, call Register from an init function, and the
// package exports tok_info, tok_vocab, tok_encode and tok_decode. Hot loops
// belong to the host: CompilePattern/Split and RegisterMerges/Merge call
// its primitives, so a plugin keeps the policy and the host runs the loops.
package tokenizer

import (
	"sync"
)

// Flags modify encoding and decoding.
type Flags int32

// Flags (sdk/ABI.md §6.1).
const (
	// AddSpecial adds the beginning-of-sequence token (encode).
	AddSpecial Flags = 1 << 0
	// ParseSpecial encodes special-token text as the special token (encode).
	ParseSpecial Flags = 1 << 1
	// SkipSpecial leaves special tokens out of the text (decode).
	SkipSpecial Flags = 1 << 2
)

// Info describes the tokenizer to the host.
type Info struct {
	VocabSize int     `json:"vocab_size"`
	BOS       int32   `json:"bos"`
	EOS       []int32 `json:"eos"`
	// DecodeIsConcat says decoding is concatenating token bytes, so the host
	// may detokenize streams natively from the vocabulary.
	DecodeIsConcat bool `json:"decode_is_concat"`
}

// Tokenizer is a tokenizer plugin's logic.
type Tokenizer interface {
	Info() Info
	// TokenBytes returns a token's raw bytes (for the vocabulary export).
	TokenBytes(id int32) []byte
	Encode(text string, flags Flags) ([]int32, error)
	Decode(ids []int32, flags Flags) (string, error)
}

var (
	mu  sync.Mutex
	tok Tokenizer
	out []byte // the last export's result, valid until the next call
)

// Register installs the plugin's tokenizer. Call it once, from init.
func Register(t Tokenizer) {
	mu.Lock()
	defer mu.Unlock()
	tok = t
}

func current() Tokenizer {
	mu.Lock()
	defer mu.Unlock()
	return tok
}

// vocab encodes count tokens from start: per token a u16 length and its
// bytes.
func vocab(t Tokenizer, start, count int32) []byte {
	b := out[:0]
	n := int32(t.Info().VocabSize)
	for id := start; id < start+count && id < n; id++ {
		tb := t.TokenBytes(id)
		b = append(b, byte(len(tb)), byte(len(tb)>>8))
		b = append(b, tb...)
	}
	return b
}

type sdkError string

func (e sdkError) Error() string { return string(e) }

const errNoTokenizer = sdkError("tokenizer: no Tokenizer registered (call tokenizer.Register from init)")
