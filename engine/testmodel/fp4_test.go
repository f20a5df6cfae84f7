package testmodel

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// TestQuantFP4 checks the packing against spec §8's byte 0x9A, the scale
// choice, the rounding bound and the errors.
func TestQuantFP4(t *testing.T) {
	t.Parallel()
	v := make([]float32, 64)
	v[0], v[1], v[2] = -1, -0.5, 6 // amax 6: scale 2⁰
	v[32], v[33] = 0.75, 3         // amax 3: scale 2⁻¹, codes 1.5 and 6
	packed, scales, err := QuantFP4(v, 1, 64)
	require.NoError(t, err)
	require.Equal(t, []byte{127, 126}, scales)
	require.Equal(t, byte(0x9A), packed[0])
	require.Equal(t, byte(0x07), packed[1])
	require.Equal(t, byte(0x73), packed[16])
	back, err := DequantFP4(packed, scales, 1, 64)
	require.NoError(t, err)
	require.Equal(t, v, back, "these values are exact in FP4")

	r := rand.New(rand.NewPCG(21, 22))
	const rows, cols = 6, 96
	v = make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(r.NormFloat64() * math.Ldexp(1, r.IntN(20)-10))
	}
	packed, scales, err = QuantFP4(v, rows, cols)
	require.NoError(t, err)
	back, err = DequantFP4(packed, scales, rows, cols)
	require.NoError(t, err)
	for i := range v {
		s := safetensors.E8M0ToFloat32(scales[i/32])
		// E2M1 values are at most 2 apart (4 to 6), so rounding moves a
		// value by at most one unit of its block's scale.
		require.LessOrEqual(t, math.Abs(float64(back[i]-v[i])), float64(s), "value %d", i)
	}
	for b := range scales {
		var amax float64
		for _, x := range v[32*b : 32*b+32] {
			amax = max(amax, math.Abs(float64(x)))
		}
		s := float64(safetensors.E8M0ToFloat32(scales[b]))
		require.True(t, amax/s <= 6 && amax/s > 3, "block %d: amax %v, scale %v is the smallest power of two that fits", b, amax, s)
	}
	_, _, err = QuantFP4(make([]float32, 48), 1, 48)
	require.ErrorContains(t, err, "whole 32-value blocks")
	_, err = DequantFP4(packed[1:], scales, rows, cols)
	require.ErrorContains(t, err, "fp4")
}

// TestQuantFP8E8M0 checks V4's FP8 blocks: 32×32 and 128×128 with partial
// edges, power-of-two scales that fit the block's largest value, codes
// within half a step, and an all-zero block.
func TestQuantFP8E8M0(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(23, 24))
	const rows, cols = 70, 150
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(r.NormFloat64() * 0.02)
	}
	for c := range cols {
		v[(rows-1)*cols+c] = 0 // rows 64–69 of the last 32-row block stay non-zero
	}
	for _, blk := range [][2]int{{32, 32}, {128, 128}, {1, 150}} {
		codes, scales, err := QuantFP8E8M0(v, rows, cols, blk[0], blk[1])
		require.NoError(t, err)
		require.Len(t, scales, ((rows+blk[0]-1)/blk[0])*((cols+blk[1]-1)/blk[1]))
		back, err := DequantFP8E8M0(codes, scales, rows, cols, blk[0], blk[1])
		require.NoError(t, err)
		bc := (cols + blk[1] - 1) / blk[1]
		for i, x := range v {
			s := float64(safetensors.E8M0ToFloat32(scales[i/cols/blk[0]*bc+i%cols/blk[1]]))
			tol := max(math.Abs(float64(x))/16, s*0x1p-10)
			require.LessOrEqual(t, math.Abs(float64(back[i]-x)), tol, "block %v value %d", blk, i)
		}
		if blk[0] == 1 {
			require.Equal(t, byte(127), scales[rows-1], "an all-zero block has scale 1")
		}
	}
	_, _, err := QuantFP8E8M0(v, rows, cols, 0, 32)
	require.ErrorContains(t, err, "blocks")
	_, err = DequantFP8E8M0(make([]byte, 4), make([]byte, 2), 2, 2, 32, 32)
	require.ErrorContains(t, err, "2 scales")
}

// TestV4FormatsOnBackend is the chain a V4 model test runs: quantize with
// this package, load the codes into the CPU backend as F8E4M3 (E8M0
// scales, 32×32) and F4E2M1 weights, and compare MatMul with F32 weights
// holding the exact dequantizations: within 1e-5 of Σ|wᵢxᵢ|.
func TestV4FormatsOnBackend(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(25, 26))
	const rows, cols = 48, 128
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(r.NormFloat64() * 0.05)
	}
	x := make([]float32, 3*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	b := cpu.New(cpu.WithThreads(2))
	defer b.Close()
	f32 := func(vals []float32) engine.Tensor {
		data := make([]byte, 4*len(vals))
		for i, f := range vals {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(f))
		}
		w, err := b.Weight("ref", engine.F32, []int{rows, cols}, data)
		require.NoError(t, err)
		return w
	}
	codes, s8, err := QuantFP8E8M0(v, rows, cols, 32, 32)
	require.NoError(t, err)
	d8, err := DequantFP8E8M0(codes, s8, rows, cols, 32, 32)
	require.NoError(t, err)
	w8, err := b.WeightParts("wq_a", engine.F8E4M3, []int{rows, cols}, []engine.WeightPart{{Data: codes, Scales: s8, E8M0Scales: true, Block: [2]int{32, 32}}})
	require.NoError(t, err)
	packed, s4, err := QuantFP4(v, rows, cols)
	require.NoError(t, err)
	d4, err := DequantFP4(packed, s4, rows, cols)
	require.NoError(t, err)
	w4, err := b.WeightParts("w1", engine.F4E2M1, []int{rows, cols}, []engine.WeightPart{{Data: packed, Scales: s4, E8M0Scales: true}})
	require.NoError(t, err)
	for _, c := range []struct {
		w   engine.Tensor
		deq []float32
	}{{w8, d8}, {w4, d4}} {
		ctx := b.NewContext()
		in := ctx.Input(x, 3, cols)
		got, err := ctx.Floats(ctx.MatMul(in, c.w))
		require.NoError(t, err)
		want, err := ctx.Floats(ctx.MatMul(in, f32(c.deq)))
		require.NoError(t, err)
		defer ctx.Close()
		for tk := range 3 {
			for row := range rows {
				var mag float64
				for j := range cols {
					mag += math.Abs(float64(c.deq[row*cols+j]) * float64(x[tk*cols+j]))
				}
				require.InDelta(t, want[tk*rows+row], got[tk*rows+row], 1e-5*mag, "%v token %d row %d", c.w.DType(), tk, row)
			}
		}
	}
}
