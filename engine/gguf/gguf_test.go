package gguf_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
)

// allKVs has one key of every metadata type, arrays of every element type
// (empty ones too) and nested arrays up to the depth limit.
func allKVs() []gguf.KV {
	return []gguf.KV{
		{Key: "general.architecture", Value: "deepseek2"},
		{Key: "t.u8", Value: uint8(200)},
		{Key: "t.i8", Value: int8(-5)},
		{Key: "t.u16", Value: uint16(65000)},
		{Key: "t.i16", Value: int16(-32000)},
		{Key: "t.u32", Value: uint32(4_000_000_000)},
		{Key: "t.i32", Value: int32(-2_000_000_000)},
		{Key: "t.f32", Value: float32(-1.5e-6)},
		{Key: "t.bool.true", Value: true},
		{Key: "t.bool.false", Value: false},
		{Key: "t.str", Value: "ünïcødé <｜begin▁of▁sentence｜>"},
		{Key: "t.str.empty", Value: ""},
		{Key: "t.u64", Value: uint64(math.MaxUint64)},
		{Key: "t.i64", Value: int64(math.MinInt64)},
		{Key: "t.f64", Value: math.Pi},
		{Key: "a.u8", Value: []uint8{0, 1, 255}},
		{Key: "a.i8", Value: []int8{-128, 0, 127}},
		{Key: "a.u16", Value: []uint16{}},
		{Key: "a.i16", Value: []int16{-1, 1}},
		{Key: "a.u32", Value: []uint32{1, 2, 3}},
		{Key: "a.i32", Value: []int32{0, 4, 128}},
		{Key: "a.f32", Value: []float32{float32(math.Inf(1)), 0.25, -0}},
		{Key: "a.bool", Value: []bool{true, false, true}},
		{Key: "a.str", Value: []string{"a b", "", "Ġthe"}},
		{Key: "a.u64", Value: []uint64{math.MaxUint64}},
		{Key: "a.i64", Value: []int64{-1}},
		{Key: "a.f64", Value: []float64{1e300, -1e-300}},
		{Key: "a.nested", Value: []any{
			[]uint32{1, 2},
			[]string{"x"},
			[]any{[]int8{-1, 1}, []any{}},
			[]bool{},
		}},
		{Key: "a.deepest", Value: []any{[]any{[]any{[]uint8{7}}}}},
	}
}

type tensorSpec struct {
	name string
	typ  gguf.Type
	dims []uint64
}

var roundTripTensors = []tensorSpec{
	{"token_embd.weight", gguf.TypeF32, []uint64{4, 3}},
	{"output_norm.weight", gguf.TypeF16, []uint64{8}},
	{"blk.0.attn_q_a.weight", gguf.TypeQ8_0, []uint64{64, 2}},
	{"blk.0.ffn_gate_exps.weight", gguf.TypeQ4_K, []uint64{256, 1, 2}},
	{"blk.0.ffn_gate_tid2eid.weight", gguf.TypeI32, []uint64{5}},
	{"blk.0.attn_k_b.weight", gguf.TypeBF16, []uint64{2, 2, 2}},
	{"blk.0.ffn_up_exps.weight", gguf.TypeMXFP4, []uint64{32}},
	{"blk.0.ffn_down_exps.weight", gguf.TypeIQ4_XS, []uint64{256, 2}},
	{"blk.0.four_dims.weight", gguf.TypeQ6_K, []uint64{256, 1, 1, 2}},
	{"blk.0.empty.weight", gguf.TypeF32, []uint64{0, 3}},
}

func mustSize(t testing.TB, typ gguf.Type, dims []uint64) uint64 {
	t.Helper()
	n, err := gguf.TensorSize(typ, dims)
	require.NoError(t, err)
	return n
}

func randomBytes(r *rand.Rand, n uint64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func encode(t testing.TB, w *gguf.Writer) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), n)
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		alignment uint32 // 0: leave general.alignment out
	}{
		{"default alignment", 0},
		{"alignment 1", 1},
		{"alignment 64", 64},
		{"alignment 4096", 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(1, uint64(tc.alignment)))
			kvs := allKVs()
			if tc.alignment != 0 {
				kvs = append(kvs[:2:2], append([]gguf.KV{{Key: gguf.AlignmentKey, Value: tc.alignment}}, kvs[2:]...)...)
			}
			var w gguf.Writer
			for _, kv := range kvs {
				w.Add(kv.Key, kv.Value)
			}
			// Shuffled so that file order is not alphabetical or by type.
			order := r.Perm(len(roundTripTensors))
			data := map[string][]byte{}
			for i, j := range order {
				spec := roundTripTensors[j]
				b := randomBytes(r, mustSize(t, spec.typ, spec.dims))
				data[spec.name] = b
				if i%3 == 0 {
					w.AddTensorFrom(spec.name, spec.typ, spec.dims, bytes.NewReader(b))
				} else {
					w.AddTensor(spec.name, spec.typ, spec.dims, b)
				}
			}

			path := filepath.Join(t.TempDir(), "model.gguf")
			require.NoError(t, w.WriteFile(path))
			image, err := os.ReadFile(path)
			require.NoError(t, err)

			parsed, err := gguf.Parse(image)
			require.NoError(t, err)
			mapped, err := gguf.Open(path)
			require.NoError(t, err)
			defer func() { require.NoError(t, mapped.Close()) }()

			wantAlign := uint64(gguf.DefaultAlignment)
			if tc.alignment != 0 {
				wantAlign = uint64(tc.alignment)
			}
			for name, f := range map[string]*gguf.File{"Parse": parsed, "Open": mapped} {
				t.Run(name, func(t *testing.T) {
					require.Equal(t, uint32(3), f.Version())
					require.Equal(t, wantAlign, f.Alignment())
					require.Zero(t, f.DataOffset()%wantAlign)
					require.Equal(t, kvs, f.KVs())
					for _, kv := range kvs {
						require.True(t, f.Has(kv.Key))
					}
					require.False(t, f.Has("missing"))

					tensors := f.Tensors()
					require.Len(t, tensors, len(order))
					prevEnd := f.DataOffset()
					for i, j := range order {
						spec, got := roundTripTensors[j], tensors[i]
						require.Equal(t, spec.name, got.Name)
						require.Equal(t, spec.typ, got.Type)
						require.Equal(t, spec.dims, got.Dims)
						require.Equal(t, uint64(len(data[spec.name])), got.Size)
						require.Zero(t, got.Offset%wantAlign, "tensor %s", spec.name)
						require.GreaterOrEqual(t, got.Offset, prevEnd)
						prevEnd = got.Offset + got.Size
						require.Equal(t, data[spec.name], f.Data(got))
						byName, ok := f.Tensor(spec.name)
						require.True(t, ok)
						require.Equal(t, got, byName)
					}
					// llama.cpp pads the last tensor too.
					require.Zero(t, uint64(len(image))%wantAlign)
				})
			}

			// The bytes are shared with the image, not copied.
			ti, _ := parsed.Tensor("token_embd.weight")
			require.Same(t, &image[ti.Offset], &parsed.Data(ti)[0])
		})
	}
}

// TestRoundTripSpecialFloats checks NaN and signed zeros survive bit for bit
// (require.Equal cannot compare NaN).
func TestRoundTripSpecialFloats(t *testing.T) {
	t.Parallel()
	nan32 := math.Float32frombits(0x7fc00001)
	nan64 := math.Float64frombits(0x7ff8000000000001)
	var w gguf.Writer
	w.Add("f32", nan32)
	w.Add("f64s", []float64{nan64, math.Copysign(0, -1)})
	f, err := gguf.Parse(encode(t, &w))
	require.NoError(t, err)
	v32, err := f.Float32("f32")
	require.NoError(t, err)
	require.Equal(t, uint32(0x7fc00001), math.Float32bits(v32))
	v64, err := gguf.Get[[]float64](f, "f64s")
	require.NoError(t, err)
	require.Equal(t, uint64(0x7ff8000000000001), math.Float64bits(v64[0]))
	require.Equal(t, uint64(1)<<63, math.Float64bits(v64[1]))
}

// knownAnswer is a GGUF v3 file assembled by hand from gguf.h's layout
// description, independently of this package's writer: four keys, two
// tensors, default alignment, padding after the infos and after each
// tensor as llama.cpp writes it.
var knownAnswer = "" +
	"GGUF" +
	"\x03\x00\x00\x00" + // version 3
	"\x02\x00\x00\x00\x00\x00\x00\x00" + // 2 tensors
	"\x04\x00\x00\x00\x00\x00\x00\x00" + // 4 key-value pairs
	// offset 24: general.architecture = "deepseek2" (string, type 8)
	"\x14\x00\x00\x00\x00\x00\x00\x00" + "general.architecture" +
	"\x08\x00\x00\x00" + "\x09\x00\x00\x00\x00\x00\x00\x00" + "deepseek2" +
	// offset 73: deepseek2.block_count = 27 (uint32, type 4)
	"\x15\x00\x00\x00\x00\x00\x00\x00" + "deepseek2.block_count" +
	"\x04\x00\x00\x00" + "\x1b\x00\x00\x00" +
	// offset 110: deepseek2.rope.freq_base = 10000 (float32, type 6; 0x461c4000)
	"\x18\x00\x00\x00\x00\x00\x00\x00" + "deepseek2.rope.freq_base" +
	"\x06\x00\x00\x00" + "\x00\x40\x1c\x46" +
	// offset 150: tokenizer.ggml.tokens = ["a", "bc"] (array 9 of string 8)
	"\x15\x00\x00\x00\x00\x00\x00\x00" + "tokenizer.ggml.tokens" +
	"\x09\x00\x00\x00" + "\x08\x00\x00\x00" + "\x02\x00\x00\x00\x00\x00\x00\x00" +
	"\x01\x00\x00\x00\x00\x00\x00\x00" + "a" +
	"\x02\x00\x00\x00\x00\x00\x00\x00" + "bc" +
	// offset 214: output_norm.weight, 1 dim {4}, F32 (0), data offset 0
	"\x12\x00\x00\x00\x00\x00\x00\x00" + "output_norm.weight" +
	"\x01\x00\x00\x00" + "\x04\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00" + "\x00\x00\x00\x00\x00\x00\x00\x00" +
	// offset 264: token_embd.weight, 2 dims {32, 2}, Q8_0 (8), data offset 32
	"\x11\x00\x00\x00\x00\x00\x00\x00" + "token_embd.weight" +
	"\x02\x00\x00\x00" + "\x20\x00\x00\x00\x00\x00\x00\x00" + "\x02\x00\x00\x00\x00\x00\x00\x00" +
	"\x08\x00\x00\x00" + "\x20\x00\x00\x00\x00\x00\x00\x00" +
	// offset 321: pad to 352, the data section
	strings.Repeat("\x00", 31) +
	// offset 352: output_norm.weight = {1, -2, 0.5, 0} as float32, then 16 bytes of padding
	"\x00\x00\x80\x3f" + "\x00\x00\x00\xc0" + "\x00\x00\x00\x3f" + "\x00\x00\x00\x00" +
	strings.Repeat("\x00", 16) +
	// offset 384: token_embd.weight, two Q8_0 blocks of 34 bytes, then 28 bytes of padding
	strings.Repeat("\x01", 34) + strings.Repeat("\x02", 34) +
	strings.Repeat("\x00", 28)

func TestKnownAnswer(t *testing.T) {
	t.Parallel()
	image := []byte(knownAnswer)
	require.Len(t, image, 480)
	f, err := gguf.Parse(image)
	require.NoError(t, err)

	require.Equal(t, uint64(352), f.DataOffset())
	arch, err := f.Arch()
	require.NoError(t, err)
	require.Equal(t, "deepseek2", arch)
	blocks, err := f.Uint32("deepseek2.block_count")
	require.NoError(t, err)
	require.Equal(t, uint32(27), blocks)
	base, err := f.Float32("deepseek2.rope.freq_base")
	require.NoError(t, err)
	require.Equal(t, float32(10000), base)
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "bc"}, tokens)

	require.Equal(t, []gguf.TensorInfo{
		{Name: "output_norm.weight", Type: gguf.TypeF32, Dims: []uint64{4}, Offset: 352, Size: 16},
		{Name: "token_embd.weight", Type: gguf.TypeQ8_0, Dims: []uint64{32, 2}, Offset: 384, Size: 68},
	}, f.Tensors())
	norm, _ := f.Tensor("output_norm.weight")
	var vals [4]float32
	require.NoError(t, binary.Read(bytes.NewReader(f.Data(norm)), binary.LittleEndian, &vals))
	require.Equal(t, [4]float32{1, -2, 0.5, 0}, vals)

	// The writer must produce the same bytes from the same content.
	var w gguf.Writer
	for _, kv := range f.KVs() {
		w.Add(kv.Key, kv.Value)
	}
	for _, ti := range f.Tensors() {
		w.AddTensor(ti.Name, ti.Type, ti.Dims, f.Data(ti))
	}
	require.Equal(t, image, encode(t, &w))
}

// rawFile assembles GGUF bytes field by field for malformed inputs.
type rawFile []byte

func header(tensors, kvs uint64) rawFile {
	return rawFile("GGUF").u32(3).u64(tensors).u64(kvs)
}

func (r rawFile) u8(v uint8) rawFile   { return append(r, v) }
func (r rawFile) u32(v uint32) rawFile { return binary.LittleEndian.AppendUint32(r, v) }
func (r rawFile) u64(v uint64) rawFile { return binary.LittleEndian.AppendUint64(r, v) }
func (r rawFile) str(s string) rawFile { return append(r.u64(uint64(len(s))), s...) }
func (r rawFile) zeros(n int) rawFile  { return append(r, make([]byte, n)...) }

// key appends a key and a value type tag.
func (r rawFile) key(k string, tag uint32) rawFile { return r.str(k).u32(tag) }

// info appends a tensor info.
func (r rawFile) info(name string, typ uint32, offset uint64, dims ...uint64) rawFile {
	r = r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r = r.u64(d)
	}
	return r.u32(typ).u64(offset)
}

// padTo pads to a multiple of n.
func (r rawFile) padTo(n int) rawFile { return r.zeros((n - len(r)%n) % n) }

type malformedCase struct {
	name string
	data rawFile
	want []string // substrings of the error
	eof  bool     // the error wraps io.ErrUnexpectedEOF
}

// malformedCases are hand-assembled bad files, one per check Parse makes;
// they also seed FuzzParse.
func malformedCases() []malformedCase {
	const (
		tU8, tU32, tU64, tString, tArray = 0, 4, 10, 8, 9
		f32, q80                         = 0, 8
	)
	deep := header(0, 1).key("deep", tArray)
	for range 4 {
		deep = deep.u32(tArray).u64(1)
	}
	deep = deep.u32(tU8).u64(0)

	return []malformedCase{
		{"empty", rawFile{}, []string{"header", "too short"}, true},
		{"bad magic", rawFile("GGML").u32(3).u64(0).u64(0), []string{`magic "GGML"`}, false},
		{"version 1", rawFile("GGUF").u32(1).u64(0).u64(0), []string{"version 1 is not supported"}, false},
		{"version 4", rawFile("GGUF").u32(4).u64(0).u64(0), []string{"version 4 is not supported"}, false},
		{"version 0", rawFile("GGUF").u32(0).u64(0).u64(0), []string{"version 0 is not supported"}, false},
		{"big-endian", rawFile("GGUF").u32(0x03000000).u64(0).u64(0), []string{"big-endian"}, false},
		{"truncated header", rawFile("GGUF").u32(3).u32(0), []string{"header (offset 8)", "file ends"}, true},
		{"2^60 tensors", header(1<<60, 0).zeros(1000), []string{"header (offset 8)", "1152921504606846976 tensor infos"}, true},
		{"2^60 keys", header(0, 1<<60).zeros(1000), []string{"header (offset 16)", "1152921504606846976 keys"}, true},
		{"negative key count", header(0, 1<<63).zeros(1000), []string{"9223372036854775808 keys"}, true},
		{"counts fit alone but not together", header(20, 50).zeros(1000), []string{"20 tensor infos and 50 keys"}, true},
		{"key length 2^62", header(0, 1).u64(1 << 62).zeros(100), []string{"key #0 (offset 24)", "string length 4611686018427387904 exceeds"}, true},
		{"empty key", header(0, 1).key("", tU8).u8(0).zeros(10), []string{"key #0 (offset 24)", "empty key"}, false},
		{"string value too long", header(0, 1).key("general.name", tString).u64(1000).zeros(20), []string{`key "general.name" (offset 48)`, "string length 1000 exceeds the 20 bytes left"}, true},
		{"array of 2^60", header(0, 1).key("a.arr", tArray).u32(tU8).u64(1 << 60).zeros(1000), []string{`key "a.arr" (offset 41)`, "array of 1152921504606846976 uint8 values"}, true},
		{"array of 2^60 arrays", header(0, 1).key("a.arr", tArray).u32(tArray).u64(1 << 60).zeros(1000), []string{`key "a.arr"`, "array values cannot fit"}, true},
		{"bad string in array", header(0, 1).key("tokenizer.ggml.tokens", tArray).u32(tString).u64(2).str("ok").u64(99).zeros(4), []string{`key "tokenizer.ggml.tokens" element 1`, "string length 99"}, true},
		{"unknown value type", header(0, 1).key("x", 13).zeros(8), []string{`key "x" (offset 33)`, "unknown value type 13"}, false},
		{"unknown element type", header(0, 1).key("x", tArray).u32(77).u64(0), []string{`key "x"`, "unknown array element type 77"}, false},
		{"arrays nested 5 deep", deep, []string{`key "deep" element 0 element 0 element 0 element 0`, "nested more than 4 deep"}, false},
		{"truncated value", header(0, 1).key("a", tU32).u8(1), []string{`key "a" (offset 37)`, "need 4 bytes, 1 left"}, true},
		{"truncated key", header(0, 1).u64(20).str("abc"), []string{"key #0 (offset 24)", "string length 20 exceeds the 11 bytes left"}, true},
		{"duplicate key", header(0, 2).key("a", tU8).u8(1).key("a", tU8).u8(2), []string{`key "a" (offset 38)`, "duplicate key (first at offset 24)"}, false},
		{"alignment is u64", header(0, 1).key(gguf.AlignmentKey, tU64).u64(32), []string{`key "general.alignment" (offset 24)`, "is uint64, want uint32"}, false},
		{"alignment 48", header(0, 1).key(gguf.AlignmentKey, tU32).u32(48), []string{`key "general.alignment"`, "alignment 48 is not a power of two"}, false},
		{"alignment 0", header(0, 1).key(gguf.AlignmentKey, tU32).u32(0), []string{`key "general.alignment"`, "alignment 0 is not a power of two"}, false},
		{"tensor name 2^62", header(1, 0).u64(1 << 62).zeros(100), []string{"tensor #0 (offset 24)", "string length"}, true},
		{"empty tensor name", header(1, 0).info("", f32, 0, 1).padTo(32).zeros(4), []string{"tensor #0 (offset 24)", "empty name"}, false},
		{"zero dims", header(1, 0).info("w", f32, 0).padTo(32).zeros(4), []string{`tensor "w" (offset 24)`, "0 dimensions, want 1 to 4"}, false},
		{"five dims", header(1, 0).info("w", f32, 0, 1, 1, 1, 1, 1).padTo(32).zeros(4), []string{`tensor "w"`, "5 dimensions"}, false},
		{"negative dim", header(1, 0).info("w", f32, 0, 1<<63).padTo(32), []string{`tensor "w"`, "dimension 0 is 9223372036854775808"}, false},
		{"element count overflow", header(1, 0).info("w", f32, 0, 1<<32, 1<<32).padTo(32), []string{`tensor "w"`, "shape {4294967296,4294967296} has more than 2^63-1 elements"}, false},
		{"byte size overflow", header(1, 0).info("w", f32, 0, 1<<62).padTo(32), []string{`tensor "w"`, "shape {4611686018427387904} of F32 is more than 2^63-1 bytes"}, false},
		{"removed type id", header(1, 0).info("w", 4, 0, 32).padTo(32), []string{`tensor "w"`, "unknown ggml type 4"}, false},
		{"unknown type id", header(1, 0).info("blk.0.attn_q_a.weight", 99, 0, 32).padTo(32), []string{`tensor "blk.0.attn_q_a.weight" (offset 24)`, "unknown ggml type 99"}, false},
		{"row not a multiple of block", header(1, 0).info("w", q80, 0, 33, 1).padTo(32).zeros(64), []string{`tensor "w"`, "row length 33 is not a multiple of Q8_0's block size 32"}, false},
		{"misaligned offset", header(1, 0).info("w", f32, 16, 4).padTo(32).zeros(64), []string{`tensor "w"`, "data offset 16 is not a multiple of the alignment 32"}, false},
		{"misaligned for general.alignment", header(1, 1).key(gguf.AlignmentKey, tU32).u32(64).info("w", f32, 32, 4).padTo(64).zeros(128), []string{`tensor "w"`, "not a multiple of the alignment 64"}, false},
		{"data past the end", header(1, 0).info("w", f32, 0, 8).padTo(32).zeros(4), []string{`tensor "w" (offset 24)`, "32 bytes of data at offset 0 after the data section start 64 lie outside the 68-byte file"}, true},
		{"data section past the end", header(1, 0).info("w", f32, 0, 1), []string{`tensor "w"`, "lie outside"}, true},
		{"offset overflow", header(1, 0).info("w", f32, math.MaxUint64-31, 1).padTo(32).zeros(32), []string{`tensor "w"`, "lie outside"}, true},
		{"duplicate tensor", header(2, 0).info("w", f32, 0, 1).info("w", f32, 32, 1).padTo(32).zeros(64), []string{`tensor "w" (offset 57)`, "duplicate name (first at offset 24)"}, false},
		{"same data twice", header(2, 0).info("a", f32, 0, 8).info("b", f32, 0, 8).padTo(32).zeros(32), []string{`tensor "b" (offset 57)`, `data [96, 128) overlap tensor "a" at [96, 128)`}, false},
		{"data inside another's", header(3, 0).info("a", f32, 0, 32).info("b", f32, 32, 4).info("c", f32, 64, 8).padTo(32).zeros(128), []string{`tensor "b" (offset 57)`, `data [160, 176) overlap tensor "a" at [128, 256)`}, false},
		{"truncated tensor info", header(1, 0).str("w").u32(4).u64(4).u64(1).u64(1), []string{`tensor "w"`, "file ends"}, true},
	}
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range malformedCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := gguf.Parse(tc.data)
			require.Error(t, err)
			require.Nil(t, f)
			var fe *gguf.FormatError
			require.ErrorAs(t, err, &fe)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.Equal(t, tc.eof, errors.Is(err, io.ErrUnexpectedEOF), "wraps io.ErrUnexpectedEOF")
		})
	}
}

// smallFile is a valid file with metadata of several kinds and two tensors.
func smallFile(t testing.TB) (image []byte, dataEnd uint64) {
	t.Helper()
	var w gguf.Writer
	w.Add("general.architecture", "deepseek2")
	w.Add("deepseek2.block_count", uint32(2))
	w.Add("tokenizer.ggml.tokens", []string{"<s>", "a", "bc"})
	w.Add("a.nested", []any{[]int32{1}, []any{[]bool{true}}})
	w.Add("a.f32s", []float32{1, 2})
	w.AddTensor("a.weight", gguf.TypeF32, []uint64{3}, make([]byte, 12))
	w.AddTensor("b.weight", gguf.TypeQ8_0, []uint64{32}, bytes.Repeat([]byte{7}, 34))
	image = encode(t, &w)
	f, err := gguf.Parse(image)
	require.NoError(t, err)
	last := f.Tensors()[1]
	return image, last.Offset + last.Size
}

// TestTruncated parses every prefix of a valid file: each one that cuts
// into the header, metadata, infos or tensor data must fail with a
// FormatError, never panic; only the trailing padding may be cut.
func TestTruncated(t *testing.T) {
	t.Parallel()
	image, dataEnd := smallFile(t)
	require.Less(t, dataEnd, uint64(len(image)), "the file should end in padding")
	for n := range len(image) + 1 {
		f, err := gguf.Parse(image[:n:n])
		if uint64(n) < dataEnd {
			var fe *gguf.FormatError
			require.ErrorAs(t, err, &fe, "prefix of %d bytes", n)
			require.Nil(t, f)
			continue
		}
		require.NoError(t, err, "prefix of %d bytes", n)
		require.Len(t, f.Tensors(), 2)
	}
}

func TestGetters(t *testing.T) {
	t.Parallel()
	var w gguf.Writer
	for _, kv := range allKVs() {
		w.Add(kv.Key, kv.Value)
	}
	f, err := gguf.Parse(encode(t, &w))
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		get     func(f *gguf.File, key string) (any, error)
		key     string
		want    any
		wantErr string
	}{
		{"Uint32", func(f *gguf.File, k string) (any, error) { return f.Uint32(k) }, "t.u32", uint32(4_000_000_000), ""},
		{"Int32", func(f *gguf.File, k string) (any, error) { return f.Int32(k) }, "t.i32", int32(-2_000_000_000), ""},
		{"Uint64", func(f *gguf.File, k string) (any, error) { return f.Uint64(k) }, "t.u64", uint64(math.MaxUint64), ""},
		{"Int64", func(f *gguf.File, k string) (any, error) { return f.Int64(k) }, "t.i64", int64(math.MinInt64), ""},
		{"Float32", func(f *gguf.File, k string) (any, error) { return f.Float32(k) }, "t.f32", float32(-1.5e-6), ""},
		{"Float64", func(f *gguf.File, k string) (any, error) { return f.Float64(k) }, "t.f64", math.Pi, ""},
		{"Bool", func(f *gguf.File, k string) (any, error) { return f.Bool(k) }, "t.bool.true", true, ""},
		{"String", func(f *gguf.File, k string) (any, error) { return f.String(k) }, "t.str.empty", "", ""},
		{"Strings", func(f *gguf.File, k string) (any, error) { return f.Strings(k) }, "a.str", []string{"a b", "", "Ġthe"}, ""},
		{"Int32s", func(f *gguf.File, k string) (any, error) { return f.Int32s(k) }, "a.i32", []int32{0, 4, 128}, ""},
		{"Uint32s", func(f *gguf.File, k string) (any, error) { return f.Uint32s(k) }, "a.u32", []uint32{1, 2, 3}, ""},
		{"Float32s", func(f *gguf.File, k string) (any, error) { return f.Float32s(k) }, "a.f32", []float32{float32(math.Inf(1)), 0.25, 0}, ""},
		{"Get uint16", func(f *gguf.File, k string) (any, error) { return gguf.Get[uint16](f, k) }, "t.u16", uint16(65000), ""},
		{"Get nested", func(f *gguf.File, k string) (any, error) { return gguf.Get[[]any](f, k) }, "a.deepest", []any{[]any{[]any{[]uint8{7}}}}, ""},
		{"Arch", func(f *gguf.File, _ string) (any, error) { return f.Arch() }, "", "deepseek2", ""},
		{"int32 as uint32", func(f *gguf.File, k string) (any, error) { return f.Uint32(k) }, "t.i32", nil, `gguf: key "t.i32" is int32, want uint32`},
		{"uint64 as uint32", func(f *gguf.File, k string) (any, error) { return f.Uint32(k) }, "t.u64", nil, `gguf: key "t.u64" is uint64, want uint32`},
		{"float64 as float32", func(f *gguf.File, k string) (any, error) { return f.Float32(k) }, "t.f64", nil, `gguf: key "t.f64" is float64, want float32`},
		{"uint8 as bool", func(f *gguf.File, k string) (any, error) { return f.Bool(k) }, "t.u8", nil, `gguf: key "t.u8" is uint8, want bool`},
		{"array as scalar", func(f *gguf.File, k string) (any, error) { return f.String(k) }, "a.str", nil, `gguf: key "a.str" is array of string, want string`},
		{"wrong element type", func(f *gguf.File, k string) (any, error) { return f.Int32s(k) }, "a.u32", nil, `gguf: key "a.u32" is array of uint32, want array of int32`},
		{"nested as strings", func(f *gguf.File, k string) (any, error) { return f.Strings(k) }, "a.nested", nil, `gguf: key "a.nested" is array of array, want array of string`},
		{"missing", func(f *gguf.File, k string) (any, error) { return f.Uint32(k) }, "deepseek2.block_count", nil, `gguf: key "deepseek2.block_count": not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.get(f, tc.key)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}

	_, err = f.Uint32("missing")
	require.ErrorIs(t, err, gguf.ErrNotFound)
	v, ok := f.Lookup("t.i8")
	require.True(t, ok)
	require.Equal(t, int8(-5), v)
	_, ok = f.Lookup("missing")
	require.False(t, ok)

	var noArch gguf.Writer
	g, err := gguf.Parse(encode(t, &noArch))
	require.NoError(t, err)
	_, err = g.Arch()
	require.ErrorIs(t, err, gguf.ErrNotFound)
	require.ErrorContains(t, err, `"general.architecture"`)
}

func TestExpect(t *testing.T) {
	t.Parallel()
	var w gguf.Writer
	w.AddTensor("blk.3.attn_q_b.weight", gguf.TypeF32, []uint64{4, 6}, make([]byte, 96))
	w.AddTensor("blk.3.attn_k_b.weight", gguf.TypeF16, []uint64{2, 3, 4}, make([]byte, 48))
	f, err := gguf.Parse(encode(t, &w))
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		tensor  string
		types   []gguf.Type
		dims    []uint64
		wantErr string
	}{
		{"match", "blk.3.attn_q_b.weight", []gguf.Type{gguf.TypeF32}, []uint64{4, 6}, ""},
		{"trailing 1 wanted", "blk.3.attn_q_b.weight", []gguf.Type{gguf.TypeF32}, []uint64{4, 6, 1}, ""},
		{"trailing 1 left out", "blk.3.attn_k_b.weight", []gguf.Type{gguf.TypeF16}, []uint64{2, 3, 4, 1}, ""},
		{"one of", "blk.3.attn_k_b.weight", []gguf.Type{gguf.TypeF32, gguf.TypeF16}, []uint64{2, 3, 4}, ""},
		{"any type", "blk.3.attn_k_b.weight", nil, []uint64{2, 3, 4}, ""},
		{"shape", "blk.3.attn_q_b.weight", []gguf.Type{gguf.TypeF32}, []uint64{4, 6, 2}, `gguf: tensor "blk.3.attn_q_b.weight": shape {4,6}, want {4,6,2}`},
		{"transposed", "blk.3.attn_q_b.weight", []gguf.Type{gguf.TypeF32}, []uint64{6, 4}, `gguf: tensor "blk.3.attn_q_b.weight": shape {4,6}, want {6,4}`},
		{"fewer dims", "blk.3.attn_k_b.weight", nil, []uint64{2, 3}, `gguf: tensor "blk.3.attn_k_b.weight": shape {2,3,4}, want {2,3}`},
		{"type", "blk.3.attn_q_b.weight", []gguf.Type{gguf.TypeF16}, []uint64{4, 6}, `gguf: tensor "blk.3.attn_q_b.weight": type F32, want F16`},
		{"types", "blk.3.attn_q_b.weight", []gguf.Type{gguf.TypeQ8_0, gguf.TypeBF16}, []uint64{4, 6}, `gguf: tensor "blk.3.attn_q_b.weight": type F32, want Q8_0 or BF16`},
		{"missing", "output.weight", nil, []uint64{1}, `gguf: tensor "output.weight": not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				ti  gguf.TensorInfo
				err error
			)
			if len(tc.types) == 1 {
				ti, err = f.Expect(tc.tensor, tc.types[0], tc.dims...)
			} else {
				ti, err = f.ExpectOneOf(tc.tensor, tc.types, tc.dims...)
			}
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.tensor, ti.Name)
		})
	}
	_, err = f.Expect("nope", gguf.TypeF32, 1)
	require.ErrorIs(t, err, gguf.ErrNotFound)
}

func TestTypes(t *testing.T) {
	t.Parallel()
	// Block lengths and sizes as llama.cpp's type_traits table has them
	// (ggml/src/ggml.c), written out rather than derived.
	for _, tc := range []struct {
		typ          gguf.Type
		name         string
		block, bytes uint64
	}{
		{gguf.TypeF32, "F32", 1, 4}, {gguf.TypeF16, "F16", 1, 2},
		{gguf.TypeQ4_0, "Q4_0", 32, 18}, {gguf.TypeQ4_1, "Q4_1", 32, 20},
		{gguf.TypeQ5_0, "Q5_0", 32, 22}, {gguf.TypeQ5_1, "Q5_1", 32, 24},
		{gguf.TypeQ8_0, "Q8_0", 32, 34}, {gguf.TypeQ8_1, "Q8_1", 32, 36}, // ggml's sizeof(block_q8_1), not gguf-py's 40
		{gguf.TypeQ2_K, "Q2_K", 256, 84}, {gguf.TypeQ3_K, "Q3_K", 256, 110},
		{gguf.TypeQ4_K, "Q4_K", 256, 144}, {gguf.TypeQ5_K, "Q5_K", 256, 176},
		{gguf.TypeQ6_K, "Q6_K", 256, 210}, {gguf.TypeQ8_K, "Q8_K", 256, 292},
		{gguf.TypeIQ2_XXS, "IQ2_XXS", 256, 66}, {gguf.TypeIQ2_XS, "IQ2_XS", 256, 74},
		{gguf.TypeIQ3_XXS, "IQ3_XXS", 256, 98}, {gguf.TypeIQ1_S, "IQ1_S", 256, 50},
		{gguf.TypeIQ4_NL, "IQ4_NL", 32, 18}, {gguf.TypeIQ3_S, "IQ3_S", 256, 110},
		{gguf.TypeIQ2_S, "IQ2_S", 256, 82}, {gguf.TypeIQ4_XS, "IQ4_XS", 256, 136},
		{gguf.TypeI8, "I8", 1, 1}, {gguf.TypeI16, "I16", 1, 2},
		{gguf.TypeI32, "I32", 1, 4}, {gguf.TypeI64, "I64", 1, 8},
		{gguf.TypeF64, "F64", 1, 8}, {gguf.TypeIQ1_M, "IQ1_M", 256, 56},
		{gguf.TypeBF16, "BF16", 1, 2}, {gguf.TypeTQ1_0, "TQ1_0", 256, 54},
		{gguf.TypeTQ2_0, "TQ2_0", 256, 66}, {gguf.TypeMXFP4, "MXFP4", 32, 17},
		{gguf.TypeNVFP4, "NVFP4", 64, 36}, {gguf.TypeQ1_0, "Q1_0", 128, 18},
		{gguf.TypeQ2_0, "Q2_0", 64, 18},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.True(t, tc.typ.Known())
			require.Equal(t, tc.name, tc.typ.String())
			require.Equal(t, tc.block, tc.typ.BlockSize())
			require.Equal(t, tc.bytes, tc.typ.BytesPerBlock())
			n, err := gguf.TensorSize(tc.typ, []uint64{tc.block * 3, 2})
			require.NoError(t, err)
			require.Equal(t, tc.bytes*6, n)
		})
	}
	for _, id := range []uint32{4, 5, 31, 32, 33, 36, 37, 38, 43, 1 << 31} {
		typ := gguf.Type(id)
		require.False(t, typ.Known(), "type %d", id)
		require.Zero(t, typ.BlockSize())
		require.Zero(t, typ.BytesPerBlock())
		require.Contains(t, typ.String(), "Type(")
		_, err := gguf.TensorSize(typ, []uint64{32})
		require.ErrorContains(t, err, "unknown ggml type")
	}
	_, err := gguf.TensorSize(gguf.TypeQ4_K, []uint64{128, 2})
	require.EqualError(t, err, "gguf: row length 128 is not a multiple of Q4_K's block size 256")
}

func TestWriterErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		build func(w *gguf.Writer)
		want  string
	}{
		{"empty key", func(w *gguf.Writer) { w.Add("", uint8(1)) }, "gguf: writer: empty key"},
		{"duplicate key", func(w *gguf.Writer) { w.Add("a", uint8(1)); w.Add("a", uint8(2)) }, `gguf: writer: duplicate key "a"`},
		{"Go int", func(w *gguf.Writer) { w.Add("n", 5) }, `gguf: writer: key "n": unsupported Go type int`},
		{"Go []int", func(w *gguf.Writer) { w.Add("n", []int{5}) }, `key "n": unsupported Go type []int`},
		{"nil", func(w *gguf.Writer) { w.Add("n", nil) }, `key "n": unsupported Go type <nil>`},
		{"scalar in array of arrays", func(w *gguf.Writer) { w.Add("n", []any{[]uint8{}, uint8(1)}) }, `key "n": element 1 of an array of arrays is uint8, want an array`},
		{"too deep", func(w *gguf.Writer) { w.Add("n", []any{[]any{[]any{[]any{[]uint8{}}}}}) }, `key "n": element 0: element 0: element 0: element 0: arrays nested more than 4 deep`},
		{"alignment type", func(w *gguf.Writer) { w.Add(gguf.AlignmentKey, uint64(64)) }, `key "general.alignment" is uint64, want uint32`},
		{"alignment value", func(w *gguf.Writer) { w.Add(gguf.AlignmentKey, uint32(24)) }, "alignment 24 is not a power of two"},
		{"empty tensor name", func(w *gguf.Writer) { w.AddTensor("", gguf.TypeF32, []uint64{1}, make([]byte, 4)) }, "gguf: writer: tensor #0 has an empty name"},
		{"duplicate tensor", func(w *gguf.Writer) {
			w.AddTensor("w", gguf.TypeF32, []uint64{1}, make([]byte, 4))
			w.AddTensor("w", gguf.TypeF32, []uint64{1}, make([]byte, 4))
		}, `gguf: writer: duplicate tensor "w"`},
		{"no dims", func(w *gguf.Writer) { w.AddTensor("w", gguf.TypeF32, nil, nil) }, `tensor "w": 0 dimensions, want 1 to 4`},
		{"unknown type", func(w *gguf.Writer) { w.AddTensor("w", 99, []uint64{1}, nil) }, `tensor "w": unknown ggml type 99`},
		{"row", func(w *gguf.Writer) { w.AddTensor("w", gguf.TypeQ8_0, []uint64{16}, nil) }, `tensor "w": row length 16 is not a multiple of Q8_0's block size 32`},
		{"data size", func(w *gguf.Writer) { w.AddTensor("w", gguf.TypeF16, []uint64{3, 2}, make([]byte, 10)) }, `gguf: writer: tensor "w": 10 bytes of data, want 12 for F16 {3,2}`},
		{"short reader", func(w *gguf.Writer) {
			w.AddTensorFrom("w", gguf.TypeF32, []uint64{4}, bytes.NewReader(make([]byte, 10)))
		}, `gguf: writer: tensor "w": reader gave 10 bytes, want 16`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var w gguf.Writer
			tc.build(&w)
			_, err := w.WriteTo(io.Discard)
			require.ErrorContains(t, err, tc.want)

			path := filepath.Join(t.TempDir(), "bad.gguf")
			require.Error(t, w.WriteFile(path))
			_, statErr := os.Stat(path)
			require.ErrorIs(t, statErr, os.ErrNotExist, "a failed WriteFile leaves no file")
		})
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	_, err := gguf.Open(filepath.Join(dir, "missing.gguf"))
	require.ErrorIs(t, err, os.ErrNotExist)

	empty := filepath.Join(dir, "empty.gguf")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	_, err = gguf.Open(empty)
	var fe *gguf.FormatError
	require.ErrorAs(t, err, &fe)

	image, _ := smallFile(t)
	bad := filepath.Join(dir, "truncated.gguf")
	require.NoError(t, os.WriteFile(bad, image[:100], 0o644))
	_, err = gguf.Open(bad)
	require.ErrorAs(t, err, &fe)

	good := filepath.Join(dir, "good.gguf")
	require.NoError(t, os.WriteFile(good, image, 0o644))
	f, err := gguf.Open(good)
	require.NoError(t, err)
	ti, ok := f.Tensor("b.weight")
	require.True(t, ok)
	require.Equal(t, bytes.Repeat([]byte{7}, 34), f.Data(ti))
	require.NoError(t, f.Close())
	require.Nil(t, f.Data(ti), "Data after Close")
	require.NoError(t, f.Close(), "second Close")
}

func TestDataOutsideFile(t *testing.T) {
	t.Parallel()
	image, _ := smallFile(t)
	f, err := gguf.Parse(image)
	require.NoError(t, err)
	ti, _ := f.Tensor("a.weight")
	for _, bogus := range []gguf.TensorInfo{
		{Offset: uint64(len(image)), Size: 1},
		{Offset: math.MaxUint64, Size: 2},
		{Offset: ti.Offset, Size: uint64(len(image))},
	} {
		require.Nil(t, f.Data(bogus))
	}
	require.Empty(t, f.Data(gguf.TensorInfo{Offset: uint64(len(image))}))
}

func TestNumElements(t *testing.T) {
	t.Parallel()
	require.Equal(t, uint64(24), gguf.TensorInfo{Dims: []uint64{2, 3, 4}}.NumElements())
	require.Equal(t, uint64(0), gguf.TensorInfo{Dims: []uint64{0, 3}}.NumElements())
}

// TestHugeClaimsAllocateLittle checks that counts and lengths are bounded
// by the bytes left before anything is allocated: files claiming 2^60
// elements must fail having allocated about nothing. Not parallel, so the
// memory statistics are this test's own.
func TestHugeClaimsAllocateLittle(t *testing.T) {
	for _, tc := range malformedCases() {
		if !strings.Contains(tc.name, "2^6") && !strings.Contains(tc.name, "negative") {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := gguf.Parse(tc.data)
			runtime.ReadMemStats(&after)
			require.Error(t, err)
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10))
		})
	}
}

// failingWriter accepts n bytes, then fails.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriteToError fails the output at every byte: WriteTo must report the
// error and count exactly the bytes the output took.
func TestWriteToError(t *testing.T) {
	t.Parallel()
	build := func() *gguf.Writer {
		var w gguf.Writer
		w.Add("general.alignment", uint32(8192)) // padding longer than one zeros buffer
		w.AddTensor("a", gguf.TypeF32, []uint64{3}, make([]byte, 12))
		w.AddTensorFrom("b", gguf.TypeI8, []uint64{5}, bytes.NewReader(make([]byte, 5)))
		return &w
	}
	full := encode(t, build())
	for n := 0; n < len(full); n += 97 {
		out := &failingWriter{n: n}
		written, err := build().WriteTo(out)
		require.ErrorIs(t, err, errDiskFull, "failing after %d bytes", n)
		require.Equal(t, int64(n), written)
	}
}
