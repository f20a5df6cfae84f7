package sampling

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
	"github.com/ulan-ai/ulan/host/sampling/internal/expsum"
)

// TestTopKIsPrimitiveTopK: the row's topK gives primitive.TopK's ids and
// values on rows with many ties (logits rounded to bfloat16), banned
// tokens, NaNs, a head of NaNs, and rows whose best tokens sit at either
// end.
func TestTopKIsPrimitiveTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, n := range []int{100, topKMin - 1, topKMin, topKMin + 3, 65539, 129280} {
		for c := range 12 {
			row := randomRow(r, n, []float64{0.01, 1, 5}[c%3])
			for i, v := range row { // bfloat16: ties are common
				row[i] = math.Float32frombits(math.Float32bits(v) &^ 0xffff)
			}
			switch c % 4 {
			case 1:
				for range n / 3 {
					row[r.IntN(n)] = float32(math.Inf(-1))
				}
			case 2:
				for i := range min(n, 16384) {
					row[i] = float32(math.NaN())
				}
			case 3:
				row[n-1], row[0] = 100, 100
			}
			if c%6 == 5 {
				// The best values a third of the row's zeros, −0 and +0 at
				// random: equal values, so ties go by index.
				for i, v := range row {
					row[i] = -float32(math.Abs(float64(v)))
				}
				for range n / 3 {
					row[r.IntN(n)] = float32(math.Copysign(0, float64(2*r.IntN(2)-1)))
				}
			}
			for _, k := range []int{1, 40, 64, 256, topKMax, topKMax + 1} {
				wantIDs, want := make([]int32, k), make([]float32, k)
				wn, err := primitive.TopK(row, k, wantIDs, want)
				require.NoError(t, err)
				gotIDs, got := make([]int32, k), make([]float32, k)
				var sc expsum.Scanner
				sc.Reset()
				gn, err := topK(row, k, gotIDs, got, &sc)
				require.NoError(t, err)
				// The pass scans the row too: Scan's result, bit for bit.
				wmx, wfinite, wok := expsum.Scan(row)
				mx, finite, ok := sc.Result()
				require.Equal(t, math.Float32bits(wmx), math.Float32bits(mx))
				require.Equal(t, wfinite, finite)
				require.Equal(t, wok, ok)
				require.Equal(t, wn, gn)
				require.Equal(t, wantIDs[:wn], gotIDs[:gn], "n %d case %d k %d", n, c, k)
				for j := range wn {
					require.Equal(t, math.Float32bits(want[j]), math.Float32bits(got[j]))
				}
			}
		}
	}
}

// BenchmarkTopK compares the row's topK with primitive.TopK on a row of
// DeepSeek's vocabulary, k 64 (the first candidate set); the row's topK
// scans the row as well.
func BenchmarkTopK(b *testing.B) {
	row := randomRow(rand.New(rand.NewPCG(1, 1)), 129280, 3)
	ids, out := make([]int32, 64), make([]float32, 64)
	for _, impl := range []struct {
		name string
		fn   func([]float32, int, []int32, []float32) (int, error)
	}{{"primitive", primitive.TopK}, {"row", func(v []float32, k int, ids []int32, out []float32) (int, error) {
		return topK(v, k, ids, out, nil) // the row's scan included
	}}} {
		b.Run(impl.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := impl.fn(row, 64, ids, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
