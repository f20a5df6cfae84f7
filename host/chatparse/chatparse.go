// Package chatparse splits a DeepSeek model's output, as it streams, into
// reasoning, content and tool calls (shared/research/deepseek-chat-format.md
// §7): one state machine for every format, with a marker table and a tool
// sub-grammar per format. Text that could still be the start of a marker is
// held back until the next delta shows what it is, so no partial marker
// ever reaches a client; at the end, held text is flushed as ordinary text.
// The non-streaming parse is the same machine fed one chunk.
//
// Whatever the text, the result is defined: it does not depend on how the
// output is cut into deltas; an end-of-sentence token ends the output as
// Finish does; text outside a tool block is never dropped or repeated, only
// markers are removed; and output that breaks the tool grammar goes out as
// content with a Note saying so. Besides a DSML non-string value (held for
// its repair) and a copy of a V3/V3.1 call's arguments (checked when it
// closes), the parser holds back at most a partial marker or a tag or call
// head of up to maxHead bytes, and it reads each byte a bounded number of
// times, so its work is linear in the output.
package chatparse

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// Format is a family of DeepSeek output formats.
type Format int

// Formats.
const (
	// V3 is DeepSeek-V3, V3-0324, R1 and R1-0528: the fenced-JSON tool block.
	V3 Format = iota + 1
	// V31 is DeepSeek-V3.1: raw JSON arguments after <｜tool▁sep｜>.
	V31
	// V32 is DeepSeek-V3.2: the DSML function_calls block.
	V32
	// V4 is DeepSeek-V4: the DSML tool_calls block.
	V4
)

// ParseFormat reads a format name as the fixtures and configuration write
// it: v3, v3-2412, v3-0324, r1, r1-2501, r1-0528, v3.1, v3.2, v4.
func ParseFormat(name string) (Format, error) {
	switch name {
	case "v3", "v3-2412", "v3-0324", "r1", "r1-2501", "r1-0528":
		return V3, nil
	case "v3.1":
		return V31, nil
	case "v3.2":
		return V32, nil
	case "v4", "v4-0731":
		return V4, nil
	}
	return 0, fmt.Errorf("chatparse: unknown output format %q", name)
}

// Kind says what an Event carries.
type Kind int

// Event kinds.
const (
	// Reasoning is a delta of the reasoning channel.
	Reasoning Kind = iota + 1
	// Content is a delta of the content channel.
	Content
	// CallStart opens tool call Index with its Name (and ID).
	CallStart
	// CallArgs is a delta of call Index's JSON arguments.
	CallArgs
	// CallEnd closes call Index: its arguments are complete.
	CallEnd
	// Note is an annotation: output the parser tolerated or repaired.
	Note
)

// Event is one piece of parsed output.
type Event struct {
	Kind  Kind
	Text  string // the delta (Reasoning, Content, CallArgs) or the note
	Index int    // the call (CallStart, CallArgs, CallEnd)
	Name  string // the function (CallStart)
	ID    string // the call's id (CallStart)
}

// state is where the parser is in the output grammar.
type state int

const (
	inReasoning state = iota
	inContent
	inTools    // between calls
	inCallHead // V3/V3.1: a call's head, up to its arguments
	inCall     // DSML: inside an invoke, between parameters
	inArg      // inside an argument value (DSML) or the JSON arguments (V3, V3.1)
	inTag      // DSML: inside an invoke or parameter tag, up to its '>'
	done
)

const (
	eos       = "<｜end▁of▁sentence｜>"
	thinkOpen = "<think>"
	thinkEnd  = "</think>"
)

// maxHead is the most text a DSML invoke or parameter tag may hold before
// its '>', or a V3/V3.1 call head before its arguments (a function name and
// the markup around it take a few dozen bytes): longer, the tool block is
// malformed. Without a limit a tag that never closes would be held, unseen,
// to the end of the output, and rescanned on every delta.
const maxHead = 1024

// Parser is the streaming parser of one choice's output. It is not safe for
// concurrent use.
type Parser struct {
	f      Format
	st     state
	buf    string
	begun  bool // the first delta has been seen (for a leading <think>)
	events []Event

	calls   int             // calls started
	inCallN int             // the open call's index, or −1
	args    int             // arguments emitted in the open DSML call
	keys    map[string]bool // their names
	tag     string          // inTag: "invoke" or "parameter"
	pending string          // inTag, inCallHead: the text before the closing marker
	opened  string          // inTag, inCallHead: the marker that opened it
	sepSeen bool            // inCallHead (V3): the head began at function<｜tool▁sep｜>
	strArg  bool            // the open DSML parameter is a string
	rawArg  strings.Builder // the open call's DSML non-string value, or its V3/V3.1 arguments
	newID   func(i int) string
	block   string            // DSML block name: function_calls or tool_calls
	marks   [done]markerTable // the markers valid in each state
}

// markerTable is the markers valid in one state.
type markerTable struct {
	list   []string
	firsts string // their first bytes (all ASCII)
	max    int    // the longest's length
}

func newMarkerTable(list []string) markerTable {
	t := markerTable{list: list}
	for _, m := range list {
		if !strings.Contains(t.firsts, m[:1]) {
			t.firsts += m[:1]
		}
		t.max = max(t.max, len(m))
	}
	return t
}

// New returns a parser of format f. startInReasoning says the prompt
// ended with <think>, so the output begins in the reasoning channel.
// newID names tool calls (nil: call_0, call_1, …). A Format that is none
// of the constants parses as V3.
func New(f Format, startInReasoning bool, newID func(i int) string) *Parser {
	p := &Parser{f: f, st: inContent, inCallN: -1, newID: newID}
	if startInReasoning {
		p.st = inReasoning
	}
	if p.newID == nil {
		p.newID = func(i int) string { return fmt.Sprintf("call_%d", i) }
	}
	p.block = "tool_calls"
	if f == V32 {
		p.block = "function_calls"
	}
	for st := range p.marks {
		p.marks[st] = newMarkerTable(p.markers(state(st)))
	}
	return p
}

// v3Openers are the V3/R1 tool block openers, the distilled models'
// misspellings included (llama.cpp accepts them too).
var v3Openers = []string{"<｜tool▁calls▁begin｜>", "<｜tool_calls_begin｜>", "<｜tool calls begin｜>", `<｜tool\_calls\_begin｜>`, "<｜tool▁calls｜>"}

// Markup reports whether a special token whose text is piece can be part
// of the markup some format's parser reads (the reasoning tags, V3's and
// V3.1's tool-call tokens, DSML's), so that a chat's detokenizer must keep
// it; any other special token (a placeholder, a role or FIM token) is not
// text the answer holds.
func Markup(piece string) bool {
	if piece == "" {
		return false
	}
	for _, m := range allMarkers() {
		if strings.Contains(m, piece) {
			return true
		}
	}
	return false
}

// allMarkers are the markers of every format in every state, and <think>.
var allMarkers = sync.OnceValue(func() []string {
	all := []string{thinkOpen}
	for _, f := range []Format{V3, V31, V32, V4} {
		p := New(f, false, nil)
		for st := range done {
			all = append(all, p.markers(st)...)
		}
	}
	return all
})

// markers returns the markers valid in state st (New tabulates them in
// p.marks).
func (p *Parser) markers(st state) []string {
	dsmlOpen := []string{"\n\n<｜DSML｜" + p.block + ">", "<｜DSML｜" + p.block + ">"}
	switch st {
	case inReasoning:
		m := []string{thinkEnd, eos}
		switch p.f {
		case V32, V4:
			m = append(m, dsmlOpen...)
		case V31:
			m = append(m, "<｜tool▁calls▁begin｜>")
		default:
			m = append(m, v3Openers...)
		}
		return m
	case inContent:
		switch p.f {
		case V32, V4:
			return append([]string{eos}, dsmlOpen...)
		case V31:
			return []string{eos, "<｜tool▁calls▁begin｜>"}
		}
		return append([]string{eos}, v3Openers...)
	case inTools:
		if p.f == V32 || p.f == V4 {
			return []string{eos, "</｜DSML｜" + p.block + ">", "<｜DSML｜invoke"}
		}
		return []string{eos, "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "function<｜tool▁sep｜>"}
	case inCallHead:
		if p.f == V31 {
			return []string{eos, "<｜tool▁sep｜>"}
		}
		return []string{eos, "\n```json\n"}
	case inCall:
		return []string{eos, "</｜DSML｜invoke>", "<｜DSML｜parameter"}
	case inArg:
		switch p.f {
		case V32, V4:
			return []string{eos, "</｜DSML｜parameter>"}
		case V31:
			return []string{eos, "<｜tool▁call▁end｜>"}
		}
		return []string{eos, "\n```<｜tool▁call▁end｜>", "\n```\n<｜tool▁call▁end｜>", "```<｜tool▁call▁end｜>"}
	case inTag:
		return []string{eos, ">"}
	}
	return nil
}

// Feed parses a delta (decoded text, special tokens included) and returns
// the events it completes. A delta may end inside a UTF-8 character: its
// first bytes wait for the rest, so for valid UTF-8 output every emitted
// text is valid UTF-8, however the output is cut.
func (p *Parser) Feed(delta string) []Event {
	p.events = p.events[:0]
	if p.st == done {
		return nil
	}
	p.buf += delta
	if !p.begun {
		// An output that opens with <think> (R1-0528) enters reasoning.
		if len(p.buf) < len(thinkOpen) && strings.HasPrefix(thinkOpen, p.buf) {
			return nil
		}
		p.begun = true
		if strings.HasPrefix(p.buf, thinkOpen) {
			p.buf = p.buf[len(thinkOpen):]
			p.st = inReasoning
		}
	}
	p.run(false)
	return append([]Event(nil), p.events...)
}

// Finish ends the output: held text is flushed as what it is, an unfinished
// tool tag or marker goes out as content with a note (the tool block is
// malformed), and a call left open is closed with a note that it is
// incomplete. An end-of-sentence token in the output does the same. After
// Finish the parser emits nothing more.
func (p *Parser) Finish() []Event {
	p.events = p.events[:0]
	if p.st != done {
		p.begun = true
		p.run(true)
	}
	if p.inCallN >= 0 {
		p.note(fmt.Sprintf("tool call %d was cut off before it closed; its arguments are incomplete", p.inCallN))
		p.inCallN = -1
	}
	p.st = done
	return append([]Event(nil), p.events...)
}

// run consumes the buffer as far as it can; at the end (final) nothing is
// held back.
func (p *Parser) run(final bool) {
	// At the end an open tag or head is unfinished even with nothing
	// after its opener.
	for p.st != done && (p.buf != "" || final && (p.st == inTag || p.st == inCallHead)) {
		if p.skipSpace() {
			continue
		}
		ms := &p.marks[p.st]
		switch p.st {
		case inTools, inCall:
			// Between tool tags only a marker may follow.
			if m := longestPrefix(p.buf, ms.list); m != "" {
				p.buf = p.buf[len(m):]
				p.marker(m)
				continue
			}
			if !final && isPrefixOfAny(p.buf, ms.list) {
				return // wait for the rest of the marker
			}
			p.malformed() // text between tool tags, or a marker cut off
			continue
		case inTag, inCallHead:
			// The tag or head runs to its closing marker, which must begin
			// within maxHead bytes and come before the output ends.
			window := p.buf[:min(len(p.buf), maxHead+ms.max)]
			at, m := earliest(window, ms)
			switch {
			case at < 0 && !final && len(p.buf) == len(window) && len(p.buf)-heldSuffix(p.buf, ms.list) <= maxHead:
				return // wait for the rest of the tag or head
			case at < 0 || at > maxHead || m == eos:
				p.malformed()
			default:
				p.pending = p.buf[:at]
				p.buf = p.buf[at+len(m):]
				p.marker(m)
			}
			continue
		}
		// Reasoning, content or argument text, up to the next marker.
		at, m := earliest(p.buf, ms)
		if at < 0 {
			keep := 0
			if !final {
				keep = heldSuffix(p.buf, ms.list)
				if keep == 0 {
					keep = partialRune(p.buf)
				}
			}
			text := p.buf[:len(p.buf)-keep]
			p.buf = p.buf[len(p.buf)-keep:]
			p.text(text)
			return
		}
		text := p.buf[:at]
		p.buf = p.buf[at+len(m):]
		p.text(text)
		p.marker(m)
	}
}

// isPrefixOfAny reports whether s is a proper prefix of some marker.
func isPrefixOfAny(s string, markers []string) bool {
	for _, m := range markers {
		if len(s) < len(m) && strings.HasPrefix(m, s) {
			return true
		}
	}
	return false
}

// longestPrefix returns the longest marker that s begins with, or "".
func longestPrefix(s string, markers []string) string {
	best := ""
	for _, m := range markers {
		if len(m) > len(best) && strings.HasPrefix(s, m) {
			best = m
		}
	}
	return best
}

// skipSpace drops whitespace between tool tags; true if it dropped any.
func (p *Parser) skipSpace() bool {
	if p.st != inTools && p.st != inCall {
		return false
	}
	t := strings.TrimLeft(p.buf, " \t\r\n")
	if len(t) == len(p.buf) {
		return false
	}
	p.buf = t
	return true
}

// earliest finds the first marker in s, the longest at equal positions. It
// reads s only up to that marker, so consuming a buffer marker by marker
// takes linear time.
func earliest(s string, ms *markerTable) (int, string) {
	for i := 0; i < len(s); i++ {
		j := strings.IndexAny(s[i:], ms.firsts)
		if j < 0 {
			break
		}
		i += j
		if m := longestPrefix(s[i:], ms.list); m != "" {
			return i, m
		}
	}
	return -1, ""
}

// partialRune is the length of the first bytes of a UTF-8 character that
// end s, held so that no delta ends inside a character (0 if s ends at a
// character boundary, or in bytes that can never become one).
func partialRune(s string) int {
	for n := 1; n < utf8.UTFMax && n <= len(s); n++ {
		if utf8.RuneStart(s[len(s)-n]) {
			if utf8.FullRuneInString(s[len(s)-n:]) {
				return 0
			}
			return n
		}
	}
	return 0
}

// heldSuffix is the length of the longest suffix of s that is a proper
// prefix of a marker: text that must wait for the next delta.
func heldSuffix(s string, markers []string) int {
	keep := 0
	for _, m := range markers {
		for k := min(len(m)-1, len(s)); k > keep; k-- {
			if strings.HasSuffix(s, m[:k]) {
				keep = k
				break
			}
		}
	}
	return keep
}

// text handles text that holds no marker of the current state.
func (p *Parser) text(s string) {
	if s == "" {
		return
	}
	switch p.st {
	case inReasoning:
		p.emit(Reasoning, s)
	case inContent:
		p.emit(Content, s)
	case inArg:
		p.argText(s)
	}
}

// marker moves the state machine past marker m.
func (p *Parser) marker(m string) {
	if m == eos {
		p.st = done
		return
	}
	switch p.st {
	case inReasoning:
		if m == thinkEnd {
			p.st = inContent
			return
		}
		p.st = inTools // a tool block straight after reasoning (tolerated)
	case inContent:
		p.st = inTools
	case inTools:
		switch {
		case strings.HasPrefix(m, "</"), m == "<｜tool▁calls▁end｜>":
			p.st = inContent
		case m == "<｜DSML｜invoke":
			p.st, p.tag, p.opened = inTag, "invoke", m
		case m == "function<｜tool▁sep｜>":
			p.st, p.sepSeen, p.opened = inCallHead, true, m
		default: // <｜tool▁call▁begin｜>
			p.st, p.sepSeen, p.opened = inCallHead, false, m
		}
	case inCallHead:
		name := p.pending
		if p.f == V3 && !p.sepSeen {
			if i := strings.Index(name, "<｜tool▁sep｜>"); i >= 0 {
				name = name[i+len("<｜tool▁sep｜>"):]
			}
		}
		p.startCall(strings.TrimSpace(name))
		p.st = inArg
	case inTag:
		p.closeTag(p.pending)
	case inCall:
		if m == "</｜DSML｜invoke>" {
			if p.args == 0 {
				p.emitArgs("{}")
			} else {
				p.emitArgs("}")
			}
			p.endCall()
			p.st = inTools
			return
		}
		p.st, p.tag, p.opened = inTag, "parameter", m
	case inArg:
		switch p.f {
		case V32, V4:
			p.closeParam()
			p.st = inCall
		default:
			p.closeArgs()
			p.st = inTools
		}
	}
}

// closeArgs ends a V3/V3.1 call: empty arguments become {}, and arguments
// that are not JSON (already streamed, so not repaired) get a note.
func (p *Parser) closeArgs() {
	args := p.rawArg.String()
	p.rawArg.Reset()
	switch {
	case strings.TrimSpace(args) == "":
		p.emitArgs("{}")
	case !json.Valid([]byte(args)):
		p.note(fmt.Sprintf("tool call %d: its arguments are not valid JSON", p.inCallN))
	}
	p.endCall()
}

var (
	nameAttr   = regexp.MustCompile(`name\s*=\s*"([^"]*)"`)
	stringAttr = regexp.MustCompile(`string\s*=\s*"(true|false)"`)
)

// closeTag handles a DSML tag's attributes, up to its '>'.
func (p *Parser) closeTag(attrs string) {
	name := ""
	if m := nameAttr.FindStringSubmatch(attrs); m != nil {
		name = m[1]
	}
	if p.tag == "invoke" {
		p.startCall(name)
		p.args = 0
		clear(p.keys)
		p.st = inCall
		return
	}
	p.strArg = true
	if m := stringAttr.FindStringSubmatch(attrs); m != nil {
		p.strArg = m[1] == "true"
	}
	key := jsonString(name)
	sep := ", "
	if p.args == 0 {
		sep = "{"
	}
	p.args++
	if p.keys[name] {
		p.note(fmt.Sprintf("tool call %d: parameter %s is given more than once", p.inCallN, key))
	}
	if p.keys == nil {
		p.keys = map[string]bool{}
	}
	p.keys[name] = true
	head := sep + key + ": "
	if p.strArg {
		head += `"`
	}
	p.emitArgs(head)
	p.rawArg.Reset()
	p.st = inArg
}

// argText handles argument text: DSML string values JSON-escaped as they
// come, other DSML values kept whole for closeParam, V3/V3.1 JSON
// arguments passed through.
func (p *Parser) argText(s string) {
	switch {
	case (p.f == V32 || p.f == V4) && p.strArg:
		q := jsonString(s)
		p.emitArgs(q[1 : len(q)-1])
	case p.f == V32 || p.f == V4:
		p.rawArg.WriteString(s)
	default:
		p.rawArg.WriteString(s)
		p.emitArgs(s)
	}
}

// closeParam ends a DSML parameter value.
func (p *Parser) closeParam() {
	if p.strArg {
		p.emitArgs(`"`)
		return
	}
	v := p.rawArg.String()
	if json.Valid([]byte(v)) {
		p.emitArgs(v)
		return
	}
	p.emitArgs(jsonString(v))
	p.note(fmt.Sprintf("tool call %d: a non-string parameter that is not JSON was sent as a string", p.inCallN))
}

// jsonString quotes s as JSON the way DeepSeek's encoder writes it: <, >
// and & as themselves, not as json.Marshal's \u003c escapes. Invalid UTF-8
// becomes U+FFFD, byte by byte, so quoting a string in pieces cut between
// characters gives the same as quoting it whole.
func jsonString(s string) string {
	var b strings.Builder
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func (p *Parser) startCall(name string) {
	p.rawArg.Reset()
	p.inCallN = p.calls
	p.calls++
	p.events = append(p.events, Event{Kind: CallStart, Index: p.inCallN, Name: name, ID: p.newID(p.inCallN)})
}

func (p *Parser) endCall() {
	p.events = append(p.events, Event{Kind: CallEnd, Index: p.inCallN})
	p.inCallN = -1
}

func (p *Parser) emitArgs(s string) {
	if s != "" && p.inCallN >= 0 {
		p.events = append(p.events, Event{Kind: CallArgs, Index: p.inCallN, Text: s})
	}
}

func (p *Parser) emit(k Kind, s string) {
	if s == "" {
		return
	}
	if n := len(p.events); n > 0 && p.events[n-1].Kind == k {
		p.events[n-1].Text += s
		return
	}
	p.events = append(p.events, Event{Kind: k, Text: s})
}

func (p *Parser) note(s string) { p.events = append(p.events, Event{Kind: Note, Text: s}) }

// malformed leaves a tool block that does not follow the grammar: what is
// buffered goes out as content (an unfinished tag or head with the marker
// that opened it), with a note, and parsing goes on in the content state.
// A call left open is reported incomplete.
func (p *Parser) malformed() {
	if p.inCallN >= 0 {
		p.note(fmt.Sprintf("tool call %d is malformed; its arguments are incomplete", p.inCallN))
		p.inCallN = -1
	}
	p.note("the output's tool-call block is malformed; the rest is content")
	opened := p.st == inTag || p.st == inCallHead
	p.st = inContent
	if opened {
		// No content marker can begin inside a tool marker, so the
		// opener goes out at once rather than back into the buffer
		// (which would copy the whole buffer).
		p.text(p.opened)
	}
}

// ToolCall is a parsed tool call.
type ToolCall struct {
	ID, Name  string
	Arguments string // JSON
	// Complete says the call closed; a call cut off by the end of the
	// output is reported, never as a valid call.
	Complete bool
}

// Result is a whole output, parsed.
type Result struct {
	Reasoning, Content string
	ToolCalls          []ToolCall
	Notes              []string
}

// Add folds events into r: the events of one parser, in order. Each field
// grows by one concatenation per call, so folding a whole output (as
// Parse does) takes linear time; a stream folded delta by delta copies its
// text once per Add.
func (r *Result) Add(events []Event) {
	var reasoning, content strings.Builder
	args := map[int]*strings.Builder{}
	for _, e := range events {
		switch e.Kind {
		case Reasoning:
			reasoning.WriteString(e.Text)
		case Content:
			content.WriteString(e.Text)
		case CallStart:
			r.ToolCalls = append(r.ToolCalls, ToolCall{ID: e.ID, Name: e.Name})
		case CallArgs:
			b := args[e.Index]
			if b == nil {
				b = &strings.Builder{}
				args[e.Index] = b
			}
			b.WriteString(e.Text)
		case CallEnd:
			r.ToolCalls[e.Index].Complete = true
		case Note:
			r.Notes = append(r.Notes, e.Text)
		}
	}
	r.Reasoning += reasoning.String()
	r.Content += content.String()
	for i, b := range args {
		r.ToolCalls[i].Arguments += b.String()
	}
}

// Parse parses a whole output: the streaming parser fed one chunk.
func Parse(f Format, startInReasoning bool, output string) Result {
	p := New(f, startInReasoning, nil)
	var r Result
	r.Add(p.Feed(output))
	r.Add(p.Finish())
	return r
}
