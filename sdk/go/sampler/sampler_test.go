package sampler

import (
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
