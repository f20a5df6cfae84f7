package gguf_test

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
)

var genCorpus = flag.Bool("gen-corpus", false, "rewrite the seed_* files in testdata/fuzz/FuzzParse")

// maxRewrite bounds the file FuzzParse writes back. Tensors never share
// data in a parsed file, but each is padded to the alignment (up to 2^31)
// when written, so a small input with a huge general.alignment can still
// describe a rewrite of gigabytes: a valid file, but not one to build in
// memory per fuzz input.
const maxRewrite = 16 << 20

// FuzzParse checks that Parse never panics and reports every failure as a
// *FormatError; and that whatever it accepts has all tensor data inside the
// input, no two tensors' data overlapping, and survives a Writer round trip unchanged: same metadata (bit for
// bit, NaNs included), same tensors and data, and the rewritten file is a
// fixed point of parse-then-write.
func FuzzParse(f *testing.F) {
	for _, seed := range seeds(f) {
		f.Add(seed.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := gguf.Parse(data)
		if err != nil {
			var fe *gguf.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error is %T, not *FormatError: %v", err, err)
			}
			return
		}

		var rewritten uint64
		for _, ti := range file.Tensors() {
			got := file.Data(ti)
			if ti.Offset+ti.Size < ti.Offset || ti.Offset+ti.Size > uint64(len(data)) {
				t.Fatalf("tensor %q: [%d, +%d) outside the %d-byte input", ti.Name, ti.Offset, ti.Size, len(data))
			}
			if uint64(len(got)) != ti.Size {
				t.Fatalf("tensor %q: Data has %d bytes, want %d", ti.Name, len(got), ti.Size)
			}
			if ti.Size > 0 && &got[0] != &data[ti.Offset] {
				t.Fatalf("tensor %q: Data is a copy, not a view of the input", ti.Name)
			}
			if ti.Offset%file.Alignment() != 0 {
				t.Fatalf("tensor %q: offset %d not aligned to %d", ti.Name, ti.Offset, file.Alignment())
			}
			rewritten += ti.Size + file.Alignment()
		}
		ts := file.Tensors()
		slices.SortFunc(ts, func(a, b gguf.TensorInfo) int { return cmp.Compare(a.Offset, b.Offset) })
		var end uint64
		for _, ti := range ts {
			if ti.Size > 0 && ti.Offset < end {
				t.Fatalf("tensor %q at [%d, +%d) overlaps an earlier tensor's data, which ends at %d", ti.Name, ti.Offset, ti.Size, end)
			}
			end = max(end, ti.Offset+ti.Size)
		}
		if rewritten > maxRewrite {
			return
		}

		first := rewrite(t, file)
		again, err := gguf.Parse(first)
		if err != nil {
			t.Fatalf("parsing the rewritten file: %v", err)
		}
		requireSameFile(t, file, again)
		if second := rewrite(t, again); !bytes.Equal(first, second) {
			t.Fatalf("rewriting is not a fixed point: %d bytes, then %d", len(first), len(second))
		}
	})
}

// rewrite writes a parsed file back with the Writer.
func rewrite(t *testing.T, f *gguf.File) []byte {
	t.Helper()
	var w gguf.Writer
	for _, kv := range f.KVs() {
		w.Add(kv.Key, kv.Value)
	}
	for _, ti := range f.Tensors() {
		w.AddTensor(ti.Name, ti.Type, ti.Dims, f.Data(ti))
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatalf("rewriting a parsed file: %v", err)
	}
	return buf.Bytes()
}

func requireSameFile(t *testing.T, a, b *gguf.File) {
	t.Helper()
	require.Equal(t, a.Alignment(), b.Alignment())
	akv, bkv := a.KVs(), b.KVs()
	require.Equal(t, len(akv), len(bkv))
	for i := range akv {
		require.Equal(t, akv[i].Key, bkv[i].Key)
		if !sameValue(akv[i].Value, bkv[i].Value) {
			t.Fatalf("key %q: %#v, then %#v", akv[i].Key, akv[i].Value, bkv[i].Value)
		}
	}
	at, bt := a.Tensors(), b.Tensors()
	require.Equal(t, len(at), len(bt))
	for i := range at {
		require.Equal(t, at[i].Name, bt[i].Name)
		require.Equal(t, at[i].Type, bt[i].Type)
		require.Equal(t, at[i].Dims, bt[i].Dims)
		require.Equal(t, at[i].Size, bt[i].Size)
		require.True(t, bytes.Equal(a.Data(at[i]), b.Data(bt[i])), "tensor %q data", at[i].Name)
	}
}

// sameValue compares metadata values, floats by their bits so that NaN
// equals itself.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float32:
		y, ok := b.(float32)
		return ok && math.Float32bits(x) == math.Float32bits(y)
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case []float32:
		y, ok := b.([]float32)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return true
	case []float64:
		y, ok := b.([]float64)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

type seed struct {
	name string
	data []byte
}

// seeds are the generated part of the FuzzParse corpus: valid files from
// the Writer, the hand-assembled known answer, prefixes of a valid file and
// every malformed case of TestMalformed.
func seeds(tb testing.TB) []seed {
	image, dataEnd := smallFile(tb)
	out := []seed{
		{"valid_small", image},
		{"known_answer", []byte(knownAnswer)},
		{"truncated_header", image[:20]},
		{"truncated_metadata", image[:100]},
		{"truncated_late", image[:len(image)-100]},
		{"truncated_data", image[:dataEnd-1]},
	}

	var all gguf.Writer
	all.Add(gguf.AlignmentKey, uint32(16))
	for _, kv := range allKVs() {
		all.Add(kv.Key, kv.Value)
	}
	all.Add("t.nan", float32(math.NaN()))
	all.AddTensor("f16", gguf.TypeF16, []uint64{3, 2}, []byte("abcdefghijkl"))
	all.AddTensor("q4_0", gguf.TypeQ4_0, []uint64{32}, bytes.Repeat([]byte{0x5a}, 18))
	all.AddTensor("zero", gguf.TypeF32, []uint64{0}, nil)
	out = append(out, seed{"valid_all_types", encode(tb, &all)})

	var meta gguf.Writer
	meta.Add("general.architecture", "deepseek4")
	meta.Add("deepseek4.attention.compress_ratios", []int32{0, 4, 128})
	out = append(out, seed{"valid_no_tensors", encode(tb, &meta)})

	for _, c := range malformedCases() {
		out = append(out, seed{"malformed_" + c.name, c.data})
	}
	return out
}

// TestGenerateCorpus rewrites the seed_* files of the committed corpus when
// run with -gen-corpus:
//
//	go test ./engine/gguf -run TestGenerateCorpus -gen-corpus
//
// Files the fuzzer adds (crashers kept as regressions) have hash names and
// are left alone.
func TestGenerateCorpus(t *testing.T) {
	if !*genCorpus {
		t.Skip("run with -gen-corpus to rewrite testdata/fuzz/FuzzParse/seed_*")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	old, err := filepath.Glob(filepath.Join(dir, "seed_*"))
	require.NoError(t, err)
	for _, p := range old {
		require.NoError(t, os.Remove(p))
	}
	for _, s := range seeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data)
		require.NoError(t, os.WriteFile(filepath.Join(dir, sanitize("seed_"+s.name)), []byte(body), 0o644))
	}
}

// sanitize keeps corpus file names to letters, digits, '_' and '-'.
func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}
