package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/sampler"
)

// The plugin's logic runs natively under `go test`, with the SDK's Go
// versions of the host's primitives. Rows come as the host sends them:
// sorted by logit, largest first, ties to the lower id.
func TestSamples(t *testing.T) {
	pl := &plugin{}
	require.NoError(t, pl.configure([]byte(`{"temperature": 1, "top_k": 2}`)))
	row := func(u float32) *sampler.Row {
		return &sampler.Row{U0: u, IDs: []int32{11, 12, 10}, Logits: []float32{5, 5, 0}, Out: []float32{5, 5, 0}, Token: -1}
	}
	open := func(sampling string) sampler.Sequence {
		t.Helper()
		q, err := pl.Open([]byte(`{"sampling": ` + sampling + `, "vocab_size": 3}`))
		require.NoError(t, err)
		return q
	}
	q := open(`{}`)
	for _, tc := range []struct {
		u    float32
		want int32
	}{{0.1, 11}, {0.9, 12}} { // top 2 are the equal 11 and 12
		r := row(tc.u)
		require.NoError(t, q.Step(r))
		require.Equal(t, tc.want, r.Token, "u0 %v", tc.u)
	}

	r := row(0.9)
	require.NoError(t, open(`{"temperature": 0, "seed": "7"}`).Step(r))
	require.Equal(t, int32(11), r.Token, "greedy: the first of the best")

	r = row(0.99)
	require.NoError(t, open(`{"top_k": 0, "top_p": 0.4}`).Step(r))
	require.Equal(t, int32(11), r.Token, "top_p 0.4 keeps only the first of the two likely ones (0.498 each)")

	_, err := pl.Open([]byte(`{"sampling": {"top_p": 0}}`))
	require.ErrorContains(t, err, "top_p")
	_, err = pl.Open([]byte(`{"vocab_size": -1}`))
	require.Error(t, err)
	require.Error(t, pl.configure([]byte(`{"top_k": -1}`)))
}

// TestWidens: a top_k beyond the row's candidates asks the host for more,
// unless the row is the whole vocabulary (or the vocabulary is unknown).
func TestWidens(t *testing.T) {
	pl := &plugin{defaults: params{Temperature: 1, TopK: 40, TopP: 1}}
	for _, tc := range []struct {
		open  string
		widen bool
	}{
		{`{"sampling": {"top_k": 0}, "vocab_size": 100}`, true},
		{`{"sampling": {}, "vocab_size": 100}`, true}, // the configured top_k 40
		{`{"sampling": {"top_k": 3}, "vocab_size": 100}`, false},
		{`{"sampling": {"top_k": 0}, "vocab_size": 3}`, false},
		{`{"sampling": {"top_k": 0}}`, false},
		{`{"sampling": {"temperature": 0, "top_k": 0}, "vocab_size": 100}`, false},
	} {
		q, err := pl.Open([]byte(tc.open))
		require.NoError(t, err)
		r := &sampler.Row{U0: 0.5, IDs: []int32{11, 12, 10}, Logits: []float32{5, 5, 0}, Out: []float32{5, 5, 0}, Token: -1}
		require.NoError(t, q.Step(r))
		require.Equal(t, tc.widen, r.Token == sampler.TokenWiden, tc.open)
		if !tc.widen {
			require.Contains(t, []int32{10, 11, 12}, r.Token, tc.open)
		}
	}
}
