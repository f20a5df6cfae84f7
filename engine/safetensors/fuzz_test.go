package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

var genCorpus = flag.Bool("gen-corpus", false, "rewrite the seed_* files in testdata/fuzz/FuzzOpen")

// FuzzOpen writes each input to a file and opens it. Open must never panic
// and must report every failure as a *FormatError naming the file. What it
// accepts, Parse must accept alike, with every tensor's Data a view inside
// the input's data section, no two overlapping, of the size dtype and shape
// give; and the tensors must survive a Write round trip unchanged, the
// rewritten file being a fixed point of parse-then-write. Inputs cannot
// make the rewrite large: tensors do not overlap, so their data fits in the
// input.
func FuzzOpen(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.safetensors")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := safetensors.Open(path)
		if err != nil {
			var fe *safetensors.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Open error is %T, not *FormatError: %v", err, err)
			}
			if fe.Path != path {
				t.Fatalf("error names %q, not the file: %v", fe.Path, err)
			}
			if _, perr := safetensors.Parse(data); perr == nil {
				t.Fatalf("Open refused what Parse accepts: %v", err)
			}
			return
		}
		defer file.Close()

		mem, err := safetensors.Parse(data)
		if err != nil {
			t.Fatalf("Parse refused what Open accepts: %v", err)
		}
		names := mem.Names()
		require.Equal(t, names, file.Names())
		require.True(t, sort.StringsAreSorted(names))

		start := 8 + int(binary.LittleEndian.Uint64(data))
		type rng struct {
			name       string
			begin, end int
		}
		var ranges []rng
		var tensors []safetensors.Tensor
		for _, name := range names {
			tm, ok := mem.Tensor(name)
			require.True(t, ok)
			tf, ok := file.Tensor(name)
			require.True(t, ok)
			require.Equal(t, tm.DType, tf.DType)
			require.Equal(t, tm.Shape, tf.Shape)
			require.True(t, bytes.Equal(tm.Data, tf.Data), "tensor %q: Open and Parse disagree", name)
			if n := tm.NumElements() * tm.DType.Bits(); n%8 != 0 || n/8 != len(tm.Data) {
				t.Fatalf("tensor %q: %d bytes for %v of %v", name, len(tm.Data), tm.Shape, tm.DType)
			}
			if len(tm.Data) > 0 {
				off := int(uintptr(unsafe.Pointer(&tm.Data[0])) - uintptr(unsafe.Pointer(&data[0])))
				if off < start || off+len(tm.Data) > len(data) {
					t.Fatalf("tensor %q: [%d, %d) is outside the data section [%d, %d)", name, off, off+len(tm.Data), start, len(data))
				}
				ranges = append(ranges, rng{name, off, off + len(tm.Data)})
			}
			tensors = append(tensors, tm)
		}
		sort.Slice(ranges, func(i, j int) bool { return ranges[i].begin < ranges[j].begin })
		for i := 1; i < len(ranges); i++ {
			if ranges[i].begin < ranges[i-1].end {
				t.Fatalf("tensors %q and %q overlap", ranges[i-1].name, ranges[i].name)
			}
		}

		var first bytes.Buffer
		if err := safetensors.Write(&first, tensors, mem.Metadata()); err != nil {
			t.Fatalf("rewriting an accepted file: %v", err)
		}
		again, err := safetensors.Parse(first.Bytes())
		if err != nil {
			t.Fatalf("parsing the rewritten file: %v", err)
		}
		require.Equal(t, names, again.Names())
		for _, want := range tensors {
			got, _ := again.Tensor(want.Name)
			require.Equal(t, want.DType, got.DType)
			require.Equal(t, want.Shape, got.Shape)
			require.True(t, bytes.Equal(want.Data, got.Data))
		}
		require.Equal(t, len(mem.Metadata()), len(again.Metadata()))
		for k, v := range mem.Metadata() {
			require.Equal(t, v, again.Metadata()[k])
		}
		var second bytes.Buffer
		rewritten := make([]safetensors.Tensor, 0, len(names))
		for _, name := range names {
			tn, _ := again.Tensor(name)
			rewritten = append(rewritten, tn)
		}
		require.NoError(t, safetensors.Write(&second, rewritten, again.Metadata()))
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatalf("rewriting is not a fixed point: %d bytes, then %d", first.Len(), second.Len())
		}
	})
}

type seed struct {
	name string
	data []byte
}

// seeds are the generated FuzzOpen corpus: valid files from Write and by
// hand, prefixes of a valid file and every case of TestMalformed.
func seeds(tb testing.TB) []seed {
	r := rand.New(rand.NewPCG(42, 43))
	small := encode(tb, []safetensors.Tensor{
		randomTensor(r, "model.layers.0.self_attn.q_a_proj.weight", safetensors.F8_E4M3, 4, 8),
		randomTensor(r, "model.layers.0.self_attn.q_a_proj.weight_scale_inv", safetensors.F32, 1, 1),
		randomTensor(r, "model.norm.weight", safetensors.BF16, 8),
	}, map[string]string{"format": "pt"})
	var every []safetensors.Tensor
	for _, dt := range safetensors.DTypes() {
		every = append(every, randomTensor(r, dt.String(), dt, 2, 2))
	}
	every = append(every, randomTensor(r, "scalar", safetensors.I64), randomTensor(r, "empty", safetensors.F16, 3, 0))
	n := binary.LittleEndian.Uint64(small)
	out := []seed{
		{"valid_small", small},
		{"valid_every_dtype", encode(tb, every, nil)},
		{"valid_empty", encode(tb, nil, nil)},
		{"valid_lenient", rawFile(`{"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8],"x":[{}]},"a":{"dtype":"I16","shape":[1],"data_offsets":[0,2]},"__metadata__":null}  `, 10)},
		{"truncated_length", small[:4]},
		{"truncated_header", small[:8+n/2]},
		{"truncated_data", small[:len(small)-1]},
	}
	for _, c := range malformedCases() {
		out = append(out, seed{"malformed_" + c.name, c.data})
	}
	return out
}

// TestGenerateCorpus rewrites the seed_* files of the committed corpus when
// run with -gen-corpus:
//
//	go test ./engine/safetensors -run TestGenerateCorpus -gen-corpus
//
// Files the fuzzer adds (crashers kept as regressions) have hash names and
// are left alone.
func TestGenerateCorpus(t *testing.T) {
	if !*genCorpus {
		t.Skip("run with -gen-corpus to rewrite testdata/fuzz/FuzzOpen/seed_*")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
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

// TestCorpusIsCurrent fails when the committed seeds differ from what
// seeds() makes, so a changed case is not forgotten in the corpus.
func TestCorpusIsCurrent(t *testing.T) {
	for _, s := range seeds(t) {
		p := filepath.Join("testdata", "fuzz", "FuzzOpen", sanitize("seed_"+s.name))
		got, err := os.ReadFile(p)
		require.NoError(t, err, "run go test ./engine/safetensors -run TestGenerateCorpus -gen-corpus")
		require.Equal(t, fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data), string(got), "%s is stale: run with -gen-corpus", p)
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
