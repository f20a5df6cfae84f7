package primitive

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// MaxSplitText bounds the text one Split call takes (bytes): the most a
// tokenizer's output may hold (sdk/ABI.md), far above a server's largest
// prompt.
const MaxSplitText = 64 << 20

// MaxPieces bounds the spans one Split returns.
const MaxPieces = MaxSplitText

// splitChunk is how much text one pass of the pattern takes at a time: a
// longer text is split a chunk at a time, so that the pattern's match
// timeout bounds each pass, not the whole text, and the regex engine's rune
// copy stays small.
var splitChunk = 1 << 20

// splitCarry is how many of a chunk's last pieces are split again with the
// next chunk: the chunk's end may have cut them short, or changed what a
// lookahead saw ((?!\S) at the chunk's end sees the end of the text). A
// piece before them ended, and had its lookahead answered, inside the chunk.
const splitCarry = 2

// splitLong is split over text, a chunk at a time: each chunk's pieces but
// its last splitCarry are kept, and the next chunk starts where those
// begin. A chunk that holds no more than splitCarry pieces (a piece about
// as long as the chunk) is taken again twice as long, until it holds more
// or reaches the end of the text.
func splitLong(text string, split func(string) ([][2]int, error)) ([][2]int, error) {
	if len(text) > MaxSplitText {
		return nil, fmt.Errorf("%w: %d bytes to split, at most %d", ErrBounds, len(text), MaxSplitText)
	}
	if len(text) <= splitChunk {
		return split(text)
	}
	var out [][2]int
	for start, size := 0, splitChunk; ; {
		end := start + size
		if end >= len(text) {
			end = len(text)
		} else {
			for end > start+1 && !utf8.RuneStart(text[end]) {
				end-- // a chunk ends between characters
			}
		}
		spans, err := split(text[start:end])
		if err != nil {
			return nil, err
		}
		keep := len(spans) - splitCarry
		if end < len(text) && keep <= 0 {
			size *= 2
			continue
		}
		if end == len(text) {
			keep = len(spans)
		}
		for _, sp := range spans[:keep] {
			out = append(out, [2]int{start + sp[0], start + sp[1]})
		}
		if end == len(text) {
			return out, nil
		}
		start, size = start+spans[keep][0], splitChunk
	}
}

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
	return splitLong(text, p.splitOnce)
}

// splitOnce is Split of a text of at most a chunk (splitLong).
func (p *Pattern) splitOnce(text string) ([][2]int, error) {
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
		// regexp2's errors quote the whole input: say what happened, not that.
		msg, _, _ := strings.Cut(err.Error(), " on input ")
		return nil, fmt.Errorf("primitive: split of %d bytes: %s", len(text), msg)
	}
	if last < len(runes) {
		spans = append(spans, [2]int{offs[last], len(text)})
	}
	return spans, nil
}

// Splitter cuts text into pieces: a Pattern, or a Sequence of them.
type Splitter interface {
	Split(text string) ([][2]int, error)
}

// MaxSequence bounds the splitters of one Sequence.
const MaxSequence = 8

// Sequence applies splitters in turn, each to every piece the ones before
// it cut, as a Hugging Face Sequence of Split pre-tokenizers does: one call
// for the whole chain.
type Sequence struct {
	parts []Splitter
}

// NewSequence composes parts (at least one, at most MaxSequence).
func NewSequence(parts ...Splitter) (*Sequence, error) {
	if len(parts) == 0 || len(parts) > MaxSequence {
		return nil, fmt.Errorf("%w: a sequence of %d splitters (1 to %d)", ErrBounds, len(parts), MaxSequence)
	}
	return &Sequence{parts: append([]Splitter(nil), parts...)}, nil
}

// Split cuts text with each splitter in turn and returns the final pieces
// as [start, end) offsets into text.
func (s *Sequence) Split(text string) ([][2]int, error) {
	return splitLong(text, s.splitOnce)
}

// splitOnce is Split of a text of at most a chunk (splitLong).
func (s *Sequence) splitOnce(text string) ([][2]int, error) {
	if fast := s.fastParts(); fast != nil {
		return fastSequence(fast, text)
	}
	spans := [][2]int{{0, len(text)}}
	if len(text) == 0 {
		spans = nil
	}
	for _, part := range s.parts {
		var next [][2]int
		for _, sp := range spans {
			sub, err := part.Split(text[sp[0]:sp[1]])
			if err != nil {
				return nil, err
			}
			for _, x := range sub {
				next = append(next, [2]int{sp[0] + x[0], sp[0] + x[1]})
			}
			if len(next) > MaxPieces {
				return nil, fmt.Errorf("%w: more than %d pieces", ErrBounds, MaxPieces)
			}
		}
		spans = next
	}
	return spans, nil
}

// fastParts returns the parts' hand-written matchers when every part has
// one, else nil.
func (s *Sequence) fastParts() []matcher {
	ms := make([]matcher, len(s.parts))
	for i, part := range s.parts {
		p, ok := part.(*Pattern)
		if !ok || p.fast == nil {
			return nil
		}
		ms[i] = p.fast
	}
	return ms
}
