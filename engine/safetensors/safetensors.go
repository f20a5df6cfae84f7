// Package safetensors reads and writes safetensors files, Hugging Face's
// tensor format, and the model directories made of them: config.json plus
// one model.safetensors or shards listed in model.safetensors.index.json.
//
// A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON,
// and a data section. The JSON object maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]}, offsets counted from the
// start of the data section and shapes outermost first (row-major); an
// optional "__metadata__" member maps strings to strings. Open memory-maps
// the file read-only and Tensor returns views into the map, never copies.
//
// Reading is built for files from outside. N is checked against
// MaxHeaderSize and the file size before anything is allocated; the header
// must be valid UTF-8 JSON with no repeated key; a tensor has a known dtype
// and at most MaxRank dimensions whose product does not overflow; its byte
// range lies inside the data section, does not end before it begins, holds
// exactly the bytes its dtype and shape need, and overlaps no other tensor.
// A malformed file gives a *FormatError naming the file and the tensor,
// never a panic.
//
// The checks follow the reference implementation (huggingface/safetensors,
// safetensors/src/tensor.rs), with two differences. The reference also
// refuses gaps between tensors and bytes after the last one; this package
// accepts both, since neither can make a view wrong. And encoding/json keeps
// the last of two equal keys silently, so the header is scanned key by key
// and a repeated tensor name is an error rather than a silent choice.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header (JSON) length a file may declare,
// in bytes: the reference implementation's limit. DeepSeek V3's shards have
// headers of about 100 KB.
const MaxHeaderSize = 100_000_000

// MaxRank is the most dimensions a tensor may have. The format sets no
// limit; this one keeps a hostile header from making us hold millions of
// dimensions. Model weights have at most 3.
const MaxRank = 16

// MetadataKey is the header member that holds the file's string metadata
// instead of a tensor.
const MetadataKey = "__metadata__"

// FormatError reports a malformed safetensors file, index or config.json.
// Every error Parse returns is one, and so is every error Open returns for a
// file it could read.
type FormatError struct {
	// Path is the file, or "" for an image given to Parse.
	Path string
	// Item names what is wrong: "header", `tensor "model.norm.weight"`,
	// "__metadata__", or a config.json field such as "n_routed_experts".
	Item string
	// Msg says what is wrong.
	Msg string
	// Err is the underlying condition, if any: io.ErrUnexpectedEOF when the
	// file ends too early, a *json.SyntaxError for bad JSON.
	Err error
}

// Error returns "safetensors: path: item: msg" (without the path for Parse).
func (e *FormatError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("safetensors: %s: %s", e.Item, e.Msg)
	}
	return fmt.Sprintf("safetensors: %s: %s: %s", e.Path, e.Item, e.Msg)
}

// Unwrap returns Err.
func (e *FormatError) Unwrap() error { return e.Err }

// DType is a tensor's element type, as the header's "dtype" spells it.
type DType uint8

// The dtypes of the format, with the reference implementation's spelling.
// F4 is FP4 e2m1 and F6_* are FP6, packed two (F4) or four in three bytes
// (F6) with no padding, so a tensor of them must fill whole bytes.
// F8_E8M0 is the power-of-two scale of the MX formats (DeepSeek V4's
// ".scale" tensors).
const (
	BOOL DType = iota + 1
	U8
	I8
	F8_E5M2
	F8_E4M3
	F8_E8M0
	I16
	U16
	F16
	BF16
	I32
	U32
	F32
	C64
	F64
	I64
	U64
	F4
	F6_E2M3
	F6_E3M2
)

var dtypes = [...]struct {
	name string
	bits int
}{
	BOOL:    {"BOOL", 8},
	U8:      {"U8", 8},
	I8:      {"I8", 8},
	F8_E5M2: {"F8_E5M2", 8},
	F8_E4M3: {"F8_E4M3", 8},
	F8_E8M0: {"F8_E8M0", 8},
	I16:     {"I16", 16},
	U16:     {"U16", 16},
	F16:     {"F16", 16},
	BF16:    {"BF16", 16},
	I32:     {"I32", 32},
	U32:     {"U32", 32},
	F32:     {"F32", 32},
	C64:     {"C64", 64},
	F64:     {"F64", 64},
	I64:     {"I64", 64},
	U64:     {"U64", 64},
	F4:      {"F4", 4},
	F6_E2M3: {"F6_E2M3", 6},
	F6_E3M2: {"F6_E3M2", 6},
}

// DTypes lists every dtype this package knows, in declaration order.
func DTypes() []DType {
	out := make([]DType, 0, len(dtypes)-1)
	for d := BOOL; int(d) < len(dtypes); d++ {
		out = append(out, d)
	}
	return out
}

// String returns the dtype as the header spells it ("BF16", "F8_E4M3").
func (d DType) String() string {
	if d.Bits() == 0 {
		return "DType(" + strconv.Itoa(int(d)) + ")"
	}
	return dtypes[d].name
}

// Bits returns the size of one element in bits (4 for F4, 8 for F8_E4M3),
// or 0 for a value that is not one of the constants.
func (d DType) Bits() int {
	if int(d) >= len(dtypes) {
		return 0
	}
	return dtypes[d].bits
}

// parseDType maps a header's dtype string to a DType.
func parseDType(s string) (DType, bool) {
	for d := BOOL; int(d) < len(dtypes); d++ {
		if dtypes[d].name == s {
			return d, true
		}
	}
	return 0, false
}

// Tensor is one tensor of a file.
type Tensor struct {
	// Name is the tensor's key in the header.
	Name string
	// DType is the element type.
	DType DType
	// Shape lists the dimensions, outermost first (row-major, as PyTorch
	// stores them): a linear layer's weight is [out_features, in_features].
	// A scalar has an empty shape. Tensors from a File share the slice with
	// it; do not modify it.
	Shape []int
	// Data is the tensor's bytes, little-endian. From a File it is a slice
	// of the read-only memory map (writing to it faults), valid until Close,
	// and aligned only as well as the writer arranged: the format keeps the
	// data section 8-byte aligned but not each tensor, so read multi-byte
	// elements with encoding/binary, not by casting the pointer.
	Data []byte
}

// NumElements returns the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// dataSize returns how many bytes count elements of dt take, or a reason
// there is no such size. count elements of 4 or 6 bits must fill whole
// bytes.
func dataSize(dt DType, count uint64) (uint64, string) {
	hi, nbits := bits.Mul64(count, uint64(dt.Bits()))
	if hi != 0 {
		return 0, fmt.Sprintf("%d elements of %v overflow 64 bits", count, dt)
	}
	if nbits%8 != 0 {
		return 0, fmt.Sprintf("%d elements of %v do not fill whole bytes (%d bits)", count, dt, nbits)
	}
	return nbits / 8, ""
}

// numElements multiplies dims, or says why it cannot: a dimension above
// math.MaxInt, or a product (taken left to right, as the reference does)
// that overflows an int.
func numElements(dims []uint64) (uint64, string) {
	n := uint64(1)
	for _, d := range dims {
		if d > math.MaxInt {
			return 0, fmt.Sprintf("dimension %d is too large", d)
		}
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt {
			return 0, fmt.Sprintf("shape %v: element count overflows", dims)
		}
		n = lo
	}
	return n, ""
}

// File is a parsed safetensors file. Its methods may be called
// concurrently, except Close, which must come after every other use (the
// tensors' Data included).
type File struct {
	path     string
	tensors  map[string]Tensor
	names    []string
	metadata map[string]string
	unmap    func() error
}

// Open memory-maps the file at path read-only and parses its header. Tensor
// data is not read until it is touched, so opening a large shard is cheap.
// Close the File to unmap it. A malformed file gives a *FormatError whose
// Path is path.
//
// As with any memory map, the file must not be truncated while it is open:
// touching data past the new end raises SIGBUS, not an error.
func Open(path string) (*File, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := parse(path, data)
	if err != nil {
		if unmap != nil {
			_ = unmap()
		}
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse parses a safetensors image held in memory. The tensors' Data are
// sub-slices of data, so data must not change while the File is in use.
// A malformed image gives a *FormatError with an empty Path.
func Parse(data []byte) (*File, error) { return parse("", data) }

// Close releases the memory map of a File from Open; the tensors' Data
// must not be used after it. After Close, Tensor finds nothing. A second
// call, or Close on a File from Parse, only forgets the tensors.
func (f *File) Close() error {
	f.tensors = nil
	f.names = nil
	if f.unmap == nil {
		return nil
	}
	unmap := f.unmap
	f.unmap = nil
	return unmap()
}

// Path returns the path the File was opened from ("" for Parse).
func (f *File) Path() string { return f.path }

// Tensor returns the named tensor and whether the file has it.
func (f *File) Tensor(name string) (Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Metadata returns a copy of the header's "__metadata__" map, or nil if the
// file has none.
func (f *File) Metadata() map[string]string {
	if f.metadata == nil {
		return nil
	}
	out := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		out[k] = v
	}
	return out
}

// span is a tensor's byte range in the data section, kept for the overlap
// check.
type span struct {
	name       string
	begin, end uint64
}

func parse(path string, data []byte) (*File, error) {
	fail := func(item, msg string, err error) error {
		return &FormatError{Path: path, Item: item, Msg: msg, Err: err}
	}
	if len(data) < 8 {
		return nil, fail("header", fmt.Sprintf("file is %d bytes, too short for the 8-byte header length", len(data)), io.ErrUnexpectedEOF)
	}
	n := binary.LittleEndian.Uint64(data)
	left := uint64(len(data) - 8)
	if n > MaxHeaderSize {
		return nil, fail("header", fmt.Sprintf("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize), nil)
	}
	if n > left {
		return nil, fail("header", fmt.Sprintf("header length %d exceeds the %d bytes after it", n, left), io.ErrUnexpectedEOF)
	}
	header := data[8 : 8+n]
	body := data[8+n:]
	if !utf8.Valid(header) {
		// encoding/json would turn bad bytes into U+FFFD, so two different
		// names could read as one.
		return nil, fail("header", "JSON is not valid UTF-8", nil)
	}

	f := &File{path: path, tensors: make(map[string]Tensor)}
	var spans []span
	err := object(header, func(key string, raw []byte) error {
		if key == MetadataKey {
			m, err := parseMetadata(raw)
			if err != nil {
				return fail(MetadataKey, err.Error(), errors.Unwrap(err))
			}
			f.metadata = m
			return nil
		}
		item := fmt.Sprintf("tensor %q", key)
		t, begin, end, msg := parseTensor(key, raw)
		if msg != "" {
			return fail(item, msg, nil)
		}
		if end > uint64(len(body)) {
			return fail(item, fmt.Sprintf("data_offsets [%d, %d] end past the %d-byte data section", begin, end, len(body)), io.ErrUnexpectedEOF)
		}
		t.Data = body[begin:end:end]
		f.tensors[key] = t
		if begin < end {
			spans = append(spans, span{key, begin, end})
		}
		return nil
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, fe
		}
		var dup *duplicateKeyError
		if errors.As(err, &dup) {
			if dup.key == MetadataKey {
				return nil, fail(MetadataKey, "appears twice in the header", nil)
			}
			return nil, fail(fmt.Sprintf("tensor %q", dup.key), "name appears twice in the header", nil)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fail("header", "JSON ends early", io.ErrUnexpectedEOF)
		}
		if off, ok := syntaxOffset(err); ok {
			return nil, fail("header", fmt.Sprintf("bad JSON at header byte %d: %v", off, err), err)
		}
		return nil, fail("header", "bad JSON: "+err.Error(), err)
	}

	// Sorting by begin puts any overlap between neighbours.
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].name < spans[j].name
	})
	for i := 1; i < len(spans); i++ {
		a, b := spans[i-1], spans[i]
		if b.begin < a.end {
			return nil, fail(fmt.Sprintf("tensor %q", b.name), fmt.Sprintf("bytes [%d, %d) overlap tensor %q at [%d, %d)", b.begin, b.end, a.name, a.begin, a.end), nil)
		}
	}

	f.names = make([]string, 0, len(f.tensors))
	for name := range f.tensors {
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f, nil
}

// parseTensor reads one tensor's entry. It returns the tensor without Data
// and its offsets, or a message saying what is wrong. The caller checks the
// offsets against the data section.
func parseTensor(name string, raw []byte) (t Tensor, begin, end uint64, msg string) {
	var (
		dtype          string
		shape, offsets []uint64
		has            = map[string]bool{}
	)
	err := object(raw, func(key string, v []byte) error {
		var err error
		switch key {
		case "dtype":
			dtype, err = jsonString(v)
		case "shape":
			shape, err = uints(v, MaxRank)
		case "data_offsets":
			offsets, err = uints(v, 2)
		default:
			// The reference ignores unknown members too.
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		has[key] = true
		return nil
	})
	if err != nil {
		var dup *duplicateKeyError
		if errors.As(err, &dup) {
			return t, 0, 0, fmt.Sprintf("member %q appears twice", dup.key)
		}
		return t, 0, 0, err.Error()
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if !has[k] {
			return t, 0, 0, fmt.Sprintf("no %q", k)
		}
	}
	dt, ok := parseDType(dtype)
	if !ok {
		return t, 0, 0, fmt.Sprintf("unknown dtype %q", dtype)
	}
	if len(offsets) != 2 {
		return t, 0, 0, fmt.Sprintf("data_offsets has %d elements, want 2", len(offsets))
	}
	begin, end = offsets[0], offsets[1]
	if begin > end {
		return t, 0, 0, fmt.Sprintf("data_offsets [%d, %d] begin after they end", begin, end)
	}
	count, why := numElements(shape)
	if why != "" {
		return t, 0, 0, why
	}
	size, why := dataSize(dt, count)
	if why != "" {
		return t, 0, 0, why
	}
	if end-begin != size {
		return t, 0, 0, fmt.Sprintf("data_offsets [%d, %d] hold %d bytes, but shape %v of %v takes %d", begin, end, end-begin, shape, dt, size)
	}
	dims := make([]int, len(shape))
	for i, d := range shape {
		dims[i] = int(d) // numElements checked each against MaxInt
	}
	return Tensor{Name: name, DType: dt, Shape: dims}, begin, end, ""
}

// parseMetadata reads "__metadata__": an object of strings, or null.
func parseMetadata(raw []byte) (map[string]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	m := map[string]string{}
	err := object(raw, func(key string, v []byte) error {
		s, err := jsonString(v)
		if err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		m[key] = s
		return nil
	})
	if err != nil {
		var dup *duplicateKeyError
		if errors.As(err, &dup) {
			return nil, fmt.Errorf("key %q appears twice", dup.key)
		}
		return nil, err
	}
	return m, nil
}

func isNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }
