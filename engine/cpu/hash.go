package cpu

import (
	"github.com/ulan-ai/ulan/engine"
)

// RouteHash routes by V4's stored token-id table (spec §2.7, trap 11): the
// experts are table[token], with no bias and no choice by score; their
// weights are their scores, normalised and scaled as Route's.
func (c *context) RouteHash(logits, table engine.Tensor, b *engine.Batch, spec engine.RouteSpec) (engine.Tensor, engine.Tensor) {
	lt, ok := c.f32("RouteHash", logits)
	tt, ok2 := c.weight("RouteHash table", table, 2)
	if !ok || !ok2 {
		return &tensor{}, &tensor{}
	}
	if tt.dt != engine.I32 {
		return c.fail("RouteHash: table %v, want i32", tt), &tensor{}
	}
	T, X := lt.shape[0], lt.shape[1]
	vocab, k := tt.shape[0], tt.shape[1]
	if T != len(b.Tokens) || k != spec.TopK || k <= 0 || k > X {
		return c.fail("RouteHash: logits %v, table %v for %d tokens and top %d", lt, tt, len(b.Tokens), spec.TopK), &tensor{}
	}
	ids := &tensor{shape: []int{T, k}, dt: engine.I32, i: make([]int32, T*k)}
	weights := c.newF32(T, k)
	for t, tok := range b.Tokens {
		if tok < 0 || int(tok) >= vocab {
			return c.fail("RouteHash: token %d: id %d outside the table of %d", t, tok, vocab), &tensor{}
		}
		for _, e := range tt.i[int(tok)*k : (int(tok)+1)*k] {
			if e < 0 || int(e) >= X {
				return c.fail("RouteHash: table row %d names expert %d of %d", tok, e, X), &tensor{}
			}
		}
	}
	probsAll := c.output(T * X)
	c.b.parallel(T, routeGrain(X), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			tok, probs := int(b.Tokens[t]), probsAll[t*X:(t+1)*X]
			score(spec.Scoring, lt.f[t*X:(t+1)*X], probs)
			var sum float32
			for j, e := range tt.i[tok*k : (tok+1)*k] {
				ids.i[t*k+j] = e
				weights.f[t*k+j] = probs[e]
				sum += probs[e]
			}
			normalizeWeights(weights.f[t*k:(t+1)*k], sum, spec)
		}
	})
	return ids, weights
}
