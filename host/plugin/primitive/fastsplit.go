package primitive

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Hand-written matchers for the patterns of DeepSeek's pre-tokenizer (its
// tokenizer.json's three Split regexes). Compile uses one when the pattern
// is exactly one of these strings: a backtracking regex engine spends most
// of a tokenizer's time on them, and a scanner that knows the pattern does
// the same in one pass, as llama.cpp's unicode_regex_split_custom does for
// the patterns it knows. FuzzFastSplitMatchesRegexp2 checks each against
// the regex engine on arbitrary text; the semantics below are the
// regexes', alternative by alternative (leftmost start, then the first
// alternative that matches there, greedy with backtracking).
const (
	// deepseekDigits: digit runs in groups of up to three.
	deepseekDigits = `\p{N}{1,3}`
	// deepseekCJK: runs of CJK ideographs, hiragana and katakana.
	deepseekCJK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
	// deepseekWords: punctuation-led words, letter runs, punctuation runs,
	// newlines and whitespace.
	deepseekWords = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
)

// matcher finds the next match in runes from position i: its start and
// end, or start −1 when there is none.
type matcher func(runes []rune, i int) (start, end int)

// fastMatchers maps the patterns above to their matchers.
var fastMatchers = map[string]matcher{
	deepseekDigits: nextMatch(matchDigits),
	deepseekCJK:    nextMatch(matchCJK),
	deepseekWords:  nextMatch(matchWords),
}

// nextMatch turns an anchored matcher (the length of the match starting
// exactly at i, or 0 for none) into a search from i.
func nextMatch(at func(runes []rune, i int) int) matcher {
	return func(runes []rune, i int) (int, int) {
		for ; i < len(runes); i++ {
			if n := at(runes, i); n > 0 {
				return i, i + n
			}
		}
		return -1, -1
	}
}

func matchDigits(r []rune, i int) int {
	n := 0
	for i+n < len(r) && n < 3 && unicode.IsNumber(r[i+n]) {
		n++
	}
	return n
}

func isCJK(c rune) bool {
	return c >= 0x4e00 && c <= 0x9fa5 || c >= 0x3040 && c <= 0x309f || c >= 0x30a0 && c <= 0x30ff
}

func matchCJK(r []rune, i int) int {
	n := 0
	for i+n < len(r) && isCJK(r[i+n]) {
		n++
	}
	return n
}

// isSpace is .NET's \s: [\f\n\r\t\v\x85\p{Z}].
func isSpace(c rune) bool {
	switch c {
	case '\f', '\n', '\r', '\t', '\v', 0x85:
		return true
	}
	return c > 0x7f && unicode.In(c, unicode.Z) || c == ' '
}

func isLetterOrMark(c rune) bool { return unicode.IsLetter(c) || unicode.IsMark(c) }

func isPunctOrSymbol(c rune) bool { return unicode.IsPunct(c) || unicode.IsSymbol(c) }

func isASCIIPunct(c rune) bool {
	return c < 0x80 && (c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~')
}

func isASCIILetter(c rune) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// run returns how many runes from i satisfy ok.
func run(r []rune, i int, ok func(rune) bool) int {
	n := 0
	for i+n < len(r) && ok(r[i+n]) {
		n++
	}
	return n
}

func matchWords(r []rune, i int) int {
	c := r[i]
	// [ASCII punctuation][A-Za-z]+
	if isASCIIPunct(c) {
		if n := run(r, i+1, isASCIILetter); n > 0 {
			return 1 + n
		}
	}
	// [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
	if c != '\r' && c != '\n' && !unicode.IsLetter(c) && !isPunctOrSymbol(c) {
		if n := run(r, i+1, isLetterOrMark); n > 0 {
			return 1 + n
		}
	}
	if n := run(r, i, isLetterOrMark); n > 0 {
		return n
	}
	// ' '?[\p{P}\p{S}]+[\r\n]*
	start := i
	if c == ' ' && i+1 < len(r) && isPunctOrSymbol(r[i+1]) {
		start = i + 1
	}
	if n := run(r, start, isPunctOrSymbol); n > 0 {
		end := start + n
		end += run(r, end, func(c rune) bool { return c == '\r' || c == '\n' })
		return end - i
	}
	ws := run(r, i, isSpace)
	if ws == 0 {
		return 0
	}
	// \s*[\r\n]+: up to the last newline of the whitespace run.
	for k := i + ws - 1; k >= i; k-- {
		if r[k] == '\r' || r[k] == '\n' {
			return k + 1 - i
		}
	}
	// \s+(?!\S): the run, or all but its last rune when text follows.
	if i+ws == len(r) {
		return ws
	}
	if ws > 1 {
		return ws - 1
	}
	// \s+
	return ws
}

// fastSplit is Split with a matcher: the same spans as the regex gives.
func fastSplit(m matcher, text string) [][2]int {
	runes, offs := decodeRunes(text)
	spans := splitRunes(m, runes, 0, nil)
	for i, sp := range spans {
		spans[i] = [2]int{offs[sp[0]], offs[sp[1]]}
	}
	return spans
}

// decodeRunes returns text's runes (an invalid byte is one U+FFFD, as the
// regex engine reads it) and each rune's byte offset, plus len(text).
func decodeRunes(text string) ([]rune, []int) {
	runes := make([]rune, 0, len(text))
	offs := make([]int, 0, len(text)+1)
	for i := 0; i < len(text); {
		c, w := utf8.DecodeRuneInString(text[i:])
		runes = append(runes, c)
		offs = append(offs, i)
		i += w
	}
	return runes, append(offs, len(text))
}

// splitRunes appends to spans the pieces of runes (which start at rune
// index base) as rune index ranges: every match of m and every stretch
// between matches.
func splitRunes(m matcher, runes []rune, base int, spans [][2]int) [][2]int {
	last := 0
	for i := 0; i < len(runes); {
		s, e := m(runes, i)
		if s < 0 {
			break
		}
		if s > last {
			spans = append(spans, [2]int{base + last, base + s})
		}
		spans = append(spans, [2]int{base + s, base + e})
		last, i = e, e
	}
	if last < len(runes) {
		spans = append(spans, [2]int{base + last, base + len(runes)})
	}
	return spans
}

// fastSequence is Sequence.Split with every part a hand-written matcher:
// the text is decoded once, and each part cuts the pieces of the one
// before as rune ranges (a matcher sees only its piece, as when the piece
// is split on its own).
func fastSequence(ms []matcher, text string) ([][2]int, error) {
	runes, offs := decodeRunes(text)
	spans := [][2]int{{0, len(runes)}}
	if len(runes) == 0 {
		spans = nil
	}
	var next [][2]int
	for _, m := range ms {
		next = next[:0]
		for _, sp := range spans {
			next = splitRunes(m, runes[sp[0]:sp[1]], sp[0], next)
		}
		if len(next) > MaxPieces {
			return nil, fmt.Errorf("%w: more than %d pieces", ErrBounds, MaxPieces)
		}
		spans, next = next, spans
	}
	if len(spans) == 0 {
		return nil, nil
	}
	out := make([][2]int, len(spans))
	for i, sp := range spans {
		out[i] = [2]int{offs[sp[0]], offs[sp[1]]}
	}
	return out, nil
}
