//go:build !wasip1

package sampler

import (
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
