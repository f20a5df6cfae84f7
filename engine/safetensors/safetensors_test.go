package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

// rawFile assembles a file by hand: the header length, header, then
// dataLen bytes of data (0, 1, 2, …).
func rawFile(header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	for i := range dataLen {
		b = append(b, byte(i))
	}
	return b
}

// lengthOnly is a file whose header length is n but holds only rest.
func lengthOnly(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.safetensors")
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}

func encode(t testing.TB, tensors []safetensors.Tensor, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, safetensors.Write(&buf, tensors, meta))
	return buf.Bytes()
}

// randomTensor makes a tensor of dt and shape filled from r.
func randomTensor(r *rand.Rand, name string, dt safetensors.DType, shape ...int) safetensors.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]byte, n*dt.Bits()/8)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return safetensors.Tensor{Name: name, DType: dt, Shape: shape, Data: data}
}

func TestRoundTripEveryDType(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tensors []safetensors.Tensor
	for _, dt := range safetensors.DTypes() {
		shape := []int{3, 4}
		if dt.Bits()%8 != 0 {
			shape = []int{2, 4} // 8 elements fill whole bytes for 4 and 6 bits
		}
		tensors = append(tensors, randomTensor(r, "t."+dt.String(), dt, shape...))
	}
	tensors = append(tensors,
		randomTensor(r, "scalar", safetensors.F32),
		randomTensor(r, "empty", safetensors.BF16, 0, 7),
		randomTensor(r, "experts", safetensors.F8_E4M3, 2, 3, 5),
		randomTensor(r, "odd fp4", safetensors.F4, 6), // 3 bytes
		randomTensor(r, `needs "escaping" <&>\ ✓`, safetensors.U8, 1),
	)
	meta := map[string]string{"format": "pt", "note": "ünïcode"}
	image := encode(t, tensors, meta)

	n := binary.LittleEndian.Uint64(image)
	require.Zero(t, (8+n)%8, "data section must start 8-byte aligned")
	require.Equal(t, byte(' '), image[8+n-1], "header padded with spaces")

	f, err := safetensors.Open(writeTemp(t, image))
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, meta, f.Metadata())
	require.Len(t, f.Names(), len(tensors))
	for _, want := range tensors {
		got, ok := f.Tensor(want.Name)
		require.True(t, ok, want.Name)
		require.Equal(t, want.Name, got.Name)
		require.Equal(t, want.DType, got.DType, want.Name)
		require.Equal(t, len(want.Shape), len(got.Shape), want.Name)
		if len(want.Shape) > 0 {
			require.Equal(t, want.Shape, got.Shape, want.Name)
		}
		require.True(t, bytes.Equal(want.Data, got.Data), want.Name)
		require.Equal(t, len(got.Data), cap(got.Data), "%s: Data's capacity reaches into the next tensor", want.Name)
	}

	// The same image parsed in memory gives views, not copies.
	p, err := safetensors.Parse(image)
	require.NoError(t, err)
	got, _ := p.Tensor("t.F32")
	require.Same(t, &image[len(image)-len(got.Data)-sizeAfter(tensors, "t.F32")], &got.Data[0])
}

// sizeAfter sums the data of the tensors written after name.
func sizeAfter(tensors []safetensors.Tensor, name string) int {
	n, after := 0, false
	for _, t := range tensors {
		if after {
			n += len(t.Data)
		}
		if t.Name == name {
			after = true
		}
	}
	return n
}

// The writer matches the reference implementation byte for byte where the
// reference's order is ours (one tensor, or none): the test vectors of
// huggingface/safetensors' tensor.rs (test_serialization, test_empty,
// test_serialization_forced_alignement).
func TestWriteKnownAnswer(t *testing.T) {
	f32s := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b, _ = binary.Append(b, binary.LittleEndian, v)
		}
		return b
	}
	data := f32s(0, 1, 2, 3, 4, 5)
	for _, c := range []struct {
		name    string
		tensors []safetensors.Tensor
		meta    map[string]string
		want    []byte
	}{
		{"one tensor", []safetensors.Tensor{{Name: "attn.0", DType: safetensors.F32, Shape: []int{1, 2, 3}, Data: data}}, nil,
			append(rawFile(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`, 0), data...)},
		{"padded", []safetensors.Tensor{{Name: "attn0", DType: safetensors.F32, Shape: []int{1, 1, 2, 3}, Data: data}}, nil,
			append(rawFile(`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       `, 0), data...)},
		{"empty", nil, nil, rawFile(`{}      `, 0)},
		{"metadata only", nil, map[string]string{"framework": "pt"}, rawFile(`{"__metadata__":{"framework":"pt"}}     `, 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, encode(t, c.tensors, c.meta))
			_, err := safetensors.Parse(c.want)
			require.NoError(t, err)
		})
	}
}

type malformedCase struct {
	name string
	data []byte
	want []string // substrings of the error
}

// malformedCases are files Open must refuse, each with the words its error
// must contain. The fuzz corpus holds them too.
func malformedCases() []malformedCase {
	f32 := func(name string, shape string, begin, end int) string {
		return fmt.Sprintf(`%q:{"dtype":"F32","shape":%s,"data_offsets":[%d,%d]}`, name, shape, begin, end)
	}
	obj := func(members ...string) string { return "{" + strings.Join(members, ",") + "}" }
	return []malformedCase{
		{"empty", nil, []string{"header", "0 bytes, too short"}},
		{"truncated length", []byte{8, 0, 0, 0, 0}, []string{"header", "5 bytes, too short for the 8-byte header length"}},
		{"header over the limit", lengthOnly(100_000_001, "{}"), []string{"header length 100000001 exceeds the limit of 100000000"}},
		{"header length 2^64-1", lengthOnly(1<<64-1, "{}"), []string{"header length 18446744073709551615 exceeds the limit"}},
		{"header larger than file", lengthOnly(1000, `{"a":1}`), []string{"header length 1000 exceeds the 7 bytes after it"}},
		{"invalid UTF-8", rawFile("{\"\xff\":1}", 0), []string{"not valid UTF-8"}},
		{"bad JSON", rawFile(`{"a":`, 0), []string{"header", "JSON ends early"}},
		{"JSON syntax error", rawFile(`{"a" 1}`, 0), []string{"header", "bad JSON at header byte 5", "expected colon"}},
		{"not an object", rawFile(`[1,2]`, 0), []string{"header", "an array, not a JSON object"}},
		{"data after the object", rawFile(`{} {}`, 0), []string{"header", "an object after the JSON object"}},
		{"NUL padding", rawFile("{}\x00\x00", 0), []string{"header", "bad JSON"}},
		{"unknown dtype", rawFile(`{"w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, `unknown dtype "F12"`}},
		{"lower-case dtype", rawFile(`{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, `unknown dtype "f32"`}},
		{"dtype not a string", rawFile(`{"w":{"dtype":null,"shape":[1],"data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, "dtype: null, not a string"}},
		{"no dtype", rawFile(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, `no "dtype"`}},
		{"no shape", rawFile(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, `no "shape"`}},
		{"no data_offsets", rawFile(`{"w":{"dtype":"F32","shape":[1]}}`, 4), []string{`tensor "w"`, `no "data_offsets"`}},
		{"tensor not an object", rawFile(`{"w":[1]}`, 0), []string{`tensor "w"`, "an array, not a JSON object"}},
		{"shape not an array", rawFile(obj(f32("w", `4`, 0, 16)), 16), []string{`tensor "w"`, "shape: a number, not an array"}},
		{"negative dimension", rawFile(obj(f32("w", `[-1]`, 0, 4)), 4), []string{`tensor "w"`, "shape: element 0 is -1, not an integer"}},
		{"fractional dimension", rawFile(obj(f32("w", `[1.5]`, 0, 4)), 4), []string{`tensor "w"`, "element 0 is 1.5"}},
		{"exponent dimension", rawFile(obj(f32("w", `[1e2]`, 0, 400)), 400), []string{`tensor "w"`, "element 0 is 1e2"}},
		{"dimension 2^64", rawFile(obj(f32("w", `[18446744073709551616]`, 0, 4)), 4), []string{`tensor "w"`, "not an integer from 0 to 2^64-1"}},
		{"nested shape", rawFile(obj(f32("w", `[[1]]`, 0, 4)), 4), []string{`tensor "w"`, "element 0 is an array"}},
		{"17 dimensions", rawFile(obj(f32("w", "["+strings.Repeat("1,", 16)+"1]", 0, 4)), 4), []string{`tensor "w"`, "shape: more than 16 elements"}},
		{"dimension over MaxInt", rawFile(obj(f32("w", `[9223372036854775808]`, 0, 4)), 4), []string{`tensor "w"`, "dimension 9223372036854775808 is too large"}},
		{"element count overflow", rawFile(obj(f32("w", `[4294967296,4294967296,0]`, 0, 0)), 0), []string{`tensor "w"`, "element count overflows"}},
		{"byte count overflow", rawFile(obj(f32("w", `[4611686018427387904]`, 0, 4)), 4), []string{`tensor "w"`, "overflow 64 bits"}},
		{"F4 in half a byte", rawFile(`{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, 2), []string{`tensor "w"`, "3 elements of F4 do not fill whole bytes"}},
		{"one data offset", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, 4), []string{`tensor "w"`, "data_offsets has 1 elements, want 2"}},
		{"three data offsets", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, 8), []string{`tensor "w"`, "data_offsets: more than 2 elements"}},
		{"offsets outside data", rawFile(obj(f32("w", `[4]`, 8, 24)), 16), []string{`tensor "w"`, "data_offsets [8, 24] end past the 16-byte data section"}},
		{"offsets far outside data", rawFile(obj(f32("w", `[1]`, 1<<62, 1<<62+4)), 16), []string{`tensor "w"`, "end past the 16-byte data section"}},
		{"begin after end", rawFile(obj(f32("w", `[0]`, 8, 4)), 16), []string{`tensor "w"`, "data_offsets [8, 4] begin after they end"}},
		{"size mismatch", rawFile(obj(f32("w", `[2,2]`, 0, 12)), 16), []string{`tensor "w"`, "data_offsets [0, 12] hold 12 bytes, but shape [2 2] of F32 takes 16"}},
		{"overlap", rawFile(obj(f32("a", `[2]`, 0, 8), f32("b", `[2]`, 4, 12)), 16), []string{`tensor "b"`, `bytes [4, 12) overlap tensor "a" at [0, 8)`}},
		{"same range twice", rawFile(obj(f32("a", `[2]`, 0, 8), f32("b", `[2]`, 0, 8)), 16), []string{`tensor "b"`, `overlap tensor "a"`}},
		{"duplicate tensor", rawFile(obj(f32("w", `[1]`, 0, 4), f32("w", `[1]`, 4, 8)), 8), []string{`tensor "w"`, "name appears twice in the header"}},
		{"duplicate member", rawFile(`{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, `member "dtype" appears twice`}},
		{"metadata not strings", rawFile(`{"__metadata__":{"total":5}}`, 0), []string{"__metadata__", `key "total": a number, not a string`}},
		{"metadata not an object", rawFile(`{"__metadata__":"pt"}`, 0), []string{"__metadata__", "a string, not a JSON object"}},
		{"metadata duplicate key", rawFile(`{"__metadata__":{"a":"1","a":"2"}}`, 0), []string{"__metadata__", `key "a" appears twice`}},
		{"metadata twice", rawFile(`{"__metadata__":{},"__metadata__":{}}`, 0), []string{"__metadata__", "appears twice in the header"}},
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range malformedCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := safetensors.Parse(c.data)
			require.Error(t, err)
			var fe *safetensors.FormatError
			require.ErrorAs(t, err, &fe)
			require.Empty(t, fe.Path)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}

			// Open says the same and names the file.
			path := writeTemp(t, c.data)
			_, err = safetensors.Open(path)
			require.ErrorAs(t, err, &fe)
			require.Equal(t, path, fe.Path)
			require.Contains(t, err.Error(), path)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestTruncationIsUnexpectedEOF(t *testing.T) {
	for _, data := range [][]byte{{1, 2}, lengthOnly(100, "{}"), rawFile(`{"w":{"dtype":"U8","shape":[9],"data_offsets":[0,9]}}`, 8)} {
		_, err := safetensors.Parse(data)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	}
}

// Files the reference refuses but that cannot make a view wrong are read:
// gaps, trailing bytes, unknown members. Whitespace, zero-size tensors at
// any offset and a null __metadata__ are valid everywhere.
func TestLenient(t *testing.T) {
	header := ` { "b" : {"dtype":"U8","shape":[2],"data_offsets":[10,12],"extra":{"x":[1,{}]}},
		"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
		"z":{"dtype":"F32","shape":[0,3],"data_offsets":[2,2]},
		"end":{"dtype":"I64","shape":[0],"data_offsets":[20,20]},
		"__metadata__":null }   `
	f, err := safetensors.Parse(rawFile(header, 20))
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "end", "z"}, f.Names())
	require.Nil(t, f.Metadata())
	a, _ := f.Tensor("a")
	require.Equal(t, []byte{0, 1, 2, 3}, a.Data)
	b, _ := f.Tensor("b")
	require.Equal(t, []byte{10, 11}, b.Data)
	z, _ := f.Tensor("z")
	require.Empty(t, z.Data)
	require.Equal(t, []int{0, 3}, z.Shape)
	require.Zero(t, z.NumElements())
	require.Equal(t, 4, a.NumElements())
}

func TestTensorNotFoundAndClose(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	f, err := safetensors.Open(writeTemp(t, encode(t, []safetensors.Tensor{randomTensor(r, "w", safetensors.BF16, 4)}, nil)))
	require.NoError(t, err)
	_, ok := f.Tensor("missing")
	require.False(t, ok)
	_, ok = f.Tensor("w")
	require.True(t, ok)
	require.NoError(t, f.Close())
	_, ok = f.Tensor("w")
	require.False(t, ok, "no tensor after Close")
	require.Empty(t, f.Names())
	require.NoError(t, f.Close(), "a second Close is a no-op")
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := safetensors.Open(filepath.Join(dir, "missing.safetensors"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = safetensors.Open(dir)
	require.ErrorContains(t, err, "not a regular file")
}

func TestWriteRefuses(t *testing.T) {
	ok := safetensors.Tensor{Name: "ok", DType: safetensors.F16, Shape: []int{2}, Data: make([]byte, 4)}
	for _, c := range []struct {
		name    string
		tensors []safetensors.Tensor
		meta    map[string]string
		want    string
	}{
		{"short data", []safetensors.Tensor{{Name: "w", DType: safetensors.F32, Shape: []int{2}, Data: make([]byte, 7)}}, nil, `tensor "w": 7 bytes of data, but shape [2] of F32 takes 8`},
		{"duplicate", []safetensors.Tensor{ok, ok}, nil, `tensor "ok": name appears twice`},
		{"reserved name", []safetensors.Tensor{{Name: "__metadata__", DType: safetensors.U8, Shape: []int{}, Data: []byte{1}}}, nil, "reserved"},
		{"unknown dtype", []safetensors.Tensor{{Name: "w", DType: 0, Shape: []int{1}, Data: []byte{1}}}, nil, "unknown dtype DType(0)"},
		{"dtype past the end", []safetensors.Tensor{{Name: "w", DType: 200, Shape: []int{1}, Data: []byte{1}}}, nil, "unknown dtype DType(200)"},
		{"negative dimension", []safetensors.Tensor{{Name: "w", DType: safetensors.U8, Shape: []int{-1}}}, nil, "negative dimension -1"},
		{"too many dimensions", []safetensors.Tensor{{Name: "w", DType: safetensors.U8, Shape: make([]int, 17)}}, nil, "17 dimensions, more than 16"},
		{"F4 half byte", []safetensors.Tensor{{Name: "w", DType: safetensors.F4, Shape: []int{1}}}, nil, "do not fill whole bytes"},
		{"bad UTF-8 name", []safetensors.Tensor{{Name: "\xff", DType: safetensors.U8, Shape: []int{1}, Data: []byte{1}}}, nil, "not valid UTF-8"},
		{"bad UTF-8 metadata", nil, map[string]string{"k": "\xff"}, "not valid UTF-8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := safetensors.Write(&buf, c.tensors, c.meta)
			require.ErrorContains(t, err, c.want)
			require.Zero(t, buf.Len(), "nothing written before the checks pass")
		})
	}
}

func TestDType(t *testing.T) {
	want := map[safetensors.DType]int{
		safetensors.F32: 32, safetensors.BF16: 16, safetensors.F16: 16, safetensors.F8_E4M3: 8,
		safetensors.F8_E8M0: 8, safetensors.I64: 64, safetensors.F4: 4, safetensors.F6_E2M3: 6, safetensors.BOOL: 8,
	}
	for dt, bits := range want {
		require.Equal(t, bits, dt.Bits(), dt.String())
	}
	require.Equal(t, "F8_E4M3", safetensors.F8_E4M3.String())
	require.Equal(t, 0, safetensors.DType(0).Bits())
	require.Len(t, safetensors.DTypes(), 20)
}

func TestFormatErrorUnwrap(t *testing.T) {
	_, err := safetensors.Parse(rawFile(`{"a" 1}`, 0))
	var fe *safetensors.FormatError
	require.ErrorAs(t, err, &fe)
	require.Error(t, errors.Unwrap(err))
}
