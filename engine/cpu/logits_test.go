package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// TestLogitsTileMaxima: Logits gives MatMul's values bit for bit, for Q8_0
// weights stored and repacked and for F32 weights, at 1 to 9 inputs and 1
// and 3 threads; its tile maxima are each tile's largest value (the last
// tile short), and a row with a value that is not finite (an input that
// overflows) has none. MatMul has no maxima.
func TestLogitsTileMaxima(t *testing.T) {
	t.Parallel()
	const vocab, in = 64*40 + 16, 64 // the last tile holds 16 values
	r := rand.New(rand.NewPCG(5, 6))
	vals := make([]float32, vocab*in)
	for i := range vals {
		vals[i] = float32(r.NormFloat64())
	}
	q := make([]byte, len(vals)/32*34)
	kernel.QuantizeQ8_0(vals, q)
	f32 := make([]byte, 4*len(vals))
	for i, v := range vals {
		putF32(f32[4*i:], v)
	}
	for _, tc := range []struct {
		name   string
		dt     engine.DType
		data   []byte
		repack bool
	}{{"q8_0", engine.Q8_0, q, false}, {"q8_0-r16", engine.Q8_0, q, true}, {"f32", engine.F32, f32, false}} {
		for _, threads := range []int{1, 3} {
			for _, T := range []int{1, 2, 9} {
				b := New(WithThreads(threads), WithRepack(tc.repack))
				w, err := b.Weight("output", tc.dt, []int{vocab, in}, tc.data)
				require.NoError(t, err)
				xs := make([]float32, T*in)
				for i := range xs {
					xs[i] = float32(r.NormFloat64())
				}
				if T > 1 {
					xs[in] = 1e38 // row 1 overflows to ±Inf
				}
				c := b.NewContext()
				x := c.Input(xs, T, in)
				want, got := c.MatMul(x, w), c.Logits(x, w)
				require.NoError(t, c.Compute(want, got))
				wv, _ := c.Floats(want)
				gv, _ := c.Floats(got)
				for i := range wv {
					if math.Float32bits(wv[i]) != math.Float32bits(gv[i]) {
						t.Fatalf("%s threads %d T %d: value %d: Logits %v, MatMul %v", tc.name, threads, T, i, gv[i], wv[i])
					}
				}
				require.Nil(t, c.TileMaxima(want), "MatMul makes no maxima")
				tiles := c.TileMaxima(got)
				require.Len(t, tiles, T)
				for row := range T {
					if row == 1 {
						require.Nil(t, tiles[row], "%s: row %d is not finite", tc.name, row)
						continue
					}
					require.Len(t, tiles[row], (vocab+63)/64)
					l := gv[row*vocab : (row+1)*vocab]
					for j, m := range tiles[row] {
						want := float32(math.Inf(-1))
						for _, v := range l[j*64 : min((j+1)*64, vocab)] {
							want = max(want, v)
						}
						require.Equal(t, want, m, "%s threads %d T %d: row %d tile %d", tc.name, threads, T, row, j)
					}
				}
				c.Close()
			}
		}
	}
}

func putF32(b []byte, v float32) {
	u := math.Float32bits(v)
	b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
}
