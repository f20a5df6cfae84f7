package sampling

import (
	"math"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
	"github.com/ulan-ai/ulan/host/sampling/internal/expsum"
)

// topKMin is the shortest row topK skips through; shorter rows go to
// primitive.TopK.
const topKMin = 4096

// topKMax is the largest k topK takes itself.
const topKMax = 1024

// topK is primitive.TopK — the k largest of vals, largest first, ties to
// the lower index, NaN last — for a whole row: the same answer in one
// pass that skips most of the row eight values at a time. A heap holds the
// k best so far, its root the worst of them, w; a later value can only
// enter if it is above w (an equal one has a higher index than all k, so
// it loses to each; NaN loses to any number), so the pass jumps to the
// next group of eight that holds a value above w, offers that group's
// values to the heap, and goes on from the group's end with the raised w.
// The order is a strict total order, so the heap's final content, sorted,
// is primitive.TopK's.
//
// The same pass scans the row into sc (reset by the caller; nil for
// none): the jumps are expsum.Scanner.AddBelow, so that the row's scan
// (its largest value, finite count and NaN check) costs no pass of its
// own.
func topK(vals []float32, k int, ids []int32, out []float32, sc *expsum.Scanner) (int, error) {
	if sc == nil {
		sc = new(expsum.Scanner)
		sc.Reset()
	}
	if k <= 0 || k > topKMax || len(vals) < topKMin || len(ids) < k || len(out) < k {
		sc.Add(vals)
		return primitive.TopK(vals, k, ids, out)
	}
	// The heap holds each candidate as one key (candKey), so that its
	// order is one integer comparison: the first k must have no NaN
	// (else there is no threshold to skip by), and a later value enters
	// only above w.
	var buf [topKMax]uint64
	c := buf[:k]
	for j, v := range vals[:k] {
		if v != v {
			sc.Add(vals)
			return primitive.TopK(vals, k, ids, out)
		}
		c[j] = candKey(v, j)
	}
	for j := k/2 - 1; j >= 0; j-- {
		siftDownKey(c, j)
	}
	w := vals[candIndex(c[0])]
	offer := func(j int) {
		c[0] = candKey(vals[j], j)
		siftDownKey(c, 0)
		w = vals[candIndex(c[0])]
	}
	// The groups of eight that hold the first k are scanned whole; their
	// values past the first k are offered like any other.
	i := (k + 7) &^ 7
	sc.Add(vals[:i])
	for j := k; j < i; j++ {
		if vals[j] > w {
			offer(j)
		}
	}
	for {
		i += sc.AddBelow(vals[i:], w)
		end := min(i+8, len(vals))
		for j := i; j < end; j++ {
			if vals[j] > w {
				offer(j)
			}
		}
		sc.Add(vals[i:end])
		if i = end; i == len(vals) {
			break
		}
	}
	sortKeysDescending(c)
	for j, key := range c {
		ids[j] = int32(candIndex(key))
		out[j] = vals[ids[j]]
	}
	return k, nil
}

// candKey is a candidate (a value that is not NaN, and its index) as an
// integer that orders candidates as primitive.TopK does: a larger key is
// a better candidate — the larger value, ties (−0 equal to +0) to the lower
// index. The high 32 bits are the value's bits made monotonic (sign bit
// flipped for positives, all bits for negatives; −0 counted as +0), the
// low 32 the index, inverted.
func candKey(v float32, i int) uint64 {
	b := math.Float32bits(v)
	if b == 1<<31 {
		b = 0 // −0 is +0
	}
	if b&(1<<31) != 0 {
		b = ^b
	} else {
		b |= 1 << 31
	}
	return uint64(b)<<32 | uint64(^uint32(i))
}

// candIndex is a key's index.
func candIndex(key uint64) int { return int(^uint32(key)) }

// siftDownKey restores the min-heap of keys (the worst candidate at the
// root) below i.
func siftDownKey(h []uint64, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1] < h[c] {
			c++
		}
		if h[c] >= h[i] {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// topKTiles is topK for a row whose tile maxima are known (maxima[j] the
// largest of vals[j·tile : (j+1)·tile], the last tile possibly short; no
// NaN among vals or maxima, at least k tiles): the same answer, from the
// k tiles with the largest maxima alone. Those k maxima are k values at
// least the k-th best of the tiles' maxima, θ, so every one of the row's
// k best is at least θ too and lies in a tile among them; a tile left out
// whose maximum ties θ comes after the tiles kept, ties going to the
// lower tile as they go to the lower index, so its values lose to the k
// maxima kept.
//
// Both selections (the k tiles, then the k values) first bound their
// k-th best from below and keep only the candidates at or above the
// bound, so that their cost does not depend on the order the values come
// in: a heap fed a rising row (the demo model's maxima drift upwards
// along the vocabulary) takes nearly every value in turn.
func topKTiles(vals, maxima []float32, tile, k int, ids []int32, out []float32, scratch *[2][]uint64) {
	// The k best tiles. The maxima of k or more groups of tiles are that
	// many values, so the least of them is at most θ.
	group := len(maxima) / k
	lb := float32(math.Inf(1))
	for lo := 0; lo < len(maxima); lo += group {
		m := maxima[lo]
		for _, v := range maxima[lo+1 : min(lo+group, len(maxima))] {
			if v > m { // no NaN: Go's max would check for one
				m = v
			}
		}
		lb = min(lb, m)
	}
	t := scratch[0][:0]
	for j, m := range maxima {
		if m >= lb {
			t = append(t, candKey(m, j))
		}
	}
	t = largestKeys(t, k)
	// Their values: the k maxima are k of them at least θ, the least
	// kept maximum, so the k best values are at least θ.
	least := t[0]
	for _, key := range t[1:] {
		least = min(least, key)
	}
	theta := maxima[candIndex(least)]
	c := scratch[1][:0]
	for _, tk := range t {
		lo := candIndex(tk) * tile
		for i, v := range vals[lo:min(lo+tile, len(vals))] {
			if v >= theta {
				c = append(c, candKey(v, lo+i))
			}
		}
	}
	c = bestKeys(c, k)
	for j, key := range c {
		ids[j] = int32(candIndex(key))
		out[j] = vals[ids[j]]
	}
	scratch[0], scratch[1] = t[:0], c[:0] // keep what append grew
}

// largestKeys moves the k largest of keys (at least k of them) to its
// front, in no order, and returns them: a quickselect (Hoare's partition
// about the middle key), linear on average, where a heap would take
// log k per key that enters and sort what it keeps.
func largestKeys(keys []uint64, k int) []uint64 {
	lo, hi := 0, len(keys)-1 // the k-th largest is in keys[lo:hi+1]
	for lo < hi {
		p := keys[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for keys[i] > p {
				i++
			}
			for keys[j] < p {
				j--
			}
			if i <= j {
				keys[i], keys[j] = keys[j], keys[i]
				i, j = i+1, j-1
			}
		}
		// keys[lo:j+1] ≥ p ≥ keys[i:hi+1], and keys between are p.
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return keys[:k]
		}
	}
	return keys[:k]
}

// bestKeys returns the k largest of keys (at least k of them), largest
// first, in keys' storage: a heap of the first k, the others offered.
func bestKeys(keys []uint64, k int) []uint64 {
	h := keys[:k]
	for j := k/2 - 1; j >= 0; j-- {
		siftDownKey(h, j)
	}
	for _, key := range keys[k:] {
		if key > h[0] {
			h[0] = key
			siftDownKey(h, 0)
		}
	}
	sortKeysDescending(h)
	return h
}

// sortKeysDescending sorts a min-heap of keys (siftDownKey's) best first:
// heap sort, the worst moved to the back one at a time.
func sortKeysDescending(h []uint64) {
	for end := len(h) - 1; end > 0; end-- {
		h[0], h[end] = h[end], h[0]
		siftDownKey(h[:end], 0)
	}
}
