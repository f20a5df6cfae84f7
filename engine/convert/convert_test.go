package convert_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/convert"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

func TestOutType(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape []int
		want  engine.DType
		out   engine.DType
		fell  bool
	}{
		{"blk.0.attn_norm.weight", []int{64}, engine.Q8_0, engine.F32, false},
		{"blk.1.ffn_gate_inp.weight", []int{16, 64}, engine.BF16, engine.F32, false},
		{"blk.1.ffn_up_exps.weight", []int{16, 32, 64}, engine.Q8_0, engine.Q8_0, false},
		{"blk.0.attn_k_b.weight", []int{4, 32, 16}, engine.Q8_0, engine.F16, true},
		{"blk.0.attn_k_b.weight", []int{4, 32, 16}, engine.BF16, engine.BF16, false},
	} {
		dt, fell := convert.OutType(convert.Tensor{Name: tc.name, Shape: tc.shape}, tc.want)
		require.Equal(t, tc.out, dt, tc.name)
		require.Equal(t, tc.fell, fell, tc.name)
	}
}

// write converts one tensor and returns its bytes in the file.
func write(t *testing.T, tn convert.Tensor, dt engine.DType) []byte {
	t.Helper()
	var w gguf.Writer
	var reported int64
	require.NoError(t, convert.Add(&w, tn, dt, func(n int64) { reported += n }))
	var buf bytes.Buffer
	_, err := w.WriteTo(&buf)
	require.NoError(t, err)
	require.Equal(t, convert.Size(tn, dt), reported)
	b := buf.Bytes()
	size := int(convert.Size(tn, dt))
	// The data section is the file's end, padded to 32 bytes.
	pad := -size & 31
	return b[len(b)-pad-size : len(b)-pad]
}

func f32s(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// TestDecode checks F16 (subnormals, signed zero, infinity), BF16 and FP8
// (value × its block's scale, two row blocks and two column blocks, in
// two expert parts) decoded to F32.
func TestDecode(t *testing.T) {
	f16 := []uint16{0x0000, 0x8000, 0x0001, 0x83ff, 0x3c00, 0xc000, 0x7c00, 0x7bff}
	b := make([]byte, 2*len(f16))
	for i, h := range f16 {
		binary.LittleEndian.PutUint16(b[2*i:], h)
	}
	got := f32s(write(t, convert.Tensor{Name: "a", Shape: []int{2, 4}, DType: engine.F16,
		Load: func() ([]engine.WeightPart, error) { return []engine.WeightPart{{Data: b}}, nil }}, engine.F32))
	want := []float32{0, float32(math.Copysign(0, -1)), 1.0 / (1 << 24), -1023.0 / (1 << 24), 1, -2, float32(math.Inf(1)), 65504}
	require.Equal(t, want, got)
	require.True(t, math.Signbit(float64(got[1])))

	got = f32s(write(t, convert.Tensor{Name: "b", Shape: []int{2}, DType: engine.BF16,
		Load: func() ([]engine.WeightPart, error) {
			return []engine.WeightPart{{Data: []byte{0x80, 0x3f, 0x20, 0xc1}}}, nil
		}}, engine.F32))
	require.Equal(t, []float32{1, -10}, got)

	const rows, cols = 130, 200
	parts := make([]engine.WeightPart, 2)
	var expect []float32
	for e := range parts {
		codes := make([]byte, rows*cols)
		scales := make([]byte, 4*2*2)
		for i := range 4 {
			binary.LittleEndian.PutUint32(scales[4*i:], math.Float32bits(float32(e*4+i+1)/8))
		}
		for r := range rows {
			for c := range cols {
				codes[r*cols+c] = byte(r*7 + c*3 + e)
				s := float32(e*4+(r/128)*2+c/128+1) / 8
				expect = append(expect, safetensors.E4M3ToFloat32(codes[r*cols+c])*s)
			}
		}
		parts[e] = engine.WeightPart{Data: codes, Scales: scales}
	}
	got = f32s(write(t, convert.Tensor{Name: "c", Shape: []int{2, rows, cols}, DType: engine.F8E4M3,
		Load: func() ([]engine.WeightPart, error) { return parts, nil }}, engine.F32))
	require.Equal(t, len(expect), len(got))
	for i := range expect {
		if math.IsNaN(float64(expect[i])) {
			require.True(t, math.IsNaN(float64(got[i])), i)
			continue
		}
		require.Equal(t, expect[i], got[i], i)
	}
}

// TestLoadErrors checks that a part of the wrong size is refused by name.
func TestLoadErrors(t *testing.T) {
	var w gguf.Writer
	require.NoError(t, convert.Add(&w, convert.Tensor{Name: "blk.0.x.weight", Shape: []int{2, 4}, DType: engine.F32,
		Load: func() ([]engine.WeightPart, error) { return []engine.WeightPart{{Data: make([]byte, 12)}}, nil }}, engine.F16, nil))
	_, err := w.WriteTo(&bytes.Buffer{})
	require.ErrorContains(t, err, `"blk.0.x.weight": part 0 holds 12 bytes, want 32`)
	require.Error(t, convert.Add(&w, convert.Tensor{Name: "y", Shape: []int{2}}, engine.Q4_K, nil))
	_, err = convert.FileType(engine.Q4_K)
	require.Error(t, err)
}
