package deepseekv4

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
)

// poison sets every cache value of h to NaN, so that a row nobody wrote
// shows.
func poison(t *testing.T, h *harness) {
	t.Helper()
	ctx := h.b.NewContext()
	defer ctx.Close()
	for _, c := range h.caches {
		v, err := ctx.Floats(c)
		if err != nil {
			t.Fatal(err)
		}
		for i := range v {
			v[i] = float32(math.NaN())
		}
	}
}

// fill runs FillCache over positions [from, to) of sequence 0 of h as one
// batch, as Runner.Fill does for a chunk.
func (h *harness) fill(t *testing.T, from, to int, seed uint64) {
	t.Helper()
	blocks := make([]int32, h.blocks)
	for k := range blocks {
		blocks[k] = int32(k * len(h.pos))
	}
	b := &engine.Batch{BlockSize: h.bs, Seqs: []engine.BatchSeq{{Blocks: blocks, State: int32(len(h.pos) - 1)}}}
	for p := from; p < to; p++ {
		b.Tokens = append(b.Tokens, 0)
		b.Positions = append(b.Positions, int32(p))
		b.Seq = append(b.Seq, 0)
		b.Slots = append(b.Slots, int32(b.Slot(0, p)))
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := h.b.NewContext()
	defer ctx.Close()
	h.m.FillCache(ctx, b, h.caches, seed)
	if err := ctx.Compute(); err != nil {
		t.Fatal(err)
	}
	h.pos[0] = to
}

// written is, per cache tensor, which of sequence 0's values are not NaN.
func (h *harness) written(t *testing.T) [][]bool {
	t.Helper()
	ctx := h.b.NewContext()
	defer ctx.Close()
	var out [][]bool
	for _, c := range h.caches {
		v, err := ctx.Floats(c)
		if err != nil {
			t.Fatal(err)
		}
		w := make([]bool, len(v))
		for i, x := range v {
			w[i] = !math.IsNaN(float64(x))
		}
		out = append(out, w)
	}
	return out
}

// TestFillCacheLikePrefill: from caches of NaN, a fill of n tokens (in
// two chunks) writes exactly the values a real prefill of n tokens writes
// — window rings, compressed entries, indexer keys and compressor state —
// at lengths that end inside a CSA window, on one, and inside and at the
// end of an HCA window; the decode steps after it give finite logits.
func TestFillCacheLikePrefill(t *testing.T) {
	c := tiny()
	file, _, _ := c.build(t, 21)
	m := loadTiny(t, file, 2)
	lengths := []int{3, 130, 301, 383, 384}
	if testing.Short() || raceEnabled {
		lengths = []int{3, 130, 384}
	}
	for _, n := range lengths {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			real := newHarness(t, m, cpu.New(cpu.WithThreads(2)), 1, 512)
			poison(t, real)
			real.step(t, []part{{0, randomTokens(n, c.Vocab, 22)}})
			want := real.written(t)

			h := newHarness(t, m, cpu.New(cpu.WithThreads(2)), 1, 512)
			poison(t, h)
			h.fill(t, 0, n/2, 1)
			h.fill(t, n/2, n, 2)
			got := h.written(t)
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					var diff int
					for k := range want[i] {
						if got[i][k] != want[i][k] {
							diff = k
							break
						}
					}
					t.Fatalf("cache tensor %d: value %d written by the fill %v, by the prefill %v", i, diff, got[i][diff], want[i][diff])
				}
			}
			for k, tok := range randomTokens(4, c.Vocab, 23) {
				for _, v := range h.step(t, []part{{0, []int32{tok}}})[0][0] {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("decode step %d after the fill: logit %v", k, v)
					}
				}
			}
		})
	}
}

// TestFillCacheWellFormed: the filled rows are what attention and the
// compressors store — rotated back at their position (a ring row at its
// own, an entry or indexer key at its window's first position w·ratio)
// and divided by their norm's weight, they have an RMS of 1.
func TestFillCacheWellFormed(t *testing.T) {
	c := tiny()
	file, _, _ := c.build(t, 24)
	m := loadTiny(t, file, 2)
	const n = 300
	h := newHarness(t, m, cpu.New(cpu.WithThreads(2)), 1, 512)
	h.fill(t, 0, n, 5)
	ctx := h.b.NewContext()
	defer ctx.Close()
	floats := func(x engine.Tensor) []float32 {
		v, err := ctx.Floats(x)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	check := func(what string, row, norm []float32, rope engine.RopeSpec, pos int) {
		t.Helper()
		v := slices.Clone(row)
		half := rope.Dims / 2
		cos, sin := make([]float32, half), make([]float32, half)
		rope.Inverse = true
		engine.RopeAngles(rope, pos, cos, sin)
		seg := v[len(v)-rope.Dims:]
		for k := range half {
			x0, x1 := seg[2*k], seg[2*k+1]
			seg[2*k] = x0*cos[k] - x1*sin[k]
			seg[2*k+1] = x0*sin[k] + x1*cos[k]
		}
		var ss float64
		for k := range v {
			x := float64(v[k] / norm[k])
			ss += x * x
		}
		if rms := math.Sqrt(ss / float64(len(v))); math.Abs(rms-1) > 1e-4 {
			t.Fatalf("%s: RMS %.5f after undoing rope at %d and the norm", what, rms, pos)
		}
	}
	for i, l := range m.layers {
		rope := m.p.Rope(i)
		ring := floats(h.caches[l.ring])
		d := m.p.HeadDim
		for pos := n - m.p.Window; pos < n; pos++ {
			r := pos % m.p.Window // the only sequence has state slot 0
			check(fmt.Sprintf("layer %d ring row of position %d", i, pos), ring[r*d:(r+1)*d], floats(l.kvNorm), rope, pos)
		}
		if l.ratio == 0 {
			continue
		}
		for _, e := range []struct {
			idx  int
			norm engine.Tensor
		}{{l.entries, l.compNorm}, {l.keys, l.idxNorm}} {
			if e.idx < 0 {
				continue
			}
			rows := h.entries(t, e.idx, 0, l.ratio, n/l.ratio)
			for w, row := range rows {
				check(fmt.Sprintf("layer %d cache %d entry %d", i, e.idx, w), row, floats(e.norm), rope, w*l.ratio)
			}
		}
	}
}

// TestFillCacheDecode fills past Fill's chunk of 2048 tokens through the
// runner, up to one token before an HCA window ends, and decodes across
// the boundary: logits are finite, the same seed gives the same logits,
// another seed other ones; the decode step that ends the window writes
// the HCA entry, which the next step reads.
func TestFillCacheDecode(t *testing.T) {
	c := tiny()
	file, _, _ := c.build(t, 25)
	m := loadTiny(t, file, 2)
	const n = 17*128 - 1 // 2175: chunks of 2048 and 127
	r, err := engine.NewRunner(m, cpu.New(cpu.WithThreads(2)), engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, 1, n+8, 0)})
	if err != nil {
		t.Fatal(err)
	}
	decode := func(seed uint64) [][]float32 {
		s := r.NewSequence()
		defer r.Free(s)
		if err := r.Fill(s, n, seed); err != nil {
			t.Fatal(err)
		}
		if s.Len() != n {
			t.Fatalf("filled %d tokens, want %d", s.Len(), n)
		}
		var out [][]float32
		for k, tok := range randomTokens(3, c.Vocab, 26) {
			rows, err := r.Step([]engine.Work{{Seq: s, Tokens: []int32{tok}}})
			if err != nil {
				t.Fatalf("decode step %d: %v", k, err)
			}
			for _, v := range rows[0] {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("decode step %d: logit %v", k, v)
				}
			}
			out = append(out, slices.Clone(rows[0]))
		}
		return out
	}
	a, b, other := decode(1), decode(1), decode(2)
	for k := range a {
		if !slices.Equal(a[k], b[k]) {
			t.Fatalf("step %d: the same seed gave other logits", k)
		}
		if slices.Equal(a[k], other[k]) {
			t.Fatalf("step %d: another seed gave the same logits", k)
		}
	}

	// The same on a harness, whose cache the test can read: the HCA entry
	// of window 16 appears with the step at position 2175.
	h := newHarness(t, m, cpu.New(cpu.WithThreads(2)), 1, n+8)
	poison(t, h)
	h.fill(t, 0, 2048, 1)
	h.fill(t, 2048, n, 2)
	hca := m.layers[2]
	if hca.ratio != 128 {
		t.Fatal("layer 2 is not HCA")
	}
	nan := func(row []float32) bool { return math.IsNaN(float64(row[0])) }
	e := h.entries(t, hca.entries, 0, 128, 17)
	if nan(e[15]) || !nan(e[16]) {
		t.Fatalf("after the fill: entry 15 written %v, entry 16 written %v", !nan(e[15]), !nan(e[16]))
	}
	for k, tok := range randomTokens(3, c.Vocab, 26) {
		for _, v := range h.step(t, []part{{0, []int32{tok}}})[0][0] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("harness decode step %d: logit %v", k, v)
			}
		}
		if e := h.entries(t, hca.entries, 0, 128, 17); nan(e[16]) {
			t.Fatalf("decode step %d (position %d): HCA entry 16 not written", k, n+k)
		}
	}
}
