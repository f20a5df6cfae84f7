package meter

import (
	"errors"
	"fmt"
)

// reader reads a WebAssembly binary; its first error sticks, and reads after
// it return zero values.
type reader struct {
	b   []byte
	pos int
	err error
}

var errShort = errors.New("unexpected end")

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.pos = len(r.b)
}

// done reports the reader's error, or one if bytes are left over.
func (r *reader) done() error {
	if r.err == nil && r.pos != len(r.b) {
		return fmt.Errorf("%d bytes after the last entry", len(r.b)-r.pos)
	}
	return r.err
}

func (r *reader) byte() byte {
	if r.pos >= len(r.b) {
		r.fail(errShort)
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b)-r.pos {
		r.fail(errShort)
		return nil
	}
	s := r.b[r.pos : r.pos+n]
	r.pos += n
	return s
}

// leb reads an LEB128 number of at most bits bits and returns its raw value
// (unsigned; for a signed one, the caller only skips it).
func (r *reader) leb(bits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 7*((bits+6)/7) { // more than ⌈bits/7⌉ bytes
			r.fail(errors.New("LEB128 number too long"))
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7F) << shift
		}
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) u32() uint32 {
	v := r.leb(32)
	if v > 1<<32-1 {
		r.fail(errors.New("u32 out of range"))
		return 0
	}
	return uint32(v)
}

// name reads a name (a length and its bytes).
func (r *reader) name() string { return string(r.bytes(int(r.u32()))) }

// valType reads a value type: a number type, v128 or a reference type.
func (r *reader) valType() {
	switch c := r.byte(); c {
	case 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F:
	default:
		r.fail(fmt.Errorf("value type %#x", c))
	}
}

// refType reads funcref or externref.
func (r *reader) refType() {
	switch c := r.byte(); c {
	case 0x70, 0x6F:
	default:
		r.fail(fmt.Errorf("reference type %#x", c))
	}
}

// limits reads a table's or a memory's limits (32 or 64 bits, shared).
func (r *reader) limits() {
	flags := r.byte()
	if flags > 7 {
		r.fail(fmt.Errorf("limits flags %#x", flags))
		return
	}
	r.leb(64)
	if flags&1 != 0 {
		r.leb(64)
	}
}

// blockType reads a block type: empty, a value type or a type index (s33).
func (r *reader) blockType() {
	if r.pos >= len(r.b) {
		r.fail(errShort)
		return
	}
	switch r.b[r.pos] {
	case opBlockEmpty, 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F:
		r.pos++
	default:
		r.leb(33)
	}
}

// memarg reads an alignment (with a memory index when its bit 6 is set)
// and an offset.
func (r *reader) memarg() {
	if align := r.u32(); align&0x40 != 0 {
		r.u32()
	}
	r.leb(64)
}

// immediates skips the immediates of op, which is none of the opcodes
// expr handles itself (end, block, loop, if, call, return_call, ref.func).
func (r *reader) immediates(op byte) {
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0F || op == 0x1A || op == 0x1B || op == 0xD1:
		// unreachable, nop, else, return, drop, select, ref.is_null
	case op == 0x0C || op == 0x0D: // br, br_if
		r.u32()
	case op == 0x0E: // br_table
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.u32()
		}
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1C: // select t*
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.valType()
		}
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3E: // loads and stores
		r.memarg()
	case op == 0x3F || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == opI32Const:
		r.leb(32)
	case op == 0x42: // i64.const
		r.leb(64)
	case op == 0x43: // f32.const
		r.bytes(4)
	case op == 0x44: // f64.const
		r.bytes(8)
	case op >= 0x45 && op <= 0xC4: // numeric, sign extension
	case op == 0xD0: // ref.null
		r.refType()
	case op == 0xFC:
		r.prefixFC()
	case op == 0xFD:
		r.prefixFD()
	case op == 0xFE:
		r.prefixFE()
	default:
		r.fail(fmt.Errorf("opcode %#x", op))
	}
}

// prefixFC skips a saturating truncation, bulk memory or table instruction.
func (r *reader) prefixFC() {
	switch sub := r.u32(); {
	case sub <= 7: // trunc_sat
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17): // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	default:
		r.fail(fmt.Errorf("opcode 0xfc %d", sub))
	}
}

// prefixFD skips a SIMD instruction.
func (r *reader) prefixFD() {
	switch sub := r.u32(); {
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		r.memarg()
		r.byte()
	case sub <= 255:
	default:
		r.fail(fmt.Errorf("opcode 0xfd %d", sub))
	}
}

// prefixFE skips an atomic instruction.
func (r *reader) prefixFE() {
	switch sub := r.u32(); {
	case sub == 3: // atomic.fence
		r.byte()
	case sub <= 2 || (sub >= 0x10 && sub <= 0x4E):
		r.memarg()
	default:
		r.fail(fmt.Errorf("opcode 0xfe %d", sub))
	}
}

// importDesc reads an import's descriptor after its two names and returns
// its kind (0 function, 1 table, 2 memory, 3 global, 4 tag).
func (r *reader) importDesc() byte {
	switch kind := r.byte(); kind {
	case 0x00:
		r.u32()
		return kind
	case 0x01:
		r.refType()
		r.limits()
		return kind
	case 0x02:
		r.limits()
		return kind
	case 0x03:
		r.valType()
		r.byte()
		return kind
	case 0x04: // tag: an attribute and a type index
		r.byte()
		r.u32()
		return kind
	default:
		r.fail(fmt.Errorf("import kind %#x", kind))
		return kind
	}
}

// element walks an element segment, any of its 8 forms: the bytes that
// stay as they are (flags, table index, element kind or reference type,
// the count) go to raw, nil to skip them; the offset expression and items
// that are expressions to expr, items that are function indices to index,
// each of which reads its part itself.
func (r *reader) element(raw func([]byte), expr, index func()) {
	mark := r.pos
	take := func() {
		if raw != nil {
			raw(r.b[mark:r.pos])
		}
	}
	flags := r.u32()
	if flags > 7 {
		r.fail(fmt.Errorf("element segment flags %d", flags))
		return
	}
	if flags&2 != 0 && flags&1 == 0 { // an explicit table
		r.u32()
	}
	take()
	if flags&1 == 0 { // active: the offset
		expr()
	}
	mark = r.pos
	if flags&3 != 0 { // elemkind (flags 1–3) or reftype (5–7)
		r.byte()
	}
	n := r.count()
	take()
	for ; n > 0 && r.err == nil; n-- {
		if flags&4 != 0 {
			expr()
		} else {
			index()
		}
	}
}
