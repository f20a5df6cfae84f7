package meter

import (
	"errors"
	"fmt"
)

// MaxLocals is the most locals CheckCounts lets a function declare:
// wasmtime's and V8's limit.
const MaxLocals = 50000

// CheckCounts reports a module that declares, anywhere a decoder allocates
// by the declaration, more than its bytes can hold: a section longer than
// the module, a vector of more entries than the bytes left for them, a
// data segment longer than its section, more than MaxLocals locals in a
// function. wazero 1.12 allocates by such counts before it reads the
// entries, so a few hundred malformed bytes can ask it for tens of GB and
// take the process down; a module refused here never reaches it. Nothing
// else is checked: a module that passes may still be invalid, for the
// decoder to say. Bytes that are not a WebAssembly module pass too, for the
// same reason. One more check guards the validator: every function's type
// index must name a declared type, since wazero 1.12 checks a call against
// its callee's type before it checks that type exists, and panics.
func CheckCounts(wasm []byte) error {
	if len(wasm) < len(header) || string(wasm[:len(header)]) != string(header) {
		return nil
	}
	r := reader{b: wasm, pos: len(header)}
	types := 0 // declared by the type section, which comes first
	for r.pos < len(r.b) {
		id := r.byte()
		size := r.u32()
		if r.err == nil && int64(size) > int64(len(r.b)-r.pos) {
			return fmt.Errorf("section %d declares %d bytes, and %d are left", id, size, len(r.b)-r.pos)
		}
		payload := r.bytes(int(size))
		if r.err != nil {
			return fmt.Errorf("section %d: %w", id, r.err)
		}
		if err := checkSection(id, payload, &types); err != nil {
			return fmt.Errorf("section %d: %w", id, err)
		}
	}
	return nil
}

// checkSection checks one section's counts, and its functions' type
// indices against types, which the type section sets.
func checkSection(id byte, payload []byte, types *int) error {
	r := &reader{b: payload}
	entries := func(each func()) {
		for n := r.count(); n > 0 && r.err == nil; n-- {
			each()
		}
	}
	typeIndex := func() {
		if t := r.u32(); r.err == nil && int64(t) >= int64(*types) {
			r.fail(fmt.Errorf("a function has type %d, and the module declares %d types", t, *types))
		}
	}
	switch id {
	case secCustom:
		if r.name() == "name" && r.err == nil {
			return checkNames(r)
		}
		return nil
	case secType:
		*types = 0
		entries(func() {
			if form := r.byte(); form != 0x60 {
				r.fail(fmt.Errorf("type form %#x", form))
			}
			entries(r.valType) // parameters
			entries(r.valType) // results
			*types++
		})
	case secImport:
		entries(func() {
			r.name()
			r.name()
			if r.pos < len(r.b) && r.b[r.pos] == 0x00 { // a function
				r.byte()
				typeIndex()
				return
			}
			r.importDesc()
		})
	case secFunction:
		entries(typeIndex)
	case secTable:
		entries(func() { r.refType(); r.limits() })
	case secMemory:
		entries(r.limits)
	case secTag:
		entries(func() { r.byte(); r.u32() })
	case secGlobal:
		entries(func() { r.valType(); r.byte(); r.skipExpr() })
	case secExport:
		entries(func() { r.name(); r.byte(); r.u32() })
	case secElement:
		entries(func() { r.element(nil, r.skipExpr, func() { r.u32() }) })
	case secCode:
		entries(func() {
			body := reader{b: r.bytes(int(r.u32()))}
			locals := uint64(0)
			for n := body.count(); n > 0 && body.err == nil; n-- {
				locals += uint64(body.u32())
				body.valType()
			}
			if body.err == nil && locals > MaxLocals {
				body.fail(fmt.Errorf("a function declares %d locals (at most %d)", locals, MaxLocals))
			}
			if body.err != nil {
				r.fail(body.err)
			}
		})
	case secData:
		entries(func() {
			switch flags := r.u32(); flags {
			case 0:
				r.skipExpr()
			case 1:
			case 2:
				r.u32()
				r.skipExpr()
			default:
				r.fail(fmt.Errorf("data segment flags %d", flags))
			}
			r.bytes(int(r.count()))
		})
	}
	return r.err
}

// checkNames checks the counts of the name section's function and local
// name maps; other subsections are skipped.
func checkNames(r *reader) error {
	for r.pos < len(r.b) && r.err == nil {
		id := r.byte()
		sub := reader{b: r.bytes(int(r.u32()))}
		switch id {
		case 1:
			for n := sub.count(); n > 0 && sub.err == nil; n-- {
				sub.u32()
				sub.name()
			}
		case 2:
			for n := sub.count(); n > 0 && sub.err == nil; n-- {
				sub.u32()
				for k := sub.count(); k > 0 && sub.err == nil; k-- {
					sub.u32()
					sub.name()
				}
			}
		}
		if sub.err != nil {
			r.fail(fmt.Errorf("name subsection %d: %w", id, sub.err))
		}
	}
	return r.err
}

// count reads a vector's length and fails if the bytes left cannot hold
// that many entries of at least one byte each.
func (r *reader) count() uint32 {
	n := r.u32()
	if r.err == nil && int64(n) > int64(len(r.b)-r.pos) {
		r.fail(fmt.Errorf("%d entries declared, %d bytes left", n, len(r.b)-r.pos))
		return 0
	}
	return n
}

// skipExpr reads a constant expression, up to and including its end.
func (r *reader) skipExpr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case opEnd:
			return
		case opCall, opReturnCall, opRefFunc:
			r.u32()
		case 0x02, opLoop, opIf:
			r.fail(errors.New("a block in a constant expression"))
		default:
			r.immediates(op)
		}
	}
}
