package sampling

import (
	"errors"
	"math"

	"github.com/ulan-ai/ulan/host/sampling/internal/expsum"
)

// drawBlock is how many weights drawWhole takes at a time: the running
// sum it keeps at each block's start lets the search recompute one block
// instead of walking the row a second time.
const drawBlock = 512

// drawWhole is draw's weights and primitive.Draw fused, for a whole row
// whose largest value is mx (finite; no NaN in vals): it returns the index
// that Draw(weights(vals), u) returns — the same float64 sums, in the same
// order — in one pass over the row instead of five, without a row-long
// buffer.
//
// Draw's total is Σ w_i in id order, w_i = exp(v_i − mx) and 0 for −Inf;
// the answer is the first i whose running sum exceeds u·total. The pass
// computes the exps eight at a time (expsum's kernel) one block at a
// time, adds them in order and keeps the running sum at each block's
// start; the search finds the first block whose end passes the target
// (the running sum never decreases) and walks it alone from its start.
//
// t, when neither 0 nor 1, is a temperature the row is not yet divided
// by: each block is divided (expsum.Divide, the same quotients) on its
// way to the exps, which spares a pass that writes the row back.
//
// dense says that no value (divided by t) is −Inf: the sums then skip
// the test for one, which leaves the adds' own latency as the pass's
// bound.
func drawWhole(vals []float32, t, mx, u float32, dense bool) (int, error) {
	if !(u >= 0 && u < 1) {
		return 0, errors.New("sampling: a uniform outside [0, 1)")
	}
	var buf, scaled [drawBlock]float32
	block := func(b int) []float32 { // the block at b, divided by t
		x := vals[b:min(b+drawBlock, len(vals))]
		if t == 0 || t == 1 {
			return x
		}
		d := scaled[:len(x)]
		copy(d, x)
		expsum.Divide(d, t)
		return d
	}
	starts := make([]float64, 0, (len(vals)+drawBlock-1)/drawBlock)
	var total float64
	last := -1
	for b := 0; b < len(vals); b += drawBlock {
		x := block(b)
		w := buf[:len(x)]
		expsum.Exps(x, mx, w)
		starts = append(starts, total)
		if dense {
			for _, v := range w {
				total += float64(v)
			}
			last = b + len(w) - 1
			continue
		}
		for j, v := range x {
			if v < -math.MaxFloat32 { // −Inf: weight 0
				continue
			}
			total += float64(w[j])
			last = b + j
		}
	}
	if last < 0 {
		return 0, errors.New("sampling: the policy left no token to draw")
	}
	target := float64(u) * total
	for k, start := range starts {
		end := total
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		if !(end > target) {
			continue
		}
		b := k * drawBlock
		x := block(b)
		w := buf[:len(x)]
		expsum.Exps(x, mx, w)
		run := start
		for j, v := range x {
			if !dense && v < -math.MaxFloat32 {
				continue
			}
			if run += float64(w[j]); run > target {
				return b + j, nil
			}
		}
	}
	return last, nil // rounding left u·total past the last running sum, as Draw allows
}
