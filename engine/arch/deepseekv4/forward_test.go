package deepseekv4

import (
	"math"
	"testing"

	"github.com/ulan-ai/ulan/engine/cpu"
)

// maxDiff is the largest |a − b| over two logit rows.
func maxDiff(a []float32, b []float64) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-b[i]))
	}
	return d
}

// TestAgainstReference holds the engine to the plain reference forward
// pass on a tiny seeded model over a prompt that slides the window, makes
// HCA entries and makes the indexer select (> 4·index_topk tokens).
func TestAgainstReference(t *testing.T) {
	c := tiny()
	file, ws, tabs := c.build(t, 1)
	m := loadTiny(t, file, 2)
	n := 300
	if testing.Short() || raceEnabled {
		n = 140
	}
	tokens := randomTokens(n, c.Vocab, 2)
	ref := reference{c: c, w: ws, tabs: tabs}.forward(tokens)
	h := newHarness(t, m, cpu.New(cpu.WithThreads(2)), 1, n)
	got := h.step(t, []part{{0, tokens}})[0]
	var worst float64
	for i := range tokens {
		d := maxDiff(got[i], ref[i])
		worst = math.Max(worst, d)
		if d > 1e-4 {
			t.Errorf("token %d: max |Δlogit| %.3g against the reference", i, d)
		}
	}
	t.Logf("max |Δlogit| over %d tokens: %.3g", n, worst)
}
