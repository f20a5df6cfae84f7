package primitive

import (
	"fmt"
)

// MaxMergeSymbols bounds the symbols one Merge takes.
const MaxMergeSymbols = 1 << 20

// Ranks is a BPE merge table a tokenizer registers once: for each mergeable
// pair of token ids, its rank (lower merges first) and the id of the merged
// token.
type Ranks struct {
	m map[uint64]merge
}

type merge struct{ rank, id int32 }

// NewRanks builds a table from merges in priority order: merges[i] joins
// left[i] and right[i] into result[i] with rank i.
func NewRanks(left, right, result []int32) (*Ranks, error) {
	if len(left) != len(right) || len(left) != len(result) {
		return nil, fmt.Errorf("%w: %d, %d and %d merge ids", ErrBounds, len(left), len(right), len(result))
	}
	r := &Ranks{m: make(map[uint64]merge, len(left))}
	for i := range left {
		k := pairKey(left[i], right[i])
		if _, dup := r.m[k]; !dup { // the first (best) rank of a pair wins
			r.m[k] = merge{int32(i), result[i]}
		}
	}
	return r, nil
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// Merge applies BPE to one piece given as its initial symbols (token ids of
// single characters or bytes): it repeatedly joins the adjacent pair with
// the lowest rank, leftmost first among equals, until no pair in the table
// remains, and returns the resulting ids. It runs in O(n log n), so a long
// piece cannot stall the host.
func (r *Ranks) Merge(symbols []int32) ([]int32, error) {
	n := len(symbols)
	if n > MaxMergeSymbols {
		return nil, fmt.Errorf("%w: %d symbols to merge, at most %d", ErrBounds, n, MaxMergeSymbols)
	}
	if n < 2 {
		return append([]int32(nil), symbols...), nil
	}
	ids := append([]int32(nil), symbols...)
	prev, next := make([]int, n), make([]int, n)
	alive := make([]bool, n)
	for i := range n {
		prev[i], next[i], alive[i] = i-1, i+1, true
	}
	next[n-1] = -1
	q := &pairQueue{}
	push := func(i int) {
		j := next[i]
		if i < 0 || j < 0 {
			return
		}
		if mg, ok := r.m[pairKey(ids[i], ids[j])]; ok {
			q.push(candidate{rank: mg.rank, pos: i, left: ids[i], right: ids[j]})
		}
	}
	for i := 0; i < n-1; i++ {
		push(i)
	}
	for len(*q) > 0 {
		c := q.pop()
		j := next[c.pos]
		// Skip stale entries: a side was merged away or changed since.
		if !alive[c.pos] || j < 0 || ids[c.pos] != c.left || ids[j] != c.right {
			continue
		}
		ids[c.pos] = r.m[pairKey(c.left, c.right)].id
		alive[j] = false
		next[c.pos] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = c.pos
		}
		if prev[c.pos] >= 0 {
			push(prev[c.pos])
		}
		push(c.pos)
	}
	out := make([]int32, 0, n)
	for i := 0; i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out, nil
}

type candidate struct {
	rank        int32
	pos         int
	left, right int32
}

// pairQueue is a binary min-heap of candidates ordered by rank, then by
// position. It is typed rather than built on container/heap so that a push
// does not box the candidate into an interface (one allocation per pair).
type pairQueue []candidate

func (c candidate) before(d candidate) bool {
	if c.rank != d.rank {
		return c.rank < d.rank
	}
	return c.pos < d.pos
}

func (q *pairQueue) push(c candidate) {
	h := append(*q, c)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].before(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	*q = h
}

func (q *pairQueue) pop() candidate {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < len(h) && h[l].before(h[small]) {
			small = l
		}
		if r := l + 1; r < len(h) && h[r].before(h[small]) {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	*q = h
	return top
}

// MergeBatch merges many pieces in one call: symbols holds every piece's
// initial symbols one after another, lens each piece's count. It returns
// the merged ids one piece after another and sets lens[i] to piece i's
// merged count.
func (r *Ranks) MergeBatch(symbols []int32, lens []int32) ([]int32, error) {
	if len(symbols) > MaxMergeSymbols {
		return nil, fmt.Errorf("%w: %d symbols to merge, at most %d", ErrBounds, len(symbols), MaxMergeSymbols)
	}
	out := make([]int32, 0, len(symbols))
	off := 0
	for i, n := range lens {
		if n < 0 || int(n) > len(symbols)-off {
			return nil, fmt.Errorf("%w: piece %d of %d symbols at %d of %d", ErrBounds, i, n, off, len(symbols))
		}
		merged, err := r.Merge(symbols[off : off+int(n)])
		if err != nil {
			return nil, err
		}
		out = append(out, merged...)
		off += int(n)
		lens[i] = int32(len(merged))
	}
	if off != len(symbols) {
		return nil, fmt.Errorf("%w: pieces cover %d of %d symbols", ErrBounds, off, len(symbols))
	}
	return out, nil
}
