package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// preTokenizers are the pre-tokenizers of the `tokenizer.ggml.pre` names
// this package knows, as tokenizer.json writes them: "deepseek-v3" is
// copied from DeepSeek-V3's tokenizer.json (three Split regexes, then the
// byte-level alphabet without its own regex).
var preTokenizers = map[string]string{
	"deepseek-v3": `{"type":"Sequence","pretokenizers":[` +
		`{"type":"Split","pattern":{"Regex":"\\p{N}{1,3}"},"behavior":"Isolated","invert":false},` +
		`{"type":"Split","pattern":{"Regex":"[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"},"behavior":"Isolated","invert":false},` +
		`{"type":"Split","pattern":{"Regex":"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_` + "`" + `{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},` +
		`{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`,
	"gpt2": `{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}`,
}

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

// ErrGGUF reports GGUF tokenizer metadata this package cannot rebuild a
// tokenizer from.
var ErrGGUF = errors.New("tokenizer: GGUF tokenizer metadata")

// FromGGUF rebuilds the model's tokenizer from a GGUF file's tokenizer
// metadata the way llama.cpp reads it: tokenizer.ggml.model "gpt2"
// (byte-level BPE) with tokens, token types and merges; control tokens
// become special added tokens and user-defined ones added tokens; unused
// fillers (such as the [PAD…] ids that round a vocabulary up) become
// special tokens too, so that every id the model can produce decodes (to
// nothing under SkipSpecial); the pre-tokenizer
// comes from tokenizer.ggml.pre; bos, eos and add_bos/add_eos from their
// keys; the chat template from tokenizer.chat_template.
func FromGGUF(f *gguf.File) (*hf.Tokenizer, error) {
	model, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGGUF, err)
	}
	if model != "gpt2" {
		return nil, fmt.Errorf("%w: tokenizer.ggml.model %q (only gpt2, byte-level BPE)", ErrGGUF, model)
	}
	pre, err := f.String("tokenizer.ggml.pre")
	if err != nil {
		pre = "gpt2"
	}
	preJSON, ok := preTokenizers[pre]
	if !ok {
		return nil, fmt.Errorf("%w: tokenizer.ggml.pre %q is not one this server knows (deepseek-v3, gpt2)", ErrGGUF, pre)
	}
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGGUF, err)
	}
	types, err := f.Int32s("tokenizer.ggml.token_type")
	if err != nil {
		types = make([]int32, len(tokens))
		for i := range types {
			types[i] = typeNormal
		}
	}
	if len(types) != len(tokens) {
		return nil, fmt.Errorf("%w: %d token types for %d tokens", ErrGGUF, len(types), len(tokens))
	}
	merges, err := f.Strings("tokenizer.ggml.merges")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGGUF, err)
	}
	type added struct {
		ID      int32  `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	}
	vocab := make(map[string]int32, len(tokens))
	var addedTokens []added
	for id, tok := range tokens {
		switch types[id] {
		case typeControl, typeUserDefined, typeUnused:
			addedTokens = append(addedTokens, added{ID: int32(id), Content: tok, Special: types[id] != typeUserDefined})
		default:
			if _, dup := vocab[tok]; !dup {
				vocab[tok] = int32(id)
			}
		}
	}
	tj, err := json.Marshal(map[string]any{
		"added_tokens":  addedTokens,
		"pre_tokenizer": json.RawMessage(preJSON),
		"decoder":       json.RawMessage(`{"type":"ByteLevel"}`),
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	})
	if err != nil {
		return nil, fmt.Errorf("tokenizer: rebuilding tokenizer.json: %w", err)
	}
	cfg := map[string]any{}
	for _, k := range []string{"bos", "eos"} {
		if id, err := f.Uint32("tokenizer.ggml." + k + "_token_id"); err == nil && int(id) < len(tokens) {
			cfg[k+"_token"] = tokens[id]
		}
	}
	for _, k := range []string{"add_bos_token", "add_eos_token"} {
		if v, err := f.Bool("tokenizer.ggml." + k); err == nil {
			cfg[k] = v
		}
	}
	if tpl, err := f.String("tokenizer.chat_template"); err == nil {
		cfg["chat_template"] = tpl
	}
	cj, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: rebuilding tokenizer_config.json: %w", err)
	}
	tok, err := Native(tj, cj)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: from GGUF: %w", err)
	}
	return tok, nil
}
