package engine

import "fmt"

// CacheLayout is the KV-cache memory a model keeps for each sequence, in two
// kinds of tensors. A V3 model keeps one paged tensor per layer (its latent
// KV, one row per token). A V4 model keeps, per layer, a fixed window ring
// and compressor state (state tensors) and compressed entries that grow one
// row per ratio tokens (paged tensors with Every = ratio).
//
// Model.Forward receives the cache tensors in layout order: every Paged
// tensor, then every State tensor.
type CacheLayout struct {
	Paged []PagedCache
	State []StateCache
}

// PagedCache is a cache tensor that grows with a sequence: every Every
// tokens make one row of Width values. Rows live in the sequence's blocks
// (Batch.PagedRow), so Every must divide the block size.
type PagedCache struct {
	Every int
	Width int
}

// StateCache is a cache tensor of fixed size per sequence: Rows rows of
// Width values at the sequence's state slot (Batch.StateRow). A new
// sequence's rows hold stale values from an earlier sequence: the model
// reads only rows it wrote, which it knows from positions.
type StateCache struct {
	Rows  int
	Width int
}

// Validate checks the layout's sizes.
func (l CacheLayout) Validate() error {
	if len(l.Paged)+len(l.State) == 0 {
		return fmt.Errorf("cache layout: no tensors")
	}
	for i, p := range l.Paged {
		if p.Every <= 0 || p.Width <= 0 {
			return fmt.Errorf("cache layout: paged tensor %d: every %d tokens, width %d", i, p.Every, p.Width)
		}
	}
	for i, s := range l.State {
		if s.Rows <= 0 || s.Width <= 0 {
			return fmt.Errorf("cache layout: state tensor %d: %d rows of width %d", i, s.Rows, s.Width)
		}
	}
	return nil
}

// BlockSize is the smallest block size, at least min, that every paged
// tensor's Every divides.
func (l CacheLayout) BlockSize(min int) int {
	bs := 1
	for _, p := range l.Paged {
		bs = lcm(bs, p.Every)
	}
	if min > bs {
		bs *= (min + bs - 1) / bs
	}
	return bs
}

// BlockValues is the number of values one block of blockSize tokens holds
// over all paged tensors.
func (l CacheLayout) BlockValues(blockSize int) int64 {
	var n int64
	for _, p := range l.Paged {
		n += int64(blockSize/p.Every) * int64(p.Width)
	}
	return n
}

// StateValues is the number of values one sequence's state holds over all
// state tensors.
func (l CacheLayout) StateValues() int64 {
	var n int64
	for _, s := range l.State {
		n += int64(s.Rows) * int64(s.Width)
	}
	return n
}

func lcm(a, b int) int {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}
