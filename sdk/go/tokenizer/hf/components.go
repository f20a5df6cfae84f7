package hf

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// byteChars maps each byte to its character in GPT-2's byte-level
// alphabet: printable Latin-1 bytes stand for themselves, the others for
// U+0100 onwards in byte order. byteOf is the inverse.
var (
	byteChars [256]string
	byteOf    = map[rune]byte{}
)

func init() {
	n := 0
	for b := range 256 {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xa1 && b <= 0xac || b >= 0xae && b <= 0xff) {
			r = rune(256 + n)
			n++
		}
		byteChars[b] = string(r)
		byteOf[r] = byte(b)
	}
}

// toByteLevel writes s's bytes in the byte-level alphabet.
func toByteLevel(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString(byteChars[s[i]])
	}
	return b.String()
}

// fromByteLevel reads a byte-level string back into bytes; ok is false if
// it holds a character outside the alphabet (which is kept as UTF-8).
func fromByteLevel(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	ok := true
	for _, r := range s {
		if b, in := byteOf[r]; in {
			out = append(out, b)
			continue
		}
		ok = false
		out = utf8.AppendRune(out, r)
	}
	return out, ok
}

// validUTF8 returns b as a string with each maximal ill-formed subsequence
// replaced by U+FFFD, as the WHATWG encoding standard's UTF-8 decoder (and
// so JavaScript's TextDecoder) does.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out strings.Builder
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			out.WriteRune(r)
			i += w
			continue
		}
		out.WriteRune(utf8.RuneError)
		i += illFormedLen(b[i:])
	}
	return out.String()
}

// illFormedLen is the length of the maximal subpart at the start of b: a
// lead byte and the continuation bytes that could still follow it (at
// least 1), as the WHATWG decoder counts them.
func illFormedLen(b []byte) int {
	c := b[0]
	lo, hi := byte(0x80), byte(0xbf)
	switch c {
	case 0xe0:
		lo = 0xa0
	case 0xed:
		hi = 0x9f
	case 0xf0:
		lo = 0x90
	case 0xf4:
		hi = 0x8f
	}
	need := expectedLen(c) - 1
	if need < 0 {
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xbf
		n++
	}
	return n
}

// component is the type tag every tokenizer.json component has.
type component struct {
	Type string `json:"type"`
}

func typeOf(raw json.RawMessage) (string, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", err
	}
	return c.Type, nil
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// buildNormalizer returns the normalizer, or nil for none.
func buildNormalizer(raw json.RawMessage) (func(string) string, error) {
	if isNull(raw) {
		return nil, nil
	}
	kind, err := typeOf(raw)
	if err != nil {
		return nil, fmt.Errorf("hf: normalizer: %w", err)
	}
	switch kind {
	case "Sequence":
		var seq struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return nil, fmt.Errorf("hf: normalizer: %w", err)
		}
		var steps []func(string) string
		for _, n := range seq.Normalizers {
			f, err := buildNormalizer(n)
			if err != nil {
				return nil, err
			}
			if f != nil {
				steps = append(steps, f)
			}
		}
		if len(steps) == 0 {
			return nil, nil
		}
		return func(s string) string {
			for _, f := range steps {
				s = f(s)
			}
			return s
		}, nil
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Lowercase":
		return strings.ToLower, nil
	case "Prepend":
		var p struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("hf: normalizer Prepend: %w", err)
		}
		return func(s string) string {
			if s == "" {
				return s
			}
			return p.Prepend + s
		}, nil
	case "Replace":
		from, to, err := replaceSpec(raw)
		if err != nil {
			return nil, err
		}
		return func(s string) string { return strings.ReplaceAll(s, from, to) }, nil
	}
	return nil, unsupported("normalizer", kind)
}

// replaceSpec reads a Replace component with a String pattern (a Regex
// one needs the primitives and is refused).
func replaceSpec(raw json.RawMessage) (from, to string, err error) {
	var r struct {
		Pattern struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", "", fmt.Errorf("hf: Replace: %w", err)
	}
	if r.Pattern.String == nil {
		return "", "", fmt.Errorf("%w Replace with a Regex pattern", ErrUnsupported)
	}
	return *r.Pattern.String, r.Content, nil
}

// preStep is one pre-tokenizer step over the pieces so far.
type preStep func(pieces []string) ([]string, error)

// preStage is a pre-tokenizer step and, for a Split, its splitter (so
// that consecutive Splits can become one Sequence).
type preStage struct {
	step  preStep
	split Splitter
}

// gpt2Pattern is the ByteLevel pre-tokenizer's own regex.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

func (t *Tokenizer) buildPreTokenizer(raw json.RawMessage) ([]preStage, error) {
	if isNull(raw) {
		return nil, nil
	}
	kind, err := typeOf(raw)
	if err != nil {
		return nil, fmt.Errorf("hf: pre_tokenizer: %w", err)
	}
	if t.byteLevel {
		return nil, fmt.Errorf("%w pre_tokenizer %s after ByteLevel", ErrUnsupported, kind)
	}
	switch kind {
	case "Sequence":
		var seq struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return nil, fmt.Errorf("hf: pre_tokenizer: %w", err)
		}
		var stages []preStage
		for _, p := range seq.PreTokenizers {
			s, err := t.buildPreTokenizer(p)
			if err != nil {
				return nil, err
			}
			stages = append(stages, s...)
		}
		return stages, nil
	case "Split":
		var sp struct {
			Pattern struct {
				String *string `json:"String"`
				Regex  *string `json:"Regex"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}
		if err := json.Unmarshal(raw, &sp); err != nil {
			return nil, fmt.Errorf("hf: pre_tokenizer Split: %w", err)
		}
		if sp.Behavior != "Isolated" || sp.Invert {
			return nil, fmt.Errorf("%w Split behavior %q (invert %v): only Isolated", ErrUnsupported, sp.Behavior, sp.Invert)
		}
		var pattern string
		switch {
		case sp.Pattern.Regex != nil:
			pattern = *sp.Pattern.Regex
		case sp.Pattern.String != nil:
			pattern = quotePattern(*sp.Pattern.String)
		default:
			return nil, fmt.Errorf("hf: pre_tokenizer Split without a pattern")
		}
		stage, err := t.splitStage(pattern)
		if err != nil {
			return nil, err
		}
		return []preStage{stage}, nil
	case "Digits":
		var d struct {
			IndividualDigits bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("hf: pre_tokenizer Digits: %w", err)
		}
		pattern := `\p{N}+`
		if d.IndividualDigits {
			pattern = `\p{N}`
		}
		stage, err := t.splitStage(pattern)
		if err != nil {
			return nil, err
		}
		return []preStage{stage}, nil
	case "ByteLevel":
		var bl struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(raw, &bl); err != nil {
			return nil, fmt.Errorf("hf: pre_tokenizer ByteLevel: %w", err)
		}
		var stages []preStage
		if bl.AddPrefixSpace {
			stages = append(stages, preStage{step: func(pieces []string) ([]string, error) {
				if len(pieces) > 0 && !strings.HasPrefix(pieces[0], " ") {
					pieces[0] = " " + pieces[0]
				}
				return pieces, nil
			}})
		}
		if bl.UseRegex == nil || *bl.UseRegex {
			stage, err := t.splitStage(gpt2Pattern)
			if err != nil {
				return nil, err
			}
			stages = append(stages, stage)
		}
		t.byteLevel = true
		return stages, nil
	}
	return nil, unsupported("pre_tokenizer", kind)
}

// splitStage compiles pattern with the primitives and returns the Split
// stage (Isolated): each piece is cut into its matches and the stretches
// between them.
func (t *Tokenizer) splitStage(pattern string) (preStage, error) {
	sp, err := t.prims.Compile(pattern)
	if err != nil {
		return preStage{}, fmt.Errorf("hf: pattern %q: %w", pattern, err)
	}
	return preStage{step: splitStep(sp), split: sp}, nil
}

// composeSplits replaces each run of consecutive Split stages with one
// stage of the primitives' Sequence, when they offer one.
func (t *Tokenizer) composeSplits(stages []preStage) ([]preStep, error) {
	seqr, canCompose := t.prims.(Sequencer)
	var steps []preStep
	for i := 0; i < len(stages); {
		j := i
		for j < len(stages) && stages[j].split != nil {
			j++
		}
		if canCompose && j-i >= 2 {
			parts := make([]Splitter, 0, j-i)
			for _, st := range stages[i:j] {
				parts = append(parts, st.split)
			}
			seq, err := seqr.Sequence(parts)
			if err != nil {
				return nil, fmt.Errorf("hf: composing %d splits: %w", len(parts), err)
			}
			steps = append(steps, splitStep(seq))
			if i == 0 && j == len(stages) {
				t.preSplit = seq // the whole pre-tokenizer is this one split
			}
			i = j
			continue
		}
		if j == i {
			j = i + 1
		} else if i == 0 && j == len(stages) && j-i == 1 {
			t.preSplit = stages[i].split
		}
		for _, st := range stages[i:j] {
			steps = append(steps, st.step)
		}
		i = j
	}
	return steps, nil
}

// splitStep is the Split step of a splitter.
func splitStep(sp Splitter) preStep {
	return func(pieces []string) ([]string, error) {
		out := make([]string, 0, len(pieces))
		for _, p := range pieces {
			if p == "" {
				continue
			}
			spans, err := sp.Split(p)
			if err != nil {
				return nil, err
			}
			for _, s := range spans {
				if s[0] < 0 || s[1] > len(p) || s[0] > s[1] {
					return nil, fmt.Errorf("hf: split gave span [%d, %d) of a %d-byte piece", s[0], s[1], len(p))
				}
				if s[1] > s[0] {
					out = append(out, p[s[0]:s[1]])
				}
			}
		}
		return out, nil
	}
}

// decodeStep is one decoder step over the decoded strings so far.
type decodeStep func(toks []string) []string

// buildDecoder returns the decoder's steps, and whether it is ByteLevel
// alone; ByteLevel becomes the step that joins the tokens and reads them
// back to UTF-8.
func buildDecoder(raw json.RawMessage) ([]decodeStep, bool, error) {
	if isNull(raw) {
		return nil, false, nil
	}
	kind, err := typeOf(raw)
	if err != nil {
		return nil, false, fmt.Errorf("hf: decoder: %w", err)
	}
	switch kind {
	case "Sequence":
		var seq struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return nil, false, fmt.Errorf("hf: decoder: %w", err)
		}
		var steps []decodeStep
		for _, d := range seq.Decoders {
			s, _, err := buildDecoder(d)
			if err != nil {
				return nil, false, err
			}
			steps = append(steps, s...)
		}
		return steps, false, nil
	case "ByteLevel":
		return []decodeStep{byteLevelDecode}, true, nil
	case "Replace":
		from, to, err := replaceSpec(raw)
		if err != nil {
			return nil, false, err
		}
		return []decodeStep{func(toks []string) []string {
			for i, s := range toks {
				toks[i] = strings.ReplaceAll(s, from, to)
			}
			return toks
		}}, false, nil
	case "Fuse":
		return []decodeStep{func(toks []string) []string { return []string{strings.Join(toks, "")} }}, false, nil
	case "Strip":
		var st struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, false, fmt.Errorf("hf: decoder Strip: %w", err)
		}
		return []decodeStep{func(toks []string) []string {
			for i, s := range toks {
				for k := 0; k < st.Start && strings.HasPrefix(s, st.Content); k++ {
					s = s[len(st.Content):]
				}
				for k := 0; k < st.Stop && strings.HasSuffix(s, st.Content); k++ {
					s = s[:len(s)-len(st.Content)]
				}
				toks[i] = s
			}
			return toks
		}}, false, nil
	case "ByteFallback":
		return []decodeStep{byteFallbackDecode}, false, nil
	}
	return nil, false, unsupported("decoder", kind)
}

// byteLevelDecode joins the tokens and reads the byte-level alphabet back
// into UTF-8.
func byteLevelDecode(toks []string) []string {
	b, _ := fromByteLevel(strings.Join(toks, ""))
	return []string{validUTF8(b)}
}

// byteFallbackDecode turns runs of <0xXX> tokens into the UTF-8 they
// spell.
func byteFallbackDecode(toks []string) []string {
	var out []string
	var run []byte
	for _, s := range toks {
		if len(s) == 6 && strings.HasPrefix(s, "<0x") && s[5] == '>' {
			if v, err := strconv.ParseUint(s[3:5], 16, 8); err == nil {
				run = append(run, byte(v))
				continue
			}
		}
		if len(run) > 0 {
			out = append(out, validUTF8(run))
			run = nil
		}
		out = append(out, s)
	}
	if len(run) > 0 {
		out = append(out, validUTF8(run))
	}
	return out
}

// runDecoders decodes a run of ordinary tokens.
func (t *Tokenizer) runDecoders(toks []string) string {
	toks = append([]string(nil), toks...)
	for _, d := range t.decoders {
		toks = d(toks)
	}
	return strings.Join(toks, "")
}
