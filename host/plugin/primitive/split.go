package primitive

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// MaxSplitText bounds the text one Split call takes (bytes); longer input is
// split by the caller in pieces (at whitespace, for tokenizers).
const MaxSplitText = 1 << 20

// MaxPieces bounds the spans one Split returns.
const MaxPieces = 1 << 20

// splitTimeout bounds one Split's matching, so that a pathological pattern
// or input cannot stall the host.
const splitTimeout = 2 * time.Second

// Pattern is a regular expression compiled by the host for a plugin, with
// the constructs tokenizers need and Go's regexp lacks: lookahead
// (DeepSeek's `\s+(?!\S)`) and Unicode classes.
type Pattern struct {
	re   *regexp2.Regexp
	fast matcher // a hand-written matcher of the same pattern, or nil (fastsplit.go)
}

// Compile compiles a pattern (.NET/Perl syntax, as Hugging Face tokenizers
// write them).
func Compile(expr string) (*Pattern, error) {
	re, err := regexp2.Compile(expr, regexp2.Unicode)
	if err != nil {
		return nil, fmt.Errorf("primitive: pattern %q: %w", expr, err)
	}
	re.MatchTimeout = splitTimeout
	return &Pattern{re: re, fast: fastMatchers[expr]}, nil
}

// Split cuts text into pieces the way a Hugging Face "Split" pre-tokenizer
// with behavior "Isolated" does: every match is a piece, and so is every
// stretch between matches. It returns the pieces as [start, end) byte
// offsets that cover the text in order. Invalid UTF-8 bytes are kept as
// pieces of their own between matches.
func (p *Pattern) Split(text string) ([][2]int, error) {
	if len(text) > MaxSplitText {
		return nil, fmt.Errorf("%w: %d bytes to split, at most %d", ErrBounds, len(text), MaxSplitText)
	}
	if p.fast != nil {
		spans := fastSplit(p.fast, text)
		if len(spans) > MaxPieces {
			return nil, fmt.Errorf("%w: more than %d pieces", ErrBounds, MaxPieces)
		}
		return spans, nil
	}
	return p.regexSplit(text)
}

// regexSplit is Split with the regex engine.
func (p *Pattern) regexSplit(text string) ([][2]int, error) {
	runes := []rune(text)
	// offs[i] is the byte offset of rune i; offs[len] is len(text). An
	// invalid byte decodes as one U+FFFD rune of width 1, so offsets stay
	// exact.
	offs := make([]int, 0, len(runes)+1)
	for i := 0; i < len(text); {
		_, w := utf8.DecodeRuneInString(text[i:])
		offs = append(offs, i)
		i += w
	}
	offs = append(offs, len(text))
	var spans [][2]int
	last := 0 // rune index where the previous piece ended
	m, err := p.re.FindRunesMatch(runes)
	for ; m != nil && err == nil; m, err = p.re.FindNextMatch(m) {
		start, end := m.Index, m.Index+m.Length
		if end == start {
			continue // empty matches cut nothing
		}
		if start > last {
			spans = append(spans, [2]int{offs[last], offs[start]})
		}
		spans = append(spans, [2]int{offs[start], offs[end]})
		last = end
		if len(spans) > MaxPieces {
			return nil, fmt.Errorf("%w: more than %d pieces", ErrBounds, MaxPieces)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("primitive: split: %w", err)
	}
	if last < len(runes) {
		spans = append(spans, [2]int{offs[last], len(text)})
	}
	return spans, nil
}
