// Package gguf reads and writes GGUF v3 files (llama.cpp's model format):
// metadata, tensor infos, alignment, and tensor data viewed in place from a
// memory map.
//
// Reading is built for files from outside: every count and length is checked
// against the bytes left before anything is allocated, and a malformed file
// gives a *FormatError naming the key or tensor and the offset, never a
// panic. The layout follows ggml/include/gguf.h and ggml/src/gguf.cpp.
package gguf

import (
	"errors"
	"fmt"
	"strings"
	"sync"
)

// DefaultAlignment is the alignment of the data section and of each tensor's
// data when general.alignment is absent.
const DefaultAlignment = 32

// AlignmentKey is the metadata key that sets the alignment (a uint32 power
// of two).
const AlignmentKey = "general.alignment"

// ErrNotFound is returned, wrapped, for a missing key or tensor.
var ErrNotFound = errors.New("not found")

// FormatError reports a malformed or truncated file. Every error Parse and
// Open return for a bad file is one.
type FormatError struct {
	// Offset is where in the file the offending field starts.
	Offset int64
	// Item names what was being read: `header`, `key "general.name"`,
	// `key "tokenizer.ggml.tokens" element 17`, `tensor "output.weight"`,
	// `tensor #3` (before its name was read).
	Item string
	// Msg says what is wrong.
	Msg string
	// Err is the underlying condition, if any: io.ErrUnexpectedEOF when the
	// file ends too early.
	Err error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("gguf: %s (offset %d): %s", e.Item, e.Offset, e.Msg)
}

func (e *FormatError) Unwrap() error { return e.Err }

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name string
	Type Type
	// Dims is the shape in ggml order, fastest-varying dimension first: a
	// weight that multiplies an E-vector into V outputs is {E, V}.
	Dims []uint64
	// Offset is where the tensor's data starts, from the start of the file.
	Offset uint64
	// Size is the data's length in bytes.
	Size uint64
}

// NumElements returns the product of the dimensions.
func (t TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF file. Its methods may be called concurrently, except
// Close, which must come after every other use (Data's slices included).
type File struct {
	version     uint32
	alignment   uint64
	dataOffset  uint64
	kvs         []KV
	kvIndex     map[string]int
	tensors     []TensorInfo
	tensorIndex map[string]int
	data        []byte
	unmap       func() error
	release     func(b []byte) // drops b's pages from memory (Open on unix)
	mu          sync.Mutex
	released    map[uint64]bool // offsets of the tensors released
}

// Close releases the memory map of a File from Open; the slices Data
// returned must not be used after it. It is a no-op for a File from Parse
// and for a second call.
func (f *File) Close() error {
	f.data = nil
	if f.unmap == nil {
		return nil
	}
	unmap := f.unmap
	f.unmap = nil
	return unmap()
}

// Release tells the system that tensor t's bytes are no longer needed in
// memory, because the caller copied them (a backend that repacks weights):
// for a File from Open on a unix system, the whole pages inside them leave
// the process's resident set and are read from the file again if touched.
// Otherwise it does nothing. The bytes stay valid until Close.
func (f *File) Release(t TensorInfo) {
	if f.release == nil {
		return
	}
	if b := f.Data(t); len(b) > 0 {
		f.release(b)
		f.mu.Lock()
		if f.released == nil {
			f.released = make(map[uint64]bool)
		}
		f.released[t.Offset] = true
		f.mu.Unlock()
	}
}

// ReleaseBytes is Release for any run of bytes that Data returned, such
// as part of a tensor a backend copies piece by piece. It is safe to call
// from several goroutines.
func (f *File) ReleaseBytes(b []byte) {
	if f.release != nil && len(b) > 0 {
		f.release(b)
	}
}

// Released reports whether Release let tensor t's pages go, so that a
// caller warming the file's pages can leave them alone.
func (f *File) Released(t TensorInfo) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.released[t.Offset]
}

// Version returns the file's GGUF version (3, or 2, whose layout is the same).
func (f *File) Version() uint32 { return f.version }

// Alignment returns the alignment of tensor data: general.alignment, or
// DefaultAlignment.
func (f *File) Alignment() uint64 { return f.alignment }

// DataOffset returns where the data section starts: the end of the tensor
// infos rounded up to the alignment. It may equal or exceed the file size
// when the file has no tensor data.
func (f *File) DataOffset() uint64 { return f.dataOffset }

// KVs returns the metadata in file order. The values are shared with the
// File and must not be modified.
func (f *File) KVs() []KV { return append([]KV(nil), f.kvs...) }

// Has reports whether the metadata has key.
func (f *File) Has(key string) bool {
	_, ok := f.kvIndex[key]
	return ok
}

// Lookup returns the value of key (one of the Go types of Value) and whether
// the key exists.
func (f *File) Lookup(key string) (any, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return nil, false
	}
	return f.kvs[i].Value, true
}

// Get returns the value of key as a T. It is strict: a key stored as int32
// cannot be read as a uint32, and the error names the key and both types.
// A missing key gives an error wrapping ErrNotFound.
func Get[T Value](f *File, key string) (T, error) {
	var zero T
	v, ok := f.Lookup(key)
	if !ok {
		return zero, fmt.Errorf("gguf: key %q: %w", key, ErrNotFound)
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("gguf: key %q is %s, want %s", key, describe(v), describe(zero))
	}
	return t, nil
}

// Uint32 returns a uint32 value; see Get.
func (f *File) Uint32(key string) (uint32, error) { return Get[uint32](f, key) }

// Int32 returns an int32 value; see Get.
func (f *File) Int32(key string) (int32, error) { return Get[int32](f, key) }

// Uint64 returns a uint64 value; see Get.
func (f *File) Uint64(key string) (uint64, error) { return Get[uint64](f, key) }

// Int64 returns an int64 value; see Get.
func (f *File) Int64(key string) (int64, error) { return Get[int64](f, key) }

// Float32 returns a float32 value; see Get.
func (f *File) Float32(key string) (float32, error) { return Get[float32](f, key) }

// Float64 returns a float64 value; see Get.
func (f *File) Float64(key string) (float64, error) { return Get[float64](f, key) }

// Bool returns a bool value; see Get.
func (f *File) Bool(key string) (bool, error) { return Get[bool](f, key) }

// String returns a string value; see Get.
func (f *File) String(key string) (string, error) { return Get[string](f, key) }

// Strings returns an array of strings; see Get. The slice is shared with the
// File and must not be modified.
func (f *File) Strings(key string) ([]string, error) { return Get[[]string](f, key) }

// Int32s returns an array of int32; see Get. The slice is shared with the
// File and must not be modified.
func (f *File) Int32s(key string) ([]int32, error) { return Get[[]int32](f, key) }

// Uint32s returns an array of uint32; see Get. The slice is shared with the
// File and must not be modified.
func (f *File) Uint32s(key string) ([]uint32, error) { return Get[[]uint32](f, key) }

// Float32s returns an array of float32; see Get. The slice is shared with
// the File and must not be modified.
func (f *File) Float32s(key string) ([]float32, error) { return Get[[]float32](f, key) }

// Arch returns general.architecture ("deepseek2", "deepseek4"), the prefix
// of the architecture's own keys.
func (f *File) Arch() (string, error) { return f.String("general.architecture") }

// Tensors returns the tensor infos in file order. The Dims slices are shared
// with the File and must not be modified.
func (f *File) Tensors() []TensorInfo { return append([]TensorInfo(nil), f.tensors...) }

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.tensorIndex[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.tensors[i], true
}

// Data returns t's bytes in place: a sub-slice of the memory map (Open) or
// of the parsed image (Parse), never a copy. For a File from Open the memory
// is read-only (writing to it faults) and is gone after Close. Data returns
// nil for a TensorInfo that does not lie inside the file, such as one from
// another File, and after Close.
func (f *File) Data(t TensorInfo) []byte {
	end := t.Offset + t.Size
	if end < t.Offset || end > uint64(len(f.data)) {
		return nil
	}
	return f.data[t.Offset:end:end]
}

// Expect returns the named tensor after checking that its type is typ and
// its shape is dims. As in llama.cpp's check_tensor_dims, dimensions the
// file leaves out count as 1, so a {1536,3072} tensor matches
// {1536,3072,1}. A missing tensor gives an error wrapping ErrNotFound.
func (f *File) Expect(name string, typ Type, dims ...uint64) (TensorInfo, error) {
	return f.ExpectOneOf(name, []Type{typ}, dims...)
}

// ExpectOneOf is Expect for a tensor that may have any of types (any type
// at all if types is empty).
func (f *File) ExpectOneOf(name string, types []Type, dims ...uint64) (TensorInfo, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return TensorInfo{}, fmt.Errorf("gguf: tensor %q: %w", name, ErrNotFound)
	}
	if !sameShape(t.Dims, dims) {
		return TensorInfo{}, fmt.Errorf("gguf: tensor %q: shape %s, want %s", name, shapeString(t.Dims), shapeString(dims))
	}
	if len(types) == 0 {
		return t, nil
	}
	for _, typ := range types {
		if t.Type == typ {
			return t, nil
		}
	}
	want := make([]string, len(types))
	for i, typ := range types {
		want[i] = typ.String()
	}
	return TensorInfo{}, fmt.Errorf("gguf: tensor %q: type %v, want %s", name, t.Type, strings.Join(want, " or "))
}

// sameShape compares two shapes, treating missing trailing dimensions as 1.
func sameShape(a, b []uint64) bool {
	for i := range max(len(a), len(b)) {
		x, y := uint64(1), uint64(1)
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return false
		}
	}
	return true
}
