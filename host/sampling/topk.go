package sampling

import (
	"slices"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
	"github.com/ulan-ai/ulan/host/sampling/internal/expsum"
)

// topKHead is how many leading values topK ranks first to get its
// threshold.
const topKHead = 16384

// topK is primitive.TopK — the k largest of vals, largest first, ties to
// the lower index, NaN last — for a whole row: the same answer, with most
// of the row skipped eight values at a time. The k best of the first
// topKHead values set a threshold w (the worst of them); a later value can
// only be among the k best of the row if it is above w (an equal one has a
// higher index than all k, so it loses to each; NaN loses to any number).
// The k best of the head and the values above w, gathered in index order,
// hold the row's k best, and primitive.TopK over them breaks ties by the
// same order.
func topK(vals []float32, k int, ids []int32, out []float32) (int, error) {
	if k <= 0 || k > topKHead/16 || len(vals) < 4*topKHead || len(ids) < k || len(out) < k {
		return primitive.TopK(vals, k, ids, out)
	}
	n, err := primitive.TopK(vals[:topKHead], k, ids, out)
	if err != nil {
		return 0, err
	}
	w := out[n-1]
	if w != w { // fewer than k numbers in the head: no threshold
		return primitive.TopK(vals, k, ids, out)
	}
	idx := slices.Grow([]int32(nil), 4*k)
	idx = append(idx, ids[:n]...)
	slices.Sort(idx)
	for i := topKHead; i < len(vals); {
		i += expsum.FirstAbove(vals[i:], w)
		for end := min(i+8, len(vals)); i < end; i++ {
			if vals[i] > w {
				idx = append(idx, int32(i))
			}
		}
	}
	gathered := make([]float32, len(idx))
	for j, i := range idx {
		gathered[j] = vals[i]
	}
	if n, err = primitive.TopK(gathered, k, ids, out); err != nil {
		return 0, err
	}
	for j := range n {
		ids[j] = idx[ids[j]]
	}
	return n, nil
}
