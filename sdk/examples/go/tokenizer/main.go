// Command tokenizer is an example tokenizer plugin in Go: a word-level
// vocabulary with byte fallback. Ids 0–255 are the bytes, 256 is
// <|endoftext|> (beginning and end of sequence), and then each listed word
// w and " " + w. Text is cut into pieces with the host's regex split
// (tokenizer.CompilePattern, Split); a piece that is in the vocabulary is
// one token, any other piece is its bytes. So every text round-trips, and
// decoding is concatenating the tokens' bytes. It also renders chat
// prompts (tokenizer.ChatRenderer, the optional tok_chat export): each
// message as "role: text" closed by <|endoftext|>.
//
// Config (manifest.json's schema): {"words": ["hello", ...]}, which replace
// the built-in list. Build and check it with
//
//	ulan plugin build sdk/examples/go/tokenizer
//	ulan plugin test sdk/examples/go/tokenizer/tokenizer.wasm
package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ulan-ai/ulan/sdk/go/tokenizer"
	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

const (
	eot     = 256
	eotText = "<|endoftext|>"
	// pieces: words and numbers with an optional leading space, runs of
	// other symbols, runs of whitespace. (No lookahead, so the same pattern
	// compiles natively for tests.)
	pieces = ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+`
)

var builtin = []string{"the", "and", "of", "to", "in", "is", "that", "for", "it", "with",
	"as", "was", "on", "be", "at", "by", "this", "have", "from", "or",
	"hello", "world", "token", "plugin", "ulan"}

// words is the tokenizer: its vocabulary beyond the bytes and the pattern
// the host compiled.
type words struct {
	tokens  []string         // id − 257 → text
	ids     map[string]int32 // text → id
	pattern tokenizer.Pattern
}

var tok = &words{}

func (w *words) Info() tokenizer.Info {
	return tokenizer.Info{VocabSize: eot + 1 + len(w.tokens), BOS: eot, EOS: []int32{eot}, DecodeIsConcat: true}
}

func (w *words) TokenBytes(id int32) []byte {
	switch {
	case id < 0 || int(id) >= eot+1+len(w.tokens):
		return nil
	case id < eot:
		return []byte{byte(id)}
	case id == eot:
		return []byte(eotText)
	}
	return []byte(w.tokens[id-eot-1])
}

func (w *words) Encode(text string, flags tokenizer.Flags) ([]int32, error) {
	var ids []int32
	if flags&tokenizer.AddSpecial != 0 {
		ids = append(ids, eot)
	}
	parts := []string{text}
	if flags&tokenizer.ParseSpecial != 0 {
		parts = strings.Split(text, eotText)
	}
	for i, part := range parts {
		if i > 0 {
			ids = append(ids, eot)
		}
		spans, err := w.pattern.Split(part)
		if err != nil {
			return nil, err
		}
		for _, s := range spans {
			piece := part[s[0]:s[1]]
			if id, ok := w.ids[piece]; ok {
				ids = append(ids, id)
				continue
			}
			for j := range len(piece) {
				ids = append(ids, int32(piece[j]))
			}
		}
	}
	return ids, nil
}

func (w *words) Decode(ids []int32, flags tokenizer.Flags) (string, error) {
	var b strings.Builder
	for _, id := range ids {
		if id == eot && flags&tokenizer.SkipSpecial != 0 {
			continue
		}
		t := w.TokenBytes(id)
		if t == nil {
			return "", fmt.Errorf("token id %d outside the vocabulary", id)
		}
		b.Write(t)
	}
	return b.String(), nil
}

// RenderChat writes each message as "role: text<|endoftext|>" and, when
// asked, "assistant: " to open the reply.
func (w *words) RenderChat(c tokenizer.Chat) (string, error) {
	var b strings.Builder
	for _, m := range c.Messages {
		b.WriteString(m.Role + ": " + m.Content + eotText)
	}
	if c.AddGenerationPrompt {
		b.WriteString("assistant: ")
	}
	return b.String(), nil
}

// configure builds the vocabulary from the configuration (already checked
// against the manifest's schema by the host) and compiles the pattern.
func (w *words) configure(raw []byte) error {
	c := struct {
		Words []string `json:"words"`
	}{Words: builtin}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	w.tokens, w.ids = nil, map[string]int32{}
	for _, word := range c.Words {
		for _, t := range []string{word, " " + word} {
			if _, dup := w.ids[t]; !dup && word != "" {
				w.ids[t] = int32(eot + 1 + len(w.tokens))
				w.tokens = append(w.tokens, t)
			}
		}
	}
	var err error
	w.pattern, err = tokenizer.CompilePattern(pieces)
	return err
}

func init() {
	ulan.OnInit(tok.configure)
	tokenizer.Register(tok)
}

func main() {}
