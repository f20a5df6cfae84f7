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
	fill := func(shape ...int) *tensor {
		t := &tensor{shape: shape, dt: engine.F32, f: make([]float32, numel(shape))}
		for i := range t.f {
			t.f[i] = float32(r.NormFloat64())
		}
		return t
	}
	for _, T := range []int{1, 8} {
		blocks := pos/blockSize + 1
		bt := &engine.Batch{BlockSize: blockSize}
		for s := range T {
			seq := engine.BatchSeq{State: int32(s)}
			for k := range blocks {
				seq.Blocks = append(seq.Blocks, int32(s*blocks+k))
			}
			bt.Seqs = append(bt.Seqs, seq)
			bt.Tokens = append(bt.Tokens, 0)
			bt.Positions = append(bt.Positions, pos)
			bt.Seq = append(bt.Seq, int32(s))
			bt.Slots = append(bt.Slots, int32(bt.Slot(s, pos)))
		}
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
