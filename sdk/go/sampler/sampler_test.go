package sampler

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

type half struct{}

func (half) Open([]byte) (Sequence, error) { return seq{}, nil }

type seq struct{}

func (seq) Step(r *Row) error {
	for i := range r.Out {
		r.Out[i] = r.Logits[i] / 2
	}
	return nil
}
func (seq) Close() {}

func TestSequencesNatively(t *testing.T) {
	Register(half{})
	h, err := open([]byte(`{}`))
	require.NoError(t, err)
	r := &Row{Logits: []float32{2, 4}, Out: make([]float32, 2)}
	require.NoError(t, lookup(h).Step(r))
	require.Equal(t, []float32{1, 2}, r.Out)
	closeSeq(h)
	require.Nil(t, lookup(h))
}

func TestPrimitivesNatively(t *testing.T) {
	vals := []float32{0.5, 3, float32(math.NaN()), 2, 3}
	ids, out := make([]int32, 4), make([]float32, 4)
	n, err := TopK(vals, 4, ids, out)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Equal(t, []int32{1, 4, 3, 0}, ids, "largest first, ties to the lower index, NaN last")
	require.Equal(t, []float32{3, 3, 2, 0.5}, out)
	_, err = TopK(vals, 5000, ids, out)
	require.Error(t, err)

	probs := make([]float32, 3)
	require.NoError(t, Softmax([]float32{0, 0, float32(math.Inf(-1))}, 1, probs))
	require.Equal(t, []float32{0.5, 0.5, 0}, probs)
	require.Error(t, Softmax([]float32{1}, 0, probs))
	i, err := Draw(probs, 0.6)
	require.NoError(t, err)
	require.Equal(t, 1, i)
	i, err = Draw(probs, 0.9999)
	require.NoError(t, err)
	require.Equal(t, 1, i, "never a candidate of probability 0")
	_, err = Draw(probs, 1)
	require.Error(t, err)
}
