package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

func TestRopeInverseUndoesRope(t *testing.T) {
	t.Parallel()
	c := New(WithThreads(1)).NewContext()
	b := &engine.Batch{Positions: []int32{1000}, Tokens: []int32{0}}
	v := make([]float32, 24)
	for i := range v {
		v[i] = float32(i) - 7
	}
	spec := engine.RopeSpec{Dims: 8, Base: 10000}
	x := c.Input(v, 1, 24)
	y := c.Rope(x, b, spec)
	spec.Inverse = true
	z := c.Rope(y, b, spec)
	require.NoError(t, c.Compute(z))
	got, _ := c.Floats(z)
	yv, _ := c.Floats(y)
	require.Equal(t, v[:16], yv[:16], "only the trailing Dims channels rotate")
	for i := range v {
		require.InDelta(t, v[i], got[i], 1e-4)
	}
}

// TestRouteGroupMaskIsMinusInfinity is trap 18: experts of dropped groups
// must be excluded even when the kept groups' biased scores are negative
// (a mask of 0 would pick them).
func TestRouteGroupMaskIsMinusInfinity(t *testing.T) {
	t.Parallel()
	c := New(WithThreads(1)).NewContext()
	logits := c.Input([]float32{0, 0, 0, 0}, 1, 4) // sigmoid 0.5 each
	bias := c.Input([]float32{-1.0, -1.1, -1.4, -1.45}, 4)
	ids, w := c.Route(logits, bias, engine.RouteSpec{
		Scoring: engine.Sigmoid, TopK: 2, Groups: 2, TopKGroups: 1, GroupScore: engine.GroupTop2Sum, Normalize: true, Scale: 2.5,
	})
	require.NoError(t, c.Compute(w))
	require.Equal(t, []int32{0, 1}, ids.(*tensor).i)
	wv, _ := c.Floats(w)
	require.InDeltaSlice(t, []float32{1.25, 1.25}, wv, 1e-6, "the bias selects, the weights stay unbiased")
}

func TestRouteSoftmaxWithoutNormalisation(t *testing.T) {
	t.Parallel()
	c := New(WithThreads(1)).NewContext()
	logits := c.Input([]float32{1, 3, 2, 0}, 1, 4)
	ids, w := c.Route(logits, nil, engine.RouteSpec{Scoring: engine.Softmax, TopK: 2, Scale: 16})
	require.NoError(t, c.Compute(w))
	require.Equal(t, []int32{1, 2}, ids.(*tensor).i)
	z := math.Exp(1) + math.Exp(3) + math.Exp(2) + 1
	wv, _ := c.Floats(w)
	require.InDeltaSlice(t, []float32{float32(16 * math.Exp(3) / z), float32(16 * math.Exp(2) / z)}, wv, 1e-5)
}

// TestBadShapesAreErrors: a mistake in architecture code surfaces as an
// error from Compute naming the op, never as a panic.
func TestBadShapesAreErrors(t *testing.T) {
	t.Parallel()
	b := New(WithThreads(1))
	w, err := b.Weight("w", engine.F32, []int{3, 4}, make([]byte, 48))
	require.NoError(t, err)
	_, err = b.Weight("short", engine.F32, []int{3, 4}, make([]byte, 47))
	require.ErrorContains(t, err, `"short"`)
	_, err = b.Weight("q", engine.Q8_0, []int{2, 48}, make([]byte, 68))
	require.ErrorContains(t, err, "32-value blocks")

	c := b.NewContext()
	x := c.Input(make([]float32, 10), 2, 5)
	y := c.MatMul(x, w)
	z := c.Add(y, x) // goes on recording after the failure
	err = c.Compute(z)
	require.ErrorContains(t, err, "MatMul")
	_, err = c.Floats(z)
	require.Error(t, err)
}

func TestMatMulTypesAgree(t *testing.T) {
	t.Parallel()
	b := New(WithThreads(2))
	const out, in, T = 37, 64, 6
	vals := make([]float32, out*in)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)))
	}
	f32 := make([]byte, 4*len(vals))
	for i, v := range vals {
		bits := math.Float32bits(v)
		f32[4*i], f32[4*i+1], f32[4*i+2], f32[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
	}
	bf16 := make([]byte, 2*len(vals))
	for i := range vals {
		bf16[2*i], bf16[2*i+1] = f32[4*i+2], f32[4*i+3] // truncation is exact for these checks' tolerance
	}
	wf, err := b.Weight("f", engine.F32, []int{out, in}, f32)
	require.NoError(t, err)
	wb, err := b.Weight("b", engine.BF16, []int{out, in}, bf16)
	require.NoError(t, err)
	c := b.NewContext()
	xs := make([]float32, T*in)
	for i := range xs {
		xs[i] = float32(math.Cos(float64(i)))
	}
	x := c.Input(xs, T, in)
	yf, yb := c.MatMul(x, wf), c.MatMul(x, wb)
	require.NoError(t, c.Compute(yf, yb))
	a, _ := c.Floats(yf)
	bb, _ := c.Floats(yb)
	for i := range a {
		require.InDelta(t, a[i], bb[i], 0.1, "bf16 keeps 8 bits of mantissa")
	}
	for tok := range T {
		for r := range out {
			var want float64
			for k := range in {
				want += float64(vals[r*in+k]) * float64(xs[tok*in+k])
			}
			require.InDelta(t, want, a[tok*out+r], 1e-4)
		}
	}
}

// normals returns n draws of a standard normal.
func normals(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// TestMatMulF32Bits: an F32 product gives each output DotF32's bits
// whatever the batch, whether its inputs go four at a time through the
// rows kernel (contiguous tokens) or one by one, on one thread or two.
func TestMatMulF32Bits(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(17, 18))
	for _, sh := range [][2]int{{24, 512}, {37, 64}, {5, 130}, {700, 384}} {
		out, in := sh[0], sh[1]
		vals := normals(r, out*in)
		for _, threads := range []int{1, 2} {
			b := New(WithThreads(threads))
			w := f32Weight(t, b, "w", []int{out, in}, vals)
			for _, T := range []int{1, 3, 4, 5, 8, 9} {
				xs := normals(r, T*in)
				c := b.NewContext()
				got, err := c.Floats(c.MatMul(c.Input(xs, T, in), w))
				require.NoError(t, err)
				for tok := range T {
					for row := range out {
						want := kernel.DotF32(vals[row*in:(row+1)*in], xs[tok*in:(tok+1)*in])
						require.Equal(t, math.Float32bits(want), math.Float32bits(got[tok*out+row]), "%v T=%d threads=%d token %d row %d", sh, T, threads, tok, row)
					}
				}
				c.Close()
			}
		}
	}
}

// TestSwiGLUClamp is trap 13: V4 clamps the gate from above only and the up
// projection on both sides.
func TestSwiGLUClamp(t *testing.T) {
	t.Parallel()
	c := New(WithThreads(1)).NewContext()
	g := c.Input([]float32{50, -50, 3}, 3)
	u := c.Input([]float32{-50, 50, 2}, 3)
	y, plain := c.SwiGLU(g, u, 10), c.SwiGLU(g, u, 0)
	require.NoError(t, c.Compute(y, plain))
	yv, _ := c.Floats(y)
	pv, _ := c.Floats(plain)
	require.InDeltaSlice(t, []float32{silu(10) * -10, silu(-50) * 10, silu(3) * 2}, yv, 1e-6)
	require.InDeltaSlice(t, []float32{silu(50) * -50, silu(-50) * 50, silu(3) * 2}, pv, 1e-6)
}

// attend runs Attention for one sequence whose cache rows are keys, for a
// single query at position p.
func attend(t *testing.T, keys [][]float32, q []float32, p int, spec engine.AttentionSpec, sinks []float32) []float32 {
	t.Helper()
	b := New(WithThreads(1))
	w := len(keys[0])
	cache, err := b.Cache(16, w, engine.F32)
	require.NoError(t, err)
	for i, k := range keys {
		copy(cache.(*tensor).f[i*w:], k)
	}
	c := b.NewContext()
	if sinks != nil {
		spec.Sinks = c.Input(sinks, len(sinks))
	}
	batch := &engine.Batch{Tokens: []int32{0}, Positions: []int32{int32(p)}, Seq: []int32{0}, Slots: []int32{int32(p)}, BlockSize: 16, Seqs: []engine.BatchSeq{{Blocks: []int32{0}}}}
	out := c.Attention(c.Input(q, 1, 1, len(q)), cache, batch, spec)
	require.NoError(t, c.Compute(out))
	v, _ := c.Floats(out)
	return v
}

// TestAttentionSinkAndWindow are traps 3, 4 and 19: with one visible key
// the output is σ(s − sink)·v (the sink is unscaled and only in the
// denominator), and a window of n sees exactly the n latest positions.
func TestAttentionSinkAndWindow(t *testing.T) {
	t.Parallel()
	key := []float32{0.5, -1, 2}
	q := []float32{1, 0.25, 0.5}
	s := float64(0.5*1-1*0.25+2*0.5) * 0.7
	sink := float32(0.3)
	got := attend(t, [][]float32{key}, q, 0, engine.AttentionSpec{ValueDim: 3, Scale: 0.7}, []float32{sink})
	sig := 1 / (1 + math.Exp(float64(sink)-s))
	for i := range key {
		require.InDelta(t, sig*float64(key[i]), got[i], 1e-6)
	}

	keys := [][]float32{{9, 9}, {9, 9}, {9, 9}, {1, 0}, {0, 1}}
	got = attend(t, keys, []float32{0, 0}, 4, engine.AttentionSpec{ValueDim: 2, Scale: 1, Window: 2}, nil)
	require.InDeltaSlice(t, []float32{0.5, 0.5}, got, 1e-6, "only positions 3 and 4 are visible")
	got = attend(t, keys, []float32{0, 0}, 4, engine.AttentionSpec{ValueDim: 2, Scale: 1}, nil)
	require.InDeltaSlice(t, []float32{5.6, 5.6}, got, 1e-5, "without a window all five are")
}
