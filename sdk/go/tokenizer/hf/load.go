package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// file is the part of tokenizer.json this package reads.
type file struct {
	AddedTokens  []addedToken    `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	Model        modelSpec       `json:"model"`
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

// spec is everything about a tokenizer but its vocabulary and merges: the
// components as tokenizer.json writes them, the added tokens, and the
// special tokens resolved to ids. A Bundle carries it as JSON.
type spec struct {
	Normalizer   json.RawMessage `json:"normalizer,omitempty"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer,omitempty"`
	Decoder      json.RawMessage `json:"decoder,omitempty"`
	Added        []addedToken    `json:"added_tokens,omitempty"`
	IgnoreMerges bool            `json:"ignore_merges,omitempty"`
	ByteFallback bool            `json:"byte_fallback,omitempty"`
	Unk          int32           `json:"unk"`
	BOS          int32           `json:"bos"`
	EOS          int32           `json:"eos"`
	AddBOS       bool            `json:"add_bos,omitempty"`
	AddEOS       bool            `json:"add_eos,omitempty"`
	ChatTemplate string          `json:"chat_template,omitempty"`
}

// Limits on what Load and LoadBundle accept, so a hostile file cannot make
// them allocate without bound.
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
	m := f.Model
	if m.Type != "BPE" {
		return nil, unsupported("model", m.Type)
	}
	if len(m.Vocab) == 0 || len(m.Vocab) > maxVocab {
		return nil, fmt.Errorf("hf: model.vocab has %d tokens", len(m.Vocab))
	}
	size := int32(0)
	for tok, id := range m.Vocab {
		if id < 0 || id >= maxVocab || len(tok) > maxTokLen {
			return nil, fmt.Errorf("hf: model.vocab: token %q has id %d", tok, id)
		}
		size = max(size, id+1)
	}
	tokens := make([]string, size)
	for tok, id := range m.Vocab {
		tokens[id] = tok
	}
	ids := m.Vocab // added tokens join it in build
	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return nil, err
	}
	left, right, result := make([]int32, len(pairs)), make([]int32, len(pairs)), make([]int32, len(pairs))
	for i, p := range pairs {
		a, okA := ids[p[0]]
		b, okB := ids[p[1]]
		r, okR := ids[p[0]+p[1]]
		if !okA || !okB || !okR {
			return nil, fmt.Errorf("hf: model.merges[%d] %q %q: a part or the merge is not in the vocabulary", i, p[0], p[1])
		}
		left[i], right[i], result[i] = a, b, r
	}
	s := spec{
		Normalizer: f.Normalizer, PreTokenizer: f.PreTokenizer, Decoder: f.Decoder, Added: f.AddedTokens,
		IgnoreMerges: m.IgnoreMerges, ByteFallback: m.ByteFallback, Unk: -1, BOS: -1, EOS: -1,
	}
	// The special tokens are named by content, which may be an added token.
	lookup := func(name string) (int32, bool) {
		if id, ok := ids[name]; ok {
			return id, true
		}
		for _, a := range f.AddedTokens {
			if a.Content == name {
				return a.ID, true
			}
		}
		return -1, false
	}
	if m.UnkToken != nil {
		id, ok := lookup(*m.UnkToken)
		if !ok {
			return nil, fmt.Errorf("hf: model.unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		s.Unk = id
	}
	if err := s.readConfig(cfg, lookup); err != nil {
		return nil, err
	}
	return build(s, tokens, ids, left, right, result, prims)
}

// parseMerges reads model.merges in either form tokenizer.json uses: "a b"
// strings, or [a, b] pairs (tokenizers ≥ 0.20).
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		if len(strs) > maxMerges {
			return nil, fmt.Errorf("hf: model.merges has %d entries, more than %d", len(strs), maxMerges)
		}
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" {
				return nil, fmt.Errorf("hf: model.merges[%d] %q is not two tokens", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("hf: model.merges is neither a list of \"a b\" nor of [a, b]: %w", err)
	}
	if len(pairs) > maxMerges {
		return nil, fmt.Errorf("hf: model.merges has %d entries, more than %d", len(pairs), maxMerges)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("hf: model.merges[%d] has %d parts, not 2", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// readConfig resolves tokenizer_config.json's special tokens.
func (s *spec) readConfig(c config, lookup func(string) (int32, bool)) error {
	for _, st := range []struct {
		raw json.RawMessage
		id  *int32
		key string
	}{{c.BOS, &s.BOS, "bos_token"}, {c.EOS, &s.EOS, "eos_token"}} {
		name, err := tokenName(st.raw)
		if err != nil {
			return fmt.Errorf("hf: tokenizer_config.json %s: %w", st.key, err)
		}
		if name == "" {
			continue
		}
		id, ok := lookup(name)
		if !ok {
			return fmt.Errorf("hf: tokenizer_config.json %s %q is not a token", st.key, name)
		}
		*st.id = id
	}
	s.AddBOS = c.AddBOS != nil && *c.AddBOS && s.BOS >= 0
	s.AddEOS = c.AddEOS != nil && *c.AddEOS && s.EOS >= 0
	if len(c.ChatTemplate) > 0 && string(c.ChatTemplate) != "null" {
		var tmpl string
		if err := json.Unmarshal(c.ChatTemplate, &tmpl); err == nil {
			s.ChatTemplate = tmpl
		}
	}
	return nil
}

// build assembles a Tokenizer from a spec, the vocabulary (ids may be nil:
// it is then built when first needed), the merges and the primitives.
func build(s spec, tokens []string, ids map[string]int32, left, right, result []int32, prims Primitives) (*Tokenizer, error) {
	t := &Tokenizer{prims: prims, cache: map[string][]int32{}, spec: s, tokens: tokens, ids: ids,
		mergeL: left, mergeR: right, mergeRes: result}
	for _, id := range []int32{s.Unk, s.BOS, s.EOS} {
		if id < -1 || id >= maxVocab {
			return nil, fmt.Errorf("hf: special token id %d", id)
		}
	}
	if err := t.loadAdded(s.Added); err != nil {
		return nil, err
	}
	var err error
	if t.normalize, err = buildNormalizer(s.Normalizer); err != nil {
		return nil, err
	}
	stages, err := t.buildPreTokenizer(s.PreTokenizer)
	if err != nil {
		return nil, err
	}
	if t.pre, err = t.composeSplits(stages); err != nil {
		return nil, err
	}
	if t.decoders, t.concat, err = buildDecoder(s.Decoder); err != nil {
		return nil, err
	}
	n := int32(len(t.tokens))
	for i := range left {
		if left[i] < 0 || left[i] >= n || right[i] < 0 || right[i] >= n || result[i] < 0 || result[i] >= n {
			return nil, fmt.Errorf("hf: merge %d (%d, %d → %d) is outside the vocabulary of %d", i, left[i], right[i], result[i], n)
		}
	}
	if t.merges, err = prims.Merges(left, right, result); err != nil {
		return nil, fmt.Errorf("hf: registering %d merges: %w", len(left), err)
	}
	if t.byteLevel {
		if err := t.findByteTokens(); err != nil {
			return nil, err
		}
		if be, ok := prims.(ByteEncoders); ok && t.preSplit != nil && t.normalize == nil && !s.IgnoreMerges {
			if t.textEnc, err = be.ByteEncoder(t.preSplit, t.merges, t.byteIDs); err != nil {
				return nil, fmt.Errorf("hf: byte encoder: %w", err)
			}
		}
	}
	return t, nil
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
		if t.ids != nil {
			t.ids[a.Content] = a.ID
		}
		t.added[a.ID] = a
	}
	// One trie entry per content (a later duplicate wins, as in the map).
	t.addedTrie = newTrie()
	t.addedList = t.addedList[:0]
	for _, a := range added {
		if cur, ok := t.added[a.ID]; !ok || cur != a {
			continue
		}
		t.addedTrie.add(a.Content, int32(len(t.addedList)))
		t.addedList = append(t.addedList, a)
		t.starts[a.Content[0]] = true
	}
	return nil
}

// findByteTokens sets byteIDs: each byte's one-character token. Without
// the vocabulary map (a Bundle), a scan of the tokens finds them, which is
// cheaper than building the map.
func (t *Tokenizer) findByteTokens() error {
	for b := range t.byteIDs {
		t.byteIDs[b] = -1
	}
	if t.ids != nil {
		for b := range 256 {
			if id, ok := t.ids[byteChars[b]]; ok {
				t.byteIDs[b] = id
			}
		}
	} else {
		for id, s := range t.tokens {
			r, w := utf8.DecodeRuneInString(s)
			if w == 0 || w != len(s) {
				continue
			}
			if _, isAdded := t.added[int32(id)]; isAdded {
				continue
			}
			if b, ok := byteOf[r]; ok && t.byteIDs[b] < 0 {
				t.byteIDs[b] = int32(id)
			}
		}
	}
	for b, id := range t.byteIDs {
		if id < 0 {
			return fmt.Errorf("hf: byte 0x%02x has no token in the byte-level vocabulary", b)
		}
	}
	return nil
}

// lookup returns the id of a token as the vocabulary writes it, building
// the map from the token list the first time it is needed.
func (t *Tokenizer) lookup(tok string) (int32, bool) {
	if t.ids == nil {
		t.ids = make(map[string]int32, len(t.tokens))
		for id, s := range t.tokens {
			if s != "" {
				t.ids[s] = int32(id)
			}
		}
	}
	id, ok := t.ids[tok]
	return id, ok
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
