package main

import (
	"regexp/syntax"
	"unicode/utf8"
)

// live answers, for a compiled program, the question Go's regexp cannot:
// where in a text that more text may follow could a match still start? It
// simulates the program as a Thompson NFA (Go's own pike VM, without
// captures or priorities), one thread per instruction, each carrying the
// earliest position it was started from. It runs incrementally: between
// calls it keeps the threads that reached the end of the text, before the
// assertions there (which the next character decides), so each byte is
// stepped once. The answer over-approximates — an assertion at the end of
// the text counts as passing, and a thread that reached Match at the end
// as alive — which only makes the hook hold back a little more. It is not
// safe for concurrent use.
type live struct {
	prog *syntax.Prog
	// pending are the threads at the end of the text stepped so far, in
	// order of their start, before their closure there.
	pending []thread
	q       queue
	stack   []uint32
}

// thread is an instruction reached from a match started at byte start.
type thread struct {
	pc    uint32
	start int
}

// queue is a sparse set of threads keyed by pc (Briggs–Torczon, as Go's
// regexp uses). Threads enter in order of their start, so the first thread
// to reach an instruction carries its earliest start.
type queue struct {
	sparse []uint32
	dense  []thread
}

func newQueue(n int) queue { return queue{sparse: make([]uint32, n), dense: make([]thread, 0, n)} }

func (q *queue) has(pc uint32) bool {
	i := q.sparse[pc]
	return int(i) < len(q.dense) && q.dense[i].pc == pc
}

func (q *queue) add(pc uint32, start int) {
	q.sparse[pc] = uint32(len(q.dense))
	q.dense = append(q.dense, thread{pc, start})
}

func newLive(prog *syntax.Prog) *live {
	return &live{prog: prog, q: newQueue(len(prog.Inst))}
}

// reset forgets every thread: the next advance starts from offset 0.
func (l *live) reset() { l.pending = l.pending[:0] }

// drop moves the text's start forward by n bytes (they were released):
// thread starts are shifted by n, and a thread that started in them counts
// as started at the new start. That over-approximates, which is sound.
func (l *live) drop(n int) {
	for i := range l.pending {
		l.pending[i].start = max(l.pending[i].start-n, 0)
	}
}

// advance steps the threads over text[from:], text[:from] having been
// stepped before (from is 0 after reset), and returns the smallest byte
// offset in text at which a match could start that is not decided by text
// alone: one that could still grow, start, or fail if more text came; or
// len(text) when every match in text is final. before is the character
// before text (-1 at the start of the content), for the assertions at its
// start.
func (l *live) advance(text string, from int, before rune) int {
	r1 := before
	if from > 0 {
		r1, _ = utf8.DecodeLastRuneInString(text[:from])
	}
	start := uint32(l.prog.Start)
	for i := from; i < len(text); {
		r2, w := utf8.DecodeRuneInString(text[i:])
		l.q.dense = l.q.dense[:0]
		for _, t := range l.pending {
			l.closure(t.pc, t.start, r1, r2, false)
		}
		// A match may start here: after the older threads, so that each
		// instruction keeps its earliest start.
		l.closure(start, i, r1, r2, false)
		l.pending = l.pending[:0]
		for _, t := range l.q.dense {
			if inst := &l.prog.Inst[t.pc]; l.step(inst, r2) {
				l.pending = append(l.pending, thread{inst.Out, t.start})
			}
		}
		r1 = r2
		i += w
	}
	l.q.dense = l.q.dense[:0]
	for _, t := range l.pending {
		l.closure(t.pc, t.start, r1, -1, true)
	}
	l.closure(start, len(text), r1, -1, true)
	for _, t := range l.q.dense {
		switch l.prog.Inst[t.pc].Op {
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL, syntax.InstMatch:
			return t.start // the first in the queue has the earliest start
		}
	}
	return len(text)
}

// earliest is advance over a whole text from scratch.
func (l *live) earliest(text string, before rune) int {
	l.reset()
	return l.advance(text, 0, before)
}

// step reports whether the consuming instruction i accepts r, as Go's
// regexp decides it.
func (l *live) step(i *syntax.Inst, r rune) bool {
	switch i.Op {
	case syntax.InstRune:
		return i.MatchRune(r)
	case syntax.InstRune1:
		return r == i.Rune[0]
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return r != '\n'
	}
	return false
}

// closure adds pc and what it reaches without consuming a character to
// the queue, at a position between r1 and r2; at the end of the text every
// assertion may hold.
func (l *live) closure(pc uint32, start int, r1, r2 rune, atEnd bool) {
	ctx := syntax.EmptyOpContext(r1, r2)
	l.stack = append(l.stack[:0], pc)
	for len(l.stack) > 0 {
		pc := l.stack[len(l.stack)-1]
		l.stack = l.stack[:len(l.stack)-1]
		if l.q.has(pc) {
			continue
		}
		l.q.add(pc, start)
		i := &l.prog.Inst[pc]
		switch i.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			l.stack = append(l.stack, i.Arg, i.Out)
		case syntax.InstCapture, syntax.InstNop:
			l.stack = append(l.stack, i.Out)
		case syntax.InstEmptyWidth:
			if atEnd || syntax.EmptyOp(i.Arg)&^ctx == 0 {
				l.stack = append(l.stack, i.Out)
			}
		}
	}
}

// matchesEmpty reports whether prog may match empty text somewhere: Match
// is reachable from the start without consuming a character, whatever the
// assertions say.
func matchesEmpty(prog *syntax.Prog) bool {
	l := newLive(prog)
	l.closure(uint32(prog.Start), 0, -1, -1, true)
	for _, t := range l.q.dense {
		if prog.Inst[t.pc].Op == syntax.InstMatch {
			return true
		}
	}
	return false
}
