package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ulan-ai/ulan/engine"
)

// BenchmarkIndexTopK runs one decode step of the demo V4 model's lightning
// indexer (8 heads of 64, top 64 of ratio-4 keys) at position 511, where a
// token sees 128 keys, for one and eight sequences; ns/op is the cost of
// one call.
func BenchmarkIndexTopK(b *testing.B) {
	const H, d, K, ratio, pos, blockSize = 8, 64, 64, 4, 511, 64
	r := rand.New(rand.NewPCG(3, 4))
	fill := normalFill(r)
	for _, T := range []int{1, 8} {
		bt, blocks := decodeBatch(T, pos, blockSize)
		q, w, keys := fill(T, H, d), fill(T, H), fill(T*blocks*blockSize/ratio, d)
		spec := engine.IndexSpec{Ratio: ratio, TopK: K, Scale: 0.125}
		b.Run(fmt.Sprintf("tokens=%d", T), func(b *testing.B) {
			bk := New(WithThreads(2))
			for b.Loop() {
				c := bk.NewContext()
				y := c.IndexTopK(q, w, keys, bt, spec)
				if err := c.Compute(y); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
