package sampler

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseOpen(t *testing.T) {
	o, err := ParseOpen([]byte(`{"sampling": {"top_p": 0.9, "seed": "7"}, "params": {"tau": 3}, "vocab_size": 129280, "later": 1}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"top_p": 0.9, "seed": "7"}`, string(o.Sampling))
	require.JSONEq(t, `{"tau": 3}`, string(o.Params))
	require.Equal(t, 129280, o.VocabSize)

	o, err = ParseOpen([]byte(`{}`))
	require.NoError(t, err)
	require.Equal(t, OpenRequest{}, o, "every field may be absent")
	_, err = ParseOpen([]byte(`{"vocab_size": -1}`))
	require.Error(t, err)
	_, err = ParseOpen([]byte(`[`))
	require.Error(t, err)
}

func TestWiden(t *testing.T) {
	r := &Row{Token: -1}
	r.Widen()
	require.Equal(t, int32(TokenWiden), r.Token)
	require.Equal(t, int32(-2), r.Token, "sdk/ABI.md §6.2")
}
