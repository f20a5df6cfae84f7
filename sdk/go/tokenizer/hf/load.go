package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// file is the part of tokenizer.json this package reads.
type file struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         modelSpec       `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
}

type addedToken struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelSpec struct {
	Type         string           `json:"type"`
	Vocab        map[string]int32 `json:"vocab"`
	Merges       json.RawMessage  `json:"merges"`
	IgnoreMerges bool             `json:"ignore_merges"`
	ByteFallback bool             `json:"byte_fallback"`
	UnkToken     *string          `json:"unk_token"`
}

// config is the part of tokenizer_config.json this package reads.
type config struct {
	AddBOS       *bool           `json:"add_bos_token"`
	AddEOS       *bool           `json:"add_eos_token"`
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	ChatTemplate json.RawMessage `json:"chat_template"`
}

// Limits on what Load accepts, so a hostile file cannot make it allocate
// without bound.
const (
	maxVocab  = 1 << 22
	maxMerges = 1 << 22
	maxTokLen = 1 << 16
)

// Load builds a Tokenizer from the contents of tokenizer.json and (may be
// nil) tokenizer_config.json, with prims for the hot loops.
func Load(tokenizerJSON, configJSON []byte, prims Primitives) (*Tokenizer, error) {
	var f file
	if err := json.Unmarshal(tokenizerJSON, &f); err != nil {
		return nil, fmt.Errorf("hf: tokenizer.json: %w", err)
	}
	var cfg config
	if len(configJSON) > 0 {
		if err := json.Unmarshal(configJSON, &cfg); err != nil {
			return nil, fmt.Errorf("hf: tokenizer_config.json: %w", err)
		}
	}
	t := &Tokenizer{prims: prims, cache: map[string][]int32{}}
	if err := t.loadModel(f.Model); err != nil {
		return nil, err
	}
	if err := t.loadAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	var err error
	if t.normalize, err = buildNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, err = t.buildPreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if t.decoders, t.concat, err = buildDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if err := t.loadConfig(cfg); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tokenizer) loadModel(m modelSpec) error {
	if m.Type != "BPE" {
		return unsupported("model", m.Type)
	}
	if len(m.Vocab) == 0 || len(m.Vocab) > maxVocab {
		return fmt.Errorf("hf: model.vocab has %d tokens", len(m.Vocab))
	}
	size := int32(0)
	for tok, id := range m.Vocab {
		if id < 0 || id >= maxVocab || len(tok) > maxTokLen {
			return fmt.Errorf("hf: model.vocab: token %q has id %d", tok, id)
		}
		size = max(size, id+1)
	}
	t.tokens = make([]string, size)
	t.ids = make(map[string]int32, len(m.Vocab))
	for tok, id := range m.Vocab {
		t.tokens[id] = tok
		t.ids[tok] = id
	}
	t.ignoreMerges, t.byteFallback = m.IgnoreMerges, m.ByteFallback
	if m.UnkToken != nil {
		id, ok := t.ids[*m.UnkToken]
		if !ok {
			return fmt.Errorf("hf: model.unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		t.unk = id
	} else {
		t.unk = -1
	}
	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return err
	}
	left, right, result := make([]int32, 0, len(pairs)), make([]int32, 0, len(pairs)), make([]int32, 0, len(pairs))
	for i, p := range pairs {
		a, okA := t.ids[p[0]]
		b, okB := t.ids[p[1]]
		r, okR := t.ids[p[0]+p[1]]
		if !okA || !okB || !okR {
			return fmt.Errorf("hf: model.merges[%d] %q %q: a part or the merge is not in the vocabulary", i, p[0], p[1])
		}
		left, right, result = append(left, a), append(right, b), append(result, r)
	}
	if t.merges, err = t.prims.Merges(left, right, result); err != nil {
		return fmt.Errorf("hf: registering %d merges: %w", len(pairs), err)
	}
	return nil
}

// parseMerges reads model.merges in either form tokenizer.json uses: "a b"
// strings, or [a, b] pairs (tokenizers ≥ 0.20).
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("hf: model.merges: %w", err)
	}
	if len(items) > maxMerges {
		return nil, fmt.Errorf("hf: model.merges has %d entries, more than %d", len(items), maxMerges)
	}
	out := make([][2]string, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" {
				return nil, fmt.Errorf("hf: model.merges[%d] %q is not two tokens", i, s)
			}
			out[i] = [2]string{a, b}
			continue
		}
		var pair []string
		if err := json.Unmarshal(it, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("hf: model.merges[%d] is neither \"a b\" nor [a, b]", i)
		}
		out[i] = [2]string{pair[0], pair[1]}
	}
	return out, nil
}

func (t *Tokenizer) loadAdded(added []addedToken) error {
	t.added = map[int32]addedToken{}
	for i, a := range added {
		if a.ID < 0 || a.ID >= maxVocab || a.Content == "" || len(a.Content) > maxTokLen {
			return fmt.Errorf("hf: added_tokens[%d]: id %d, content %q", i, a.ID, a.Content)
		}
		if int(a.ID) >= len(t.tokens) {
			t.tokens = append(t.tokens, make([]string, int(a.ID)+1-len(t.tokens))...)
		}
		t.tokens[a.ID] = a.Content
		t.ids[a.Content] = a.ID
		t.added[a.ID] = a
		t.matchers[a.Content[0]] = append(t.matchers[a.Content[0]], a)
	}
	// Longest first, so that a token that is a prefix of another loses.
	for _, m := range t.matchers {
		slices.SortStableFunc(m, func(a, b addedToken) int { return len(b.Content) - len(a.Content) })
	}
	return nil
}

func (t *Tokenizer) loadConfig(c config) error {
	t.bos, t.eos = -1, -1
	for _, s := range []struct {
		raw json.RawMessage
		id  *int32
		key string
	}{{c.BOS, &t.bos, "bos_token"}, {c.EOS, &t.eos, "eos_token"}} {
		name, err := tokenName(s.raw)
		if err != nil {
			return fmt.Errorf("hf: tokenizer_config.json %s: %w", s.key, err)
		}
		if name == "" {
			continue
		}
		id, ok := t.ids[name]
		if !ok {
			return fmt.Errorf("hf: tokenizer_config.json %s %q is not a token", s.key, name)
		}
		*s.id = id
	}
	t.addBOS = c.AddBOS != nil && *c.AddBOS && t.bos >= 0
	t.addEOS = c.AddEOS != nil && *c.AddEOS && t.eos >= 0
	if len(c.ChatTemplate) > 0 && string(c.ChatTemplate) != "null" {
		var s string
		if err := json.Unmarshal(c.ChatTemplate, &s); err == nil {
			t.chatTemplate = s
		}
	}
	return nil
}

// tokenName reads a special token as tokenizer_config.json writes it: a
// string, or an AddedToken object with a content field.
func tokenName(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", err
	}
	return obj.Content, nil
}

// quotePattern turns a literal String pattern into a regex.
func quotePattern(s string) string { return regexp.QuoteMeta(s) }
