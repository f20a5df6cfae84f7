package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
)

// floatsOf reads a computed tensor.
func floatsOf(t *testing.T, c engine.Context, x engine.Tensor) []float32 {
	t.Helper()
	require.NoError(t, c.Compute(x))
	v, err := c.Floats(x)
	require.NoError(t, err)
	return v
}

// TestHyperKnownAnswers checks mHC pre, post, the Sinkhorn comb and
// mhc_post against spec §8 (traps 6 and 7).
func TestHyperKnownAnswers(t *testing.T) {
	t.Parallel()
	c := New(WithThreads(2)).NewContext()
	defer c.Close()
	mix, base := make([]float32, 24), make([]float32, 24)
	for k := range mix {
		mix[k] = float32((7*k)%11)/10 - 0.5
		base[k] = float32((5*k)%7)/20 - 0.15
	}
	// D = 1: streams [1, 2, 3, 4] make the block input Σ pre[k]·(k+1).
	x := c.Input([]float32{1, 2, 3, 4}, 1, 4, 1)
	spec := engine.HyperSpec{Streams: 4, Iters: 20, Eps: 1e-6}
	in, post, comb := c.HyperPre(x, c.Input(mix, 1, 24), c.Input([]float32{0.9, 1.1, 1.3}, 3), c.Input(base, 24), spec)
	pre := []float64{0.354344694, 0.569547224, 0.455122108, 0.586618579}
	require.InDelta(t, pre[0]+2*pre[1]+3*pre[2]+4*pre[3], floatsOf(t, c, in)[0], 1e-6)
	for k, want := range []float64{1.129272584, 0.860907552, 1.192565399, 0.925140309} {
		require.InDelta(t, want, floatsOf(t, c, post)[k], 1e-6, "post[%d]", k)
	}
	C := [][]float64{
		{0.196467049, 0.374274433, 0.232790448, 0.196467069},
		{0.274666501, 0.125218268, 0.325447740, 0.274666491},
		{0.179004380, 0.341007536, 0.300982677, 0.179004407},
		{0.349861069, 0.159498763, 0.140778135, 0.349861033},
	}
	got := floatsOf(t, c, comb)
	for j := range 4 {
		for k := range 4 {
			require.InDelta(t, C[j][k], got[j*4+k], 1e-6, "C[%d][%d]", j, k)
		}
	}
	out := floatsOf(t, c, c.HyperPost(c.Input([]float32{1}, 1, 1), x, post, comb))
	for k, want := range []float64{3.811530054, 3.146636180, 3.542311897, 3.607397712} {
		require.InDelta(t, want, out[k], 1e-5, "mhc_post stream %d", k)
	}
}

// TestHyperHead: the collapse weighs each stream by sigmoid(mix·scale +
// base) + eps.
func TestHyperHead(t *testing.T) {
	t.Parallel()
	c := New(WithThreads(1)).NewContext()
	defer c.Close()
	x := c.Input([]float32{1, 10, 2, 20, 3, 30, 4, 40}, 1, 4, 2)
	mix := []float32{0.5, -1, 2, 0}
	base := []float32{0.1, 0.2, -0.3, 0}
	y := floatsOf(t, c, c.HyperHead(x, c.Input(mix, 1, 4), c.Input([]float32{1.5}, 1), c.Input(base, 4), engine.HyperSpec{Streams: 4, Iters: 1, Eps: 1e-6}))
	var want float64
	for k := range 4 {
		want += (1/(1+math.Exp(-float64(mix[k]*1.5+base[k]))) + 1e-6) * float64(k+1)
	}
	require.InDelta(t, want, y[0], 1e-6)
	require.InDelta(t, 10*want, y[1], 1e-5)
}

// TestRouteSqrtSoftplusKnownAnswer checks spec §8's routing vector: the
// bias only selects (trap 12: expert 2 has the highest score but loses).
func TestRouteSqrtSoftplusKnownAnswer(t *testing.T) {
	t.Parallel()
	c := New(WithThreads(1)).NewContext()
	defer c.Close()
	logits := c.Input([]float32{0.3, -1.2, 2.0, 0.1, 1.5, -0.4, 0.9, 1.9}, 1, 8)
	bias := c.Input([]float32{0, 0, -0.5, 0, 0.2, 0, 0, 0}, 8)
	ids, w := c.Route(logits, bias, engine.RouteSpec{Scoring: engine.SqrtSoftplus, TopK: 2, Normalize: true, Scale: 1.5})
	require.NoError(t, c.Compute(w))
	require.ElementsMatch(t, []int32{4, 7}, ids.(*tensor).i)
	got := map[int32]float32{}
	for j, e := range ids.(*tensor).i {
		got[e] = floatsOf(t, c, w)[j]
	}
	require.InDelta(t, 0.716050109, got[4], 1e-6)
	require.InDelta(t, 0.783949891, got[7], 1e-6)
	scores := make([]float32, 8)
	score(engine.SqrtSoftplus, []float32{0.3, -1.2, 2.0, 0.1, 1.5, -0.4, 0.9, 1.9}, scores)
	for i, want := range []float64{0.924313391, 0.513110580, 1.458399126, 0.862784249, 1.304382336, 0.716250831, 1.114070857, 1.428070992} {
		require.InDelta(t, want, scores[i], 1e-6, "score %d", i)
	}
}

// TestRouteHash: the experts are the token's table row whatever the
// scores say, weighted by their own scores (trap 11).
func TestRouteHash(t *testing.T) {
	t.Parallel()
	b := New(WithThreads(1))
	c := b.NewContext()
	defer c.Close()
	// Table [vocab 3, k 2]: token 0 → {5, 1}, 1 → {0, 7}, 2 → {2, 3}.
	tab := []int32{5, 1, 0, 7, 2, 3}
	raw := make([]byte, 4*len(tab))
	for i, v := range tab {
		raw[4*i] = byte(v)
	}
	table, err := b.Weight("tid2eid", engine.I32, []int{3, 2}, raw)
	require.NoError(t, err)
	row := []float32{0.3, -1.2, 2.0, 0.1, 1.5, -0.4, 0.9, 1.9}
	logits := c.Input(append(append([]float32(nil), row...), row...), 2, 8)
	batch := &engine.Batch{Tokens: []int32{1, 0}}
	ids, w := c.RouteHash(logits, table, batch, engine.RouteSpec{Scoring: engine.SqrtSoftplus, TopK: 2, Normalize: true, Scale: 1.5})
	ws := floatsOf(t, c, w)
	require.Equal(t, []int32{0, 7, 5, 1}, ids.(*tensor).i)
	s := make([]float32, 8)
	score(engine.SqrtSoftplus, row, s)
	require.InDelta(t, 1.5*s[0]/(s[0]+s[7]), ws[0], 1e-6)
	require.InDelta(t, 1.5*s[7]/(s[0]+s[7]), ws[1], 1e-6)
	require.InDelta(t, 1.5*s[5]/(s[5]+s[1]), ws[2], 1e-6)

	_, _ = c.RouteHash(logits, table, &engine.Batch{Tokens: []int32{1, 3}}, engine.RouteSpec{Scoring: engine.SqrtSoftplus, TopK: 2})
	require.ErrorContains(t, c.Compute(), "outside the table")
}

// TestSwiGLUClampAsymmetry feeds pre-activations of ±50 (trap 13): the gate
// is clamped from above only, the up projection on both sides, in SwiGLU
// and in the routed experts alike.
func TestSwiGLUClampAsymmetry(t *testing.T) {
	t.Parallel()
	c := New(WithThreads(1)).NewContext()
	defer c.Close()
	gate := []float32{50, -50, 50, -50, 3}
	up := []float32{50, 50, -50, -50, 3}
	y := floatsOf(t, c, c.SwiGLU(c.Input(gate, 1, 5), c.Input(up, 1, 5), 10))
	silu := func(x float64) float64 { return x / (1 + math.Exp(-x)) }
	want := []float64{silu(10) * 10, silu(-50) * 10, silu(10) * -10, silu(-50) * -10, silu(3) * 3}
	for i := range want {
		require.InDelta(t, want[i], y[i], 1e-6*math.Max(1, math.Abs(want[i])), "element %d", i)
	}
	// A symmetric clamp of the gate would give silu(−10)·10 ≈ −4.5e−4 for
	// element 1, not silu(−50)·10 ≈ −1e−20.
	require.Less(t, math.Abs(float64(y[1])), 1e-15)
}

// TestSparseAttentionSingleKey: at position 0 the only key is the token's
// own kv, and the output is σ(s − sink)·kv (traps 3 and 4).
func TestSparseAttentionSingleKey(t *testing.T) {
	t.Parallel()
	bk := New(WithThreads(1))
	c := bk.NewContext()
	defer c.Close()
	ring, err := bk.Cache(4, 4, engine.F32)
	require.NoError(t, err)
	kv := []float32{0.5, -1, 2, 0.25}
	q := []float32{1, 2, 3, 4}
	b := &engine.Batch{Tokens: []int32{0}, Positions: []int32{0}, Seq: []int32{0}, Slots: []int32{0}, Seqs: []engine.BatchSeq{{Blocks: []int32{0}}}, BlockSize: 4}
	sink := float32(0.7)
	o := floatsOf(t, c, c.SparseAttention(c.Input(q, 1, 1, 4), c.Input(kv, 1, 4), ring, nil, nil, b,
		engine.SparseSpec{Scale: 0.5, Window: 4, Sinks: c.Input([]float32{sink}, 1)}))
	var s float64
	for i := range q {
		s += float64(q[i] * kv[i])
	}
	s *= 0.5
	w := 1 / (1 + math.Exp(float64(sink)-s))
	for i := range kv {
		require.InDelta(t, w*float64(kv[i]), o[i], 1e-6)
	}
}

// TestCompressVisibility: a window's entry is written by the token that
// completes it (position w·r + r − 1, trap 9), and a chunk that stops
// mid-window leaves the rest to the state.
func TestCompressVisibility(t *testing.T) {
	t.Parallel()
	bk := New(WithThreads(2))
	const d, r = 4, 4
	state, err := bk.Cache(2*r, 2*2*d, engine.F32)
	require.NoError(t, err)
	entries, err := bk.Cache(4, d, engine.F32)
	require.NoError(t, err)
	ape, err := bk.Weight("ape", engine.F32, []int{r, 2 * d}, make([]byte, 4*r*2*d))
	require.NoError(t, err)
	norm := make([]float32, d)
	for i := range norm {
		norm[i] = 1
	}
	spec := func(c engine.Context) engine.CompressSpec {
		return engine.CompressSpec{Ratio: r, Overlap: true, Ape: ape, Norm: c.Input(norm, d), Eps: 1e-6, Rope: engine.RopeSpec{Dims: 2, Base: 10000}}
	}
	batch := func(from, n int) *engine.Batch {
		b := &engine.Batch{Seqs: []engine.BatchSeq{{Blocks: []int32{0}}}, BlockSize: 16}
		for p := from; p < from+n; p++ {
			b.Tokens = append(b.Tokens, 0)
			b.Positions = append(b.Positions, int32(p))
			b.Seq = append(b.Seq, 0)
			b.Slots = append(b.Slots, int32(p))
		}
		return b
	}
	rows := func(from, n int) []float32 {
		v := make([]float32, n*2*d)
		for i := range v {
			v[i] = float32(math.Sin(float64(from*2*d + i)))
		}
		return v
	}
	c := bk.NewContext()
	// Positions 0..2: no window complete.
	c.Compress(c.Input(rows(0, 3), 3, 2*d), c.Input(rows(100, 3), 3, 2*d), state, entries, batch(0, 3), spec(c))
	e := floatsOf(t, c, entries)
	require.Equal(t, make([]float32, 4*d), e, "no entry before position 3")
	// Position 3 completes window 0; position 4..6 only pend.
	c.Compress(c.Input(rows(3, 4), 4, 2*d), c.Input(rows(103, 4), 4, 2*d), state, entries, batch(3, 4), spec(c))
	e = floatsOf(t, c, entries)
	require.NotEqual(t, make([]float32, d), e[:d], "entry 0 at position 3")
	require.Equal(t, make([]float32, 3*d), e[d:], "nothing more")
	c.Close()

	// The same seven positions in one step give the same entry.
	state2, _ := bk.Cache(2*r, 2*2*d, engine.F32)
	entries2, _ := bk.Cache(4, d, engine.F32)
	c = bk.NewContext()
	defer c.Close()
	c.Compress(c.Input(rows(0, 7), 7, 2*d), c.Input(rows(100, 7), 7, 2*d), state2, entries2, batch(0, 7), spec(c))
	require.Equal(t, e, floatsOf(t, c, entries2))
}

// TestTopK: exact top-k, ties to the lower index, returned in index order.
func TestTopK(t *testing.T) {
	t.Parallel()
	require.Equal(t, []int{1, 3, 4}, topK([]float32{0, 5, 1, 7, 5, 5}, 3))
	require.Equal(t, []int{0, 1}, topK([]float32{2, 2, 2}, 2))
}

// TestIndexTopK: a token at position p scores only the (p+1)/4 visible
// keys and keeps the exact top k by Σ_h w_h·scale·relu(q_h·K); with no
// more visible keys than k it keeps them all.
func TestIndexTopK(t *testing.T) {
	t.Parallel()
	bk := New(WithThreads(2))
	const d, H, K = 4, 2, 2
	keys, err := bk.Cache(8, d, engine.F32)
	require.NoError(t, err)
	c := bk.NewContext()
	defer c.Close()
	kv, _ := c.Floats(keys)
	for i := range kv {
		kv[i] = float32(math.Cos(float64(3*i + 1)))
	}
	q := []float32{1, -0.5, 0.25, 2, -1, 0.5, 1.5, -0.25, 0.3, 0.3, -0.7, 1, 1, 1, -1, 0.5}
	wts := []float32{0.8, -0.3, 0.5, 1.2}
	// Two tokens: positions 27 (7 visible keys) and 5 (1 visible key).
	b := &engine.Batch{Tokens: []int32{0, 0}, Positions: []int32{27, 5}, Seq: []int32{0, 1}, Slots: []int32{27, 5},
		Seqs: []engine.BatchSeq{{Blocks: []int32{0}}, {Blocks: []int32{0}}}, BlockSize: 32}
	sel := c.IndexTopK(c.Input(q, 2, H, d), c.Input(wts, 2, H), keys, b, engine.IndexSpec{Ratio: 4, TopK: K, Scale: 0.5})
	require.NoError(t, c.Compute())
	got := sel.(*tensor).i
	scores := make([]float32, 7)
	for w := range 7 {
		for h := range H {
			var dot float32
			for i := range d {
				dot += q[h*d+i] * kv[w*d+i]
			}
			scores[w] += wts[h] * 0.5 * max(dot, 0)
		}
	}
	want := topK(scores, K)
	require.Equal(t, []int32{int32(want[0]), int32(want[1]), 0, -1}, got)
	best := 0
	for w := range scores {
		if scores[w] > scores[best] {
			best = w
		}
	}
	require.Contains(t, want, best)
}

// TestHyperPreSinkhornLanes: at four streams HyperPre normalises its
// tokens' combs eight at a time (kernel.Sinkhorn4); each comb must have
// the bits of the per-token sinkhorn, for batches that fill the lanes,
// leave some empty, and span several groups and pieces.
func TestHyperPreSinkhornLanes(t *testing.T) {
	t.Parallel()
	const hc, n, nmix = 4, 8, (2 + 4) * 4
	r := rand.New(rand.NewPCG(61, 62))
	scale, base := []float32{0.9, 1.1, 1.3}, make([]float32, nmix)
	for i := range base {
		base[i] = float32(r.NormFloat64())
	}
	for _, iters := range []int{0, 1, 20} {
		spec := engine.HyperSpec{Streams: hc, Iters: iters, Eps: 1e-6}
		for _, T := range []int{1, 3, 8, 9, 17, 40} {
			mix := make([]float32, T*nmix)
			for i := range mix {
				mix[i] = float32(r.NormFloat64() * 3)
			}
			x := make([]float32, T*hc*n)
			c := New(WithThreads(2)).NewContext()
			_, _, comb := c.HyperPre(c.Input(x, T, hc, n), c.Input(mix, T, nmix), c.Input(scale, 3), c.Input(base, nmix), spec)
			got := floatsOf(t, c, comb)
			for tk := range T {
				want := make([]float32, hc*hc)
				for i := range want {
					want[i] = mix[tk*nmix+2*hc+i]*scale[2] + base[2*hc+i]
				}
				sinkhorn(want, hc, iters, spec.Eps)
				for i, v := range want {
					require.Equal(t, math.Float32bits(v), math.Float32bits(got[tk*hc*hc+i]), "iters %d, %d tokens: token %d element %d", iters, T, tk, i)
				}
			}
			c.Close()
		}
	}
}

// sinkhorn is the per-token Sinkhorn step HyperPre runs: the reference
// for its eight-token kernel.
func sinkhorn(m []float32, hc, iters int, eps float32) {
	sinkhornSoftmax(m, hc, eps)
	sinkhornNormalise(m, hc, iters, eps)
}
