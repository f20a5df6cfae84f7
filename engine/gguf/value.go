package gguf

import (
	"fmt"
	"strconv"
)

// valueType is the tag of a metadata value in the file (enum gguf_type in
// llama.cpp's ggml/include/gguf.h). Callers see Go types instead (see KV).
type valueType uint32

const (
	typeUint8   valueType = 0
	typeInt8    valueType = 1
	typeUint16  valueType = 2
	typeInt16   valueType = 3
	typeUint32  valueType = 4
	typeInt32   valueType = 5
	typeFloat32 valueType = 6
	typeBool    valueType = 7
	typeString  valueType = 8
	typeArray   valueType = 9
	typeUint64  valueType = 10
	typeInt64   valueType = 11
	typeFloat64 valueType = 12
)

var valueTypeNames = [...]string{
	typeUint8:   "uint8",
	typeInt8:    "int8",
	typeUint16:  "uint16",
	typeInt16:   "int16",
	typeUint32:  "uint32",
	typeInt32:   "int32",
	typeFloat32: "float32",
	typeBool:    "bool",
	typeString:  "string",
	typeArray:   "array",
	typeUint64:  "uint64",
	typeInt64:   "int64",
	typeFloat64: "float64",
}

func (t valueType) String() string {
	if uint64(t) < uint64(len(valueTypeNames)) {
		return valueTypeNames[t]
	}
	return "type " + strconv.FormatUint(uint64(t), 10)
}

// minSize is the fewest bytes one value of type t takes in the file, used to
// bound element counts by the bytes left before anything is allocated. It is
// 0 for an unknown tag.
func (t valueType) minSize() uint64 {
	switch t {
	case typeUint8, typeInt8, typeBool:
		return 1
	case typeUint16, typeInt16:
		return 2
	case typeUint32, typeInt32, typeFloat32:
		return 4
	case typeUint64, typeInt64, typeFloat64, typeString:
		return 8 // a string is at least its u64 length
	case typeArray:
		return 4 + 8 // element type and count
	}
	return 0
}

// maxArrayDepth bounds array nesting: 1 is an array of scalars, 2 an array of
// arrays, and so on. llama.cpp reads no nested arrays at all and gguf-py
// recurses without a limit; 4 leaves room for any real use while keeping
// a hostile file from recursing deeply.
const maxArrayDepth = 4

// Value lists the Go types a metadata value has: one per GGUF scalar type,
// a slice of it for an array of that type, and []any for an array of arrays,
// whose elements are themselves slices from this list (each with its own
// element type, as the format allows). A GGUF bool is a Go bool, a GGUF
// string a Go string.
type Value interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | float32 | bool | string | uint64 | int64 | float64 |
		[]uint8 | []int8 | []uint16 | []int16 | []uint32 | []int32 | []float32 | []bool | []string |
		[]uint64 | []int64 | []float64 | []any
}

// KV is one metadata key-value pair.
type KV struct {
	Key string
	// Value holds one of the Go types listed by the Value constraint.
	Value any
}

// typeOf returns the GGUF tag of a Go value and, for a slice, the tag of its
// elements. ok is false for a Go type GGUF cannot hold. The elements of a
// []any are not checked here.
func typeOf(v any) (t, elem valueType, ok bool) {
	switch v.(type) {
	case uint8:
		return typeUint8, 0, true
	case int8:
		return typeInt8, 0, true
	case uint16:
		return typeUint16, 0, true
	case int16:
		return typeInt16, 0, true
	case uint32:
		return typeUint32, 0, true
	case int32:
		return typeInt32, 0, true
	case float32:
		return typeFloat32, 0, true
	case bool:
		return typeBool, 0, true
	case string:
		return typeString, 0, true
	case uint64:
		return typeUint64, 0, true
	case int64:
		return typeInt64, 0, true
	case float64:
		return typeFloat64, 0, true
	case []uint8:
		return typeArray, typeUint8, true
	case []int8:
		return typeArray, typeInt8, true
	case []uint16:
		return typeArray, typeUint16, true
	case []int16:
		return typeArray, typeInt16, true
	case []uint32:
		return typeArray, typeUint32, true
	case []int32:
		return typeArray, typeInt32, true
	case []float32:
		return typeArray, typeFloat32, true
	case []bool:
		return typeArray, typeBool, true
	case []string:
		return typeArray, typeString, true
	case []uint64:
		return typeArray, typeUint64, true
	case []int64:
		return typeArray, typeInt64, true
	case []float64:
		return typeArray, typeFloat64, true
	case []any:
		return typeArray, typeArray, true
	}
	return 0, 0, false
}

// describe names the GGUF type of a Go value for error messages: "uint32",
// "array of string", "array of array".
func describe(v any) string {
	t, elem, ok := typeOf(v)
	switch {
	case !ok:
		return fmt.Sprintf("Go type %T", v)
	case t == typeArray:
		return "array of " + elem.String()
	}
	return t.String()
}
