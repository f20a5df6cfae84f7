package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
)

// TestIndexQueryScore: the four-key scoring gives Σ_h w_h·scale·relu(q_h·K)
// as a float64 sum does, for head counts that are and are not multiples
// of the kernel's tile, over rows that are consecutive, broken by a block
// boundary, and ranges that start and end inside a group of four.
func TestIndexQueryScore(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, hd := range [][2]int{{32, 128}, {20, 64}, {4, 32}, {1, 8}} {
		H, d := hd[0], hd[1]
		const n = 45
		q, wts := randn(rng, H*d), randn(rng, H)
		keys := randn(rng, (n+8)*d)
		// Keys 0–19 in rows 0–19, keys 20–44 in rows 28–52: a jump.
		rowOf := func(w int) int {
			if w < 20 {
				return w
			}
			return w + 8
		}
		iq := newIndexQuery(q, wts, H, d, 0.25)
		for _, span := range [][2]int{{0, n}, {1, 43}, {18, 23}, {7, 8}} {
			got := make([]float32, n)
			iq.score(keys, rowOf, got, span[0], span[1])
			for w := range n {
				if w < span[0] || w >= span[1] {
					require.Zero(t, got[w], "key %d outside [%d, %d)", w, span[0], span[1])
					continue
				}
				key := keys[rowOf(w)*d:][:d]
				var want float64
				for h := range H {
					var dot float64
					for i := range d {
						dot += float64(q[h*d+i]) * float64(key[i])
					}
					want += float64(wts[h]) * 0.25 * max(dot, 0)
				}
				require.InDelta(t, want, got[w], 1e-4*(1+math.Abs(want)), "H %d, d %d, key %d", H, d, w)
			}
		}
	}
}

// TestIndexTopKDecode: a decode token over 600 keys in blocks laid out out
// of order (scored four at a time, split over the goroutines) keeps the
// top k of the float64 scores; keys of no score are never kept.
func TestIndexTopKDecode(t *testing.T) {
	t.Parallel()
	bk := New(WithThreads(2))
	const d, H, K, bs = 64, 24, 16, 64 // 16 keys per block
	const p = 2399                     // 600 visible keys
	blocks := make([]int32, 38)
	for i := range blocks {
		blocks[i] = int32((i*7 + 3) % 38)
	}
	keys, err := bk.Cache(38*bs/4, d, engine.F32)
	require.NoError(t, err)
	c := bk.NewContext()
	defer c.Close()
	kv, _ := c.Floats(keys)
	rng := rand.New(rand.NewPCG(3, 4))
	copy(kv, randn(rng, len(kv)))
	q, wts := randn(rng, H*d), randn(rng, H)
	b := &engine.Batch{Tokens: []int32{0}, Positions: []int32{p}, Seq: []int32{0}, Seqs: []engine.BatchSeq{{Blocks: blocks}}, BlockSize: bs}
	b.Slots = []int32{int32(b.Slot(0, p))}
	sel := c.IndexTopK(c.Input(q, 1, H, d), c.Input(wts, 1, H), keys, b, engine.IndexSpec{Ratio: 4, TopK: K, Scale: 0.5})
	require.NoError(t, c.Compute())
	got := sel.(*tensor).i
	scores := make([]float64, 600)
	for w := range scores {
		key := kv[b.PagedRow(0, 4*w, 4)*d:][:d]
		for h := range H {
			var dot float64
			for i := range d {
				dot += float64(q[h*d+i]) * float64(key[i])
			}
			scores[w] += float64(wts[h]) * 0.5 * max(dot, 0)
		}
	}
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if scores[a] != scores[b] {
			if scores[a] > scores[b] {
				return -1
			}
			return 1
		}
		return a - b
	})
	want := slices.Clone(order[:K])
	slices.Sort(want)
	require.Greater(t, scores[order[K-1]]-scores[order[K]], 1e-4, "the seed gives a clear k-th score")
	have := make([]int, K)
	for i, w := range got {
		have[i] = int(w)
	}
	require.Equal(t, want, have)
}

func randn(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func BenchmarkIndexQueryScore(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const H, d, n = 32, 128, 4096
	iq := newIndexQuery(randn(rng, H*d), randn(rng, H), H, d, 0.25)
	keys := randn(rng, n*d)
	scores := make([]float32, n)
	for b.Loop() {
		iq.score(keys, func(w int) int { return w }, scores, 0, n)
	}
}

// TestTopKOrder: topK keeps the k best scores, the lower index winning a
// tie (−0 ties with +0), in increasing index order, as a sort by (score
// descending, index ascending) picks them, over scores with many ties.
func TestTopKOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	var x indexScratch
	for _, n := range []int{1, 2, 7, 64, 65, 300} {
		for _, k := range []int{1, 3, 64, 400} {
			scores := make([]float32, n)
			for i := range scores {
				scores[i] = float32(rng.IntN(9)-4) / 2
				if scores[i] == 0 && rng.IntN(2) == 0 {
					scores[i] = float32(math.Copysign(0, -1))
				}
			}
			order := make([]int, n)
			for i := range order {
				order[i] = i
			}
			slices.SortStableFunc(order, func(a, b int) int {
				switch {
				case scores[a] > scores[b]:
					return -1
				case scores[a] < scores[b]:
					return 1
				}
				return 0
			})
			want := slices.Clone(order[:min(k, n)])
			slices.Sort(want)
			require.Equal(t, want, topK(scores, k), "n=%d k=%d", n, k)
			require.Equal(t, want, x.topK(scores, k), "n=%d k=%d, reused scratch", n, k)
		}
	}
}
