package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
)

// TestSparseAttentionSpans: SparseAttention's result does not depend on how
// its work is cut (a token's head groups in one item or several, by the
// number of threads) and matches a float64 softmax over every visible row,
// for head counts that are and are not multiples of four and for more rows
// than one block (sparseRowBlock).
func TestSparseAttentionSpans(t *testing.T) {
	t.Parallel()
	const d, W, ratio, pos, blockSize = 32, 40, 4, 90, 16
	for _, H := range []int{8, 6, 12} {
		for _, T := range []int{1, 3, 8} {
			r := rand.New(rand.NewPCG(uint64(H), uint64(T)))
			fill := normalFill(r)
			bt, blocks := decodeBatch(T, pos, blockSize)
			q, kv, ring := fill(T, H, d), fill(T, d), fill(T*W, d)
			entries, sinks := fill(T*blocks*blockSize/ratio, d), fill(H)
			spec := engine.SparseSpec{Scale: 0.25, Window: W, Ratio: ratio, Sinks: sinks}
			var first []float32
			for _, threads := range []int{1, 2, 16} {
				name := fmt.Sprintf("H=%d/T=%d/threads=%d", H, T, threads)
				bk := New(WithThreads(threads))
				c := bk.NewContext()
				// A copy: Close gives the context's arena to the next one.
				y := slices.Clone(floatsOf(t, c, c.SparseAttention(q, kv, ring, entries, nil, bt, spec)))
				c.Close()
				if first == nil {
					first = y
					// The rows token s sees: the window (ring rows
					// of positions pos−W+1 … pos−1, then its kv), then
					// every entry w < (pos+1)/ratio.
					for s := range T {
						var rows [][]float32
						for j := pos - W + 1; j < pos; j++ {
							at := (s*W + j%W) * d
							rows = append(rows, ring.f[at:at+d])
						}
						rows = append(rows, kv.f[s*d:(s+1)*d])
						for w := range (pos + 1) / ratio {
							at := bt.PagedRow(s, w*ratio, ratio) * d
							rows = append(rows, entries.f[at:at+d])
						}
						for h := range H {
							qh := q.f[(s*H+h)*d : (s*H+h+1)*d]
							p := make([]float64, len(rows))
							sum := math.Exp(float64(sinks.f[h]))
							for j, row := range rows {
								var dot float64
								for i := range row {
									dot += float64(row[i]) * float64(qh[i])
								}
								p[j] = math.Exp(dot * float64(spec.Scale))
								sum += p[j]
							}
							for i := range d {
								var o float64
								for j, row := range rows {
									o += p[j] / sum * float64(row[i])
								}
								require.InDelta(t, o, y[(s*H+h)*d+i], 1e-5, "%s: token %d head %d value %d", name, s, h, i)
							}
						}
					}
					continue
				}
				require.Equal(t, first, y, name)
			}
		}
	}
}
