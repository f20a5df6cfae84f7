// Package kvcache hands out the KV cache in fixed-size blocks from a pool
// with an explicit budget, so that a sequence grows a block at a time and a
// request that cannot fit is refused with ErrNoSpace instead of crashing the
// process. It only does the bookkeeping: the memory itself belongs to the
// backend, addressed by block index.
package kvcache

import (
	"errors"
	"fmt"
	"sync"
)

// ErrNoSpace means the pool has fewer free blocks than were asked for.
var ErrNoSpace = errors.New("kv cache: no space")

// Pool is a fixed set of blocks of BlockSize token rows each. It is safe for
// concurrent use.
type Pool struct {
	blockSize int
	total     int

	mu   sync.Mutex
	free []int32
}

// NewPool returns a pool of blocks blocks of blockSize rows.
func NewPool(blocks, blockSize int) (*Pool, error) {
	if blocks <= 0 || blockSize <= 0 {
		return nil, fmt.Errorf("kv cache: %d blocks of %d rows", blocks, blockSize)
	}
	p := &Pool{blockSize: blockSize, total: blocks, free: make([]int32, blocks)}
	// Hand out low block numbers first, so a small workload touches little
	// memory.
	for i := range p.free {
		p.free[i] = int32(blocks - 1 - i)
	}
	return p, nil
}

// BlockSize is the number of token rows per block.
func (p *Pool) BlockSize() int { return p.blockSize }

// Blocks is the pool's size in blocks.
func (p *Pool) Blocks() int { return p.total }

// Free is the number of free blocks.
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// BlocksFor is the number of blocks that hold n tokens.
func (p *Pool) BlocksFor(n int) int { return (n + p.blockSize - 1) / p.blockSize }

// Alloc takes n blocks, or none at all when fewer are free.
func (p *Pool) Alloc(n int) ([]int32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > len(p.free) {
		return nil, fmt.Errorf("%w: %d blocks wanted, %d of %d free", ErrNoSpace, n, len(p.free), p.total)
	}
	got := make([]int32, n)
	for i := range got {
		got[i] = p.free[len(p.free)-1-i]
	}
	p.free = p.free[:len(p.free)-n]
	return got, nil
}

// Release returns blocks to the pool. Releasing a block twice is a
// programming error and panics, since it would let two sequences share rows.
func (p *Pool) Release(blocks []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free)+len(blocks) > p.total {
		panic("kvcache: more blocks released than the pool holds")
	}
	p.free = append(p.free, blocks...)
}
