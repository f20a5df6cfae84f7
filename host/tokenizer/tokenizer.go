// Package tokenizer is the host side of tokenization: the native tokenizer
// that backs up the tokenizer plugin (sdk/ABI.md §8, policy fallback), built
// from the same Hugging Face files with the same code (sdk/go/tokenizer/hf)
// over the host's own primitives, so that the plugin and the fallback give
// the same ids.
package tokenizer

import (
	"encoding/json"
	"fmt"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// Native builds the native tokenizer from tokenizer.json and (may be nil)
// tokenizer_config.json.
func Native(tokenizerJSON, configJSON []byte) (*hf.Tokenizer, error) {
	return hf.Load(tokenizerJSON, configJSON, Primitives{})
}

// Primitives are hf's primitives from the host's primitive package: the
// regex engine the plugin's regex_split import uses and its BPE merge.
type Primitives struct{}

// Compile compiles a pattern with primitive.Compile.
func (Primitives) Compile(pattern string) (hf.Splitter, error) { return primitive.Compile(pattern) }

// Sequence composes splitters with primitive.NewSequence, so that the
// pre-tokenizer's chain of Splits is one pass.
func (Primitives) Sequence(parts []hf.Splitter) (hf.Splitter, error) {
	ps := make([]primitive.Splitter, len(parts))
	for i, p := range parts {
		ps[i] = p
	}
	return primitive.NewSequence(ps...)
}

// ByteEncoder returns primitive's whole-text encoder over split and merges
// (which must come from Compile or Sequence, and Merges).
func (Primitives) ByteEncoder(split hf.Splitter, merges hf.Merger, byteIDs [256]int32) (hf.TextEncoder, error) {
	r, ok := merges.(*primitive.Ranks)
	if !ok {
		return nil, fmt.Errorf("tokenizer: byte encoder over a %T", merges)
	}
	return primitive.NewByteEncoder(r, split, byteIDs)
}

// Merges registers a rank table with primitive.NewRanks.
func (Primitives) Merges(left, right, result []int32) (hf.Merger, error) {
	return primitive.NewRanks(left, right, result)
}

// PluginConfig is the tokenizer plugin's configuration for tok: its bundle
// (hf.Tokenizer.Bundle), which an instance loads far faster than the
// tokenizer.json it was made from, and the chat format it renders prompts
// in (chatfmt's names; "" for the tokenizer's chat_template, if any).
func PluginConfig(tok *hf.Tokenizer, chatFormat string) ([]byte, error) {
	b, err := tok.Bundle()
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(struct {
		Bundle     []byte `json:"bundle"`
		ChatFormat string `json:"chat_format,omitempty"`
	}{b, chatFormat})
	if err != nil {
		return nil, fmt.Errorf("tokenizer: plugin config: %w", err)
	}
	return cfg, nil
}
