package tokenizer

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"

	"github.com/ulan-ai/ulan/engine/gguf"
)

// PreTokenizerName is the tokenizer.ggml.pre name of tokenizer.json's
// pre_tokenizer when it is one this package knows (compared as JSON
// values), as llama.cpp's converter names a tokenizer by what it does
// rather than by the model that ships it; ok is false otherwise.
func PreTokenizerName(tokenizerJSON []byte) (name string, ok bool) {
	var tj struct {
		PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	}
	if json.Unmarshal(tokenizerJSON, &tj) != nil || len(tj.PreTokenizer) == 0 {
		return "", false
	}
	var have any
	if json.Unmarshal(tj.PreTokenizer, &have) != nil {
		return "", false
	}
	for _, n := range []string{"deepseek-v3", "deepseek-llm", "deepseek-coder", "gpt2"} {
		var known any
		if json.Unmarshal(preTokenizers[n], &known) == nil && reflect.DeepEqual(have, known) {
			return n, true
		}
	}
	return "", false
}

// looksSpecial is convert_hf_to_gguf.py's does_token_look_special for the
// bars DeepSeek's special tokens use (full-width and ASCII).
var looksSpecial = regexp.MustCompile(`^<｜.*｜>$|^<\|.*\|>$`)

// GGUFSection builds the tokenizer section of a GGUF file from a Hugging
// Face directory's tokenizer.json and tokenizer_config.json (the latter may
// be nil) the way llama.cpp's convert_hf_to_gguf.py does for a byte-level
// BPE ("gpt2") tokenizer: vocab tokens (the vocabulary padded to vocab with
// "[PAD<id>]" fillers of type unused), token types (normal; added tokens
// control when special or bar-delimited, user-defined otherwise), merges as
// "a b" strings, bos, eos and padding ids from the config's bos_token,
// eos_token and pad_token, add_bos_token, add_eos_token and the chat
// template. pre is tokenizer.ggml.pre.
func GGUFSection(tokenizerJSON, configJSON []byte, vocab int, pre string) ([]gguf.KV, error) {
	var tj struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Type   string            `json:"type"`
			Vocab  map[string]int    `json:"vocab"`
			Merges []json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(tokenizerJSON, &tj); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer.json: model type %q, want BPE", tj.Model.Type)
	}
	tokens, types := make([]string, vocab), make([]int32, vocab)
	have := make([]bool, vocab)
	set := func(id int, s string, typ int32) error {
		if id < 0 || id >= vocab {
			return fmt.Errorf("tokenizer.json: token %q has id %d, outside the vocabulary of %d", s, id, vocab)
		}
		tokens[id], types[id], have[id] = s, typ, true
		return nil
	}
	for s, id := range tj.Model.Vocab {
		if err := set(id, s, typeNormal); err != nil {
			return nil, err
		}
	}
	ids := make(map[string]int, len(tj.AddedTokens))
	for _, at := range tj.AddedTokens {
		typ := int32(typeUserDefined)
		if at.Special || looksSpecial.MatchString(at.Content) {
			typ = typeControl
		}
		if err := set(at.ID, at.Content, typ); err != nil {
			return nil, err
		}
		ids[at.Content] = at.ID
	}
	for id := range tokens {
		if !have[id] {
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), typeUnused
		}
	}
	for s, id := range tj.Model.Vocab {
		ids[s] = id
	}
	merges, err := mergeStrings(tj.Model.Merges)
	if err != nil {
		return nil, err
	}
	kvs := []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: "gpt2"},
		{Key: "tokenizer.ggml.pre", Value: pre},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.merges", Value: merges},
	}
	cfg, err := parseTokenizerConfig(configJSON)
	if err != nil {
		return nil, err
	}
	for _, sp := range []struct{ key, token string }{
		{"bos_token_id", cfg.bos}, {"eos_token_id", cfg.eos}, {"padding_token_id", cfg.pad},
	} {
		if id, ok := ids[sp.token]; ok && sp.token != "" {
			kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml." + sp.key, Value: uint32(id)})
		}
	}
	for _, b := range []struct {
		key string
		v   *bool
	}{{"add_bos_token", cfg.addBOS}, {"add_eos_token", cfg.addEOS}} {
		if b.v != nil {
			kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml." + b.key, Value: *b.v})
		}
	}
	if cfg.template != "" {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.chat_template", Value: cfg.template})
	}
	return kvs, nil
}

// mergeStrings turns tokenizer.json's merges, "a b" strings or ["a", "b"]
// pairs, into "a b" strings.
func mergeStrings(raw []json.RawMessage) ([]string, error) {
	out := make([]string, len(raw))
	for i, m := range raw {
		if json.Unmarshal(m, &out[i]) == nil {
			continue
		}
		var pair []string
		if err := json.Unmarshal(m, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("tokenizer.json: merge %d is neither \"a b\" nor a pair", i)
		}
		out[i] = pair[0] + " " + pair[1]
	}
	return out, nil
}

// tokenizerConfig is what the GGUF section takes from tokenizer_config.json.
type tokenizerConfig struct {
	bos, eos, pad  string
	addBOS, addEOS *bool
	template       string
}

// parseTokenizerConfig reads tokenizer_config.json; nil gives the zero
// config. Special tokens are strings or AddedToken objects.
func parseTokenizerConfig(data []byte) (tokenizerConfig, error) {
	var c tokenizerConfig
	if data == nil {
		return c, nil
	}
	var raw struct {
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
		Pad          json.RawMessage `json:"pad_token"`
		AddBOS       *bool           `json:"add_bos_token"`
		AddEOS       *bool           `json:"add_eos_token"`
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return c, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	c.bos, c.eos, c.pad = tokenContent(raw.BOS), tokenContent(raw.EOS), tokenContent(raw.Pad)
	c.addBOS, c.addEOS = raw.AddBOS, raw.AddEOS
	if len(raw.ChatTemplate) > 0 && json.Unmarshal(raw.ChatTemplate, &c.template) != nil {
		// A list of named templates: the converter writes the default one
		// as tokenizer.chat_template.
		var named []struct {
			Name     string `json:"name"`
			Template string `json:"template"`
		}
		if err := json.Unmarshal(raw.ChatTemplate, &named); err != nil {
			return c, fmt.Errorf("tokenizer_config.json: chat_template is neither a string nor a list of named templates")
		}
		for _, n := range named {
			if n.Name == "default" {
				c.template = n.Template
			}
		}
	}
	return c, nil
}

// tokenContent is a special token's text, written as a string or as an
// AddedToken object; empty for null or anything else.
func tokenContent(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Content
	}
	return ""
}
