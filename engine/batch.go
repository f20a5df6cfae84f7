package engine

import "fmt"

// Batch is one forward step: the tokens of one or more sequences, each at its
// own position, and where each token's KV-cache row goes. A decode step of B
// sequences has B tokens; a prefill chunk has many tokens of one sequence;
// both can share a step.
type Batch struct {
	// Tokens are the input token ids, T of them.
	Tokens []int32
	// Positions are each token's position in its sequence.
	Positions []int32
	// Seq says which entry of Seqs each token belongs to.
	Seq []int32
	// Slots are the cache rows each token's keys and values are stored in.
	Slots []int32
	// Seqs describe the sequences in the batch.
	Seqs []BatchSeq
	// BlockSize is the number of cache rows per block.
	BlockSize int
	// Outputs lists the token indices whose logits are wanted (usually the
	// last token of each sequence).
	Outputs []int
}

// BatchSeq is one sequence's view of the KV cache.
type BatchSeq struct {
	// Blocks lists the cache blocks holding the sequence's positions in
	// order: position p lives in row Blocks[p/BlockSize]·BlockSize +
	// p%BlockSize.
	Blocks []int32
	// State is the sequence's slot in the state tensors of the model's
	// CacheLayout.
	State int32
}

// Slot returns the cache row of position p of sequence s.
func (b *Batch) Slot(s int, p int) int {
	return int(b.Seqs[s].Blocks[p/b.BlockSize])*b.BlockSize + p%b.BlockSize
}

// PagedRow returns the row of a paged cache tensor (one row per every
// tokens; see CacheLayout) that holds the tokens from position p rounded
// down to a multiple of every, for sequence s.
func (b *Batch) PagedRow(s, p, every int) int {
	per := b.BlockSize / every
	return int(b.Seqs[s].Blocks[p/b.BlockSize])*per + p%b.BlockSize/every
}

// StateRow returns the first row of sequence s in a state tensor of rows
// rows per sequence.
func (b *Batch) StateRow(s, rows int) int {
	return int(b.Seqs[s].State) * rows
}

// Validate checks the batch is consistent: equal lengths, sequences and
// positions in range, slots where the block tables say.
func (b *Batch) Validate() error {
	t := len(b.Tokens)
	if t == 0 {
		return fmt.Errorf("batch: no tokens")
	}
	if len(b.Positions) != t || len(b.Seq) != t || len(b.Slots) != t {
		return fmt.Errorf("batch: %d tokens but %d positions, %d sequence indices, %d slots", t, len(b.Positions), len(b.Seq), len(b.Slots))
	}
	if b.BlockSize <= 0 {
		return fmt.Errorf("batch: block size %d", b.BlockSize)
	}
	for i := range t {
		s, p := int(b.Seq[i]), int(b.Positions[i])
		if s < 0 || s >= len(b.Seqs) {
			return fmt.Errorf("batch: token %d: sequence %d of %d", i, s, len(b.Seqs))
		}
		if p < 0 || p/b.BlockSize >= len(b.Seqs[s].Blocks) {
			return fmt.Errorf("batch: token %d: position %d beyond the sequence's %d blocks", i, p, len(b.Seqs[s].Blocks))
		}
		if want := b.Slot(s, p); int(b.Slots[i]) != want {
			return fmt.Errorf("batch: token %d: slot %d, its block table says %d", i, b.Slots[i], want)
		}
	}
	for _, o := range b.Outputs {
		if o < 0 || o >= t {
			return fmt.Errorf("batch: output %d of %d tokens", o, t)
		}
	}
	return nil
}
