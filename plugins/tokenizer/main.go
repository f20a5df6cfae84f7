// Command tokenizer is ulan's first-party tokenizer plugin: a Hugging Face
// tokenizer.json (DeepSeek's byte-level BPE, its three Split regexes, added
// and special tokens) run by sdk/go/tokenizer/hf, with the regex split and
// the BPE merge done by the host's primitives. The host hands it the
// model's tokenizer as its configuration, either as the bundle the host
// makes once from the files (hf.Tokenizer.Bundle; fast to load) or as the
// files themselves:
//
//	{"bundle": "<base64>", "chat_format": "jinja"}
//	{"tokenizer_json": {...tokenizer.json...}, "tokenizer_config": {...tokenizer_config.json...}}
//
// It renders chat prompts (tok_chat) with sdk/go/tokenizer/chatfmt:
// chat_format "jinja" (the default when the tokenizer has a chat_template:
// DeepSeek-V3, V3-0324, R1, V3.1) renders that template, "v3.2", "v4" and
// "v4-0731" DeepSeek's encoders for checkpoints that ship none.
//
// The native fallback (host/tokenizer) runs the same hf code over the
// host's primitive package directly, so both give the same ids.
//
// Build it (the module is committed, and CI checks it is fresh) with
//
//	go run ./cmd/ulan plugin build plugins/tokenizer
package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/ulan-ai/ulan/sdk/go/tokenizer"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/chatfmt"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

// hostPrimitives gives hf the host's imports through the SDK.
type hostPrimitives struct{}

func (hostPrimitives) Compile(pattern string) (hf.Splitter, error) {
	return tokenizer.CompilePattern(pattern)
}

// Sequence asks the host for one pattern that applies parts in turn, so
// that splitting a text is one host call, not one per piece.
func (hostPrimitives) Sequence(parts []hf.Splitter) (hf.Splitter, error) {
	ps := make([]tokenizer.Pattern, len(parts))
	for i, p := range parts {
		pat, ok := p.(tokenizer.Pattern)
		if !ok {
			return nil, fmt.Errorf("sequence of a %T", p)
		}
		ps[i] = pat
	}
	return tokenizer.Sequence(ps...)
}

// ByteEncoder asks the host for its whole-text encoder: one host call per
// stretch of text between added tokens.
func (hostPrimitives) ByteEncoder(split hf.Splitter, merges hf.Merger, byteIDs [256]int32) (hf.TextEncoder, error) {
	p, ok := split.(tokenizer.Pattern)
	m, ok2 := merges.(tokenizer.Merges)
	if !ok || !ok2 {
		return nil, fmt.Errorf("byte encoder over a %T and a %T", split, merges)
	}
	return tokenizer.ByteEncoder(p, m, byteIDs)
}

func (hostPrimitives) Merges(left, right, result []int32) (hf.Merger, error) {
	return tokenizer.RegisterMerges(left, right, result)
}

// plugin adapts an hf.Tokenizer to the SDK's Tokenizer.
type plugin struct {
	tok        *hf.Tokenizer
	chatFormat string
}

var p = &plugin{}

func (p *plugin) Info() tokenizer.Info {
	in := tokenizer.Info{VocabSize: p.tok.VocabSize(), BOS: p.tok.BOS(), DecodeIsConcat: p.tok.DecodeIsConcat()}
	if eos := p.tok.EOS(); eos >= 0 {
		in.EOS = []int32{eos}
	}
	return in
}

func (p *plugin) TokenBytes(id int32) []byte { return p.tok.TokenBytes(id) }

func (p *plugin) Encode(text string, flags tokenizer.Flags) ([]int32, error) {
	return p.tok.Encode(text, hf.Flags(flags))
}

func (p *plugin) Decode(ids []int32, flags tokenizer.Flags) (string, error) {
	return p.tok.Decode(ids, hf.Flags(flags))
}

// configure loads the tokenizer files from the configuration.
func (p *plugin) configure(raw []byte) error {
	var c struct {
		Bundle          []byte          `json:"bundle"`
		TokenizerJSON   json.RawMessage `json:"tokenizer_json"`
		TokenizerConfig json.RawMessage `json:"tokenizer_config"`
		ChatFormat      string          `json:"chat_format"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// Loading allocates many small objects that all stay live; collecting
	// while it runs only costs time (most of it, in wasm). Afterwards the
	// heap may grow to five times what is live between collections: each
	// collection is a stop of the single wasm thread, and the plugin's
	// memory cap is far above its working set.
	defer debug.SetGCPercent(400)
	debug.SetGCPercent(-1)
	var tok *hf.Tokenizer
	var err error
	switch {
	case len(c.Bundle) > 0:
		tok, err = hf.LoadBundle(c.Bundle, hostPrimitives{})
	case len(c.TokenizerJSON) > 0:
		tok, err = hf.Load(c.TokenizerJSON, c.TokenizerConfig, hostPrimitives{})
	default:
		err = fmt.Errorf("config: bundle or tokenizer_json is required")
	}
	if err != nil {
		return err
	}
	p.tok = tok
	p.chatFormat = c.ChatFormat
	if p.chatFormat == "" && tok.ChatTemplate() != "" {
		p.chatFormat = chatfmt.FormatJinja
	}
	return nil
}

// RenderChat renders a conversation in the configured chat format.
func (p *plugin) RenderChat(c tokenizer.Chat) (string, error) {
	if p.chatFormat == "" {
		return "", fmt.Errorf("no chat format: the tokenizer has no chat_template and the configuration sets no chat_format")
	}
	return chatfmt.RenderChat(p.chatFormat, p.tok.ChatTemplate(), c)
}

func init() {
	ulan.OnInit(p.configure)
	tokenizer.Register(p)
}

func main() {}
