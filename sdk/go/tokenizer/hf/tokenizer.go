package hf

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Tokenizer encodes and decodes text as its tokenizer.json says. Encode
// and Decode are not safe for concurrent use (a piece cache is shared);
// a plugin instance runs one call at a time.
type Tokenizer struct {
	prims  Primitives
	spec   spec
	tokens []string         // id → token as the vocabulary writes it (byte-level alphabet) or an added token's content
	ids    map[string]int32 // token → id; built when first needed (see lookup)

	added     map[int32]addedToken
	addedList []addedToken // the added tokens, indexed by the trie
	addedTrie *trie
	starts    [256]bool // bytes an added token starts with

	normalize func(string) string
	pre       []preStep
	preSplit  Splitter    // the pre-tokenizer when it is one split, else nil
	textEnc   TextEncoder // the primitives' whole-text encoder, when they offer one
	byteLevel bool        // pieces are mapped to the byte-level alphabet before BPE
	byteIDs   [256]int32  // byte-level: each byte's token
	merges    Merger
	mergeL    []int32 // the merges in priority order, for Bundle
	mergeR    []int32
	mergeRes  []int32

	decoders []decodeStep
	concat   bool // the decoder is ByteLevel alone: decoding is concatenating TokenBytes

	cache map[string][]int32 // piece → ids
}

// maxCache bounds the piece cache; it is emptied when full.
const maxCache = 1 << 16

// VocabSize is the number of token ids (the largest id plus one).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// BOS is the beginning-of-sequence token, or −1.
func (t *Tokenizer) BOS() int32 { return t.spec.BOS }

// EOS is the end-of-sequence token, or −1.
func (t *Tokenizer) EOS() int32 { return t.spec.EOS }

// ChatTemplate is tokenizer_config.json's Jinja chat_template, or "".
func (t *Tokenizer) ChatTemplate() string { return t.spec.ChatTemplate }

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int32) bool { return t.added[id].Special }

// TokenID returns the id of a token (an added token's content, or a
// vocabulary entry as written in the byte-level alphabet).
func (t *Tokenizer) TokenID(tok string) (int32, bool) { return t.lookup(tok) }

// DecodeIsConcat reports whether decoding a sequence is concatenating its
// tokens' TokenBytes (true for byte-level tokenizers), so that a host can
// detokenize a stream natively.
func (t *Tokenizer) DecodeIsConcat() bool { return t.byteLevel && t.concat }

// Piece returns a token as the vocabulary writes it (for byte-level BPE, in
// its byte alphabet, such as "Ġworld"), or an added token's content; ""
// for an id outside the vocabulary.
func (t *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// TokenBytes returns the bytes a token stands for: an added token's
// content, or a vocabulary token's bytes through the byte-level alphabet.
// An id outside the vocabulary (or a hole in it) gives nil.
func (t *Tokenizer) TokenBytes(id int32) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return nil
	}
	if a, ok := t.added[id]; ok {
		return []byte(a.Content)
	}
	tok := t.tokens[id]
	if tok == "" {
		return nil
	}
	if t.byteLevel {
		b, _ := fromByteLevel(tok)
		return b
	}
	return []byte(t.runDecoders([]string{tok}))
}

// Encode turns text into token ids. Invalid UTF-8 is encoded byte for byte
// by byte-level tokenizers (the pattern sees each invalid byte as U+FFFD,
// BPE sees the byte itself), so every byte string has an encoding and
// decodes back to itself.
func (t *Tokenizer) Encode(text string, flags Flags) ([]int32, error) {
	var ids []int32
	if flags&AddSpecial != 0 && t.spec.AddBOS {
		ids = append(ids, t.spec.BOS)
	}
	for _, seg := range t.splitAdded(text, flags&ParseSpecial != 0) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		var err error
		if ids, err = t.encodeText(ids, seg.text); err != nil {
			return nil, err
		}
	}
	if flags&AddSpecial != 0 && t.spec.AddEOS {
		ids = append(ids, t.spec.EOS)
	}
	return ids, nil
}

// EncodeOffsets is Encode that also returns each token's [start, end)
// bytes in text. Tokens of ordinary text get the bytes they stand for when
// their TokenBytes spell the text exactly (byte-level BPE without a
// normalizer); otherwise each gets its whole stretch between added tokens.
// Added tokens get their own bytes; a BOS or EOS that AddSpecial adds gets
// an empty span at the start or the end.
func (t *Tokenizer) EncodeOffsets(text string, flags Flags) ([]int32, [][2]int, error) {
	var ids []int32
	var spans [][2]int
	if flags&AddSpecial != 0 && t.spec.AddBOS {
		ids, spans = append(ids, t.spec.BOS), append(spans, [2]int{0, 0})
	}
	for _, seg := range t.splitAdded(text, flags&ParseSpecial != 0) {
		if seg.id >= 0 {
			ids, spans = append(ids, seg.id), append(spans, [2]int{seg.start, seg.end})
			continue
		}
		first := len(ids)
		var err error
		if ids, err = t.encodeText(ids, seg.text); err != nil {
			return nil, nil, err
		}
		segSpans, exact := t.Spans(seg.text, ids[first:])
		exact = exact && t.normalize == nil && t.byteLevel
		for i := range ids[first:] {
			if exact {
				spans = append(spans, [2]int{seg.start + segSpans[i][0], seg.start + segSpans[i][1]})
			} else {
				spans = append(spans, [2]int{seg.start, seg.end})
			}
		}
	}
	if flags&AddSpecial != 0 && t.spec.AddEOS {
		ids, spans = append(ids, t.spec.EOS), append(spans, [2]int{len(text), len(text)})
	}
	return ids, spans, nil
}

// Spans gives ids their bytes in text — each token's [start, end) — when
// their TokenBytes spell text exactly; otherwise it returns false.
func (t *Tokenizer) Spans(text string, ids []int32) ([][2]int, bool) {
	spans := make([][2]int, len(ids))
	at := 0
	for i, id := range ids {
		b := t.TokenBytes(id)
		if len(b) > len(text)-at || text[at:at+len(b)] != string(b) {
			return nil, false
		}
		spans[i] = [2]int{at, at + len(b)}
		at += len(b)
	}
	return spans, at == len(text)
}

// segment is a stretch of text between added tokens, or one added token.
type segment struct {
	text       string
	id         int32 // ≥ 0 for an added token
	start, end int   // its bytes in the text
}

// splitAdded cuts text at the added tokens it contains (special ones only
// when parseSpecial), longest match first at each position, honouring
// lstrip, rstrip and single_word.
func (t *Tokenizer) splitAdded(text string, parseSpecial bool) []segment {
	var segs []segment
	start := 0
	for i := 0; i < len(text); {
		if !t.starts[text[i]] {
			i++ // a byte no added token starts with (tokens start at characters, so a continuation byte never matches)
			continue
		}
		a, ok := t.matchAt(text, i, parseSpecial)
		if !ok {
			_, w := utf8.DecodeRuneInString(text[i:])
			i += w
			continue
		}
		before := text[start:i]
		if a.LStrip {
			before = strings.TrimRight(before, " \t\n\r\v\f")
		}
		if before != "" {
			segs = append(segs, segment{text: before, id: -1, start: start, end: start + len(before)})
		}
		segs = append(segs, segment{id: a.ID, start: i, end: i + len(a.Content)})
		i += len(a.Content)
		if a.RStrip {
			for i < len(text) && strings.IndexByte(" \t\n\r\v\f", text[i]) >= 0 {
				i++
			}
		}
		start = i
	}
	if start < len(text) {
		segs = append(segs, segment{text: text[start:], id: -1, start: start, end: len(text)})
	}
	return segs
}

// matchAt returns the longest added token at text[i:] that applies here.
func (t *Tokenizer) matchAt(text string, i int, parseSpecial bool) (addedToken, bool) {
	if !t.starts[text[i]] {
		return addedToken{}, false
	}
	var buf [8]int32
	found := t.addedTrie.matches(text[i:], buf[:0])
	for k := len(found) - 1; k >= 0; k-- {
		a := t.addedList[found[k]]
		if a.Special && !parseSpecial {
			continue
		}
		if a.SingleWord && (isWordAt(text, i-1, false) || isWordAt(text, i+len(a.Content), true)) {
			continue
		}
		return a, true
	}
	return addedToken{}, false
}

// isWordAt reports whether the rune ending just before (forward false) or
// starting at (forward true) byte i is a word character.
func isWordAt(text string, i int, forward bool) bool {
	var r rune
	switch {
	case forward && i < len(text):
		r, _ = utf8.DecodeRuneInString(text[i:])
	case !forward && i >= 0:
		r, _ = utf8.DecodeLastRuneInString(text[:i+1])
	default:
		return false
	}
	return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 0x7f && utf8.ValidRune(r)
}

// encodeText appends the ids of ordinary text: normalize, pre-tokenize,
// then BPE each piece (all the pieces not in the cache in one call, when
// the merger batches).
func (t *Tokenizer) encodeText(ids []int32, text string) ([]int32, error) {
	if t.normalize != nil {
		text = t.normalize(text)
	}
	if t.textEnc != nil {
		got, err := t.textEnc.Encode(text)
		if err != nil {
			return nil, err
		}
		return append(ids, got...), nil
	}
	pieces := []string{text}
	for _, step := range t.pre {
		var err error
		if pieces, err = step(pieces); err != nil {
			return nil, err
		}
	}
	if bm, ok := t.merges.(BatchMerger); ok {
		return t.encodeBatch(ids, pieces, bm)
	}
	for _, p := range pieces {
		if p == "" {
			continue
		}
		if cached, ok := t.cache[p]; ok {
			ids = append(ids, cached...)
			continue
		}
		got, err := t.bpe(p)
		if err != nil {
			return nil, err
		}
		t.remember(p, got)
		ids = append(ids, got...)
	}
	return ids, nil
}

// encodeBatch is encodeText's BPE stage with one MergeBatch call for every
// piece the cache does not hold.
func (t *Tokenizer) encodeBatch(ids []int32, pieces []string, bm BatchMerger) ([]int32, error) {
	got := make([][]int32, len(pieces)) // each piece's ids, when the cache has them
	fresh := map[string][]int32{}       // this call's pieces that missed the cache
	var order []string
	var syms, lens []int32
	for i, p := range pieces {
		if p == "" {
			continue
		}
		if c, ok := t.cache[p]; ok {
			got[i] = c
			continue
		}
		if _, ok := fresh[p]; ok {
			continue
		}
		s, done, err := t.symbols(p)
		if err != nil {
			return nil, err
		}
		if done || len(s) < 2 {
			fresh[p] = s
			continue
		}
		fresh[p] = nil
		order = append(order, p)
		syms = append(syms, s...)
		lens = append(lens, int32(len(s)))
	}
	if len(order) > 0 {
		merged, err := bm.MergeBatch(syms, lens)
		if err != nil {
			return nil, err
		}
		off := 0
		for i, p := range order {
			n := int(lens[i])
			if n < 0 || off+n > len(merged) {
				return nil, fmt.Errorf("hf: batch merge gave %d ids for piece %d at %d of %d", n, i, off, len(merged))
			}
			fresh[p] = merged[off : off+n : off+n]
			off += n
		}
	}
	for i, p := range pieces {
		if got[i] == nil && p != "" {
			got[i] = fresh[p]
		}
		ids = append(ids, got[i]...)
	}
	for p, ids := range fresh {
		t.remember(p, ids)
	}
	return ids, nil
}

// remember caches a piece's ids, emptying the cache when it is full. The
// piece is copied: it is a substring of a text the cache must not keep.
func (t *Tokenizer) remember(piece string, ids []int32) {
	if len(t.cache) >= maxCache {
		clear(t.cache)
	}
	t.cache[strings.Clone(piece)] = ids
}

// bpe encodes one piece.
func (t *Tokenizer) bpe(piece string) ([]int32, error) {
	syms, done, err := t.symbols(piece)
	if err != nil || done || len(syms) < 2 {
		return syms, err
	}
	return t.merges.Merge(syms)
}

// symbols returns a piece's initial symbols for BPE, or (done) its final
// ids when the model skips merging for pieces in its vocabulary.
func (t *Tokenizer) symbols(piece string) (syms []int32, done bool, err error) {
	if t.byteLevel {
		if t.spec.IgnoreMerges {
			if id, ok := t.lookup(toByteLevel(piece)); ok {
				return []int32{id}, true, nil
			}
		}
		syms = make([]int32, len(piece))
		for i := 0; i < len(piece); i++ {
			syms[i] = t.byteIDs[piece[i]]
		}
		return syms, false, nil
	}
	if t.spec.IgnoreMerges {
		if id, ok := t.lookup(piece); ok {
			return []int32{id}, true, nil
		}
	}
	for _, r := range piece {
		s := string(r)
		if id, ok := t.lookup(s); ok {
			syms = append(syms, id)
			continue
		}
		if t.spec.ByteFallback {
			for _, b := range []byte(s) {
				id, ok := t.lookup(fmt.Sprintf("<0x%02X>", b))
				if !ok {
					return nil, false, fmt.Errorf("hf: byte fallback token <0x%02X> is not in the vocabulary", b)
				}
				syms = append(syms, id)
			}
			continue
		}
		if t.spec.Unk < 0 {
			return nil, false, fmt.Errorf("hf: %q is not in the vocabulary and there is no unk_token", s)
		}
		syms = append(syms, t.spec.Unk)
	}
	return syms, false, nil
}

// Decode turns ids into text. Special tokens are left out with
// SkipSpecial, as if they were not in ids. Bytes that do not form UTF-8
// become U+FFFD, one for each maximal ill-formed subsequence (as a WHATWG
// TextDecoder does). An id outside the vocabulary is an error.
func (t *Tokenizer) Decode(ids []int32, flags Flags) (string, error) {
	var out strings.Builder
	var run []string // ordinary tokens not yet decoded
	flush := func() {
		if len(run) > 0 {
			out.WriteString(t.runDecoders(run))
			run = run[:0]
		}
	}
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.tokens) || t.tokens[id] == "" {
			return "", fmt.Errorf("hf: token id %d is outside the vocabulary of %d", id, len(t.tokens))
		}
		if a, ok := t.added[id]; ok {
			if a.Special && flags&SkipSpecial != 0 {
				// Left out as if absent: the ordinary tokens on either
				// side decode together (a character split around it is
				// one character), as transformers.js filters skipped
				// tokens before its decoder and as Stream over the
				// non-special tokens' bytes writes them.
				continue
			}
			flush()
			out.WriteString(a.Content)
			continue
		}
		run = append(run, t.tokens[id])
	}
	flush()
	return out.String(), nil
}
