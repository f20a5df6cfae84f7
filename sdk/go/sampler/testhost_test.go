//go:build !wasip1

package sampler

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHostStateNatively(t *testing.T) {
	UseTestHost(TestHost{History: map[int64][]int32{7: {1, 2, 3}}, Vocab: [][]byte{[]byte("a"), []byte("bc")}})
	defer UseTestHost(TestHost{})
	r := NewTestRow(7, []int32{1, 2}, []float32{0, 1})
	h, err := r.History(0)
	require.NoError(t, err)
	require.Equal(t, []int32{1, 2, 3}, h)
	h, err = r.History(2)
	require.NoError(t, err)
	require.Equal(t, []int32{2, 3}, h)
	_, err = NewTestRow(8, nil, nil).History(0)
	require.ErrorContains(t, err, "no such sequence")

	b, err := TokenBytes(1, nil)
	require.NoError(t, err)
	require.Equal(t, "bc", string(b))
	_, err = TokenBytes(2, nil)
	require.ErrorContains(t, err, "no such token")

	m, err := TopPCut([]float32{0.5, 0.25, 0.25}, 0.6)
	require.NoError(t, err)
	require.Equal(t, 2, m)
	_, err = TopPCut([]float32{0.5}, 0)
	require.Error(t, err)
}

func TestKeepAll(t *testing.T) {
	r := NewTestRow(1, []int32{3}, []float32{0})
	require.False(t, r.KeepAll(0), "a temperature must be positive")
	require.False(t, r.KeepAll(float32(math.Inf(1))), "and finite")
	require.Equal(t, int32(-1), r.Token, "a refused KeepAll answers nothing")
	require.True(t, r.KeepAll(0.7))
	require.Equal(t, int32(TokenKeepAll), r.Token)
	require.Equal(t, int32(-3), r.Token, "sdk/ABI.md §6.2")
	temp, ok := r.KeptAll()
	require.True(t, ok)
	require.Equal(t, float32(0.7), temp)

	old := &Row{Token: -1} // a host that did not set the header's flag
	require.False(t, old.KeepAll(0.7))
	require.Equal(t, int32(-1), old.Token)
}

func TestFullLSE(t *testing.T) {
	r := NewTestRow(1, []int32{3}, []float32{0})
	r.LSE = 2
	lse, err := r.FullLSE()
	require.NoError(t, err)
	require.Equal(t, float32(2), lse)
	r.LSE = float32(math.NaN())
	_, err = r.FullLSE()
	require.ErrorContains(t, err, "no log-sum-exp")
	calls := 0
	r.LoadLSE = func() float32 { calls++; return 3 }
	for range 2 {
		lse, err = r.FullLSE()
		require.NoError(t, err)
		require.Equal(t, float32(3), lse)
	}
	require.Equal(t, 1, calls, "loaded once")
}
