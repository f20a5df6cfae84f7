package cpu

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// fp4Matrix is a random packed FP4 weight of rows×cols values (every
// code), its E8M0 scales (2⁻⁸ to 2⁻³, as a trained expert's) and its
// exactly dequantized values.
func fp4Matrix(r *rand.Rand, rows, cols int) (packed, scales []byte, values []float32) {
	packed, scales = make([]byte, rows*cols/2), make([]byte, rows*cols/32)
	for i := range packed {
		packed[i] = byte(r.IntN(256))
	}
	for i := range scales {
		scales[i] = byte(119 + r.IntN(6))
	}
	values = make([]float32, rows*cols)
	for row := range rows {
		kernel.DequantE2M1Row(packed[row*cols/2:], scales[row*cols/32:], cols, values[row*cols:])
	}
	return packed, scales, values
}

// f32Weight is an F32 weight holding values.
func f32Weight(t *testing.T, b *Backend, name string, shape []int, values []float32) engine.Tensor {
	t.Helper()
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	w, err := b.Weight(name, engine.F32, shape, data)
	require.NoError(t, err)
	return w
}

// requireClose holds got to want within the rounding of two float32 sums
// of the same products in different orders: 1e-5 of Σ|wᵢxᵢ| for each
// output (mags), the bound for logits.
func requireClose(t *testing.T, want, got, mags []float32, msg string) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.InDelta(t, want[i], got[i], 1e-5*float64(mags[i])+1e-7, "%s: output %d", msg, i)
	}
}

// magnitudes returns Σ|w[row]·x[t]| for each token t and row, laid out as
// MatMul's output [T, rows].
func magnitudes(values []float32, rows, cols int, x []float32) []float32 {
	T := len(x) / cols
	m := make([]float32, T*rows)
	for t := range T {
		for row := range rows {
			var s float64
			for j := range cols {
				s += math.Abs(float64(values[row*cols+j]) * float64(x[t*cols+j]))
			}
			m[t*rows+row] = float32(s)
		}
	}
	return m
}

// TestFP4MatMul: an F4E2M1 weight multiplies as kernel.DotE2M1 defines,
// bit for bit whatever the batch (one to six inputs: single rows and
// groups of four), and within float32 rounding of an F32 weight holding
// its exactly dequantized values.
func TestFP4MatMul(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 12))
	const rows, cols = 70, 224
	packed, scales, values := fp4Matrix(r, rows, cols)
	b := New(WithThreads(2))
	w, err := b.WeightParts("w", engine.F4E2M1, []int{rows, cols}, []engine.WeightPart{{Data: packed, Scales: scales, E8M0Scales: true}})
	require.NoError(t, err)
	require.Equal(t, engine.F4E2M1, w.DType())
	ref := f32Weight(t, b, "ref", []int{rows, cols}, values)
	for T := 1; T <= 6; T++ {
		x := make([]float32, T*cols)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		c := b.NewContext()
		in := c.Input(x, T, cols)
		got, err := c.Floats(c.MatMul(in, w))
		require.NoError(t, err)
		want, err := c.Floats(c.MatMul(in, ref))
		require.NoError(t, err)
		got, want = slices.Clone(got), slices.Clone(want)
		c.Close()
		for tk := range T {
			for row := range rows {
				exact := kernel.DotE2M1(packed[row*cols/2:], scales[row*cols/32:], cols, x[tk*cols:(tk+1)*cols])
				require.Equal(t, math.Float32bits(exact), math.Float32bits(got[tk*rows+row]), "T %d token %d row %d", T, tk, row)
			}
		}
		requireClose(t, want, got, magnitudes(values, rows, cols, x), "fp4 vs f32")
	}
}

// TestFP4ExpertFFN: stacked FP4 experts, one part per expert as a
// checkpoint stores them, give an F32 stack of their dequantized values'
// result within rounding, and a stack given as one part the same bits as
// the parts.
func TestFP4ExpertFFN(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(13, 14))
	const X, F, E, T, K = 5, 64, 96, 4, 2
	b := New(WithThreads(2))
	type stack struct{ parts, whole, ref engine.Tensor }
	stackOf := func(name string, rows, cols int) stack {
		var all []byte
		var allS []byte
		var vals []float32
		parts := make([]engine.WeightPart, X)
		for e := range parts {
			p, s, v := fp4Matrix(r, rows, cols)
			parts[e] = engine.WeightPart{Data: p, Scales: s, E8M0Scales: true}
			all, allS, vals = append(all, p...), append(allS, s...), append(vals, v...)
		}
		shape := []int{X, rows, cols}
		split, err := b.WeightParts(name, engine.F4E2M1, shape, parts)
		require.NoError(t, err)
		whole, err := b.WeightParts(name, engine.F4E2M1, shape, []engine.WeightPart{{Data: all, Scales: allS, E8M0Scales: true, Block: [2]int{1, 32}}})
		require.NoError(t, err)
		return stack{split, whole, f32Weight(t, b, name+" f32", shape, vals)}
	}
	g, u, d := stackOf("gate", F, E), stackOf("up", F, E), stackOf("down", E, F)
	x := make([]float32, T*E)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	c := b.NewContext()
	defer c.Close()
	ids := &tensor{shape: []int{T, K}, dt: engine.I32, i: []int32{0, 4, 2, 4, 1, 0, 3, 4}}
	wts := c.Input([]float32{0.5, 0.25, 1, 2, 0.125, 3, 0.75, 0.5}, T, K)
	in := c.Input(x, T, E)
	split, err := c.Floats(c.ExpertFFN(in, ids, wts, g.parts, u.parts, d.parts, 10))
	require.NoError(t, err)
	whole, err := c.Floats(c.ExpertFFN(in, ids, wts, g.whole, u.whole, d.whole, 10))
	require.NoError(t, err)
	ref, err := c.Floats(c.ExpertFFN(in, ids, wts, g.ref, u.ref, d.ref, 10))
	require.NoError(t, err)
	require.Equal(t, split, whole)
	var mag float64
	for _, v := range ref {
		mag = max(mag, math.Abs(float64(v)))
	}
	require.InDeltaSlice(t, ref, split, 1e-5*mag)
}

// TestFP8E8M0Blocks: FP8 weights with V4's E8M0 scales, in 32×32 and
// 128×128 blocks with partial edge blocks, multiply within rounding of
// their F32 dequantization through MatMul, and as a [groups, rows, cols]
// weight from one part (V4's wo_a) through MatMulHeads, where the scale
// grid runs over the flattened rows.
func TestFP8E8M0Blocks(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(15, 16))
	b := New(WithThreads(2))
	for _, blk := range [][2]int{{32, 32}, {128, 128}, {16, 48}} {
		const groups, rows, cols, T = 3, 40, 200, 5
		n := groups * rows
		codes := make([]byte, n*cols)
		for i := range codes {
			for codes[i] = byte(r.IntN(256)); codes[i]&0x7F == 0x7F; codes[i] = byte(r.IntN(256)) {
			}
		}
		gr, gc := (n+blk[0]-1)/blk[0], (cols+blk[1]-1)/blk[1]
		e8 := make([]byte, gr*gc)
		f := make([]float32, gr*gc)
		for i := range e8 {
			e8[i] = byte(118 + r.IntN(8))
			f[i] = kernel.E8M0ToF32(e8[i])
		}
		values := make([]float32, n*cols)
		for row := range n {
			kernel.DequantE4M3RowBlocks(codes[row*cols:], f, row, cols, blk[0], blk[1], values[row*cols:])
		}
		part := []engine.WeightPart{{Data: codes, Scales: e8, E8M0Scales: true, Block: blk}}
		w2, err := b.WeightParts("wkv", engine.F8E4M3, []int{n, cols}, part)
		require.NoError(t, err)
		w3, err := b.WeightParts("wo_a", engine.F8E4M3, []int{groups, rows, cols}, part)
		require.NoError(t, err)
		x := make([]float32, T*groups*cols)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		c := b.NewContext()
		in := c.Input(x[:T*cols], T, cols)
		got, err := c.Floats(c.MatMul(in, w2))
		require.NoError(t, err)
		want, err := c.Floats(c.MatMul(in, f32Weight(t, b, "wkv f32", []int{n, cols}, values)))
		require.NoError(t, err)
		requireClose(t, want, got, magnitudes(values, n, cols, x[:T*cols]), "MatMul")
		hin := c.Input(x, T, groups, cols)
		got, err = c.Floats(c.MatMulHeads(hin, w3))
		require.NoError(t, err)
		want, err = c.Floats(c.MatMulHeads(hin, f32Weight(t, b, "wo_a f32", []int{groups, rows, cols}, values)))
		require.NoError(t, err)
		defer c.Close()
		mags := make([]float32, T*groups*rows)
		for tk := range T {
			for g := range groups {
				m := magnitudes(values[g*rows*cols:(g+1)*rows*cols], rows, cols, x[(tk*groups+g)*cols:(tk*groups+g+1)*cols])
				copy(mags[(tk*groups+g)*rows:], m)
			}
		}
		requireClose(t, want, got, mags, "MatMulHeads")
	}
}

// TestBlockScaledErrors: misshapen FP8 and FP4 parts are refused with an
// error naming the weight, never a panic.
func TestBlockScaledErrors(t *testing.T) {
	t.Parallel()
	b := New(WithThreads(1))
	cases := []struct {
		name  string
		dt    engine.DType
		shape []int
		part  engine.WeightPart
		want  string
	}{
		{"fp4 without parts api", engine.F4E2M1, []int{2, 32}, engine.WeightPart{}, "needs its block scales"},
		{"fp4 odd width", engine.F4E2M1, []int{2, 48}, engine.WeightPart{Data: make([]byte, 48), Scales: make([]byte, 3), E8M0Scales: true}, "not whole 32-value blocks"},
		{"fp4 f32 scales", engine.F4E2M1, []int{2, 32}, engine.WeightPart{Data: make([]byte, 32), Scales: make([]byte, 8)}, "must be e8m0"},
		{"fp4 block", engine.F4E2M1, []int{2, 32}, engine.WeightPart{Data: make([]byte, 32), Scales: make([]byte, 2), E8M0Scales: true, Block: [2]int{32, 32}}, "want 1×32"},
		{"fp4 data", engine.F4E2M1, []int{2, 32}, engine.WeightPart{Data: make([]byte, 64), Scales: make([]byte, 2), E8M0Scales: true}, "64 bytes for f4_e2m1 [2 32], want 32"},
		{"fp4 scales", engine.F4E2M1, []int{2, 64}, engine.WeightPart{Data: make([]byte, 64), Scales: make([]byte, 2), E8M0Scales: true}, "want 4 (e8m0 [2, 2])"},
		{"fp4 vector", engine.F4E2M1, []int{32}, engine.WeightPart{Data: make([]byte, 16), Scales: make([]byte, 1), E8M0Scales: true}, "want a matrix"},
		{"fp4 negative", engine.F4E2M1, []int{-2, 32}, engine.WeightPart{E8M0Scales: true}, "want a matrix"},
		{"fp8 e8m0 scales", engine.F8E4M3, []int{40, 70}, engine.WeightPart{Data: make([]byte, 2800), Scales: make([]byte, 4), E8M0Scales: true, Block: [2]int{32, 32}}, "want 6 (e8m0 [2, 3])"},
		{"fp8 f32 scales", engine.F8E4M3, []int{40, 70}, engine.WeightPart{Data: make([]byte, 2800), Scales: make([]byte, 6), Block: [2]int{32, 32}}, "want 24 (f32 [2, 3])"},
		{"fp8 block", engine.F8E4M3, []int{4, 4}, engine.WeightPart{Data: make([]byte, 16), Scales: make([]byte, 1), E8M0Scales: true, Block: [2]int{0, 32}}, "blocks of 0×32"},
		{"scales on bf16", engine.BF16, []int{2, 2}, engine.WeightPart{Data: make([]byte, 8), E8M0Scales: true}, "scales given for bf16"},
		{"fp4 expert", engine.F4E2M1, []int{2, 2, 32}, engine.WeightPart{}, "w[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch {
			case tc.name == "fp4 without parts api":
				_, err = b.Weight("w", tc.dt, tc.shape, make([]byte, 32))
			case tc.name == "fp4 expert":
				_, err = b.WeightParts("w", tc.dt, tc.shape, []engine.WeightPart{tc.part, tc.part})
			default:
				_, err = b.WeightParts("w", tc.dt, tc.shape, []engine.WeightPart{tc.part})
			}
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, `"w`)
		})
	}
}

// TestBlockScaleDecodersAgree: the loader's E8M0 and E2M1 decoders
// (safetensors, used by testmodel's quantizers) and the kernels' give the
// same values.
func TestBlockScaleDecodersAgree(t *testing.T) {
	t.Parallel()
	for b := range 256 {
		a, k := safetensors.E8M0ToFloat32(byte(b)), kernel.E8M0ToF32(byte(b))
		require.True(t, math.Float32bits(a) == math.Float32bits(k) || a != a && k != k, "e8m0 %d: %v vs %v", b, a, k)
		a, k = safetensors.E2M1ToFloat32(byte(b)), kernel.E2M1ToF32(byte(b))
		require.Equal(t, math.Float32bits(a), math.Float32bits(k), "e2m1 %#02x", b)
	}
}

// TestBlockScaledEmbed: rows gathered from FP4 and FP8 (E8M0, 32×32)
// tables are their exact dequantizations.
func TestBlockScaledEmbed(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(17, 18))
	const rows, cols = 40, 96
	b := New(WithThreads(1))
	packed, scales, values := fp4Matrix(r, rows, cols)
	w4, err := b.WeightParts("embed4", engine.F4E2M1, []int{rows, cols}, []engine.WeightPart{{Data: packed, Scales: scales, E8M0Scales: true}})
	require.NoError(t, err)
	codes := make([]byte, rows*cols)
	for i := range codes {
		codes[i] = byte(r.IntN(256)) & 0x7E
	}
	e8 := []byte{120, 121, 122, 123, 124, 125} // [2, 3] blocks of 32×32
	w8, err := b.WeightParts("embed8", engine.F8E4M3, []int{rows, cols}, []engine.WeightPart{{Data: codes, Scales: e8, E8M0Scales: true, Block: [2]int{32, 32}}})
	require.NoError(t, err)
	tokens := []int32{39, 0, 33, 7}
	c := b.NewContext()
	defer c.Close()
	batch := &engine.Batch{Tokens: tokens, Positions: []int32{0, 1, 2, 3}}
	got4, err := c.Floats(c.Embed(w4, batch))
	require.NoError(t, err)
	got8, err := c.Floats(c.Embed(w8, batch))
	require.NoError(t, err)
	for i, tok := range tokens {
		require.Equal(t, values[int(tok)*cols:int(tok+1)*cols], got4[i*cols:(i+1)*cols], "fp4 token %d", tok)
		for j := range cols {
			want := kernel.E4M3ToF32(codes[int(tok)*cols+j]) * kernel.E8M0ToF32(e8[int(tok)/32*3+j/32])
			require.Equal(t, want, got8[i*cols+j], "fp8 token %d col %d", tok, j)
		}
	}
}
