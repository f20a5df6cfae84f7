package gguf

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Type is a ggml tensor element type, the id stored in a tensor info
// (enum ggml_type in llama.cpp's ggml/include/ggml.h). Ids are never reused:
// the gaps (4, 5, 31–33, 36–38) are types ggml removed, and a file that uses
// one is rejected like any other unknown id.
type Type uint32

// The ggml types, with the ids they have in GGUF files.
const (
	TypeF32     Type = 0
	TypeF16     Type = 1
	TypeQ4_0    Type = 2
	TypeQ4_1    Type = 3
	TypeQ5_0    Type = 6
	TypeQ5_1    Type = 7
	TypeQ8_0    Type = 8
	TypeQ8_1    Type = 9
	TypeQ2_K    Type = 10
	TypeQ3_K    Type = 11
	TypeQ4_K    Type = 12
	TypeQ5_K    Type = 13
	TypeQ6_K    Type = 14
	TypeQ8_K    Type = 15
	TypeIQ2_XXS Type = 16
	TypeIQ2_XS  Type = 17
	TypeIQ3_XXS Type = 18
	TypeIQ1_S   Type = 19
	TypeIQ4_NL  Type = 20
	TypeIQ3_S   Type = 21
	TypeIQ2_S   Type = 22
	TypeIQ4_XS  Type = 23
	TypeI8      Type = 24
	TypeI16     Type = 25
	TypeI32     Type = 26
	TypeI64     Type = 27
	TypeF64     Type = 28
	TypeIQ1_M   Type = 29
	TypeBF16    Type = 30
	TypeTQ1_0   Type = 34
	TypeTQ2_0   Type = 35
	TypeMXFP4   Type = 39
	TypeNVFP4   Type = 40
	TypeQ1_0    Type = 41
	TypeQ2_0    Type = 42
)

// qk is ggml's QK_K: the super-block length of the k-quants and most i-quants.
const qk = 256

// traits gives each type's name, block length (elements) and block size
// (bytes), as in the type_traits table of ggml/src/ggml.c and
// GGML_QUANT_SIZES in gguf-py/gguf/constants.py. The byte counts are written
// as the sum of the block struct's fields so they can be checked against
// ggml-common.h. A zero block marks an id ggml does not define.
var traits = [...]struct {
	name  string
	block uint64
	bytes uint64
}{
	TypeF32:     {"F32", 1, 4},
	TypeF16:     {"F16", 1, 2},
	TypeQ4_0:    {"Q4_0", 32, 2 + 16},
	TypeQ4_1:    {"Q4_1", 32, 2 + 2 + 16},
	TypeQ5_0:    {"Q5_0", 32, 2 + 4 + 16},
	TypeQ5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16},
	TypeQ8_0:    {"Q8_0", 32, 2 + 32},
	TypeQ8_1:    {"Q8_1", 32, 2 + 2 + 32}, // ggml's block_q8_1 (two halves, d and s); gguf-py's table still says 40
	TypeQ2_K:    {"Q2_K", qk, 2 + 2 + qk/16 + qk/4},
	TypeQ3_K:    {"Q3_K", qk, 2 + qk/4 + qk/8 + 12},
	TypeQ4_K:    {"Q4_K", qk, 2 + 2 + qk/2 + 12},
	TypeQ5_K:    {"Q5_K", qk, 2 + 2 + qk/2 + qk/8 + 12},
	TypeQ6_K:    {"Q6_K", qk, 2 + qk/2 + qk/4 + qk/16},
	TypeQ8_K:    {"Q8_K", qk, 4 + qk + qk/8},
	TypeIQ2_XXS: {"IQ2_XXS", qk, 2 + qk/4},
	TypeIQ2_XS:  {"IQ2_XS", qk, 2 + qk/4 + qk/32},
	TypeIQ3_XXS: {"IQ3_XXS", qk, 2 + qk/4 + qk/8},
	TypeIQ1_S:   {"IQ1_S", qk, 2 + qk/8 + qk/16},
	TypeIQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	TypeIQ3_S:   {"IQ3_S", qk, 2 + qk/4 + qk/8 + qk/32 + 4},
	TypeIQ2_S:   {"IQ2_S", qk, 2 + qk/4 + qk/16},
	TypeIQ4_XS:  {"IQ4_XS", qk, 2 + 2 + qk/2 + qk/64},
	TypeI8:      {"I8", 1, 1},
	TypeI16:     {"I16", 1, 2},
	TypeI32:     {"I32", 1, 4},
	TypeI64:     {"I64", 1, 8},
	TypeF64:     {"F64", 1, 8},
	TypeIQ1_M:   {"IQ1_M", qk, qk/8 + qk/16 + qk/32},
	TypeBF16:    {"BF16", 1, 2},
	TypeTQ1_0:   {"TQ1_0", qk, 2 + 4*13},
	TypeTQ2_0:   {"TQ2_0", qk, 2 + 64},
	TypeMXFP4:   {"MXFP4", 32, 1 + 16},
	TypeNVFP4:   {"NVFP4", 64, 4 + 32},
	TypeQ1_0:    {"Q1_0", 128, 2 + 16},
	TypeQ2_0:    {"Q2_0", 64, 2 + 16},
}

// Known reports whether t is a type ggml defines (and this package sizes).
func (t Type) Known() bool {
	return uint64(t) < uint64(len(traits)) && traits[t].block != 0
}

// String returns the type's name as gguf-py spells it ("F32", "Q4_K",
// "IQ2_XXS"), or "Type(N)" for an unknown id.
func (t Type) String() string {
	if !t.Known() {
		return "Type(" + strconv.FormatUint(uint64(t), 10) + ")"
	}
	return traits[t].name
}

// BlockSize returns how many elements one block of t holds (1 for the plain
// types, 32 for Q8_0, 256 for the k-quants), or 0 for an unknown type. A
// tensor's row length (its first dimension) must be a multiple of it.
func (t Type) BlockSize() uint64 {
	if !t.Known() {
		return 0
	}
	return traits[t].block
}

// BytesPerBlock returns the size in bytes of one block of t, or 0 for an
// unknown type.
func (t Type) BytesPerBlock() uint64 {
	if !t.Known() {
		return 0
	}
	return traits[t].bytes
}

// TensorSize returns the number of bytes a tensor of type t and shape dims
// (ggml order, fastest dimension first) occupies. It fails for an unknown
// type, a row length that is not a multiple of t's block size, and a shape
// whose element count or byte size does not fit in an int64 (ggml's limit).
func TensorSize(t Type, dims []uint64) (uint64, error) {
	_, size, msg := tensorSize(t, dims)
	if msg != "" {
		return 0, fmt.Errorf("gguf: %s", msg)
	}
	return size, nil
}

// tensorSize checks a tensor's type and shape and returns its element count
// and byte size, or a message saying what is wrong. It does not check the
// number of dimensions.
func tensorSize(t Type, dims []uint64) (elems, size uint64, msg string) {
	if !t.Known() {
		return 0, 0, fmt.Sprintf("unknown ggml type %d", uint32(t))
	}
	elems = 1
	for i, d := range dims {
		if d > math.MaxInt64 {
			return 0, 0, fmt.Sprintf("dimension %d is %d, more than 2^63-1", i, d)
		}
	}
	for _, d := range dims {
		hi, lo := bits.Mul64(elems, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, 0, fmt.Sprintf("shape %s has more than 2^63-1 elements", shapeString(dims))
		}
		elems = lo
	}
	tr := traits[t]
	if len(dims) > 0 && dims[0]%tr.block != 0 {
		return 0, 0, fmt.Sprintf("row length %d is not a multiple of %v's block size %d", dims[0], t, tr.block)
	}
	hi, size := bits.Mul64(elems/tr.block, tr.bytes)
	if hi != 0 || size > math.MaxInt64 {
		return 0, 0, fmt.Sprintf("shape %s of %v is more than 2^63-1 bytes", shapeString(dims), t)
	}
	return elems, size, ""
}

// shapeString formats dims as {a,b,c}, the form used in error messages.
func shapeString(dims []uint64) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, d := range dims {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(d, 10))
	}
	b.WriteByte('}')
	return b.String()
}
