package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// q8Experts returns X stacked Q8_0 expert matrices of rows × cols random
// values as one weight of b, and each expert as a weight of its own.
func q8Experts(tb testing.TB, b *Backend, r *rand.Rand, name string, X, rows, cols int) (engine.Tensor, []engine.Tensor) {
	tb.Helper()
	vals := make([]float32, X*rows*cols)
	for i := range vals {
		vals[i] = float32(r.NormFloat64())
	}
	q := make([]byte, len(vals)/kernel.Q8_0BlockLen*kernel.Q8_0BlockSize)
	kernel.QuantizeQ8_0(vals, q)
	w, err := b.Weight(name, engine.Q8_0, []int{X, rows, cols}, q)
	require.NoError(tb, err)
	each := make([]engine.Tensor, X)
	eb := len(q) / X
	for e := range each {
		each[e], err = b.Weight(fmt.Sprintf("%s[%d]", name, e), engine.Q8_0, []int{rows, cols}, q[e*eb:(e+1)*eb])
		require.NoError(tb, err)
	}
	return w, each
}

// TestExpertFFN compares ExpertFFN with each token's experts multiplied
// one at a time (MatMul, SwiGLU, MatMul, then the weighted sum in slot
// order): the same bits, whether the experts run whole or split into
// tasks of sixteen rows, stored or repacked, for one token and for
// batches where experts get up to nineteen tokens (three R16 chunks), a
// token is routed to the same experts as another and one to the same
// experts in another order.
func TestExpertFFN(t *testing.T) {
	t.Parallel()
	const X, F, N, K = 8, 64, 96, 3
	for _, repack := range []bool{false, true} {
		r := rand.New(rand.NewPCG(11, 12))
		bk := New(WithThreads(2), WithRepack(repack))
		gate, gates := q8Experts(t, bk, r, "gate", X, F, N)
		up, ups := q8Experts(t, bk, r, "up", X, F, N)
		down, downs := q8Experts(t, bk, r, "down", X, N, F)
		for _, T := range []int{1, 2, 8, 19} {
			x := randn(r, T*N)
			wts := randn(r, T*K)
			ids := randomRoutes(r, T, X, K)
			if T >= 8 {
				copy(ids[K:2*K], ids[:K])                                 // token 1: token 0's experts
				ids[2*K], ids[2*K+1], ids[2*K+2] = ids[2], ids[0], ids[1] // token 2: in another order
			}
			for _, clamp := range []float32{0, 1.5} {
				c := bk.NewContext()
				want := make([]float32, T*N)
				for tok := range T {
					xt := c.Input(x[tok*N:(tok+1)*N], 1, N)
					for j := range K {
						e := ids[tok*K+j]
						h := c.SwiGLU(c.MatMul(xt, gates[e]), c.MatMul(xt, ups[e]), clamp)
						o := floatsOf(t, c, c.MatMul(h, downs[e]))
						for i := range N {
							want[tok*N+i] += o[i] * wts[tok*K+j]
						}
					}
				}
				idt := &tensor{shape: []int{T, K}, dt: engine.I32, i: ids}
				for _, split := range []moeSplit{defaultMoESplit, {whole: 0, task: 1}} {
					cc := c.(*context)
					y := cc.expertFFN(c.Input(x, T, N), idt, c.Input(wts, T, K), gate, up, down, clamp, split)
					require.Equal(t, want, floatsOf(t, c, y), "repack %v, %d tokens, clamp %v, split %+v", repack, T, clamp, split)
				}
				c.Close()
			}
		}
	}
}

// TestExpertFFNBadIDs: an expert id outside the weights is an error, not
// a panic; no tokens are no rows.
func TestExpertFFNBadIDs(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(13, 14))
	bk := New(WithThreads(2))
	gate, _ := q8Experts(t, bk, r, "gate", 4, 32, 32)
	up, _ := q8Experts(t, bk, r, "up", 4, 32, 32)
	down, _ := q8Experts(t, bk, r, "down", 4, 32, 32)
	for _, bad := range []int32{-1, 4} {
		c := bk.NewContext()
		ids := &tensor{shape: []int{1, 2}, dt: engine.I32, i: []int32{0, bad}}
		y := c.ExpertFFN(c.Input(randn(r, 32), 1, 32), ids, c.Input([]float32{1, 1}, 1, 2), gate, up, down, 0)
		require.ErrorContains(t, c.Compute(y), "expert id")
		c.Close()
	}
	c := bk.NewContext()
	defer c.Close()
	ids := &tensor{shape: []int{0, 2}, dt: engine.I32}
	y := c.ExpertFFN(c.Input(nil, 0, 32), ids, c.Input(nil, 0, 2), gate, up, down, 0)
	require.NoError(t, c.Compute(y))
	require.Equal(t, []int{0, 32}, y.Shape(), "no tokens, no rows")
}

// TestGroupByExpert: the pairs t·k+slot sorted by expert, token order
// within one, whatever order the tokens name their experts in, with two
// tokens routed to the same experts.
func TestGroupByExpert(t *testing.T) {
	t.Parallel()
	var w moeWork
	ids := []int32{
		3, 1, // token 0
		1, 3, // token 1: the same experts, the other order
		3, 1, // token 2: token 0's
		0, 2, // token 3
	}
	_, ok := w.group(ids, 5)
	require.True(t, ok)
	require.Equal(t, []int32{6, 1, 2, 5, 7, 0, 3, 4}, w.pairs)
	require.Equal(t, []int32{1, 4, 5, 8, 8, 8}, w.counts)
	e, ok := w.group([]int32{0, 5}, 5)
	require.False(t, ok)
	require.Equal(t, int32(5), e)
}

// randomRoutes picks k distinct experts of X for each of T tokens.
func randomRoutes(r *rand.Rand, T, X, k int) []int32 {
	ids := make([]int32, 0, T*k)
	for range T {
		for _, e := range r.Perm(X)[:k] {
			ids = append(ids, int32(e))
		}
	}
	return ids
}

// BenchmarkExpertFFN runs the routed experts of the demo V4 model (32
// Q8_0 experts of width 64 over hidden 128, top 6) for one and for eight
// tokens at two threads: a step whose arithmetic is a few hundred
// thousand multiply-adds, so that what it costs beyond that is grouping,
// packing and hand-offs.
func BenchmarkExpertFFN(b *testing.B) {
	const X, F, N, K = 32, 64, 128, 6
	for _, repack := range []bool{false, true} {
		for _, T := range []int{1, 8} {
			b.Run(fmt.Sprintf("repack=%v/tokens=%d", repack, T), func(b *testing.B) {
				r := rand.New(rand.NewPCG(7, 8))
				bk := New(WithThreads(2), WithRepack(repack))
				gate, _ := q8Experts(b, bk, r, "gate", X, F, N)
				up, _ := q8Experts(b, bk, r, "up", X, F, N)
				down, _ := q8Experts(b, bk, r, "down", X, N, F)
				x := randn(r, T*N)
				w := randn(r, T*K)
				ids := &tensor{shape: []int{T, K}, dt: engine.I32, i: randomRoutes(r, T, X, K)}
				cpu := cpuTime()
				for b.Loop() {
					c := bk.NewContext()
					y := c.ExpertFFN(c.Input(x, T, N), ids, c.Input(w, T, K), gate, up, down, 10)
					if err := c.Compute(y); err != nil {
						b.Fatal(err)
					}
					c.Close()
				}
				reportCPU(b, cpu)
			})
		}
	}
}

// BenchmarkRoute routes one and eight tokens over the demo V4 model's 32
// experts (sqrt-softplus, top 6, with a bias) and the V3 benchmark
// model's 64 (sigmoid, 8 groups of which 4 are kept, top 6).
func BenchmarkRoute(b *testing.B) {
	specs := []struct {
		name string
		X    int
		spec engine.RouteSpec
	}{
		{"v4", 32, engine.RouteSpec{Scoring: engine.SqrtSoftplus, TopK: 6, Normalize: true, Scale: 1.5}},
		{"v3", 64, engine.RouteSpec{Scoring: engine.Sigmoid, TopK: 6, Groups: 8, TopKGroups: 4, Normalize: true, Scale: 2.5}},
	}
	for _, s := range specs {
		for _, T := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/tokens=%d", s.name, T), func(b *testing.B) {
				r := rand.New(rand.NewPCG(9, 10))
				logits := randn(r, T*s.X)
				bias := randn(r, s.X)
				bk := New(WithThreads(2))
				cpu := cpuTime()
				for b.Loop() {
					c := bk.NewContext()
					ids, w := c.Route(c.Input(logits, T, s.X), c.Input(bias, s.X), s.spec)
					if err := c.Compute(ids, w); err != nil {
						b.Fatal(err)
					}
					c.Close()
				}
				reportCPU(b, cpu)
			})
		}
	}
}

// reportCPU reports the CPU time per operation since start, all
// goroutines together: on a shared machine, where wall time mostly
// measures the neighbours, the better figure of what an op costs.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// sortedRoute is Route as it was before bestK: a stable sort of every
// expert per token, groups masked after a stable sort of the groups.
func sortedRoute(logits, bias []float32, T, X int, spec engine.RouteSpec) ([]int32, []float32) {
	k := spec.TopK
	ids, weights := make([]int32, T*k), make([]float32, T*k)
	probs, sel := make([]float32, X), make([]float32, X)
	for t := range T {
		score(spec.Scoring, logits[t*X:(t+1)*X], probs)
		copy(sel, probs)
		for i := range bias {
			sel[i] += bias[i]
		}
		if spec.Groups > 1 {
			per := X / spec.Groups
			type group struct {
				id    int
				score float32
			}
			groups := make([]group, spec.Groups)
			for g := range groups {
				s := slices.Clone(sel[g*per : (g+1)*per])
				sort.SliceStable(s, func(a, b int) bool { return s[a] > s[b] })
				groups[g] = group{g, s[0]}
				if spec.GroupScore != engine.GroupMax {
					groups[g].score = s[0] + s[1]
				}
			}
			sort.SliceStable(groups, func(a, b int) bool { return groups[a].score > groups[b].score })
			for _, g := range groups[spec.TopKGroups:] {
				for i := g.id * per; i < (g.id+1)*per; i++ {
					sel[i] = float32(math.Inf(-1))
				}
			}
		}
		order := make([]int, X)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return sel[order[a]] > sel[order[b]] })
		var sum float32
		for j := range k {
			ids[t*k+j] = int32(order[j])
			weights[t*k+j] = probs[order[j]]
			sum += probs[order[j]]
		}
		normalizeWeights(weights[t*k:(t+1)*k], sum, spec)
	}
	return ids, weights
}

// TestRouteMatchesSort: Route's partial selection chooses what a stable
// sort of all experts chose, in the same order, with the same weights,
// for every scoring, with and without groups and bias, on logits drawn
// from a handful of values so that most choices break ties (the lower
// expert first), and with as many experts chosen as groups leave (the
// masked ones tie at −∞).
func TestRouteMatchesSort(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(15, 16))
	bk := New(WithThreads(2))
	for _, scoring := range []engine.Scoring{engine.Softmax, engine.Sigmoid, engine.SqrtSoftplus} {
		for _, groups := range []struct{ n, kept int }{{0, 0}, {4, 2}, {8, 3}} {
			for _, ties := range []bool{false, true} {
				for _, k := range []int{1, 6, 12} {
					const T, X = 9, 32
					spec := engine.RouteSpec{Scoring: scoring, TopK: k, Groups: groups.n, TopKGroups: groups.kept,
						GroupScore: engine.GroupScore(r.IntN(2)), Normalize: r.IntN(2) == 0, Scale: 2.5}
					if groups.n > 0 && k > groups.kept*X/groups.n {
						k = groups.kept * X / groups.n
						spec.TopK = k
					}
					logits, bias := randn(r, T*X), randn(r, X)
					if ties {
						for i := range logits {
							logits[i] = float32(r.IntN(3))
						}
						for i := range bias {
							bias[i] = float32(r.IntN(2)) / 2
						}
					}
					copy(logits[X:2*X], logits[:X]) // token 1 routes as token 0
					for _, withBias := range []bool{false, true} {
						c := bk.NewContext()
						var bt engine.Tensor
						var bv []float32
						if withBias {
							bt, bv = c.Input(bias, X), bias
						}
						ids, w := c.Route(c.Input(logits, T, X), bt, spec)
						require.NoError(t, c.Compute(ids, w))
						wantIDs, wantW := sortedRoute(logits, bv, T, X, spec)
						require.Equal(t, wantIDs, ids.(*tensor).i, "%+v ties %v bias %v", spec, ties, withBias)
						require.Equal(t, wantW, floatsOf(t, c, w), "%+v ties %v bias %v", spec, ties, withBias)
						require.Equal(t, ids.(*tensor).i[:k], ids.(*tensor).i[k:2*k])
						c.Close()
					}
				}
			}
		}
	}
}

// TestBestK: the k best, ties to the lower index, −∞ last among equals.
func TestBestK(t *testing.T) {
	t.Parallel()
	inf := float32(math.Inf(-1))
	for _, c := range []struct {
		v    []float32
		k    int
		want []int32
	}{
		{[]float32{0, 5, 1, 7, 5, 5}, 3, []int32{3, 1, 4}},
		{[]float32{2, 2, 2}, 2, []int32{0, 1}},
		{[]float32{2, 2, 2}, 3, []int32{0, 1, 2}},
		{[]float32{inf, 1, inf, inf}, 3, []int32{1, 0, 2}},
		{[]float32{1, 3, 2}, 1, []int32{1}},
		{[]float32{3, 1, 2, 3}, 2, []int32{0, 3}},
	} {
		got := make([]int32, c.k)
		bestK(c.v, got)
		require.Equal(t, c.want, got, "%v top %d", c.v, c.k)
	}
}
