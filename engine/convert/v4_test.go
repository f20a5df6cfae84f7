package convert_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/convert"
	"github.com/ulan-ai/ulan/engine/gguf"
)

// TestDecodeV4 decodes DeepSeek-V4's formats: FP8 E4M3 with E8M0 scales in
// 2×2 blocks (partial at the edge), FP4 E2M1 with an E8M0 scale per 32
// values (spec §8: byte 0x9A is −1 then −0.5; scales 127, 128, 120, 134
// are 1, 2, 2⁻⁷, 128), and an I32 table copied as it is.
func TestDecodeV4(t *testing.T) {
	one := func(parts ...engine.WeightPart) func() ([]engine.WeightPart, error) {
		return func() ([]engine.WeightPart, error) { return parts, nil }
	}
	// [3, 3] of E4M3 1.0 (0x38) in 2×2 blocks: scales [2, 2].
	fp8 := convert.Tensor{Name: "blk.0.attn_kv.weight", Shape: []int{3, 3}, DType: engine.F8E4M3, Load: one(engine.WeightPart{
		Data: bytes.Repeat([]byte{0x38}, 9), Scales: []byte{127, 128, 120, 134}, E8M0Scales: true, Block: [2]int{2, 2}})}
	require.Equal(t, []float32{1, 1, 2, 1, 1, 2, 1.0 / 128, 1.0 / 128, 128}, f32s(write(t, fp8, engine.F32)))

	// Two experts of [1, 64]: expert 1's byte 0 is 0x9A, its scales 127
	// and 134 (the second block's byte 16 is 0x9A too).
	packed := make([]byte, 32)
	packed[0], packed[16] = 0x9A, 0x9A
	fp4 := convert.Tensor{Name: "blk.1.ffn_up_exps.weight", Shape: []int{2, 1, 64}, DType: engine.F4E2M1, Load: one(
		engine.WeightPart{Data: make([]byte, 32), Scales: []byte{127, 127}, E8M0Scales: true},
		engine.WeightPart{Data: packed, Scales: []byte{127, 134}, E8M0Scales: true, Block: [2]int{1, 32}})}
	v := f32s(write(t, fp4, engine.F32))
	require.Len(t, v, 128)
	want := make([]float32, 128)
	want[64], want[65], want[96], want[97] = -1, -0.5, -128, -64
	require.Equal(t, want, v)

	tab := make([]byte, 4*6)
	for i := range 6 {
		binary.LittleEndian.PutUint32(tab[4*i:], uint32(i%4))
	}
	ti := convert.Tensor{Name: "blk.0.ffn_gate_tid2eid.weight", Shape: []int{3, 2}, DType: engine.I32, Load: one(engine.WeightPart{Data: tab})}
	dt, fell := convert.OutType(ti, engine.Q8_0)
	require.Equal(t, engine.I32, dt)
	require.False(t, fell)
	require.Equal(t, tab, write(t, ti, engine.I32))

	for _, n := range []string{"blk.1.attn_compressor_ape.weight", "blk.0.hc_attn_fn.weight", "blk.0.hc_ffn_fn.weight", "output_hc_fn.weight"} {
		dt, _ := convert.OutType(convert.Tensor{Name: n, Shape: []int{4, 64}, DType: engine.F32}, engine.Q8_0)
		require.Equal(t, engine.F32, dt, n)
	}
}

// TestLoadErrorsV4: parts that do not fit their V4 format fail when the
// writer reaches them, naming the tensor.
func TestLoadErrorsV4(t *testing.T) {
	for _, tc := range []struct {
		tn   convert.Tensor
		dt   engine.DType
		want string
	}{
		{convert.Tensor{Name: "a", Shape: []int{3, 3}, DType: engine.F8E4M3, Load: func() ([]engine.WeightPart, error) {
			return []engine.WeightPart{{Data: make([]byte, 9), Scales: make([]byte, 2), E8M0Scales: true, Block: [2]int{2, 2}}}, nil
		}}, engine.F32, `"a": part 0 has 2 bytes of scales, want 4`},
		{convert.Tensor{Name: "b", Shape: []int{1, 64}, DType: engine.F4E2M1, Load: func() ([]engine.WeightPart, error) {
			return []engine.WeightPart{{Data: make([]byte, 32), Scales: make([]byte, 2)}}, nil
		}}, engine.F32, `"b": part 0: f4_e2m1 takes E8M0 scales in 1×32 blocks`},
		{convert.Tensor{Name: "c", Shape: []int{1, 48}, DType: engine.F4E2M1, Load: func() ([]engine.WeightPart, error) {
			return []engine.WeightPart{{Data: make([]byte, 24), Scales: make([]byte, 2), E8M0Scales: true}}, nil
		}}, engine.F32, `"c": f4_e2m1 rows of 48 values are not whole 32-value blocks`},
		{convert.Tensor{Name: "d", Shape: []int{2, 2}, DType: engine.I32, Load: func() ([]engine.WeightPart, error) {
			return []engine.WeightPart{{Data: make([]byte, 16)}}, nil
		}}, engine.F32, `"d": i32 cannot be written as f32`},
	} {
		var w gguf.Writer
		require.NoError(t, convert.Add(&w, tc.tn, tc.dt, nil))
		_, err := w.WriteTo(&bytes.Buffer{})
		require.ErrorContains(t, err, tc.want)
	}
}
