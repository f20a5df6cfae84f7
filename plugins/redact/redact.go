package main

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// redactor is a compiled configuration: one alternation of the patterns,
// each in a capturing group so that a match names its pattern.
type redactor struct {
	// all is (p0)|(p1)|…: one leftmost-first search for every pattern.
	all *regexp.Regexp
	// after is all preceded by one character of context: a search that
	// starts past the first character, with it before the match for the
	// assertions (\b, ^ in (?m)), as Go's regexp searches from a position
	// inside a text. (Go has no public API for that.)
	after *regexp.Regexp
	// prog is all's program, for the holdback (live.go).
	prog  *syntax.Prog
	group []int    // group[i]: the submatch index of pattern i's group
	masks []string // masks[i]: what replaces a match of pattern i
	limit int      // the most bytes a stream holds back
}

func newRedactor(pats []pattern, mask string, limit int) (*redactor, error) {
	r := &redactor{limit: limit}
	var alts []string
	next := 1
	for _, p := range pats {
		re, err := regexp.Compile(p.Regex)
		if err != nil {
			return nil, fmt.Errorf("config: pattern %s: %w", p.Name, err)
		}
		prog, err := compile(p.Regex)
		if err != nil {
			return nil, fmt.Errorf("config: pattern %s: %w", p.Name, err)
		}
		if matchesEmpty(prog) {
			return nil, fmt.Errorf("config: pattern %s can match empty text; it must match at least one character", p.Name)
		}
		r.group = append(r.group, next)
		next += 1 + re.NumSubexp()
		r.masks = append(r.masks, strings.ReplaceAll(mask, "{name}", p.Name))
		// Each pattern compiled alone first, so no pattern can close the
		// group it is put in; flags such as (?i) stay inside it.
		alts = append(alts, "("+p.Regex+")")
	}
	expr := strings.Join(alts, "|")
	var err error
	if r.all, err = regexp.Compile(expr); err != nil {
		return nil, fmt.Errorf("config: the patterns together: %w", err)
	}
	if r.after, err = regexp.Compile(`\A(?s:.)(?s:.*?)(?:` + expr + `)`); err != nil {
		return nil, fmt.Errorf("config: the patterns together: %w", err)
	}
	if r.prog, err = compile(expr); err != nil {
		return nil, fmt.Errorf("config: the patterns together: %w", err)
	}
	return r, nil
}

// compile compiles expr to the program Go's regexp runs.
func compile(expr string) (*syntax.Prog, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	return syntax.Compile(re.Simplify())
}

// find returns the leftmost match in text that starts at or after pos, as
// a search over the whole content would find it (before is the character
// before text, -1 at the start of the content): its bounds and pattern, or
// ok false.
func (r *redactor) find(text string, pos int, before rune) (start, end, pat int, ok bool) {
	var loc []int
	shift := pos
	if pos == 0 && before < 0 {
		loc = r.all.FindStringSubmatchIndex(text)
	} else {
		prev := before
		if pos > 0 {
			prev, _ = utf8.DecodeLastRuneInString(text[:pos])
		}
		ctx := string(prev) // RuneError for an invalid byte: the same rune to the assertions
		shift -= len(ctx)
		loc = r.after.FindStringSubmatchIndex(ctx + text[pos:])
	}
	if loc == nil {
		return 0, 0, 0, false
	}
	for i, g := range r.group {
		if loc[2*g] >= 0 {
			return loc[2*g] + shift, loc[2*g+1] + shift, i, true
		}
	}
	return 0, 0, 0, false // unreachable: one group takes part in every match
}

// stream is one choice's content: what it holds back, the character
// before that, and the NFA's threads over the held text.
type stream struct {
	r      *redactor
	live   *live
	held   string
	before rune // the last character released; -1 before any
	// stepped is how much of held the NFA has stepped over.
	stepped int
}

func (r *redactor) newStream() *stream {
	return &stream{r: r, live: newLive(r.prog), before: -1}
}

// feed takes the next delta and returns the text to release, redacted, and
// how many matches it masked. final releases everything: the content ended.
func (s *stream) feed(text string, final bool) (string, int) {
	buf := s.held + text
	// A delta may end inside a character (the host's detokenizer holds such
	// bytes back, but the ABI does not promise it): keep those bytes, which
	// can only be released whole.
	end := len(buf)
	if !final {
		end -= partialRune(buf)
	}
	avail := buf[:end]
	cut, undecided, forced := end, end, false
	if !final {
		undecided = s.live.advance(avail, s.stepped, s.before)
		cut = undecided
		if bound := len(buf) - s.r.limit; cut < bound {
			// Past the bound: release the oldest bytes anyway (main.go).
			for cut = bound; cut < end && !utf8.RuneStart(avail[cut]); cut++ {
			}
			forced = true
		}
	}
	var out strings.Builder
	pos, masked := 0, 0
	for pos < cut {
		start, stop, pat, ok := s.r.find(avail, pos, s.before)
		if !ok || start >= cut {
			break
		}
		out.WriteString(avail[pos:start])
		out.WriteString(s.r.masks[pat])
		pos = stop
		masked++
	}
	// A match that started before cut may end past it; the text it covers
	// is released with it.
	cut = max(cut, pos)
	out.WriteString(avail[pos:cut])
	if cut > 0 {
		s.before, _ = utf8.DecodeLastRuneInString(avail[:cut])
	}
	s.held = strings.Clone(buf[cut:])
	switch {
	case final:
	case cut > undecided && !forced:
		// Threads started inside the released match must not count, and
		// starting them at the cut instead would be imprecise: step the
		// held text again next time (it is short: what followed a match).
		s.live.reset()
		s.stepped = 0
	default:
		// No thread started before the cut, unless it was forced, where
		// counting them from the cut only holds back more.
		s.live.drop(cut)
		s.stepped = end - cut
	}
	res := out.String()
	if !utf8.ValidString(res) {
		// Only invalid input gets here; the host refuses invalid output.
		res = strings.ToValidUTF8(res, "\uFFFD")
	}
	return res, masked
}

// partialRune returns the length of an incomplete UTF-8 sequence at the end
// of s that more bytes could complete.
func partialRune(s string) int {
	for i := len(s) - 1; i >= 0 && i >= len(s)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				return len(s) - i
			}
			return 0
		}
	}
	return 0
}
