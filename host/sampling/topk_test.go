package sampling

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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

// tileMaxima is each tile's largest value, by Go's max (an independent
// twin of the engine's kernel).
func tileMaxima(row []float32, tile int) []float32 {
	m := make([]float32, (len(row)+tile-1)/tile)
	for j := range m {
		m[j] = float32(math.Inf(-1))
		for _, v := range row[j*tile : min((j+1)*tile, len(row))] {
			m[j] = max(m[j], v)
		}
	}
	return m
}

// TestTopKTilesIsPrimitiveTopK: topKTiles, from the tiles' maxima, gives
// primitive.TopK's ids and values on rows of many ties (bfloat16 logits),
// −Inf runs and whole −Inf tiles, ±0 ties, the best values in one tile,
// and tiles whose maxima tie, at several tile widths and k up to the
// number of tiles.
func TestTopKTilesIsPrimitiveTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, n := range []int{topKMin, topKMin + 3, 65539, 129280} {
		for c := range 10 {
			row := randomRow(r, n, []float64{0.01, 1, 5}[c%3])
			for i, v := range row {
				row[i] = math.Float32frombits(math.Float32bits(v) &^ 0xffff)
			}
			switch c % 5 {
			case 1:
				for range n / 3 {
					row[r.IntN(n)] = float32(math.Inf(-1))
				}
				for i := 64; i < 64*9; i++ {
					row[i] = float32(math.Inf(-1))
				}
			case 2:
				for i := range 100 { // the best hundred in one tile
					row[n/2+i] = 50 + float32(i%7)
				}
			case 3:
				row[n-1], row[0] = 100, 100
				for j := 0; j+64 <= n; j += 64 * 5 { // tiles whose maxima tie
					row[j+r.IntN(64)] = 30
				}
			case 4:
				for i, v := range row {
					row[i] = -float32(math.Abs(float64(v)))
				}
				for range n / 3 {
					row[r.IntN(n)] = float32(math.Copysign(0, float64(2*r.IntN(2)-1)))
				}
			}
			for _, tile := range []int{1, 64, 100} {
				maxima := tileMaxima(row, tile)
				for _, k := range []int{1, 40, 64, 256, topKMax} {
					if k > len(maxima) {
						continue
					}
					wantIDs, want := make([]int32, k), make([]float32, k)
					wn, err := primitive.TopK(row, k, wantIDs, want)
					require.NoError(t, err)
					require.Equal(t, k, wn)
					gotIDs, got := make([]int32, k), make([]float32, k)
					topKTiles(row, maxima, tile, k, gotIDs, got, new([2][]uint64))
					require.Equal(t, wantIDs, gotIDs, "n %d case %d tile %d k %d", n, c, tile, k)
					for j := range k {
						require.Equal(t, math.Float32bits(want[j]), math.Float32bits(got[j]))
					}
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

// BenchmarkTopKTiles is BenchmarkTopK's row from its tile maxima (their
// computation not included: the engine takes them).
func BenchmarkTopKTiles(b *testing.B) {
	row := randomRow(rand.New(rand.NewPCG(1, 1)), 129280, 3)
	maxima := tileMaxima(row, 64)
	for _, k := range []int{40, 64} {
		ids, out := make([]int32, k), make([]float32, k)
		scratch := new([2][]uint64)
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			for b.Loop() {
				topKTiles(row, maxima, 64, k, ids, out, scratch)
			}
		})
	}
}

// TestLargestKeys: largestKeys moves the k largest keys to the front, for
// every k, on random keys, sorted ones (both ways) and few distinct ones.
func TestLargestKeys(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	for _, n := range []int{1, 2, 3, 10, 179, 1000} {
		for c := range 4 {
			keys := make([]uint64, n)
			for i := range keys {
				switch c {
				case 0:
					keys[i] = r.Uint64()
				case 1:
					keys[i] = uint64(i)
				case 2:
					keys[i] = uint64(n - i)
				case 3:
					keys[i] = uint64(r.IntN(3))
				}
			}
			want := slices.Clone(keys)
			slices.SortFunc(want, func(a, b uint64) int { return cmp.Compare(b, a) })
			for _, k := range []int{1, 2, n / 2, n - 1, n} {
				if k < 1 || k > n {
					continue
				}
				got := slices.Clone(largestKeys(slices.Clone(keys), k))
				slices.SortFunc(got, func(a, b uint64) int { return cmp.Compare(b, a) })
				require.Equal(t, want[:k], got, "n %d case %d k %d", n, c, k)
			}
		}
	}
}
