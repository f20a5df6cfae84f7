// Package ggufkeys reads what an architecture needs from a GGUF file's
// metadata and tensor types: typed keys under the architecture's prefix,
// with the first error kept and naming the key, and the element types the
// engine computes with. The architectures (deepseekv3, deepseekv4) share it
// so that a file's keys are read, and refused, the same way.
package ggufkeys

import (
	"fmt"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/gguf"
)

// Reader reads keys "ARCH.key" of one file and keeps the first error.
type Reader struct {
	f      *gguf.File
	prefix string
	pkg    string
	err    error
}

// New reads the keys of arch (general.architecture) from f; errors start
// with pkg, the reading package's name.
func New(f *gguf.File, arch, pkg string) *Reader {
	return &Reader{f: f, prefix: arch + ".", pkg: pkg}
}

// Err is the first error any read met, or nil.
func (r *Reader) Err() error { return r.err }

// Key is key's full name, with the architecture's prefix.
func (r *Reader) Key(key string) string { return r.prefix + key }

// Fail records an error about key unless one is recorded already.
func (r *Reader) Fail(key, msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: key %s%s: %s", r.pkg, r.prefix, key, msg)
	}
}

func (r *Reader) wrap(err error) {
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%s: %w", r.pkg, err)
	}
}

// U32 reads an unsigned integer key; a missing key is 0, and an error if
// required.
func (r *Reader) U32(key string, required bool) int {
	full := r.prefix + key
	if !r.f.Has(full) {
		if required {
			r.Fail(key, "missing")
		}
		return 0
	}
	v, err := r.f.Uint32(full)
	r.wrap(err)
	return int(v)
}

// F32 reads a float key; a missing key is def, and an error if def < 0
// (which then reads as 0).
func (r *Reader) F32(key string, def float32) float32 {
	full := r.prefix + key
	if !r.f.Has(full) {
		if def < 0 {
			r.Fail(key, "missing")
		}
		return max(def, 0)
	}
	v, err := r.f.Float32(full)
	r.wrap(err)
	return v
}

// Bool reads a boolean key; a missing key is false.
func (r *Reader) Bool(key string) bool {
	full := r.prefix + key
	if !r.f.Has(full) {
		return false
	}
	v, err := r.f.Bool(full)
	r.wrap(err)
	return v
}

// Ints reads a required integer array (int32 or uint32) of at least n
// entries, one per block, and returns its first n.
func (r *Reader) Ints(key string, n int) []int {
	v, ok := r.f.Lookup(r.prefix + key)
	if !ok {
		r.Fail(key, "missing")
		return nil
	}
	var out []int
	switch a := v.(type) {
	case []int32:
		for _, x := range a {
			out = append(out, int(x))
		}
	case []uint32:
		for _, x := range a {
			out = append(out, int(x))
		}
	default:
		r.Fail(key, fmt.Sprintf("%T, want an int32 array", v))
		return nil
	}
	if len(out) < n {
		r.Fail(key, fmt.Sprintf("%d entries for %d blocks", len(out), n))
		return nil
	}
	return out[:n]
}

// PerLayer reads a float per block: an f32 for every block or an f32
// array of at least n entries. A missing key is def, or zeros when def is
// nil. After an earlier error it reads nothing and returns nil: n may be
// the block count that error was about, and a file claiming 2^31 blocks
// must not make it allocate for them.
func (r *Reader) PerLayer(key string, n int, def []float32) []float32 {
	if r.err != nil {
		return nil
	}
	v, ok := r.f.Lookup(r.prefix + key)
	if !ok {
		if def != nil {
			return def
		}
		return make([]float32, n)
	}
	switch a := v.(type) {
	case float32:
		out := make([]float32, n)
		for i := range out {
			out[i] = a
		}
		return out
	case []float32:
		if len(a) < n {
			r.Fail(key, fmt.Sprintf("%d entries for %d blocks", len(a), n))
			return make([]float32, n)
		}
		return a[:n]
	}
	r.Fail(key, fmt.Sprintf("%T, want f32 or an f32 array", v))
	return make([]float32, n)
}

// Vocab is the vocabulary size: the key vocab_size, or without it the
// number of tokenizer.ggml.tokens (0 if neither). A tokenizer with more
// tokens than vocab_size is an error naming both: the ids past the
// embedding table would fail at the first request that used them, not at
// load. Fewer tokens than rows is fine (tables padded for alignment).
func Vocab(r *Reader, f *gguf.File) int {
	tokens := -1
	if t, err := f.Strings("tokenizer.ggml.tokens"); err == nil {
		tokens = len(t)
	}
	v := r.U32("vocab_size", false)
	if v == 0 {
		return max(tokens, 0)
	}
	if tokens > v {
		r.Fail("vocab_size", fmt.Sprintf("%d is less than the %d tokens of tokenizer.ggml.tokens", v, tokens))
	}
	return v
}

// DTypes maps the GGUF tensor types the engine computes with (I32 is not
// among them: an architecture that reads an integer table checks for it
// itself).
var DTypes = map[gguf.Type]engine.DType{
	gguf.TypeF32:  engine.F32,
	gguf.TypeF16:  engine.F16,
	gguf.TypeBF16: engine.BF16,
	gguf.TypeQ8_0: engine.Q8_0,
	gguf.TypeQ4_0: engine.Q4_0,
	gguf.TypeQ4_1: engine.Q4_1,
	gguf.TypeQ5_0: engine.Q5_0,
	gguf.TypeQ5_1: engine.Q5_1,
	gguf.TypeQ4_K: engine.Q4_K,
	gguf.TypeQ5_K: engine.Q5_K,
	gguf.TypeQ6_K: engine.Q6_K,
}
