package deepseekv3_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/gguf"
)

// TestFillCache fills sequences past Fill's chunk with random entries and
// decodes after them: the sequence has the length asked for, the logits
// are finite, the same seed gives the same logits and another seed other
// ones.
func TestFillCache(t *testing.T) {
	t.Parallel()
	r, _ := open(t, model(t, "tiny-v3", gguf.TypeF32), 1)
	const n = 2100 // two of Fill's chunks
	decode := func(seed uint64) []float32 {
		s := r.NewSequence()
		defer r.Free(s)
		require.NoError(t, r.Fill(s, n, seed))
		require.Equal(t, n, s.Len())
		rows, err := r.Step([]engine.Work{{Seq: s, Tokens: []int32{7}}})
		require.NoError(t, err)
		require.Equal(t, n+1, s.Len())
		for _, v := range rows[0] {
			require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0))
		}
		return append([]float32(nil), rows[0]...)
	}
	a, b, c := decode(1), decode(1), decode(2)
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)

}
