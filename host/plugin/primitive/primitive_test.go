package primitive

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTopKMatchesSort(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, 64, 1000, 129280} {
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(math.Round(r.NormFloat64()*4) / 4) // many ties
		}
		for _, k := range []int{0, 1, 7, 64, 200} {
			ids, out := make([]int32, k), make([]float32, k)
			m, err := TopK(vals, k, ids, out)
			require.NoError(t, err)
			want := make([]int, n)
			for i := range want {
				want[i] = i
			}
			sort.SliceStable(want, func(a, b int) bool { return vals[want[a]] > vals[want[b]] })
			require.Equal(t, min(k, n), m)
			for j := range m {
				require.Equal(t, int32(want[j]), ids[j], "n %d k %d rank %d", n, k, j)
				require.Equal(t, vals[want[j]], out[j])
			}
		}
	}
}

func TestTopKNaNAndBounds(t *testing.T) {
	t.Parallel()
	nan := float32(math.NaN())
	ids, out := make([]int32, 2), make([]float32, 2)
	m, err := TopK([]float32{nan, 1, nan, 2}, 2, ids, out)
	require.NoError(t, err)
	require.Equal(t, 2, m)
	require.Equal(t, []int32{3, 1}, ids)
	_, err = TopK(make([]float32, 10), MaxTopK+1, nil, nil)
	require.ErrorIs(t, err, ErrBounds)
	_, err = TopK(make([]float32, 10), 5, ids, out)
	require.ErrorIs(t, err, ErrBounds, "output too small")
}

func TestSoftmax(t *testing.T) {
	t.Parallel()
	out := make([]float32, 3)
	require.NoError(t, Softmax([]float32{1, 2, float32(math.Inf(-1))}, 0.5, out))
	z := math.Exp(2) + math.Exp(4)
	require.InDeltaSlice(t, []float32{float32(math.Exp(2) / z), float32(math.Exp(4) / z), 0}, out, 1e-7)
	require.ErrorIs(t, Softmax([]float32{1}, 0, out), ErrBounds)
	require.ErrorIs(t, Softmax([]float32{float32(math.NaN())}, 1, out), ErrBounds)
	require.ErrorIs(t, Softmax([]float32{float32(math.Inf(-1))}, 1, out), ErrBounds)
}

// TestDrawFrequencies draws with evenly spaced uniforms; each index comes up
// in proportion to its probability, exactly.
func TestDrawFrequencies(t *testing.T) {
	t.Parallel()
	probs := []float32{0.5, 0, 0.25, 0.25}
	counts := make([]int, len(probs))
	const n = 1000
	for i := range n {
		idx, err := Draw(probs, float32(i)/n)
		require.NoError(t, err)
		counts[idx]++
	}
	require.Equal(t, []int{500, 0, 250, 250}, counts)
	idx, err := Draw([]float32{0.3, 0.3, 0}, 0.999999)
	require.NoError(t, err)
	require.Equal(t, 1, idx, "never an index with probability 0")
	_, err = Draw(probs, 1)
	require.ErrorIs(t, err, ErrBounds)
	_, err = Draw([]float32{0, 0}, 0.5)
	require.ErrorIs(t, err, ErrBounds)
	_, err = Draw([]float32{-1}, 0.5)
	require.ErrorIs(t, err, ErrBounds)
}

func TestTopPCut(t *testing.T) {
	t.Parallel()
	probs := []float32{0.5, 0.25, 0.125, 0.125}
	for _, tc := range []struct {
		p    float32
		want int
	}{{0.1, 1}, {0.5, 1}, {0.6, 2}, {0.75, 2}, {0.8, 3}, {1, 4}} {
		m, err := TopPCut(probs, tc.p)
		require.NoError(t, err)
		require.Equal(t, tc.want, m, "p=%v", tc.p)
	}
	m, err := TopPCut([]float32{2, 1, 1}, 0.5) // unnormalised: half of 4
	require.NoError(t, err)
	require.Equal(t, 1, m)
	for _, bad := range []struct {
		probs []float32
		p     float32
	}{{nil, 0.5}, {probs, 0}, {probs, 1.5}, {probs, float32(math.NaN())}, {[]float32{0.5, -1}, 0.5}, {[]float32{float32(math.Inf(1))}, 0.5}} {
		_, err := TopPCut(bad.probs, bad.p)
		require.ErrorIs(t, err, ErrBounds, "%v %v", bad.probs, bad.p)
	}
}
