package safetensors_test

import (
	"bytes"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

// TestE8M0KnownAnswers checks spec §8's scale bytes and the ends of the
// range.
func TestE8M0KnownAnswers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		e    byte
		want float32
	}{{127, 1}, {128, 2}, {120, 0x1p-7}, {134, 128}, {0, 0x1p-127}, {254, 0x1p127}} {
		require.Equal(t, math.Float32bits(c.want), math.Float32bits(safetensors.E8M0ToFloat32(c.e)), "byte %d", c.e)
	}
	require.True(t, math.IsNaN(float64(safetensors.E8M0ToFloat32(255))))
}

// TestE2M1KnownAnswers checks spec §8's byte 0x9A (low nibble first: −1,
// then −0.5) and the code table.
func TestE2M1KnownAnswers(t *testing.T) {
	t.Parallel()
	require.Equal(t, float32(-1), safetensors.E2M1ToFloat32(0x9A))
	require.Equal(t, float32(-0.5), safetensors.E2M1ToFloat32(0x9A>>4))
	want := []float32{0, 0.5, 1, 1.5, 2, 3, 4, 6}
	for n, v := range want {
		require.Equal(t, v, safetensors.E2M1ToFloat32(byte(n)))
		require.Equal(t, -v, safetensors.E2M1ToFloat32(byte(n|8)))
	}
	require.True(t, math.Signbit(float64(safetensors.E2M1ToFloat32(8))))
}

// TestCheckFP4 reads a V4-style expert pair back from a file (I8 packed
// weight, F8_E8M0 scale) and checks every way a pair can be wrong.
func TestCheckFP4(t *testing.T) {
	t.Parallel()
	const rows, cols = 4, 64
	w := safetensors.Tensor{Name: "layers.0.ffn.experts.0.w1.weight", DType: safetensors.I8, Shape: []int{rows, cols / 2}, Data: make([]byte, rows*cols/2)}
	w.Data[0] = 0x9A
	s := safetensors.Tensor{Name: "layers.0.ffn.experts.0.w1.scale", DType: safetensors.F8_E8M0, Shape: []int{rows, cols / 32}, Data: bytes.Repeat([]byte{127}, rows*cols/32)}
	var buf bytes.Buffer
	require.NoError(t, safetensors.Write(&buf, []safetensors.Tensor{w, s}, nil))
	f, err := safetensors.Parse(buf.Bytes())
	require.NoError(t, err)
	fw, _ := f.Tensor(w.Name)
	fs, _ := f.Tensor(s.Name)
	r, c, err := safetensors.CheckFP4(fw, fs)
	require.NoError(t, err)
	require.Equal(t, [2]int{rows, cols}, [2]int{r, c})
	require.Len(t, fw.Data, r*c/2)
	require.Equal(t, float32(-1), safetensors.E2M1ToFloat32(fw.Data[0])*safetensors.E8M0ToFloat32(fs.Data[0]))

	f4 := w
	f4.DType, f4.Shape = safetensors.F4, []int{rows, cols}
	r, c, err = safetensors.CheckFP4(f4, s)
	require.NoError(t, err)
	require.Equal(t, [2]int{rows, cols}, [2]int{r, c})

	bad := func(w, s safetensors.Tensor, msg, name string) {
		t.Helper()
		_, _, err := safetensors.CheckFP4(w, s)
		require.ErrorContains(t, err, msg)
		require.ErrorContains(t, err, name)
	}
	with := func(t safetensors.Tensor, dt safetensors.DType, shape ...int) safetensors.Tensor {
		t.DType, t.Shape = dt, shape
		return t
	}
	bad(with(w, safetensors.BF16, rows, cols/2), s, "want I8 or U8", w.Name)
	bad(with(w, safetensors.I8, rows, 24), s, "not whole 32-value blocks", w.Name)
	bad(with(w, safetensors.I8, rows*cols/2), s, "want [rows, cols/2]", w.Name)
	bad(w, with(s, safetensors.F32, rows, 2), "want F8_E8M0", s.Name)
	bad(w, with(s, safetensors.F8_E8M0, rows, 4), "want [4, 2]", s.Name)
	bad(w, with(s, safetensors.F8_E8M0, rows+1, 2), "want [4, 2]", s.Name)
	bad(w, with(s, safetensors.F8_E8M0, rows*2), "want [4, 2]", s.Name)
}

// TestCheckFP8Blocks derives V3's and V4's block shapes from the scale
// tensors (partial edge blocks included) and checks them against a given
// weight_block_size.
func TestCheckFP8Blocks(t *testing.T) {
	t.Parallel()
	w := func(rows, cols int) safetensors.Tensor {
		return safetensors.Tensor{Name: "attn.wkv.weight", DType: safetensors.F8_E4M3, Shape: []int{rows, cols}}
	}
	s := func(dt safetensors.DType, shape ...int) safetensors.Tensor {
		return safetensors.Tensor{Name: "attn.wkv.scale", DType: dt, Shape: shape}
	}
	for _, c := range []struct {
		w, s  safetensors.Tensor
		block []int
		want  [2]int
	}{
		{w(576, 7168), s(safetensors.F32, 5, 56), nil, [2]int{128, 128}},
		{w(512, 4096), s(safetensors.F8_E8M0, 4, 32), nil, [2]int{128, 128}},
		{w(512, 4096), s(safetensors.F8_E8M0, 16, 128), nil, [2]int{32, 32}},
		{w(40, 70), s(safetensors.F8_E8M0, 2, 3), nil, [2]int{32, 32}},
		{w(40, 70), s(safetensors.F8_E8M0, 2, 3), []int{32, 32}, [2]int{32, 32}},
		{w(40, 70), s(safetensors.F8_E8M0, 1, 3), []int{64, 32}, [2]int{64, 32}},
		{w(100, 100), s(safetensors.F8_E8M0, 1, 1), nil, [2]int{128, 128}},
	} {
		got, err := safetensors.CheckFP8Blocks(c.w, c.s, c.block)
		require.NoError(t, err, "%v %v", c.w.Shape, c.s.Shape)
		require.Equal(t, c.want, got, "%v %v", c.w.Shape, c.s.Shape)
	}
	for _, c := range []struct {
		w, s  safetensors.Tensor
		block []int
		msg   string
	}{
		{w(512, 4096), s(safetensors.F8_E8M0, 4, 32), []int{32, 32}, "want [16 128]"},
		{w(512, 4096), s(safetensors.F8_E8M0, 3, 32), nil, "fits no square power-of-two block"},
		{w(512, 4096), s(safetensors.BF16, 4, 32), nil, "want F8_E8M0 or F32"},
		{w(512, 4096), s(safetensors.F8_E8M0, 128), nil, "want a matrix"},
		{w(512, 4096), s(safetensors.F8_E8M0, 4, 32), []int{128}, "want [rows, cols]"},
		{w(512, 4096), s(safetensors.F8_E8M0, 4, 32), []int{0, 128}, "not positive"},
		{safetensors.Tensor{Name: "attn.wkv.weight", DType: safetensors.BF16, Shape: []int{2, 2}}, s(safetensors.F32, 1, 1), nil, "want an F8_E4M3 matrix"},
	} {
		_, err := safetensors.CheckFP8Blocks(c.w, c.s, c.block)
		require.ErrorContains(t, err, c.msg)
		require.ErrorContains(t, err, "attn.wkv.")
	}
}

// FuzzCheckBlockScales gives CheckFP4 and CheckFP8Blocks fuzzed dtypes and
// shapes: they must not panic, and what they accept must be consistent (an
// FP4 weight's bytes are rows·cols/2, its scales one per 32 values; an FP8
// scale grid is the ceiling of the weight over the block).
func FuzzCheckBlockScales(f *testing.F) {
	f.Add(uint8(safetensors.I8), uint8(safetensors.F8_E8M0), 2048, 1024, 2048, 64, 0, 0)
	f.Add(uint8(safetensors.F8_E4M3), uint8(safetensors.F8_E8M0), 576, 7168, 5, 56, 128, 128)
	f.Add(uint8(safetensors.F4), uint8(safetensors.F8_E8M0), 3, 64, 3, 2, 0, 0)
	f.Add(uint8(safetensors.F8_E4M3), uint8(safetensors.F8_E8M0), 5, 7, 1, 1, math.MaxInt, math.MaxInt)
	f.Fuzz(func(t *testing.T, wdt, sdt uint8, w0, w1, s0, s1, b0, b1 int) {
		wt := safetensors.Tensor{Name: "w", DType: safetensors.DType(wdt), Shape: []int{w0, w1}}
		st := safetensors.Tensor{Name: "s", DType: safetensors.DType(sdt), Shape: []int{s0, s1}}
		if w0 < 0 || w1 < 0 || s0 < 0 || s1 < 0 || w0 > 1<<20 || w1 > 1<<20 {
			return // a parsed file's dimensions are non-negative and its tensors fit in memory
		}
		if rows, cols, err := safetensors.CheckFP4(wt, st); err == nil {
			if rows != s0 || cols%32 != 0 || cols/32 != s1 || rows*cols/2 != wt.NumElements()*wt.DType.Bits()/8 {
				t.Fatalf("accepted %v %v / %v %v as [%d, %d]", wt.DType, wt.Shape, st.DType, st.Shape, rows, cols)
			}
		}
		var block []int
		if b0 != 0 || b1 != 0 {
			block = []int{b0, b1}
		}
		if blk, err := safetensors.CheckFP8Blocks(wt, st, block); err == nil {
			ceil := func(a, b int) int { return (a + min(b, 1<<21) - 1) / min(b, 1<<21) } // a ≤ 2²⁰: a block past 2²¹ is one block
			if blk[0] <= 0 || blk[1] <= 0 || ceil(w0, blk[0]) != s0 || ceil(w1, blk[1]) != s1 {
				t.Fatalf("accepted %v / %v with block %v", wt.Shape, st.Shape, blk)
			}
		}
	})
}
