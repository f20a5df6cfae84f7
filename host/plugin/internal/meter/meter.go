// Package meter rewrites a WebAssembly module so that it calls back to the
// host at a bounded interval of its own progress, whatever it runs: at the
// start of every function and of every loop iteration the module counts
// down a counter of its own (a new mutable i32 global), and when the
// counter reaches zero it calls the import Module.Tick, which answers the
// next count. Every path through a module that does not end passes through
// one of these points (straight-line code is finite; anything unbounded
// loops or calls), so a host whose Tick checks a deadline, and traps when it
// has passed, stops any call within one interval of the deadline.
//
// This is what wazero's WithCloseOnContextDone does too, by a different
// price: wazero (1.12) leaves compiled code for Go at every loop iteration
// (about 120 ns) and checks nothing at function entry, so a module that
// recurses in a tree (f calls f twice, to depth 60) runs forever under it.
// Here the count costs a load, a store and a branch; the host is entered
// once per interval. RATIONALE.md, "How is a sandboxed call stopped?",
// has the measurements.
//
// Instrument understands the core instruction set and the extensions
// wazero runs (sign extension, saturating truncation, bulk memory,
// reference types, SIMD, threads, tail calls). Anything else — an opcode it
// does not know, a malformed section — is an error, and the caller keeps the
// module as it was (with another way to stop it).
//
// CheckCounts, which reads declarations the same way, refuses a module
// whose declared counts would make a decoder allocate far more than the
// module's size, before wazero sees it.
package meter

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The import every instrumented module calls: Module.Tick, of type
// () → i32, whose result is the count to the next call.
const (
	Module = "ulan_meter"
	Tick   = "tick"
)

// Section ids (WebAssembly core spec §5.5.2).
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// rank is a known section's place in a module's order.
var rank = map[byte]int{secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13}

// Opcodes the rewriter emits or renumbers.
const (
	opBlockEmpty = 0x40
	opIf         = 0x04
	opLoop       = 0x03
	opEnd        = 0x0B
	opCall       = 0x10
	opReturnCall = 0x12
	opGlobalGet  = 0x23
	opGlobalSet  = 0x24
	opI32Const   = 0x41
	opI32LeS     = 0x4C
	opI32Sub     = 0x6B
	opRefFunc    = 0xD2
)

var header = []byte{0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00}

// section is one section of a module, its payload as read.
type section struct {
	id      byte
	payload []byte
}

// Instrument returns wasm with the counter and its checks in, the counter
// starting at quantum (> 0). It does not change what the module computes,
// only adds the calls to Module.Tick: an import appended after the module's
// own (so every defined function's index moves up by one, and Instrument
// renumbers calls, references, exports, the start function, element
// segments and the name section to match). A module that already imports
// from Module is refused.
func Instrument(wasm []byte, quantum int32) ([]byte, error) {
	if quantum <= 0 {
		return nil, fmt.Errorf("meter: quantum %d", quantum)
	}
	if len(wasm) < len(header) || string(wasm[:len(header)]) != string(header) {
		return nil, errors.New("meter: not a WebAssembly 1.0 binary module")
	}
	var secs []section
	for r := (reader{b: wasm, pos: len(header)}); r.pos < len(r.b); {
		id := r.byte()
		n := r.u32()
		payload := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("meter: section %d: %w", id, r.err)
		}
		if id != secCustom {
			if _, ok := rank[id]; !ok {
				return nil, fmt.Errorf("meter: unknown section id %d", id)
			}
		}
		secs = append(secs, section{id, payload})
	}
	m := &module{secs: secs}
	if err := m.count(); err != nil {
		return nil, fmt.Errorf("meter: %w", err)
	}
	if err := m.rewrite(quantum); err != nil {
		return nil, fmt.Errorf("meter: %w", err)
	}
	out := append([]byte(nil), header...)
	for _, s := range m.secs {
		out = append(out, s.id)
		out = binary.AppendUvarint(out, uint64(len(s.payload)))
		out = append(out, s.payload...)
	}
	return out, nil
}

// module is a module being rewritten.
type module struct {
	secs []section
	// Counts before the rewrite.
	types, funcImports, globals int
	// What the rewrite adds: the tick's type, function and the counter.
	tickType, tick, counter uint32
}

// find returns the index of the section with id, −1 if absent.
func (m *module) find(id byte) int {
	for i, s := range m.secs {
		if s.id == id {
			return i
		}
	}
	return -1
}

// count reads how many types, imported functions and globals there are.
func (m *module) count() error {
	seen := map[byte]bool{}
	last := 0
	for _, s := range m.secs {
		if s.id == secCustom {
			continue
		}
		if seen[s.id] || rank[s.id] < last {
			return fmt.Errorf("section %d out of order or repeated", s.id)
		}
		seen[s.id], last = true, rank[s.id]
	}
	if i := m.find(secType); i >= 0 {
		r := reader{b: m.secs[i].payload}
		m.types = int(r.u32())
		if r.err != nil {
			return fmt.Errorf("type section: %w", r.err)
		}
	}
	if i := m.find(secImport); i >= 0 {
		r := reader{b: m.secs[i].payload}
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			mod, _ := r.name(), r.name()
			if mod == Module {
				return fmt.Errorf("the module imports from %s itself", Module)
			}
			switch r.importDesc() {
			case 0x00:
				m.funcImports++
			case 0x03:
				m.globals++
			}
		}
		if err := r.done(); err != nil {
			return fmt.Errorf("import section: %w", err)
		}
	}
	if i := m.find(secGlobal); i >= 0 {
		r := reader{b: m.secs[i].payload}
		m.globals += int(r.u32())
		if r.err != nil {
			return fmt.Errorf("global section: %w", r.err)
		}
	}
	return nil
}

// rewrite adds the tick's type, import and counter, and the checks, and
// renumbers the function indices.
func (m *module) rewrite(quantum int32) error {
	m.tickType, m.tick, m.counter = uint32(m.types), uint32(m.funcImports), uint32(m.globals)
	// The type: () → i32.
	if err := m.appendEntry(secType, []byte{0x60, 0x00, 0x01, 0x7F}); err != nil {
		return err
	}
	// The import, after the others.
	imp := appendName(nil, Module)
	imp = appendName(imp, Tick)
	imp = append(imp, 0x00)
	imp = binary.AppendUvarint(imp, uint64(m.tickType))
	if err := m.appendEntry(secImport, imp); err != nil {
		return err
	}
	// The counter: a mutable i32 starting at quantum.
	g := []byte{0x7F, 0x01, opI32Const}
	g = binary.AppendVarint(g, int64(quantum))
	g = append(g, opEnd)
	if i := m.find(secGlobal); i >= 0 {
		if err := m.mapEntries(i, m.global); err != nil {
			return fmt.Errorf("global section: %w", err)
		}
	}
	if err := m.appendEntry(secGlobal, g); err != nil {
		return err
	}
	for i := range m.secs {
		var err error
		switch s := &m.secs[i]; s.id {
		case secExport:
			err = m.mapEntries(i, m.export)
		case secStart:
			r := reader{b: s.payload}
			f := m.funcIndex(r.u32())
			if err = r.done(); err == nil {
				s.payload = binary.AppendUvarint(nil, uint64(f))
			}
		case secElement:
			err = m.mapEntries(i, m.element)
		case secCode:
			err = m.mapEntries(i, m.code)
		case secCustom:
			err = m.names(s)
		}
		if err != nil {
			return fmt.Errorf("section %d: %w", m.secs[i].id, err)
		}
	}
	return nil
}

// funcIndex is a function index after the tick's import.
func (m *module) funcIndex(f uint32) uint32 {
	if f >= m.tick {
		return f + 1
	}
	return f
}

// appendEntry adds one entry to the vector in the section with id, making
// the section where the module has none.
func (m *module) appendEntry(id byte, entry []byte) error {
	i := m.find(id)
	if i < 0 {
		at := len(m.secs)
		for j, s := range m.secs {
			if s.id != secCustom && rank[s.id] > rank[id] {
				at = j
				break
			}
		}
		m.secs = append(m.secs[:at], append([]section{{id, []byte{0}}}, m.secs[at:]...)...)
		i = at
	}
	r := reader{b: m.secs[i].payload}
	n := r.u32()
	if r.err != nil {
		return fmt.Errorf("section %d: %w", id, r.err)
	}
	out := binary.AppendUvarint(nil, uint64(n)+1)
	out = append(out, r.b[r.pos:]...)
	m.secs[i].payload = append(out, entry...)
	return nil
}

// mapEntries rewrites the vector in section i entry by entry: fn reads one
// entry from r and appends what replaces it to out.
func (m *module) mapEntries(i int, fn func(r *reader, out []byte) []byte) error {
	r := reader{b: m.secs[i].payload}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		out = fn(&r, out)
	}
	if err := r.done(); err != nil {
		return err
	}
	m.secs[i].payload = out
	return nil
}

// global copies a global with its initialiser renumbered.
func (m *module) global(r *reader, out []byte) []byte {
	start := r.pos
	r.valType()
	r.byte()
	out = append(out, r.b[start:r.pos]...)
	return m.expr(r, out, false)
}

// export copies an export, its index renumbered if it is a function's.
func (m *module) export(r *reader, out []byte) []byte {
	start := r.pos
	r.name()
	kind := r.byte()
	out = append(out, r.b[start:r.pos]...)
	idx := r.u32()
	if kind == 0x00 {
		idx = m.funcIndex(idx)
	}
	return binary.AppendUvarint(out, uint64(idx))
}

// element copies an element segment with its function indices renumbered.
func (m *module) element(r *reader, out []byte) []byte {
	r.element(func(b []byte) { out = append(out, b...) },
		func() { out = m.expr(r, out, false) },
		func() { out = binary.AppendUvarint(out, uint64(m.funcIndex(r.u32()))) })
	return out
}

// code rewrites one function body: the check at its start and after the
// head of every loop, and its function indices renumbered.
func (m *module) code(r *reader, out []byte) []byte {
	size := r.u32()
	body := reader{b: r.bytes(int(size))}
	if r.err != nil {
		return out
	}
	for n := body.u32(); n > 0 && body.err == nil; n-- {
		body.u32()
		body.valType()
	}
	nb := append([]byte(nil), body.b[:body.pos]...)
	nb = m.check(nb)
	nb = m.expr(&body, nb, true)
	if body.err == nil && body.pos != len(body.b) {
		body.fail(errors.New("bytes after the function's end"))
	}
	if body.err != nil {
		r.fail(body.err)
		return out
	}
	out = binary.AppendUvarint(out, uint64(len(nb)))
	return append(out, nb...)
}

// check appends the count and its call: counter −= 1; if counter ≤ 0
// { counter = tick() }. (≤, not =: a tick that traps leaves the counter at
// 0, and the instance must not then run 2³² checks unticked.) It leaves the
// operand stack as it was.
func (m *module) check(out []byte) []byte {
	g := binary.AppendUvarint(nil, uint64(m.counter))
	out = append(out, opGlobalGet)
	out = append(out, g...)
	out = append(out, opI32Const, 0x01, opI32Sub, opGlobalSet)
	out = append(out, g...)
	out = append(out, opGlobalGet)
	out = append(out, g...)
	out = append(out, opI32Const, 0x00, opI32LeS, opIf, opBlockEmpty, opCall)
	out = binary.AppendUvarint(out, uint64(m.tick))
	out = append(out, opGlobalSet)
	out = append(out, g...)
	return append(out, opEnd)
}

// expr copies instructions up to and including the end that closes the
// expression, renumbering function indices; with checks, it adds one after
// the head of each loop.
func (m *module) expr(r *reader, out []byte, checks bool) []byte {
	depth := 1
	from := r.pos // bytes from here on are copied as they are
	flush := func(to int) {
		out = append(out, r.b[from:to]...)
	}
	for r.err == nil {
		at := r.pos
		op := r.byte()
		switch op {
		case opEnd:
			if depth--; depth == 0 {
				flush(r.pos)
				return out
			}
		case 0x02, opLoop, opIf: // block, loop, if
			r.blockType()
			depth++
			if op == opLoop && checks {
				flush(r.pos)
				out = m.check(out)
				from = r.pos
			}
		case opCall, opReturnCall, opRefFunc:
			f := r.u32()
			flush(at + 1)
			out = binary.AppendUvarint(out, uint64(m.funcIndex(f)))
			from = r.pos
		default:
			r.immediates(op)
		}
	}
	return out
}

// names renumbers the function indices of the "name" custom section
// (function and local names); its other subsections are dropped, and a
// name section it cannot read is dropped whole: names only label traces.
func (m *module) names(s *section) error {
	r := reader{b: s.payload}
	if r.name() != "name" || r.err != nil {
		return nil
	}
	out := append([]byte(nil), s.payload[:r.pos]...)
	for r.pos < len(r.b) && r.err == nil {
		id := r.byte()
		sub := reader{b: r.bytes(int(r.u32()))}
		var payload []byte
		switch id {
		case 0: // the module's name, which must fill its subsection: wazero
			// reads a name there whatever the subsection's size says
			sub.name()
			payload = sub.b
		case 1: // function names: a name map
			payload = m.nameMap(&sub, nil)
		case 2: // local names: per function, a name map
			n := sub.u32()
			payload = binary.AppendUvarint(nil, uint64(n))
			for ; n > 0 && sub.err == nil; n-- {
				payload = binary.AppendUvarint(payload, uint64(m.funcIndex(sub.u32())))
				start := sub.pos
				for k := sub.u32(); k > 0 && sub.err == nil; k-- {
					sub.u32()
					sub.name()
				}
				payload = append(payload, sub.b[start:sub.pos]...)
			}
		default:
			continue
		}
		if sub.err != nil || sub.pos != len(sub.b) {
			r.fail(errors.New("malformed"))
			break
		}
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(payload)))
		out = append(out, payload...)
	}
	if r.err != nil {
		// Unreadable names: drop them, keeping the section as an empty one.
		out = appendName(nil, "name")
	}
	s.payload = out
	return nil
}

// nameMap copies a function name map with its indices renumbered.
func (m *module) nameMap(r *reader, out []byte) []byte {
	n := r.u32()
	out = binary.AppendUvarint(out, uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		out = binary.AppendUvarint(out, uint64(m.funcIndex(r.u32())))
		start := r.pos
		r.name()
		out = append(out, r.b[start:r.pos]...)
	}
	return out
}

// appendName appends a WebAssembly name: its length, then its bytes.
func appendName(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}
