package plugin

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSamplerWiden: out_token −2 comes back as Widen, without logits, and
// leaves the batch usable; a row may hold a whole vocabulary; −3 comes back
// as KeepAll at the temperature written over the row's lse (the test
// module answers −3 for rows of 4 candidates and leaves lse as it is), and
// is refused for a temperature that is not positive and finite.
func TestSamplerWiden(t *testing.T) {
	t.Parallel()
	module := withManifest(t, "widen", `{"abi":1,"name":"widen","version":"0.1.0","kind":"sampler"}`)
	p, err := loadWithLog(module, Config{ID: "widen", Kind: KindSampler, PoolSize: 1, MemoryPages: 128, CallTimeout: 10 * time.Second}, &syncBuffer{})
	require.NoError(t, err)
	defer p.Close(context.Background())
	ctx := context.Background()
	b, err := p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	defer b.Close(ctx)

	out, err := b.Step(ctx, []SamplerRow{
		{Handle: 1, IDs: []int32{4, 5, 6}, Logits: []float32{3, 2, 1}},
		{Handle: 1, IDs: []int32{1, 2, 3, 4, 5}, Logits: []float32{5, 4, 3, 2, 1}},
	})
	require.NoError(t, err)
	require.Equal(t, SamplerOutput{Token: -1, Widen: true}, out[0])
	require.Equal(t, SamplerOutput{Token: -1, Logits: []float32{5, 4, 3, 2, 1}}, out[1])

	// The host widens the first row, here to the most candidates a row may
	// have (more than DeepSeek's 129,280-token vocabulary), and steps it
	// alone.
	wide := SamplerRow{Handle: 1, IDs: make([]int32, MaxSamplerCandidates), Logits: make([]float32, MaxSamplerCandidates)}
	for i := range wide.IDs {
		wide.IDs[i], wide.Logits[i] = int32(i), -float32(i)
	}
	out, err = b.Step(ctx, []SamplerRow{wide})
	require.NoError(t, err)
	require.False(t, out[0].Widen)
	require.Len(t, out[0].Logits, MaxSamplerCandidates)
	require.Equal(t, float32(-12345), out[0].Logits[12345])

	over := SamplerRow{Handle: 1, IDs: make([]int32, MaxSamplerCandidates+1), Logits: make([]float32, MaxSamplerCandidates+1)}
	_, err = b.Step(ctx, []SamplerRow{over})
	require.ErrorContains(t, err, "at most")

	out, err = b.Step(ctx, []SamplerRow{{Handle: 1, Position: 9, LSE: 0.5, IDs: []int32{7, 8, 9, 10}, Logits: []float32{0, 0, 0, 0}}})
	require.NoError(t, err)
	require.Equal(t, SamplerOutput{Token: -1, KeepAll: true, Temperature: 0.5}, out[0])
	_, err = b.Step(ctx, []SamplerRow{{Handle: 1, Position: 9, IDs: []int32{7, 8, 9, 10}, Logits: []float32{0, 0, 0, 0}}})
	require.ErrorContains(t, err, "keep-all temperature 0")
	_, err = b.Step(ctx, []SamplerRow{{Handle: 1, IDs: []int32{7}, Logits: []float32{0}}})
	require.Error(t, err, "a refused answer ends the batch")
}
