package primitive

import (
	"container/heap"
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
			heap.Push(q, candidate{rank: mg.rank, pos: i, left: ids[i], right: ids[j]})
		}
	}
	for i := 0; i < n-1; i++ {
		push(i)
	}
	for q.Len() > 0 {
		c := heap.Pop(q).(candidate)
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

type pairQueue []candidate

func (q pairQueue) Len() int { return len(q) }
func (q pairQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q pairQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pairQueue) Push(x any)   { *q = append(*q, x.(candidate)) }
func (q *pairQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
