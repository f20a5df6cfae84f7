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
	held []bool // held[b]: block b is handed out
}

// NewPool returns a pool of blocks blocks of blockSize rows.
func NewPool(blocks, blockSize int) (*Pool, error) {
	if blocks <= 0 || blockSize <= 0 {
		return nil, fmt.Errorf("kv cache: %d blocks of %d rows", blocks, blockSize)
	}
	p := &Pool{blockSize: blockSize, total: blocks, free: make([]int32, blocks), held: make([]bool, blocks)}
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
		p.held[got[i]] = true
	}
	p.free = p.free[:len(p.free)-n]
	return got, nil
}

// Release returns blocks to the pool. Releasing a block that is not held
// (twice, or one Alloc never gave) is a programming error and panics, since
// the pool would then hand it to two sequences that would share rows; the
// pool is left as it was.
func (p *Pool) Release(blocks []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, b := range blocks {
		if b < 0 || int(b) >= p.total || !p.held[b] {
			for _, u := range blocks[:i] { // undo: the pool stays as it was
				p.held[u] = true
			}
			panic(fmt.Sprintf("kvcache: block %d released but not held (%d blocks in the pool)", b, p.total))
		}
		p.held[b] = false
	}
	p.free = append(p.free, blocks...)
}
