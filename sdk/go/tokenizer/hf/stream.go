package hf

import "unicode/utf8"

// Stream detokenizes generated tokens one at a time from their bytes (a
// tokenizer's vocabulary export, where decoding is concatenating bytes):
// it emits only whole UTF-8 characters, holding back a character's first
// bytes until the token that completes it arrives, so a stream never shows
// a U+FFFD that the next token would have made a character. Bytes that can
// no longer become a character go out as U+FFFD, one per maximal
// ill-formed subsequence, as a whole decode would write them.
type Stream struct {
	tokenBytes func(id int32) []byte
	held       []byte
}

// NewStream returns a Stream over tokenBytes (such as
// Tokenizer.TokenBytes, or a plugin's vocabulary export).
func NewStream(tokenBytes func(id int32) []byte) *Stream {
	return &Stream{tokenBytes: tokenBytes}
}

// Push adds a token and returns the text it completes (maybe "").
func (s *Stream) Push(id int32) string {
	s.held = append(s.held, s.tokenBytes(id)...)
	return s.take(false)
}

// Flush returns what is held at the end of the stream: an incomplete
// character becomes U+FFFD.
func (s *Stream) Flush() string { return s.take(true) }

// take returns the valid prefix of the held bytes (all of them at the
// end), keeping an incomplete last character.
func (s *Stream) take(final bool) string {
	var out []byte
	i := 0
	for i < len(s.held) {
		r, w := utf8.DecodeRune(s.held[i:])
		if r != utf8.RuneError || w > 1 {
			out = append(out, s.held[i:i+w]...)
			i += w
			continue
		}
		// An invalid byte: the start of a character still to come, or
		// bytes that can never be one.
		n := incompleteLen(s.held[i:])
		if n > 0 && !final {
			break
		}
		out = utf8.AppendRune(out, utf8.RuneError)
		if n > 0 {
			i += n
		} else {
			i += illFormedLen(s.held[i:])
		}
	}
	s.held = append(s.held[:0], s.held[i:]...)
	return string(out)
}

// incompleteLen is len(b) when all of b is a proper prefix of some UTF-8
// character (it may still be completed), else 0.
func incompleteLen(b []byte) int {
	n := illFormedLen(b)
	if n == len(b) && n < utf8.UTFMax && expectedLen(b[0]) > n {
		return n
	}
	return 0
}

// expectedLen is the length of a character that starts with lead byte c
// (0 for a byte that cannot start one).
func expectedLen(c byte) int {
	switch {
	case c >= 0xc2 && c <= 0xdf:
		return 2
	case c >= 0xe0 && c <= 0xef:
		return 3
	case c >= 0xf0 && c <= 0xf4:
		return 4
	}
	return 0
}
