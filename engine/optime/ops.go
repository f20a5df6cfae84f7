// The timed operations: one method per op of engine.Context that does work
// (TestEveryOpIsTimed checks that none is missing).

package optime

import (
	"time"

	"github.com/ulan-ai/ulan/engine"
)

func (c *context) Embed(table engine.Tensor, b *engine.Batch) engine.Tensor {
	defer c.b.since("Embed", time.Now())
	return c.Context.Embed(table, b)
}

func (c *context) MatMul(x, w engine.Tensor) engine.Tensor {
	defer c.b.since(c.matMulKey(w), time.Now())
	return c.Context.MatMul(x, w)
}

func (c *context) Logits(x, w engine.Tensor) engine.Tensor {
	defer c.b.since("Logits", time.Now())
	return c.Context.Logits(x, w)
}

func (c *context) MatMulHeads(x, w engine.Tensor) engine.Tensor {
	defer c.b.since("MatMulHeads", time.Now())
	return c.Context.MatMulHeads(x, w)
}

func (c *context) RMSNorm(x, weight engine.Tensor, eps float32) engine.Tensor {
	defer c.b.since("RMSNorm", time.Now())
	return c.Context.RMSNorm(x, weight, eps)
}

func (c *context) Rope(x engine.Tensor, b *engine.Batch, spec engine.RopeSpec) engine.Tensor {
	defer c.b.since("Rope", time.Now())
	return c.Context.Rope(x, b, spec)
}

func (c *context) Concat(a, b engine.Tensor) engine.Tensor {
	defer c.b.since("Concat", time.Now())
	return c.Context.Concat(a, b)
}

func (c *context) Rows(x engine.Tensor, rows []int) engine.Tensor {
	defer c.b.since("Rows", time.Now())
	return c.Context.Rows(x, rows)
}

func (c *context) Add(a, b engine.Tensor) engine.Tensor {
	defer c.b.since("Add", time.Now())
	return c.Context.Add(a, b)
}

func (c *context) SwiGLU(gate, up engine.Tensor, clamp float32) engine.Tensor {
	defer c.b.since("SwiGLU", time.Now())
	return c.Context.SwiGLU(gate, up, clamp)
}

func (c *context) CacheStore(cache, x engine.Tensor, b *engine.Batch) engine.Tensor {
	defer c.b.since("CacheStore", time.Now())
	return c.Context.CacheStore(cache, x, b)
}

func (c *context) Attention(q, cache engine.Tensor, b *engine.Batch, spec engine.AttentionSpec) engine.Tensor {
	defer c.b.since("Attention", time.Now())
	return c.Context.Attention(q, cache, b, spec)
}

func (c *context) Route(logits, bias engine.Tensor, spec engine.RouteSpec) (ids, weights engine.Tensor) {
	defer c.b.since("Route", time.Now())
	return c.Context.Route(logits, bias, spec)
}

func (c *context) ExpertFFN(x, ids, weights, gate, up, down engine.Tensor, clamp float32) engine.Tensor {
	defer c.b.since("ExpertFFN", time.Now())
	return c.Context.ExpertFFN(x, ids, weights, gate, up, down, clamp)
}

func (c *context) RouteHash(logits, table engine.Tensor, b *engine.Batch, spec engine.RouteSpec) (ids, weights engine.Tensor) {
	defer c.b.since("RouteHash", time.Now())
	return c.Context.RouteHash(logits, table, b, spec)
}

func (c *context) HyperPre(x, mix, scale, base engine.Tensor, spec engine.HyperSpec) (in, post, comb engine.Tensor) {
	defer c.b.since("HyperPre", time.Now())
	return c.Context.HyperPre(x, mix, scale, base, spec)
}

func (c *context) HyperPost(y, x, post, comb engine.Tensor) engine.Tensor {
	defer c.b.since("HyperPost", time.Now())
	return c.Context.HyperPost(y, x, post, comb)
}

func (c *context) HyperHead(x, mix, scale, base engine.Tensor, spec engine.HyperSpec) engine.Tensor {
	defer c.b.since("HyperHead", time.Now())
	return c.Context.HyperHead(x, mix, scale, base, spec)
}

func (c *context) Compress(kv, score, state, entries engine.Tensor, b *engine.Batch, spec engine.CompressSpec) engine.Tensor {
	defer c.b.since("Compress", time.Now())
	return c.Context.Compress(kv, score, state, entries, b, spec)
}

func (c *context) IndexTopK(q, weights, keys engine.Tensor, b *engine.Batch, spec engine.IndexSpec) engine.Tensor {
	defer c.b.since("IndexTopK", time.Now())
	return c.Context.IndexTopK(q, weights, keys, b, spec)
}

func (c *context) SparseAttention(q, kv, ring, entries, sel engine.Tensor, b *engine.Batch, spec engine.SparseSpec) engine.Tensor {
	defer c.b.since("SparseAttention", time.Now())
	return c.Context.SparseAttention(q, kv, ring, entries, sel, b, spec)
}

func (c *context) WindowStore(ring, kv engine.Tensor, b *engine.Batch, window int) engine.Tensor {
	defer c.b.since("WindowStore", time.Now())
	return c.Context.WindowStore(ring, kv, b, window)
}

func (c *context) Compute(outputs ...engine.Tensor) error {
	defer c.b.since("Compute", time.Now())
	return c.Context.Compute(outputs...)
}
