// Package hf is a Hugging Face tokenizer (tokenizer.json and
// tokenizer_config.json) as ulan's tokenizer plugin and its native fallback
// both run it: byte-level BPE with a sequence of Split pre-tokenizers
// (DeepSeek's three regexes among them), added and special tokens, and the
// byte-level decoder. The two hot loops — the regex split and the BPE merge —
// are not here: a Primitives value supplies them, the host's imports inside
// the plugin (sdk/go/tokenizer) and the host's own primitive package in the
// native fallback, so both give the same ids by construction.
//
// Supported: models BPE (with or without ignore_merges, byte_fallback);
// pre-tokenizers Sequence, Split (Isolated, Removed, MergedWithPrevious,
// MergedWithNext; Regex or String patterns), ByteLevel (with or without its
// regex, add_prefix_space), Digits; normalizers Sequence, NFC, NFD, NFKC,
// NFKD (golang.org/x/text), Lowercase, Replace, Prepend; decoders
// ByteLevel, Sequence, Replace, Fuse, Strip, ByteFallback.
// Anything else is an error naming the type.
package hf

import (
	"errors"
	"fmt"
)

// Splitter cuts text into [start, end) byte spans covering it in order:
// every match of its pattern and every stretch between matches (the Split
// pre-tokenizer's Isolated behaviour).
type Splitter interface {
	Split(text string) ([][2]int, error)
}

// Merger applies BPE to one piece's initial symbols over a rank table.
type Merger interface {
	Merge(symbols []int32) ([]int32, error)
}

// Primitives supplies the hot loops: a regex engine with lookahead and
// Unicode classes (.NET/Oniguruma syntax, as tokenizer.json writes
// patterns) and BPE merging over a table of merges in priority order.
type Primitives interface {
	Compile(pattern string) (Splitter, error)
	Merges(left, right, result []int32) (Merger, error)
}

// Sequencer is implemented by Primitives that compose splitters, so that a
// chain of Split pre-tokenizers costs one call of the primitive (for a
// plugin, one host call instead of one per piece).
type Sequencer interface {
	Sequence(parts []Splitter) (Splitter, error)
}

// BatchMerger is implemented by Mergers that merge many pieces in one
// call: symbols holds the pieces' initial symbols one after another, lens
// each piece's count; it returns the merged ids one piece after another
// and sets lens[i] to piece i's merged count.
type BatchMerger interface {
	MergeBatch(symbols, lens []int32) ([]int32, error)
}

// TextEncoder encodes a whole stretch of text in one call of the
// primitives (see ByteEncoders).
type TextEncoder interface {
	Encode(text string) ([]int32, error)
}

// ByteEncoders is implemented by Primitives that run a byte-level BPE
// tokenizer's whole hot path — split, bytes to symbols, merge, with a
// cache — in one call per text: for a plugin, one host call per stretch of
// text between added tokens instead of work per piece in WebAssembly. hf
// uses it when its pre-tokenizer is one (composed) split and it has no
// normalizer.
type ByteEncoders interface {
	ByteEncoder(split Splitter, merges Merger, byteIDs [256]int32) (TextEncoder, error)
}

// Flags modify Encode and Decode; they match sdk/go/tokenizer's.
type Flags int32

// Flags (sdk/ABI.md §6.1).
const (
	// AddSpecial adds the beginning-of-sequence token when the
	// configuration asks for one (add_bos_token), and the end-of-sequence
	// token likewise (add_eos_token).
	AddSpecial Flags = 1 << 0
	// ParseSpecial encodes the text of a special token as that token;
	// without it, special-token text is tokenized as ordinary text.
	// Added tokens that are not special are always recognised, as Hugging
	// Face tokenizers do.
	ParseSpecial Flags = 1 << 1
	// SkipSpecial leaves special tokens out of decoded text.
	SkipSpecial Flags = 1 << 2
)

// ErrUnsupported reports a tokenizer.json component this package does not
// implement.
var ErrUnsupported = errors.New("hf: unsupported")

// unsupported returns an ErrUnsupported error naming what.
func unsupported(what string, kind string) error {
	return fmt.Errorf("%w %s type %q", ErrUnsupported, what, kind)
}
