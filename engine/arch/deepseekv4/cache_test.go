package deepseekv4

import (
	"fmt"
	"math"
	"testing"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
)

// prefill runs tokens through a fresh harness in chunks of size chunk
// (0: all at once) and returns every token's logits and the harness.
func prefill(t *testing.T, m *Model, tokens []int32, chunk int) ([][]float32, *harness) {
	t.Helper()
	h := newHarness(t, m, cpu.New(cpu.WithThreads(2)), 1, len(tokens)+128)
	if chunk == 0 {
		chunk = len(tokens)
	}
	var out [][]float32
	for i := 0; i < len(tokens); i += chunk {
		out = append(out, h.step(t, []part{{0, tokens[i:min(i+chunk, len(tokens))]}})[0]...)
	}
	return out, h
}

func rowDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestChunkedPrefill: chunk sizes 1, 3, 7, one longer than the window,
// and the whole prompt give the same logits and the same compressed
// entries and indexer keys (traps 8, 19, 22).
func TestChunkedPrefill(t *testing.T) {
	c := tiny()
	file, _, _ := c.build(t, 3)
	m := loadTiny(t, file, 2)
	n := 300
	if testing.Short() || raceEnabled {
		n = 150
	}
	tokens := randomTokens(n, c.Vocab, 4)
	whole, hw := prefill(t, m, tokens, 0)
	for _, chunk := range []int{1, 3, 7, 19} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			got, h := prefill(t, m, tokens, chunk)
			for i := range tokens {
				if d := rowDiff(got[i], whole[i]); d > 1e-5 {
					t.Fatalf("token %d: logits differ from the whole prompt's by %.3g", i, d)
				}
			}
			for li, l := range m.layers {
				for _, idx := range []int{l.entries, l.keys} {
					if idx < 0 {
						continue
					}
					every := l.ratio
					want := hw.entries(t, idx, 0, every, n/every)
					have := h.entries(t, idx, 0, every, n/every)
					for w := range want {
						if d := rowDiff(have[w], want[w]); d > 1e-6 {
							t.Fatalf("layer %d cache %d entry %d differs by %.3g", li, idx, w, d)
						}
					}
				}
			}
		})
	}
}

// TestPrefillTail: after a 300-token prefill the HCA layer holds entries
// 0 and 1 and the 44 pending rows of window 2, which completes exactly at
// position 383 (trap 22); decoding one token at a time matches the
// prefilled logits.
func TestPrefillTail(t *testing.T) {
	if testing.Short() {
		t.Skip("384 tokens")
	}
	c := tiny()
	file, _, _ := c.build(t, 5)
	m := loadTiny(t, file, 2)
	tokens := randomTokens(384, c.Vocab, 6)
	whole, hw := prefill(t, m, tokens, 0)
	h := newHarness(t, m, cpu.New(cpu.WithThreads(2)), 1, 512)
	h.step(t, []part{{0, tokens[:300]}})
	hca := m.layers[2]
	if hca.ratio != 128 {
		t.Fatal("layer 2 is not HCA")
	}
	zero := func(row []float32) bool {
		for _, v := range row {
			if v != 0 {
				return false
			}
		}
		return true
	}
	e := h.entries(t, hca.entries, 0, 128, 3)
	if zero(e[0]) || zero(e[1]) || !zero(e[2]) {
		t.Fatalf("after 300 tokens: entries 0, 1 written and 2 not; zero: %v %v %v", zero(e[0]), zero(e[1]), zero(e[2]))
	}
	for p := 300; p < 384; p++ {
		got := h.step(t, []part{{0, tokens[p : p+1]}})[0][0]
		if d := rowDiff(got, whole[p]); d > 1e-5 {
			t.Fatalf("decode at %d differs from prefill by %.3g", p, d)
		}
		e := h.entries(t, hca.entries, 0, 128, 3)
		if (p == 383) == zero(e[2]) {
			t.Fatalf("position %d: entry 2 written: %v", p, !zero(e[2]))
		}
	}
	if d := rowDiff(h.entries(t, hca.entries, 0, 128, 3)[2], hw.entries(t, hca.entries, 0, 128, 3)[2]); d > 1e-6 {
		t.Fatalf("entry 2 differs from the prefilled one by %.3g", d)
	}
}

// TestBatching: sequences at different positions in one step, prefill
// chunks and decode tokens mixed, give what each gives alone.
func TestBatching(t *testing.T) {
	c := tiny()
	file, _, _ := c.build(t, 7)
	m := loadTiny(t, file, 2)
	a := randomTokens(160, c.Vocab, 8)
	b := randomTokens(40, c.Vocab, 9)
	aloneA, _ := prefill(t, m, a, 37)
	aloneB, _ := prefill(t, m, b, 0)
	h := newHarness(t, m, cpu.New(cpu.WithThreads(2)), 2, 256)
	var gotA, gotB [][]float32
	// Step 1: a's first 130 tokens and b's first 9; then a one token at a
	// time while b takes chunks of 3, b listed first.
	out := h.step(t, []part{{0, a[:130]}, {1, b[:9]}})
	gotA, gotB = append(gotA, out[0]...), append(gotB, out[1]...)
	for ia, ib := 130, 9; ia < len(a); ia++ {
		parts := []part{{0, a[ia : ia+1]}}
		if ib < len(b) {
			parts = append([]part{{1, b[ib:min(ib+3, len(b))]}}, parts...)
			ib += 3
		}
		out := h.step(t, parts)
		if len(parts) == 2 {
			gotB = append(gotB, out[0]...)
			gotA = append(gotA, out[1]...)
		} else {
			gotA = append(gotA, out[0]...)
		}
	}
	for i := range a {
		if d := rowDiff(gotA[i], aloneA[i]); d > 1e-5 {
			t.Fatalf("sequence a token %d: batched differs by %.3g", i, d)
		}
	}
	for i := range b {
		if d := rowDiff(gotB[i], aloneB[i]); d > 1e-5 {
			t.Fatalf("sequence b token %d: batched differs by %.3g", i, d)
		}
	}
}

// TestRunner runs the model through engine.Runner, whose block tables and
// state slots are its own, and compares with the reference-checked
// harness.
func TestRunner(t *testing.T) {
	c := tiny()
	file, _, _ := c.build(t, 10)
	m := loadTiny(t, file, 2)
	tokens := randomTokens(140, c.Vocab, 11)
	want, _ := prefill(t, m, tokens, 0)
	r, err := engine.NewRunner(m, cpu.New(cpu.WithThreads(2)), engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, 3, 256, 0)})
	if err != nil {
		t.Fatal(err)
	}
	// A first sequence leaves stale state behind in its slot.
	s0 := r.NewSequence()
	if _, err := r.Step([]engine.Work{{Seq: s0, Tokens: randomTokens(50, c.Vocab, 12)}}); err != nil {
		t.Fatal(err)
	}
	r.Free(s0)
	s := r.NewSequence()
	var got [][]float32
	for i := 0; i < len(tokens); i += 45 {
		rows, err := r.Step([]engine.Work{{Seq: s, Tokens: tokens[i:min(i+45, len(tokens))], AllLogits: true}})
		if err != nil {
			t.Fatal(err)
		}
		V := c.Vocab
		for k := 0; k < len(rows[0]); k += V {
			got = append(got, append([]float32(nil), rows[0][k:k+V]...))
		}
	}
	for i := range tokens {
		if d := rowDiff(got[i], want[i]); d > 1e-5 {
			t.Fatalf("token %d: runner differs by %.3g", i, d)
		}
	}
}
