package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ulan-ai/ulan/engine"
)

// BenchmarkSparseAttention runs one decode step of the demo V4 model's
// attention (8 heads of 128, a window of 128 and every compressed entry
// of ratio 4, at position 300: 203 key rows per token) for one and eight
// sequences, at one and two threads; ns/op is the cost of one call.
func BenchmarkSparseAttention(b *testing.B) {
	const H, d, W, ratio, pos, blockSize = 8, 128, 128, 4, 300, 64
	r := rand.New(rand.NewPCG(7, 8))
	fill := normalFill(r)
	for _, T := range []int{1, 8} {
		bt, blocks := decodeBatch(T, pos, blockSize)
		q, kv, ring := fill(T, H, d), fill(T, d), fill(T*W, d)
		entries, sinks := fill(T*blocks*blockSize/ratio, d), fill(H)
		spec := engine.SparseSpec{Scale: 0.088, Window: W, Ratio: ratio, Sinks: sinks}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("tokens=%d/threads=%d", T, threads), func(b *testing.B) {
				bk := New(WithThreads(threads))
				for b.Loop() {
					c := bk.NewContext()
					y := c.SparseAttention(q, kv, ring, entries, nil, bt, spec)
					if err := c.Compute(y); err != nil {
						b.Fatal(err)
					}
					c.Close()
				}
			})
		}
	}
}
