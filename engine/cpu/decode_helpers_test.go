package cpu

import (
	"math/rand/v2"

	"github.com/ulan-ai/ulan/engine"
)

// normalFill returns a function that makes f32 tensors of the given shape
// filled with r's normal draws, in call order.
func normalFill(r *rand.Rand) func(shape ...int) *tensor {
	return func(shape ...int) *tensor {
		t := &tensor{shape: shape, dt: engine.F32, f: make([]float32, numel(shape))}
		for i := range t.f {
			t.f[i] = float32(r.NormFloat64())
		}
		return t
	}
}

// decodeBatch is a decode step of T sequences, one token each at position
// pos, sequence s holding state slot s and the blocks s·blocks … of
// blockSize tokens that reach pos; it returns the batch and blocks.
func decodeBatch(T, pos, blockSize int) (*engine.Batch, int) {
	blocks := pos/blockSize + 1
	bt := &engine.Batch{BlockSize: blockSize}
	for s := range T {
		seq := engine.BatchSeq{State: int32(s)}
		for k := range blocks {
			seq.Blocks = append(seq.Blocks, int32(s*blocks+k))
		}
		bt.Seqs = append(bt.Seqs, seq)
		bt.Tokens = append(bt.Tokens, 0)
		bt.Positions = append(bt.Positions, int32(pos))
		bt.Seq = append(bt.Seq, int32(s))
		bt.Slots = append(bt.Slots, int32(bt.Slot(s, pos)))
	}
	return bt, blocks
}
