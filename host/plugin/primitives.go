package plugin

import (
	"context"
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/tetratelabs/wazero/api"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
)

// Status codes of sdk/ABI.md §3, negated where a count is returned.
const (
	statusInvalidArgument = 1
)

// forSamplers grants the sampler primitives to samplers, and to bare modules
// (the runtime's tests and the conformance tooling).
func forSamplers(c *Config) bool { return c.Kind == KindSampler || c.Kind == "" }

// littleEndian hosts can view guest arrays in place: wasm memory is
// little-endian.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// f32s returns n float32 values of guest memory at ptr: a view on
// little-endian hosts (valid until the guest runs again), a copy elsewhere.
// ok is false when the range is outside the memory, too long, or not
// 4-byte aligned (sdk/ABI.md §3: natural alignment).
func f32s(m api.Memory, ptr, n uint32) ([]float32, bool) {
	if n > primitive.MaxValues || ptr%4 != 0 {
		return nil, false
	}
	b, ok := m.Read(ptr, 4*n)
	if !ok {
		return nil, false
	}
	if n == 0 {
		return []float32{}, true
	}
	if littleEndian {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n), true
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, true
}

// writeF32s stores v at ptr unless it is already there (a view).
func writeF32s(m api.Memory, ptr uint32, v []float32) bool {
	b, ok := m.Read(ptr, uint32(4*len(v)))
	if !ok {
		return false
	}
	if len(v) > 0 && littleEndian && unsafe.Pointer(&b[0]) == unsafe.Pointer(&v[0]) {
		return true
	}
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return true
}

// samplerPrimitives are the ulan_v1 imports of sdk/ABI.md §6.2. Each reads
// its arrays from guest memory (bounded by primitive.MaxValues), runs the
// native primitive and writes the result back; a bad range or argument
// returns −1 (INVALID_ARGUMENT) instead of trapping the host.
func samplerPrimitives() map[string]hostFunc {
	i32, f32 := api.ValueTypeI32, api.ValueTypeF32
	// −1 as an i32 result.
	bad := uint64(math.MaxUint32 - statusInvalidArgument + 1)
	return map[string]hostFunc{
		// top_k(vals, n, k, out_ids, out_vals) → m or −1
		"top_k": {
			params: []api.ValueType{i32, i32, i32, i32, i32}, results: []api.ValueType{i32}, grant: forSamplers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				vals, ok := f32s(m.Memory(), uint32(s[0]), uint32(s[1]))
				k := int(int32(s[2]))
				if !ok || k < 0 || k > primitive.MaxTopK {
					s[0] = bad
					return
				}
				k = min(k, len(vals))
				ids, out := make([]int32, k), make([]float32, k)
				n, err := primitive.TopK(vals, k, ids, out)
				idb, ok1 := m.Memory().Read(uint32(s[3]), uint32(4*n))
				if err != nil || !ok1 || !writeF32s(m.Memory(), uint32(s[4]), out[:n]) {
					s[0] = bad
					return
				}
				for i, id := range ids[:n] {
					binary.LittleEndian.PutUint32(idb[4*i:], uint32(id))
				}
				s[0] = uint64(uint32(n))
			}),
		},
		// softmax(vals, n, temp, out) → 0 or −1
		"softmax": {
			params: []api.ValueType{i32, i32, f32, i32}, results: []api.ValueType{i32}, grant: forSamplers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				vals, ok := f32s(m.Memory(), uint32(s[0]), uint32(s[1]))
				out, ok2 := f32s(m.Memory(), uint32(s[3]), uint32(s[1]))
				if !ok || !ok2 {
					s[0] = bad
					return
				}
				res := out
				if !littleEndian {
					res = make([]float32, len(vals))
				}
				if primitive.Softmax(vals, api.DecodeF32(s[2]), res) != nil || !writeF32s(m.Memory(), uint32(s[3]), res) {
					s[0] = bad
					return
				}
				s[0] = 0
			}),
		},
		// draw(probs, n, u) → index or −1
		"draw": {
			params: []api.ValueType{i32, i32, f32}, results: []api.ValueType{i32}, grant: forSamplers,
			fn: overProbs(primitive.Draw),
		},
	}
}

// overProbs is a host function (probs, n, x) → index or −1 that reads n
// float32s at probs from the guest's memory and answers f(probs, x).
func overProbs(f func(probs []float32, x float32) (int, error)) api.GoModuleFunc {
	return func(_ context.Context, m api.Module, s []uint64) {
		probs, ok := f32s(m.Memory(), uint32(s[0]), uint32(s[1]))
		if !ok {
			s[0] = uint64(math.MaxUint32) // −1
			return
		}
		i, err := f(probs, api.DecodeF32(s[2]))
		if err != nil {
			s[0] = uint64(math.MaxUint32)
			return
		}
		s[0] = uint64(uint32(i))
	}
}
