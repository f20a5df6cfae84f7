package gguf

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
)

// The smallest a KV pair and a tensor info can be in the file. The header's
// counts are checked against the bytes left using these before anything is
// allocated, so a 1 KB file cannot claim 2^60 tensors.
const (
	minKVSize         = 8 + 1 + 4 + 1         // key length, one key byte, value type, a uint8
	minTensorInfoSize = 8 + 1 + 4 + 8 + 4 + 8 // name length, one name byte, n_dims, one dim, type, offset
	maxDims           = 4                     // GGML_MAX_DIMS
)

var le = binary.LittleEndian

// Parse parses a GGUF image held in memory. The File keeps data and its
// Data method returns sub-slices of it, so data must not change while the
// File is in use. A malformed image gives a *FormatError.
func Parse(data []byte) (*File, error) {
	d := &decoder{b: data}
	f := &File{data: data, alignment: DefaultAlignment}

	if len(data) < 4 {
		return nil, &FormatError{Item: "header", Msg: fmt.Sprintf("file is %d bytes, too short for the GGUF magic", len(data)), Err: io.ErrUnexpectedEOF}
	}
	if string(data[:4]) != "GGUF" {
		return nil, &FormatError{Item: "header", Msg: fmt.Sprintf("magic %q, want \"GGUF\"", data[:4])}
	}
	d.off = 4
	version, err := d.u32()
	if err != nil {
		return nil, within(err, "header")
	}
	switch {
	case version == 2 || version == 3:
		// Version 3 only added big-endian files (refused by the next-but-one
		// case), so little-endian files of versions 2 and 3 share a layout.
	case version == 1:
		return nil, &FormatError{Item: "header", Offset: 4, Msg: "GGUF version 1 is not supported (it used 32-bit counts); convert the model again with a current llama.cpp"}
	case version != 0 && version&0xffff == 0:
		return nil, &FormatError{Item: "header", Offset: 4, Msg: fmt.Sprintf("version %#x: the file looks big-endian, which is not supported", version)}
	default:
		return nil, &FormatError{Item: "header", Offset: 4, Msg: fmt.Sprintf("GGUF version %d is not supported, want 3", version)}
	}
	f.version = version

	nTensorsOff := d.off
	nTensors, err := d.u64()
	if err != nil {
		return nil, within(err, "header")
	}
	nKVOff := d.off
	nKV, err := d.u64()
	if err != nil {
		return nil, within(err, "header")
	}
	left := d.left()
	if nKV > left/minKVSize {
		return nil, &FormatError{Item: "header", Offset: int64(nKVOff), Msg: fmt.Sprintf("%d keys cannot fit in the %d bytes left", nKV, left), Err: io.ErrUnexpectedEOF}
	}
	if nTensors > (left-nKV*minKVSize)/minTensorInfoSize {
		return nil, &FormatError{Item: "header", Offset: int64(nTensorsOff), Msg: fmt.Sprintf("%d tensor infos and %d keys cannot fit in the %d bytes left", nTensors, nKV, left), Err: io.ErrUnexpectedEOF}
	}

	f.kvs = make([]KV, 0, nKV)
	f.kvIndex = make(map[string]int, nKV)
	kvStarts := make([]uint64, 0, nKV)
	for i := range nKV {
		start := d.off
		kv, err := d.kv(i)
		if err != nil {
			return nil, err
		}
		if j, dup := f.kvIndex[kv.Key]; dup {
			return nil, &FormatError{Item: fmt.Sprintf("key %q", kv.Key), Offset: int64(start), Msg: fmt.Sprintf("duplicate key (first at offset %d)", kvStarts[j])}
		}
		f.kvIndex[kv.Key] = len(f.kvs)
		f.kvs = append(f.kvs, kv)
		kvStarts = append(kvStarts, start)
	}

	if i, ok := f.kvIndex[AlignmentKey]; ok {
		item, off := fmt.Sprintf("key %q", AlignmentKey), int64(kvStarts[i])
		a, ok := f.kvs[i].Value.(uint32)
		if !ok {
			return nil, &FormatError{Item: item, Offset: off, Msg: fmt.Sprintf("is %s, want uint32", describe(f.kvs[i].Value))}
		}
		if a == 0 || a&(a-1) != 0 {
			return nil, &FormatError{Item: item, Offset: off, Msg: fmt.Sprintf("alignment %d is not a power of two", a)}
		}
		f.alignment = uint64(a)
	}

	f.tensors = make([]TensorInfo, 0, nTensors)
	f.tensorIndex = make(map[string]int, nTensors)
	infoStarts := make([]uint64, 0, nTensors)
	for i := range nTensors {
		start := d.off
		t, err := d.tensorInfo(i, f.alignment)
		if err != nil {
			return nil, err
		}
		if j, dup := f.tensorIndex[t.Name]; dup {
			return nil, &FormatError{Item: fmt.Sprintf("tensor %q", t.Name), Offset: int64(start), Msg: fmt.Sprintf("duplicate name (first at offset %d)", infoStarts[j])}
		}
		f.tensorIndex[t.Name] = len(f.tensors)
		f.tensors = append(f.tensors, t)
		infoStarts = append(infoStarts, start)
	}

	// d.off ≤ len(data) and the alignment ≤ 2^31, so this cannot overflow.
	f.dataOffset = (d.off + f.alignment - 1) &^ (f.alignment - 1)
	for i := range f.tensors {
		t := &f.tensors[i]
		rel := t.Offset
		abs := f.dataOffset + rel
		end := abs + t.Size
		if abs < rel || end < abs || end > uint64(len(data)) {
			return nil, &FormatError{
				Item:   fmt.Sprintf("tensor %q", t.Name),
				Offset: int64(infoStarts[i]),
				Msg:    fmt.Sprintf("%d bytes of data at offset %d after the data section start %d lie outside the %d-byte file", t.Size, rel, f.dataOffset, len(data)),
				Err:    io.ErrUnexpectedEOF,
			}
		}
		t.Offset = abs
	}
	if err := checkOverlaps(f.tensors, infoStarts); err != nil {
		return nil, err
	}
	return f, nil
}

// checkOverlaps refuses tensors whose data share bytes. llama.cpp's
// gguf_init_from_file goes further and wants each tensor right after the
// previous one; we only need every view to be its own, so that a file
// whose offsets point two tensors at one block of data, or one tensor into
// another's, fails at parse rather than loading weights that alias.
// Tensors of no bytes overlap nothing.
func checkOverlaps(ts []TensorInfo, infoStarts []uint64) error {
	order := make([]int, 0, len(ts))
	for i := range ts {
		if ts[i].Size > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ts[a].Offset, ts[b].Offset) })
	// Sorted by start, any overlap is between neighbours.
	for k := 1; k < len(order); k++ {
		a, b := &ts[order[k-1]], &ts[order[k]]
		if b.Offset < a.Offset+a.Size {
			return &FormatError{
				Item:   fmt.Sprintf("tensor %q", b.Name),
				Offset: int64(infoStarts[order[k]]),
				Msg:    fmt.Sprintf("data [%d, %d) overlap tensor %q at [%d, %d)", b.Offset, b.Offset+b.Size, a.Name, a.Offset, a.Offset+a.Size),
			}
		}
	}
	return nil
}

// decoder reads little-endian fields from an in-memory image. Each read
// checks the bytes left; errors are *FormatError with an empty Item, which
// the caller fills in with within.
type decoder struct {
	b   []byte
	off uint64
}

func (d *decoder) left() uint64 { return uint64(len(d.b)) - d.off }

func (d *decoder) fail(off uint64, format string, args ...any) *FormatError {
	return &FormatError{Offset: int64(off), Msg: fmt.Sprintf(format, args...)}
}

// take returns the next n bytes.
func (d *decoder) take(n uint64) ([]byte, error) {
	if n > d.left() {
		return nil, &FormatError{Offset: int64(d.off), Msg: fmt.Sprintf("file ends: need %d bytes, %d left", n, d.left()), Err: io.ErrUnexpectedEOF}
	}
	b := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return b, nil
}

func (d *decoder) u32() (uint32, error) {
	b, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return le.Uint32(b), nil
}

func (d *decoder) u64() (uint64, error) {
	b, err := d.take(8)
	if err != nil {
		return 0, err
	}
	return le.Uint64(b), nil
}

// str reads a string: a u64 length, then that many bytes (no terminator).
// The length is checked against the bytes left before the copy.
func (d *decoder) str() (string, error) {
	start := d.off
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > d.left() {
		e := d.fail(start, "string length %d exceeds the %d bytes left", n, d.left())
		e.Err = io.ErrUnexpectedEOF
		return "", e
	}
	b, _ := d.take(n)
	return string(b), nil
}

// within prefixes a FormatError's Item with the thing being read, so that
// an error deep in an array reads `key "x" element 3 element 1`.
func within(err error, item string) error {
	if e, ok := err.(*FormatError); ok {
		if e.Item == "" {
			e.Item = item
		} else {
			e.Item = item + " " + e.Item
		}
	}
	return err
}

// kv reads the i-th key-value pair.
func (d *decoder) kv(i uint64) (KV, error) {
	start := d.off
	key, err := d.str()
	if err != nil {
		return KV{}, within(err, fmt.Sprintf("key #%d", i))
	}
	if key == "" {
		return KV{}, within(d.fail(start, "empty key"), fmt.Sprintf("key #%d", i))
	}
	tagOff := d.off
	tag, err := d.u32()
	if err != nil {
		return KV{}, within(err, fmt.Sprintf("key %q", key))
	}
	v, err := d.value(valueType(tag), tagOff, 0)
	if err != nil {
		return KV{}, within(err, fmt.Sprintf("key %q", key))
	}
	return KV{Key: key, Value: v}, nil
}

// value reads one value whose tag (read at tagOff) is t, inside depth
// levels of arrays.
func (d *decoder) value(t valueType, tagOff uint64, depth int) (any, error) {
	if t == typeArray {
		return d.array(depth + 1)
	}
	if t == typeString {
		return d.str()
	}
	size := t.minSize()
	if size == 0 {
		return nil, d.fail(tagOff, "unknown value type %d", uint32(t))
	}
	b, err := d.take(size)
	if err != nil {
		return nil, err
	}
	switch t {
	case typeUint8:
		return b[0], nil
	case typeInt8:
		return int8(b[0]), nil
	case typeBool:
		// llama.cpp reads any non-zero byte as true; so do we.
		return b[0] != 0, nil
	case typeUint16:
		return le.Uint16(b), nil
	case typeInt16:
		return int16(le.Uint16(b)), nil
	case typeUint32:
		return le.Uint32(b), nil
	case typeInt32:
		return int32(le.Uint32(b)), nil
	case typeFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case typeUint64:
		return le.Uint64(b), nil
	case typeInt64:
		return int64(le.Uint64(b)), nil
	default: // typeFloat64, the only tag left with a size
		return math.Float64frombits(le.Uint64(b)), nil
	}
}

// array reads an array's element type, count and elements; depth is 1 for
// a top-level array. The count is bounded by the bytes left divided by the
// element's smallest encoding before the slice is made.
func (d *decoder) array(depth int) (any, error) {
	start := d.off
	if depth > maxArrayDepth {
		return nil, d.fail(start, "arrays nested more than %d deep", maxArrayDepth)
	}
	tag, err := d.u32()
	if err != nil {
		return nil, err
	}
	et := valueType(tag)
	n, err := d.u64()
	if err != nil {
		return nil, err
	}
	elemMin := et.minSize()
	if elemMin == 0 {
		return nil, d.fail(start, "unknown array element type %d", tag)
	}
	if n > d.left()/elemMin {
		e := d.fail(start, "array of %d %s values cannot fit in the %d bytes left", n, et, d.left())
		e.Err = io.ErrUnexpectedEOF
		return nil, e
	}
	switch et {
	case typeUint8:
		return fixed(d, n, 1, func(b []byte) uint8 { return b[0] }), nil
	case typeInt8:
		return fixed(d, n, 1, func(b []byte) int8 { return int8(b[0]) }), nil
	case typeBool:
		return fixed(d, n, 1, func(b []byte) bool { return b[0] != 0 }), nil
	case typeUint16:
		return fixed(d, n, 2, le.Uint16), nil
	case typeInt16:
		return fixed(d, n, 2, func(b []byte) int16 { return int16(le.Uint16(b)) }), nil
	case typeUint32:
		return fixed(d, n, 4, le.Uint32), nil
	case typeInt32:
		return fixed(d, n, 4, func(b []byte) int32 { return int32(le.Uint32(b)) }), nil
	case typeFloat32:
		return fixed(d, n, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) }), nil
	case typeUint64:
		return fixed(d, n, 8, le.Uint64), nil
	case typeInt64:
		return fixed(d, n, 8, func(b []byte) int64 { return int64(le.Uint64(b)) }), nil
	case typeFloat64:
		return fixed(d, n, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) }), nil
	case typeString:
		out := make([]string, n)
		for i := range out {
			if out[i], err = d.str(); err != nil {
				return nil, within(err, fmt.Sprintf("element %d", i))
			}
		}
		return out, nil
	default: // typeArray
		out := make([]any, n)
		for i := range out {
			if out[i], err = d.array(depth + 1); err != nil {
				return nil, within(err, fmt.Sprintf("element %d", i))
			}
		}
		return out, nil
	}
}

// fixed decodes n values of size bytes each; the caller has checked that
// n*size bytes are left.
func fixed[T any](d *decoder, n, size uint64, get func([]byte) T) []T {
	raw, _ := d.take(n * size)
	out := make([]T, n)
	for i := range out {
		out[i] = get(raw[uint64(i)*size:])
	}
	return out
}

// tensorInfo reads and checks the i-th tensor info. Offset is left relative
// to the data section; Parse makes it absolute once the infos end.
func (d *decoder) tensorInfo(i uint64, alignment uint64) (TensorInfo, error) {
	start := d.off
	name, err := d.str()
	if err != nil {
		return TensorInfo{}, within(err, fmt.Sprintf("tensor #%d", i))
	}
	if name == "" {
		return TensorInfo{}, within(d.fail(start, "empty name"), fmt.Sprintf("tensor #%d", i))
	}
	item := fmt.Sprintf("tensor %q", name)
	nd, err := d.u32()
	if err != nil {
		return TensorInfo{}, within(err, item)
	}
	if nd == 0 || nd > maxDims {
		return TensorInfo{}, within(d.fail(start, "%d dimensions, want 1 to %d", nd, maxDims), item)
	}
	dims := make([]uint64, nd)
	for j := range dims {
		if dims[j], err = d.u64(); err != nil {
			return TensorInfo{}, within(err, item)
		}
	}
	typ, err := d.u32()
	if err != nil {
		return TensorInfo{}, within(err, item)
	}
	rel, err := d.u64()
	if err != nil {
		return TensorInfo{}, within(err, item)
	}
	_, size, msg := tensorSize(Type(typ), dims)
	if msg != "" {
		return TensorInfo{}, within(d.fail(start, "%s", msg), item)
	}
	if rel%alignment != 0 {
		return TensorInfo{}, within(d.fail(start, "data offset %d is not a multiple of the alignment %d", rel, alignment), item)
	}
	return TensorInfo{Name: name, Type: Type(typ), Dims: dims, Offset: rel, Size: size}, nil
}
