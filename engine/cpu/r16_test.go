package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// TestRepackedQ8_0 multiplies the same Q8_0 weights as stored and repacked
// to R16, as a 2-D weight, per head and per expert: the two layouts add in
// different orders with the assembly kernels (eight lanes per row against
// ggml's scalar chain), so they agree closely but not bitwise, and in the
// same order with the generic ones; each is exact across batch sizes
// (one input alone gives the bits it gets among nine); the repacked weight
// holds its own copy and dequantizes its rows as stored.
func TestRepackedQ8_0(t *testing.T) {
	t.Parallel()
	const heads, out, in, T = 3, 32, 96, 9
	r := rand.New(rand.NewPCG(3, 4))
	vals := make([]float32, heads*out*in)
	for i := range vals {
		vals[i] = float32(r.NormFloat64())
	}
	q := make([]byte, len(vals)/32*34)
	kernel.QuantizeQ8_0(vals, q)
	xs := make([]float32, T*in)
	xsH := make([]float32, T*heads*in)
	for _, v := range [][]float32{xs, xsH} {
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
	}
	run := func(repack bool, n int) (mat, perHead []float32) {
		b := New(WithThreads(2), WithRepack(repack))
		w2, err := b.Weight("w2", engine.Q8_0, []int{heads * out, in}, q)
		require.NoError(t, err)
		w3, err := b.Weight("w3", engine.Q8_0, []int{heads, out, in}, q)
		require.NoError(t, err)
		require.Equal(t, repack, w2.(engine.DataCopier).CopiedData())
		c := b.NewContext()
		defer c.Close()
		y := c.MatMul(c.Input(xs[:n*in], n, in), w2)
		y3 := c.MatMulHeads(c.Input(xsH[:n*heads*in], n, heads, in), w3)
		require.NoError(t, c.Compute(y, y3))
		a, _ := c.Floats(y)
		h, _ := c.Floats(y3)
		row := make([]float32, in)
		want := make([]float32, in)
		for _, rr := range []int{0, 17, heads*out - 1} {
			dequantRow(w2.(*tensor), rr, in, row)
			dequantRow(&tensor{dt: engine.Q8_0, raw: q}, rr, in, want)
			require.Equal(t, want, row, "row %d dequantizes as stored", rr)
		}
		return append([]float32(nil), a...), append([]float32(nil), h...)
	}
	stored, storedH := run(false, T)
	packed, packedH := run(true, T)
	differ := 0
	for i := range stored {
		require.InDelta(t, stored[i], packed[i], 1e-4*(1+math.Abs(float64(stored[i]))))
		if stored[i] != packed[i] {
			differ++
		}
	}
	if kernel.Impl() == "generic" {
		// Stored Q8_0 has ggml's scalar order there too.
		require.Zero(t, differ, "generic stored and R16 products differ")
	} else {
		require.NotZero(t, differ, "the R16 kernels were not used")
	}
	for i := range storedH {
		require.InDelta(t, storedH[i], packedH[i], 1e-4*(1+math.Abs(float64(storedH[i]))))
	}
	for _, repack := range []bool{false, true} {
		all, allH := stored, storedH
		if repack {
			all, allH = packed, packedH
		}
		one, oneH := run(repack, 1)
		require.Equal(t, all[:len(one)], one, "repack %v: one input alone", repack)
		require.Equal(t, allH[:len(oneH)], oneH, "repack %v: one input alone, per head", repack)
	}
}

// BenchmarkHeadMatMul multiplies one and eight inputs by a DeepSeek output
// projection of a small model (129,280 × 128 Q8_0, repacked to R16 where
// the CPU prefers it): the step of the demo model where every output row
// is a short run and the scatter into the outputs costs as much as the
// products. logits=true runs it as Logits, which also takes the rows'
// tile maxima.
func BenchmarkHeadMatMul(b *testing.B) {
	const out, in = 129280, 128
	r := rand.New(rand.NewPCG(5, 6))
	vals := make([]float32, out*in)
	for i := range vals {
		vals[i] = float32(r.NormFloat64())
	}
	q := make([]byte, len(vals)/32*34)
	kernel.QuantizeQ8_0(vals, q)
	for _, T := range []int{1, 8} {
		for _, threads := range []int{1, 2} {
			for _, logits := range []bool{false, true} {
				b.Run(fmt.Sprintf("inputs=%d/threads=%d/logits=%v", T, threads, logits), func(b *testing.B) {
					xs := make([]float32, T*in)
					for i := range xs {
						xs[i] = float32(r.NormFloat64())
					}
					bk := New(WithThreads(threads))
					w, err := bk.Weight("head", engine.Q8_0, []int{out, in}, q)
					require.NoError(b, err)
					for b.Loop() {
						c := bk.NewContext()
						op := c.MatMul
						if logits {
							op = c.Logits
						}
						y := op(c.Input(xs, T, in), w)
						if err := c.Compute(y); err != nil {
							b.Fatal(err)
						}
						c.Close()
					}
					b.ReportMetric(float64(out*in*T)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
				})
			}
		}
	}
}

// TestEvenRows checks which output rows mulRangeR16 writes in place: rows
// of one array equally spaced, and nothing that would reach past an array
// or run backwards.
func TestEvenRows(t *testing.T) {
	f := make([]float32, 100)
	rows := [][]float32{f[0:10], f[30:40], f[60:70]}
	base, stride, ok := evenRows(rows)
	require.True(t, ok)
	require.Equal(t, 30, stride)
	require.Len(t, base, 70)
	_, stride, ok = evenRows(rows[:1])
	require.True(t, ok)
	require.Equal(t, 10, stride)

	for name, ys := range map[string][][]float32{
		"uneven":         {f[0:10], f[30:40], f[61:71]},
		"backwards":      {f[30:40], f[0:10]},
		"overlapping":    {f[0:10], f[5:15]},
		"lengths differ": {f[0:10], f[30:39]},
		"capacity cut":   {f[0:10:10], f[30:40]},
		"two arrays":     {make([]float32, 10), make([]float32, 10)},
		"empty rows":     {f[0:0], f[0:0]},
	} {
		_, _, ok := evenRows(ys)
		require.False(t, ok, name)
	}
}
