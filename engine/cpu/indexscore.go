package cpu

import (
	"math"

	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// indexQuery is one token's lightning-indexer query laid out for scoring
// four keys at a time: q transposed to [d][hp] (heads padded with zeros to
// a multiple of kernel.AccumRowsWidth), so that the scores of four
// consecutive keys against every head are AccumRowsF32x4 with the keys'
// values as the weights and the rows of qT as the rows — one pass that
// reads each key once and needs no horizontal sums, where a dot per key
// and head would reduce H·(n/4) vectors.
type indexQuery struct {
	q    []float32  // [H, d], for keys scored one at a time
	qT   []float32  // [d, hp]
	rows []*float32 // &qT[j·hp]
	w    []float32  // weights[h]·scale
	w2   []float32  // w[h]/2, exactly
	h, d int
	hp   int
}

// query lays out q (a token's [h, d] query) and its head weights in x's
// indexQuery and returns it.
func (x *indexScratch) query(q, weights []float32, h, d int, scale float32) *indexQuery {
	w := kernel.AccumRowsWidth
	hp := (h + w - 1) / w * w
	iq := &x.iq
	*iq = indexQuery{q: q, qT: grow(iq.qT, d*hp), rows: grow(iq.rows, d), w: grow(iq.w, h), w2: grow(iq.w2, h), h: h, d: d, hp: hp}
	clear(iq.qT)
	for k := range h {
		for j, v := range q[k*d : (k+1)*d] {
			iq.qT[j*hp+k] = v
		}
		iq.w[k] = weights[k] * scale
		iq.w2[k] = iq.w[k] / 2
	}
	for j := range d {
		iq.rows[j] = &iq.qT[j*hp]
	}
	return iq
}

// newIndexQuery lays out a token's query in new buffers.
func newIndexQuery(q, weights []float32, h, d int, scale float32) *indexQuery {
	return new(indexScratch).query(q, weights, h, d, scale)
}

// score sets scores[w] = Σ_h w[h]·relu(q[h]·K_w) for keys [lo, hi), key w
// being row rowOf(w) of keys ([rows, d]). Four keys in consecutive rows go
// through AccumRowsF32x4 together; others are scored one by one.
func (iq *indexQuery) score(keys []float32, rowOf func(w int) int, scores []float32, lo, hi int) {
	d, hp := iq.d, iq.hp
	buf := attnScratch.Get().(*[]float32)
	defer attnScratch.Put(buf)
	*buf = grow(*buf, 4*hp)
	out := *buf
	for w := lo; w < hi; {
		r := rowOf(w)
		if w+4 <= hi && rowOf(w+3) == r+3 {
			clear(out)
			kernel.AccumRowsF32x4(keys[r*d:(r+4)*d], d, iq.rows, out)
			for k := range 4 {
				scores[w+k] = reluDot(out[k*hp:k*hp+iq.h], iq.w2)
			}
			w += 4
			continue
		}
		key := keys[r*d : (r+1)*d]
		var sum float32
		for h := range iq.h {
			if v := kernel.DotF32(key, iq.q[h*d:(h+1)*d]); v > 0 {
				sum += v * iq.w[h]
			}
		}
		scores[w] = sum
		w++
	}
}

// reluDot is Σ_h relu(v[h])·w[h] for w2 = w/2, without a branch a random
// sign would mispredict: (v + |v|)·(w/2) is v·w rounded once for v > 0
// (doubling and halving are exact) and 0 otherwise, so the sum is bit for
// bit that of the branching loop.
func reluDot(v, w2 []float32) float32 {
	w2 = w2[:len(v)]
	var sum float32
	for h, x := range v {
		sum += (x + math.Float32frombits(math.Float32bits(x)&^(1<<31))) * w2[h]
	}
	return sum
}
