package cpu

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// fp8Matrix is a random FP8 matrix (no NaN codes) with its scales as bytes
// and its decoded values.
func fp8Matrix(r *rand.Rand, rows, cols int) (codes, scales []byte, values []float32) {
	codes = make([]byte, rows*cols)
	for i := range codes {
		for codes[i] = byte(r.IntN(256)); codes[i]&0x7F == 0x7F; codes[i] = byte(r.IntN(256)) {
		}
	}
	nb := ((rows + 127) / 128) * ((cols + 127) / 128)
	s := make([]float32, nb)
	scales = make([]byte, 4*nb)
	for i := range s {
		s[i] = r.Float32()/64 + 1e-3
		binary.LittleEndian.PutUint32(scales[4*i:], math.Float32bits(s[i]))
	}
	values = make([]float32, rows*cols)
	for row := range rows {
		kernel.DequantE4M3Row(codes[row*cols:], s, row, cols, values[row*cols:])
	}
	return codes, scales, values
}

// TestFP8MatMul: an F8E4M3 weight multiplies as kernel.DotE4M3 defines,
// bit for bit whatever the batch (one or four inputs per row read), and
// within float32 rounding of its decoded values in F32.
func TestFP8MatMul(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	const rows, cols, T = 200, 300, 6
	codes, scales, values := fp8Matrix(r, rows, cols)
	b := New(WithThreads(2))
	w, err := b.WeightParts("w", engine.F8E4M3, []int{rows, cols}, []engine.WeightPart{{Data: codes, Scales: scales}})
	require.NoError(t, err)
	wf := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(wf[4*i:], math.Float32bits(v))
	}
	ref, err := b.Weight("ref", engine.F32, []int{rows, cols}, wf)
	require.NoError(t, err)
	x := make([]float32, T*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	c := b.NewContext()
	defer c.Close()
	in := c.Input(x, T, cols)
	got, err := c.Floats(c.MatMul(in, w))
	require.NoError(t, err)
	want, err := c.Floats(c.MatMul(in, ref))
	require.NoError(t, err)
	s := w.(*tensor).scales
	for tk := range T {
		for row := range rows {
			exact := kernel.DotE4M3(codes[row*cols:], s, row, cols, x[tk*cols:(tk+1)*cols])
			require.Equal(t, math.Float32bits(exact), math.Float32bits(got[tk*rows+row]), "token %d row %d", tk, row)
			var mag float64
			for j := range cols {
				mag += math.Abs(float64(values[row*cols+j] * x[tk*cols+j]))
			}
			require.InDelta(t, want[tk*rows+row], got[tk*rows+row], 1e-5*mag+1e-6)
		}
	}
}

// TestExpertParts: experts given one part each compute exactly what the
// same bytes stacked in one buffer do.
func TestExpertParts(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	const X, F, E, T, K = 4, 16, 32, 3, 2
	b := New(WithThreads(2))
	stackedOf := func(name string, rows, cols int) (engine.Tensor, engine.Tensor) {
		data := make([]byte, 2*X*rows*cols)
		for i := 0; i < len(data); i += 2 {
			binary.LittleEndian.PutUint16(data[i:], uint16(math.Float32bits(float32(r.NormFloat64()))>>16))
		}
		whole, err := b.Weight(name, engine.BF16, []int{X, rows, cols}, data)
		require.NoError(t, err)
		parts := make([]engine.WeightPart, X)
		for e := range parts {
			parts[e].Data = data[e*2*rows*cols : (e+1)*2*rows*cols]
		}
		split, err := b.WeightParts(name, engine.BF16, []int{X, rows, cols}, parts)
		require.NoError(t, err)
		return whole, split
	}
	gw, gs := stackedOf("gate", F, E)
	uw, us := stackedOf("up", F, E)
	dw, ds := stackedOf("down", E, F)
	x := make([]float32, T*E)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	c := b.NewContext()
	defer c.Close()
	ids := &tensor{shape: []int{T, K}, dt: engine.I32, i: []int32{0, 3, 2, 3, 1, 0}}
	wts := c.Input([]float32{0.5, 0.25, 1, 2, 0.125, 3}, T, K)
	in := c.Input(x, T, E)
	a, err := c.Floats(c.ExpertFFN(in, ids, wts, gw, uw, dw, 0))
	require.NoError(t, err)
	bb, err := c.Floats(c.ExpertFFN(in, ids, wts, gs, us, ds, 0))
	require.NoError(t, err)
	require.Equal(t, a, bb)
}

func TestWeightPartsErrors(t *testing.T) {
	t.Parallel()
	b := New(WithThreads(1))
	_, err := b.Weight("w", engine.F8E4M3, []int{2, 2}, make([]byte, 4))
	require.ErrorContains(t, err, "needs its block scales")
	_, err = b.WeightParts("w", engine.F8E4M3, []int{2, 2}, []engine.WeightPart{{Data: make([]byte, 4), Scales: make([]byte, 8)}})
	require.ErrorContains(t, err, "8 bytes of block scales")
	_, err = b.WeightParts("w", engine.F8E4M3, []int{2, 3}, []engine.WeightPart{{Data: make([]byte, 4), Scales: make([]byte, 4)}})
	require.ErrorContains(t, err, "4 bytes for f8_e4m3")
	_, err = b.WeightParts("w", engine.BF16, []int{3, 2, 2}, []engine.WeightPart{{Data: make([]byte, 8)}, {Data: make([]byte, 8)}})
	require.ErrorContains(t, err, "2 parts for shape [3 2 2]")
	_, err = b.WeightParts("w", engine.BF16, []int{2, 2, 2}, []engine.WeightPart{{Data: make([]byte, 8)}, {Data: make([]byte, 6)}})
	require.ErrorContains(t, err, `w[1]`)
	_, err = b.WeightParts("w", engine.BF16, []int{2, 2}, nil)
	require.ErrorContains(t, err, "no parts")
}

// TestE4M3DecodersAgree: the loader's decoder (safetensors, used for
// kv_b_proj and by testmodel) and the kernels' give the same values.
func TestE4M3DecodersAgree(t *testing.T) {
	t.Parallel()
	for b := range 256 {
		a, k := safetensors.E4M3ToFloat32(byte(b)), kernel.E4M3ToF32(byte(b))
		require.True(t, math.Float32bits(a) == math.Float32bits(k) || a != a && k != k, "code %#02x: %v vs %v", b, a, k)
	}
}
