// Package stop finds a request's stop strings (SamplingParams.stop) in a
// choice's detokenized text as it streams (DESIGN.md, request flow step 6),
// natively and whatever the pipeline's plugins do. A Matcher takes the text
// delta by delta, returns at once everything that cannot be the start of a
// stop string, and holds back only a tail that still may be.
//
// # Which stop string wins
//
// The match that ends first in the text wins; among matches that end at the
// same byte (one stop string a suffix of another, as "ab" and "b" in "xab"),
// the longest wins. Ending first is what streaming can decide without
// waiting: once a stop string is complete nothing later can change the
// answer, so a Matcher never holds back more than a possible partial match.
// Waiting for an earlier-starting, longer stop string to complete instead
// (stops "bc" and "abcd" on "abcd…") would mean holding text past a
// complete match. The result depends only on the whole text, never on how it
// was split into deltas: it equals, for each stop string s,
// end(s) = strings.Index(text, s) + len(s), minimised over the stop strings,
// ties to the longest.
//
// vLLM (v1 detokenizer, check_stop_strings) looks for each stop string, in
// the request's order, in the text the newest token added (plus the stop
// string's length before it) and takes the first in list order that it
// finds: a stop string completed by an earlier token wins there too, but
// when one token completes two, list order decides, so its answer can
// depend on how the text was tokenized. Ours does not. vLLM also holds back
// the longest stop string's length minus one whenever stop strings are set;
// we hold back only a tail that matches the start of a stop string.
//
// # Cost
//
// Each stop string keeps a Knuth–Morris–Pratt state (the length of the
// longest suffix of the text so far that is a proper prefix of it), so each
// byte fed costs amortised O(1) per stop string, whatever the length of the
// generation: nothing already fed is scanned again. Aho–Corasick would share
// work between stop strings, but at 16 strings of at most 256 bytes
// (host/api's limits) it is not worth its code.
package stop

import "unicode/utf8"

// Matcher finds the first stop string in a stream of text. It is not safe
// for concurrent use: a choice's deltas come in order.
type Matcher struct {
	stops   []string
	prefix  [][]int32 // prefix[k][j]: the KMP prefix function of stops[k] at j
	state   []int32   // state[k]: the longest suffix of the text so far that is a proper prefix of stops[k]
	include bool
	held    string // text fed and not yet returned
	hit     string
	done    bool
}

// New returns a Matcher for stops; include says whether the matched stop
// string goes out as the last piece of the text (SamplingParams.include_stop).
// Empty strings are ignored (host/api refuses them in requests); with no
// stop strings the Matcher passes text through unchanged. Stop strings are
// compared byte for byte, so for the output to stay on UTF-8 boundaries
// they must be valid UTF-8, as protobuf strings are.
func New(stops []string, include bool) *Matcher {
	m := &Matcher{include: include}
	for _, s := range stops {
		if s == "" {
			continue
		}
		m.stops = append(m.stops, s)
		m.prefix = append(m.prefix, prefixFunction(s))
	}
	m.state = make([]int32, len(m.stops))
	return m
}

// prefixFunction returns, for each j, the length of the longest proper
// prefix of s[:j+1] that is also its suffix (KMP's failure function).
func prefixFunction(s string) []int32 {
	pi := make([]int32, len(s))
	var q int32
	for j := 1; j < len(s); j++ {
		for q > 0 && s[q] != s[j] {
			q = pi[q-1]
		}
		if s[q] == s[j] {
			q++
		}
		pi[j] = q
	}
	return pi
}

// Feed takes the next delta of text and returns what can go out now: all of
// the text so far except a tail that may be the start of a stop string
// (widened, where needed, to keep a whole UTF-8 sequence of the input on one
// side). When the text completes a stop string, hit is that string and out
// is the text before it — followed by the stop string when include was set
// — and the Matcher is done: what follows the stop string is dropped, and
// later calls to Feed and Flush return nothing. An empty delta is allowed.
func (m *Matcher) Feed(text string) (out, hit string) {
	if m.done {
		return "", ""
	}
	if len(m.stops) == 0 {
		return text, ""
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		won := -1
		for k, s := range m.stops {
			q := m.state[k]
			for q > 0 && s[q] != c {
				q = m.prefix[k][q-1]
			}
			if s[q] == c {
				q++
			}
			if int(q) == len(s) {
				if won < 0 || len(s) > len(m.stops[won]) {
					won = k
				}
				q = 0 // the Matcher is done; keep the state in range
			}
			m.state[k] = q
		}
		if won >= 0 {
			// The match ends at text[i] and starts inside held+text[:i+1]:
			// the held tail is at least as long as any partial match was.
			all := m.held + text[:i+1]
			s := m.stops[won]
			if !m.include {
				all = all[:len(all)-len(s)]
			}
			m.held, m.hit, m.done = "", s, true
			return all, s
		}
	}
	var longest int32
	for _, q := range m.state {
		longest = max(longest, q)
	}
	all := m.held + text
	cut := runeStart(all, len(all)-int(longest))
	m.held = cloneSmall(all[cut:])
	return all[:cut], ""
}

// runeStart moves cut back to the start of the UTF-8 sequence it falls in,
// when that sequence is whole in s: a held tail then never splits a
// character that the input had whole. (With valid UTF-8 text and stop
// strings this never moves: a stop string begins with a leading byte.)
func runeStart(s string, cut int) int {
	if cut <= 0 || cut >= len(s) || utf8.RuneStart(s[cut]) {
		return cut
	}
	for i := cut - 1; i >= 0 && i >= cut-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(s[i]) {
			if r, n := utf8.DecodeRuneInString(s[i:]); (r != utf8.RuneError || n > 1) && i+n > cut {
				return i
			}
			break
		}
	}
	return cut
}

// cloneSmall copies a held tail so that it does not keep a large delta's
// memory alive.
func cloneSmall(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
}

// Flush returns the held-back tail at the end of the generation, when no
// stop string completed, and marks the Matcher done.
func (m *Matcher) Flush() string {
	if m.done {
		return ""
	}
	out := m.held
	m.held, m.done = "", true
	return out
}

// Done reports whether a stop string matched or Flush was called.
func (m *Matcher) Done() bool { return m.done }

// Hit returns the stop string that matched, or "" if none has.
func (m *Matcher) Hit() string { return m.hit }
