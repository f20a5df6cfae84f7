// Command gotok is a toy byte-level BPE tokenizer built with the Go SDK for
// the runtime's tests. Ids 0–255 are bytes; 256 "ab", 257 "abc" and 258
// "12" come from three merges; 259 is <eos>, also used as the
// beginning-of-sequence token. Pieces come from the host's regex split and
// merges from the host's BPE primitive.
package main

import (
	"strings"

	"github.com/ulan-ai/ulan/sdk/go/tokenizer"
	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

const eos = 259

var extra = map[int32]string{256: "ab", 257: "abc", 258: "12", eos: "<eos>"}

type tok struct {
	pieces tokenizer.Pattern
	merges tokenizer.Merges
}

var t = &tok{}

func (*tok) Info() tokenizer.Info {
	return tokenizer.Info{VocabSize: 260, BOS: eos, EOS: []int32{eos}, DecodeIsConcat: true}
}

func (*tok) TokenBytes(id int32) []byte {
	if id < 256 {
		return []byte{byte(id)}
	}
	return []byte(extra[id])
}

func (t *tok) Encode(text string, flags tokenizer.Flags) ([]int32, error) {
	var ids []int32
	if flags&tokenizer.AddSpecial != 0 {
		ids = append(ids, eos)
	}
	spans, err := t.pieces.Split(text)
	if err != nil {
		return nil, err
	}
	for _, s := range spans {
		piece := text[s[0]:s[1]]
		syms := make([]int32, len(piece))
		for i := range len(piece) {
			syms[i] = int32(piece[i])
		}
		merged, err := t.merges.Merge(syms)
		if err != nil {
			return nil, err
		}
		ids = append(ids, merged...)
	}
	return ids, nil
}

func (t *tok) Decode(ids []int32, flags tokenizer.Flags) (string, error) {
	var b strings.Builder
	for _, id := range ids {
		if id == eos && flags&tokenizer.SkipSpecial != 0 {
			continue
		}
		b.Write(t.TokenBytes(id))
	}
	return b.String(), nil
}

// RenderChat writes each message as <|role|>content and a newline, and
// <|assistant|> to open the reply.
func (*tok) RenderChat(c tokenizer.Chat) (string, error) {
	var b strings.Builder
	for _, m := range c.Messages {
		b.WriteString("<|" + m.Role + "|>" + m.Content + "\n")
	}
	if c.AddGenerationPrompt {
		b.WriteString("<|assistant|>")
	}
	return b.String(), nil
}

func init() {
	ulan.OnInit(func([]byte) error {
		var err error
		if t.pieces, err = tokenizer.CompilePattern(`\p{N}{1,3}|\p{L}+|\s+|[^\s\p{L}\p{N}]+`); err != nil {
			return err
		}
		t.merges, err = tokenizer.RegisterMerges([]int32{'a', 256, '1'}, []int32{'b', 'c', '2'}, []int32{256, 257, 258})
		return err
	})
	tokenizer.Register(t)
}

func main() {}
