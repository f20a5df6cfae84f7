package tokenizer

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// preTokenizers are the pre-tokenizers of the `tokenizer.ggml.pre` names
// this package knows, as tokenizer.json writes them (pretokenizers.json):
// "deepseek-v3" is DeepSeek-V3's (three Split regexes, then the byte-level
// alphabet without its own regex); "deepseek-llm" is DeepSeek-LLM's and
// DeepSeek-V2's (six Splits, the letter class written as code points
// because copies of it that went through Unicode normalization have
// descending ranges, see testdata/README.md); "deepseek-coder" is
// DeepSeek-Coder's; "gpt2" is GPT-2's byte-level regex.
//
//go:embed pretokenizers.json
var preTokenizersJSON []byte

var preTokenizers = func() map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(preTokenizersJSON, &m); err != nil {
		panic("tokenizer: pretokenizers.json: " + err.Error())
	}
	return m
}()

// preTokenizerNames lists preTokenizers' keys, sorted, for error messages.
func preTokenizerNames() string {
	names := make([]string, 0, len(preTokenizers))
	for k := range preTokenizers {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
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
		return nil, fmt.Errorf("%w: tokenizer.ggml.pre %q is not one this server knows (%s)", ErrGGUF, pre, preTokenizerNames())
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
		"pre_tokenizer": preJSON,
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
