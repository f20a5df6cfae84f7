package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/sampler"
)

// The plugin's logic runs natively under `go test`, with the SDK's Go
// versions of the host's primitives.
func TestSamples(t *testing.T) {
	pl := &plugin{}
	require.NoError(t, pl.configure([]byte(`{"temperature": 1, "top_k": 2}`)))
	row := func(u float32) *sampler.Row {
		return &sampler.Row{U0: u, IDs: []int32{10, 11, 12}, Logits: []float32{0, 5, 5}, Token: -1}
	}
	q, err := pl.Open([]byte(`{}`))
	require.NoError(t, err)
	for _, tc := range []struct {
		u    float32
		want int32
	}{{0.1, 11}, {0.9, 12}} { // top 2 are the equal 11 and 12
		r := row(tc.u)
		require.NoError(t, q.Step(r))
		require.Equal(t, tc.want, r.Token, "u0 %v", tc.u)
	}

	q, err = pl.Open([]byte(`{"temperature": 0}`))
	require.NoError(t, err)
	r := row(0.9)
	require.NoError(t, q.Step(r))
	require.Equal(t, int32(11), r.Token, "greedy: the first of the best")

	q, err = pl.Open([]byte(`{"top_k": 0, "top_p": 0.4}`))
	require.NoError(t, err)
	r = row(0.99)
	require.NoError(t, q.Step(r))
	require.Equal(t, int32(11), r.Token, "top_p 0.4 keeps only the first of the two likely ones (0.498 each)")

	_, err = pl.Open([]byte(`{"top_p": 0}`))
	require.ErrorContains(t, err, "top_p")
	require.Error(t, pl.configure([]byte(`{"top_k": -1}`)))
}
