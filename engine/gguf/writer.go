package gguf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Writer collects metadata and tensors and writes them as a GGUF v3 file.
// The zero Writer is ready to use.
//
// Add, AddTensor and AddTensorFrom only record what they are given; WriteTo
// and WriteFile check everything (unique non-empty keys and names, value
// types, shapes, data sizes) before writing a byte. Keys are written in the
// order added, tensor infos and data in the order added. The alignment is
// the value of general.alignment if it was added (it must be a uint32 power
// of two), else DefaultAlignment; the data section and every tensor's data
// are padded to it, as llama.cpp's gguf_write_to_file does.
type Writer struct {
	kvs     []KV
	tensors []writerTensor
}

type writerTensor struct {
	name string
	typ  Type
	dims []uint64
	data []byte
	r    io.Reader // nil when data holds the bytes
}

// Add records a metadata key. value must have one of the Go types listed by
// the Value constraint; its Go type picks the GGUF type, so write
// uint32(n), not n.
func (w *Writer) Add(key string, value any) {
	w.kvs = append(w.kvs, KV{Key: key, Value: value})
}

// AddTensor records a tensor whose data is in memory. data must be exactly
// TensorSize(typ, dims) bytes; it is written as is, not copied, so it must
// not change until the write is done.
func (w *Writer) AddTensor(name string, typ Type, dims []uint64, data []byte) {
	w.tensors = append(w.tensors, writerTensor{name: name, typ: typ, dims: append([]uint64(nil), dims...), data: data})
}

// AddTensorFrom records a tensor whose TensorSize(typ, dims) bytes are read
// from r while the file is written, so a large model is never held in memory
// twice. r is read once: a Writer with such tensors can be written once.
func (w *Writer) AddTensorFrom(name string, typ Type, dims []uint64, r io.Reader) {
	w.tensors = append(w.tensors, writerTensor{name: name, typ: typ, dims: append([]uint64(nil), dims...), r: r})
}

// WriteTo writes the file to out and returns the number of bytes written.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	meta, sizes, alignment, err := w.encode()
	if err != nil {
		return 0, err
	}
	return w.write(out, meta, sizes, alignment)
}

// WriteFile writes the file to path, replacing it. A failed write removes
// the partial file.
func (w *Writer) WriteFile(path string) (err error) {
	meta, sizes, alignment, err := w.encode()
	if err != nil {
		return err
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	bw := bufio.NewWriterSize(fh, 1<<20)
	if _, err := w.write(bw, meta, sizes, alignment); err != nil {
		return err
	}
	return bw.Flush()
}

// encode checks everything and returns the header, metadata and tensor
// infos (padded to the alignment when tensors follow), each tensor's size,
// and the alignment.
func (w *Writer) encode() (meta []byte, sizes []uint64, alignment uint64, err error) {
	alignment = DefaultAlignment
	seen := make(map[string]bool, len(w.kvs))
	for _, kv := range w.kvs {
		if kv.Key == "" {
			return nil, nil, 0, errors.New("gguf: writer: empty key")
		}
		if seen[kv.Key] {
			return nil, nil, 0, fmt.Errorf("gguf: writer: duplicate key %q", kv.Key)
		}
		seen[kv.Key] = true
		if kv.Key == AlignmentKey {
			a, ok := kv.Value.(uint32)
			if !ok {
				return nil, nil, 0, fmt.Errorf("gguf: writer: key %q is %s, want uint32", kv.Key, describe(kv.Value))
			}
			if a == 0 || a&(a-1) != 0 {
				return nil, nil, 0, fmt.Errorf("gguf: writer: key %q: alignment %d is not a power of two", kv.Key, a)
			}
			alignment = uint64(a)
		}
	}

	b := []byte("GGUF")
	b = le.AppendUint32(b, 3)
	b = le.AppendUint64(b, uint64(len(w.tensors)))
	b = le.AppendUint64(b, uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		b = appendString(b, kv.Key)
		if b, err = appendValue(b, kv.Value); err != nil {
			return nil, nil, 0, fmt.Errorf("gguf: writer: key %q: %w", kv.Key, err)
		}
	}

	sizes = make([]uint64, len(w.tensors))
	names := make(map[string]bool, len(w.tensors))
	var offset uint64
	for i, t := range w.tensors {
		if t.name == "" {
			return nil, nil, 0, fmt.Errorf("gguf: writer: tensor #%d has an empty name", i)
		}
		if names[t.name] {
			return nil, nil, 0, fmt.Errorf("gguf: writer: duplicate tensor %q", t.name)
		}
		names[t.name] = true
		if len(t.dims) == 0 || len(t.dims) > maxDims {
			return nil, nil, 0, fmt.Errorf("gguf: writer: tensor %q: %d dimensions, want 1 to %d", t.name, len(t.dims), maxDims)
		}
		_, size, msg := tensorSize(t.typ, t.dims)
		if msg != "" {
			return nil, nil, 0, fmt.Errorf("gguf: writer: tensor %q: %s", t.name, msg)
		}
		if t.r == nil && uint64(len(t.data)) != size {
			return nil, nil, 0, fmt.Errorf("gguf: writer: tensor %q: %d bytes of data, want %d for %v %s", t.name, len(t.data), size, t.typ, shapeString(t.dims))
		}
		sizes[i] = size
		b = appendString(b, t.name)
		b = le.AppendUint32(b, uint32(len(t.dims)))
		for _, d := range t.dims {
			b = le.AppendUint64(b, d)
		}
		b = le.AppendUint32(b, uint32(t.typ))
		b = le.AppendUint64(b, offset)
		padded := size + padding(size, alignment)
		if padded < size || offset > math.MaxInt64-padded {
			return nil, nil, 0, fmt.Errorf("gguf: writer: tensor %q: data section exceeds 2^63-1 bytes", t.name)
		}
		offset += padded
	}
	if len(w.tensors) > 0 {
		// A file without tensors needs no data section; llama.cpp only
		// seeks to it when there are tensors.
		b = append(b, make([]byte, padding(uint64(len(b)), alignment))...)
	}
	return b, sizes, alignment, nil
}

// write streams meta and then each tensor's data with its padding.
func (w *Writer) write(out io.Writer, meta []byte, sizes []uint64, alignment uint64) (int64, error) {
	n, err := out.Write(meta)
	total := int64(n)
	if err != nil {
		return total, err
	}
	for i, t := range w.tensors {
		if t.r != nil {
			m, err := io.CopyN(out, t.r, int64(sizes[i]))
			total += m
			if errors.Is(err, io.EOF) {
				return total, fmt.Errorf("gguf: writer: tensor %q: reader gave %d bytes, want %d", t.name, m, sizes[i])
			}
			if err != nil {
				return total, fmt.Errorf("gguf: writer: tensor %q: %w", t.name, err)
			}
		} else {
			n, err := out.Write(t.data)
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
		m, err := writeZeros(out, padding(sizes[i], alignment))
		total += m
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// padding returns how many bytes take n up to a multiple of alignment (a
// power of two).
func padding(n, alignment uint64) uint64 {
	return -n & (alignment - 1)
}

var zeros [4096]byte

func writeZeros(out io.Writer, n uint64) (int64, error) {
	var total int64
	for n > 0 {
		k := min(n, uint64(len(zeros)))
		m, err := out.Write(zeros[:k])
		total += int64(m)
		if err != nil {
			return total, err
		}
		n -= k
	}
	return total, nil
}

func appendString(b []byte, s string) []byte {
	b = le.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// appendValue appends a value's type tag and encoding.
func appendValue(b []byte, v any) ([]byte, error) {
	t, _, ok := typeOf(v)
	if !ok {
		return nil, fmt.Errorf("unsupported %s", describe(v))
	}
	b = le.AppendUint32(b, uint32(t))
	if t == typeArray {
		return appendArray(b, v, 1)
	}
	switch x := v.(type) {
	case uint8:
		return append(b, x), nil
	case int8:
		return append(b, byte(x)), nil
	case bool:
		return append(b, boolByte(x)), nil
	case uint16:
		return le.AppendUint16(b, x), nil
	case int16:
		return le.AppendUint16(b, uint16(x)), nil
	case uint32:
		return le.AppendUint32(b, x), nil
	case int32:
		return le.AppendUint32(b, uint32(x)), nil
	case float32:
		return le.AppendUint32(b, math.Float32bits(x)), nil
	case uint64:
		return le.AppendUint64(b, x), nil
	case int64:
		return le.AppendUint64(b, uint64(x)), nil
	case float64:
		return le.AppendUint64(b, math.Float64bits(x)), nil
	default: // string, the only scalar left
		return appendString(b, v.(string)), nil
	}
}

// appendArray appends an array's element type, count and elements, without
// the leading array tag (which an array nested in another has not: the
// outer array's element type says it). depth is 1 for a top-level array.
func appendArray(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxArrayDepth {
		return nil, fmt.Errorf("arrays nested more than %d deep", maxArrayDepth)
	}
	_, et, _ := typeOf(v)
	b = le.AppendUint32(b, uint32(et))
	switch x := v.(type) {
	case []uint8:
		b = le.AppendUint64(b, uint64(len(x)))
		return append(b, x...), nil
	case []int8:
		return appendEach(b, x, func(b []byte, e int8) []byte { return append(b, byte(e)) }), nil
	case []bool:
		return appendEach(b, x, func(b []byte, e bool) []byte { return append(b, boolByte(e)) }), nil
	case []uint16:
		return appendEach(b, x, le.AppendUint16), nil
	case []int16:
		return appendEach(b, x, func(b []byte, e int16) []byte { return le.AppendUint16(b, uint16(e)) }), nil
	case []uint32:
		return appendEach(b, x, le.AppendUint32), nil
	case []int32:
		return appendEach(b, x, func(b []byte, e int32) []byte { return le.AppendUint32(b, uint32(e)) }), nil
	case []float32:
		return appendEach(b, x, func(b []byte, e float32) []byte { return le.AppendUint32(b, math.Float32bits(e)) }), nil
	case []uint64:
		return appendEach(b, x, le.AppendUint64), nil
	case []int64:
		return appendEach(b, x, func(b []byte, e int64) []byte { return le.AppendUint64(b, uint64(e)) }), nil
	case []float64:
		return appendEach(b, x, func(b []byte, e float64) []byte { return le.AppendUint64(b, math.Float64bits(e)) }), nil
	case []string:
		return appendEach(b, x, appendString), nil
	case []any:
		b = le.AppendUint64(b, uint64(len(x)))
		for i, e := range x {
			if t, _, ok := typeOf(e); !ok || t != typeArray {
				return nil, fmt.Errorf("element %d of an array of arrays is %s, want an array", i, describe(e))
			}
			var err error
			if b, err = appendArray(b, e, depth+1); err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("unsupported %s", describe(v))
}

func appendEach[T any](b []byte, s []T, put func([]byte, T) []byte) []byte {
	b = le.AppendUint64(b, uint64(len(s)))
	for _, e := range s {
		b = put(b, e)
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
