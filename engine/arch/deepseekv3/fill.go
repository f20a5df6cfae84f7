package deepseekv3

import (
	"math/rand/v2"

	"github.com/ulan-ai/ulan/engine"
)

var _ engine.CacheFiller = (*Model)(nil)

// FillCache writes random latent-cache rows for b's tokens: in every layer
// a normal vector through kv_a's norm (the latent c) and a normal vector
// rotated to the token's position (k_pe), stored where attention would
// have stored them. A decode step after it costs what one after a real
// prefill of the same length costs.
func (m *Model) FillCache(ctx engine.Context, b *engine.Batch, caches []engine.Tensor, seed uint64) {
	p := m.p
	T := len(b.Tokens)
	for i := range m.layers {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		c := ctx.RMSNorm(ctx.Input(normal(rng, T*p.KVLoRA), T, p.KVLoRA), m.layers[i].kvANorm, p.Eps)
		kPe := ctx.Rope(ctx.Input(normal(rng, T*p.RopeDim), T, p.RopeDim), b, p.Rope())
		ctx.CacheStore(caches[i], ctx.Concat(c, kPe), b)
	}
}

// normal draws n values from N(0, 1).
func normal(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}
