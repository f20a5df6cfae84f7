package cpu

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
	"github.com/ulan-ai/ulan/internal/team"
)

// minWeightSum is the floor llama.cpp puts under the sum of the chosen
// weights before normalising (the smallest normal f16).
const minWeightSum = 6.103515625e-5

func (c *context) Route(logits, bias engine.Tensor, spec engine.RouteSpec) (engine.Tensor, engine.Tensor) {
	lt, ok := c.f32("Route", logits)
	if !ok {
		return &tensor{}, &tensor{}
	}
	T, X := lt.shape[0], lt.shape[1]
	var bv []float32
	if bias != nil {
		bt, ok := c.f32("Route bias", bias)
		if !ok {
			return &tensor{}, &tensor{}
		}
		if len(bt.f) != X {
			return c.fail("Route: bias %v for %d experts", bt, X), &tensor{}
		}
		bv = bt.f
	}
	k := spec.TopK
	if k <= 0 || k > X || (spec.Groups > 1 && (X%spec.Groups != 0 || spec.TopKGroups <= 0 || spec.TopKGroups > spec.Groups)) {
		return c.fail("Route: top %d of %d experts in %d groups (%d kept)", k, X, spec.Groups, spec.TopKGroups), &tensor{}
	}
	ids := &tensor{shape: []int{T, k}, dt: engine.I32, i: make([]int32, T*k)}
	weights := c.newF32(T, k)
	probsAll, selAll := c.output(T*X), c.output(T*X)
	c.b.parallel(T, routeGrain(X), func(lo, hi int) {
		var groups *groupScratch
		if spec.Groups > 1 {
			groups = newGroupScratch(spec)
		}
		for t := lo; t < hi; t++ {
			probs, sel := probsAll[t*X:(t+1)*X], selAll[t*X:(t+1)*X]
			score(spec.Scoring, lt.f[t*X:(t+1)*X], probs)
			copy(sel, probs)
			for i := range bv {
				sel[i] += bv[i]
			}
			if groups != nil {
				groups.mask(sel)
			}
			chosen := ids.i[t*k : (t+1)*k]
			bestK(sel, chosen)
			var sum float32
			for j, e := range chosen {
				weights.f[t*k+j] = probs[e]
				sum += probs[e]
			}
			normalizeWeights(weights.f[t*k:(t+1)*k], sum, spec)
		}
	})
	return ids, weights
}

// routeGrain is the fewest tokens a goroutine routes among X experts: a
// score is a float64 exponential and logarithm or a sigmoid, tens of
// nanoseconds, so about 64 of a norm's values.
func routeGrain(X int) int { return rowGrain(64 * X) }

// bestK sets out to the indices of the len(out) largest values of v (at
// most len(v)), largest first and ties lower index first: the first
// len(out) of a stable sort by descending value, without sorting the
// rest. (A NaN, which a sort cannot place either, is never chosen over a
// number after it, nor moved ahead of one.)
func bestK(v []float32, out []int32) {
	n := 0
	for i, x := range v {
		if n == len(out) {
			if !(x > v[out[n-1]]) {
				continue
			}
			n-- // the last one chosen makes way
		}
		p := n
		for p > 0 && x > v[out[p-1]] {
			out[p] = out[p-1]
			p--
		}
		out[p] = int32(i)
		n++
	}
}

// normalizeWeights divides the chosen weights w by their sum when spec
// says so, then scales them.
func normalizeWeights(w []float32, sum float32, spec engine.RouteSpec) {
	if spec.Normalize {
		sum = max(sum, minWeightSum)
		for j := range w {
			w[j] /= sum
		}
	}
	if spec.Scale != 0 && spec.Scale != 1 {
		for j := range w {
			w[j] *= spec.Scale
		}
	}
}

// score turns router logits into expert scores.
func score(s engine.Scoring, logits, out []float32) {
	switch s {
	case engine.SqrtSoftplus:
		// ggml's softplus is x itself above 20.
		for i, v := range logits {
			sp := float64(v)
			if v <= 20 {
				sp = math.Log1p(math.Exp(float64(v)))
			}
			out[i] = float32(math.Sqrt(float64(float32(sp))))
		}
	case engine.Sigmoid:
		for i, v := range logits {
			out[i] = 1 / (1 + exp32(-v))
		}
	default: // Softmax
		mx := float32(math.Inf(-1))
		for _, v := range logits {
			mx = max(mx, v)
		}
		var sum float64
		for i, v := range logits {
			out[i] = exp32(v - mx)
			sum += float64(out[i])
		}
		inv := float32(1 / sum)
		for i := range out {
			out[i] *= inv
		}
	}
}

// groupScratch is Route's storage for choosing groups of experts.
type groupScratch struct {
	spec   engine.RouteSpec
	scores []float32 // one per group
	kept   []int32   // the TopKGroups best groups
}

func newGroupScratch(spec engine.RouteSpec) *groupScratch {
	return &groupScratch{spec: spec, scores: make([]float32, spec.Groups), kept: make([]int32, spec.TopKGroups)}
}

// mask keeps the TopKGroups best groups of consecutive experts (ties:
// the lower group) and sets every other expert's selection score to −∞
// (spec §7 trap 18: never 0).
func (g *groupScratch) mask(sel []float32) {
	per := len(sel) / g.spec.Groups
	for i := range g.scores {
		best, second := float32(math.Inf(-1)), float32(math.Inf(-1))
		for _, v := range sel[i*per : (i+1)*per] {
			if v > best {
				best, second = v, best
			} else if v > second {
				second = v
			}
		}
		g.scores[i] = best
		if g.spec.GroupScore != engine.GroupMax {
			g.scores[i] = best + second
		}
	}
	bestK(g.scores, g.kept)
	next := 0 // the first expert not yet masked or kept
	slices.Sort(g.kept)
	for _, kg := range g.kept {
		for i := next; i < int(kg)*per; i++ {
			sel[i] = float32(math.Inf(-1))
		}
		next = (int(kg) + 1) * per
	}
	for i := next; i < len(sel); i++ {
		sel[i] = float32(math.Inf(-1))
	}
}

func (c *context) ExpertFFN(x, ids, weights, gate, up, down engine.Tensor, clamp float32) engine.Tensor {
	return c.expertFFN(x, ids, weights, gate, up, down, clamp, defaultMoESplit)
}

// moeSplit says how ExpertFFN cuts its work into tasks.
type moeSplit struct {
	// whole bounds the experts (gate, up and down together, in bytes) that
	// one goroutine runs whole.
	whole int
	// task is about how many bytes of a bigger expert's weights one task
	// reads.
	task int
}

// defaultMoESplit runs a small model's experts (a few dozen kilobytes)
// whole, since splitting them among goroutines would cost more in
// hand-offs than it balances, and cuts bigger ones into runs of 256 KiB,
// enough to amortise taking a task and few enough that the goroutines
// finish together.
var defaultMoESplit = moeSplit{whole: 512 << 10, task: 256 << 10}

// expertFFN is ExpertFFN with the work split as s says.
func (c *context) expertFFN(x, ids, weights, gate, up, down engine.Tensor, clamp float32, s moeSplit) engine.Tensor {
	xt, ok := c.f32("ExpertFFN", x)
	wt, ok2 := c.f32("ExpertFFN weights", weights)
	gt, ok3 := c.weight("ExpertFFN gate", gate, 3)
	ut, ok4 := c.weight("ExpertFFN up", up, 3)
	dt, ok5 := c.weight("ExpertFFN down", down, 3)
	if !ok || !ok2 || !ok3 || !ok4 || !ok5 {
		return &tensor{}
	}
	it, isT := ids.(*tensor)
	if !isT || it.dt != engine.I32 || len(it.shape) != 2 {
		return c.fail("ExpertFFN: ids must be i32 [tokens, k]")
	}
	T, n := xt.shape[0], xt.shape[1]
	X, f := gt.shape[0], gt.shape[1]
	k := it.shape[1]
	if gt.shape[2] != n || ut.shape[0] != X || ut.shape[1] != f || ut.shape[2] != n ||
		dt.shape[0] != X || dt.shape[1] != n || dt.shape[2] != f || it.shape[0] != T || len(wt.f) != T*k {
		return c.fail("ExpertFFN: x %v, gate %v, up %v, down %v, ids %v", xt, gt, ut, dt, it)
	}
	w := moeWorks.Get().(*moeWork)
	defer moeWorks.Put(w)
	if e, ok := w.group(it.i, X); !ok {
		return c.fail("ExpertFFN: expert id %d of %d", e, X)
	}
	// outs[(t·k+j)·n:] holds slot j's expert output for token t; they are
	// summed in slot order afterwards, as llama.cpp adds them.
	outs := c.output(T * k * n)
	hidden := c.output(2 * f * T * k)
	// The tokens are quantized once for every expert (and for the shared
	// expert, which multiplies the same x); each expert packs its rows.
	g0, u0, d0 := partMatrix(gt, 0, f, n), partMatrix(ut, 0, f, n), partMatrix(dt, 0, n, f)
	allG := c.prepare(xt, g0.t, n)
	allU := c.prepare(xt, u0.t, n)
	downKind := weightKind(d0.t)
	acts := w.activate(xt, n, f, k, hidden, outs)
	if allU == allG {
		for i := range acts {
			acts[i].pu = acts[i].pg
		}
	}
	whole := expertBytes(gt, f, n)+expertBytes(ut, f, n)+expertBytes(dt, n, f) <= s.whole
	w.plan(whole, s.task, f, n, rowBytes(gt.dt, n)+rowBytes(ut.dt, n), rowBytes(dt.dt, f))
	if !whole {
		for i := range acts {
			acts[i].fillInputs(allG, allU)
			acts[i].ready = make(chan struct{})
		}
	}
	gateUp := func(a *activeExpert, lo, hi int) {
		partMatrix(gt, a.e, f, n).mulRange(a.pg, lo, hi, a.gs)
		partMatrix(ut, a.e, f, n).mulRange(a.pu, lo, hi, a.us)
		for i, g := range a.gs {
			swigluRows(g[lo:hi], a.us[i][lo:hi], clamp)
		}
	}
	tasks := w.tasks
	// Tasks are taken in order, every gate-and-up run before any down run,
	// so a down task waits only on runs already being computed.
	team.Run(c.b.threads, len(tasks), func(i int) {
		t := tasks[i]
		a := &acts[t.expert]
		dm := partMatrix(dt, a.e, n, f)
		switch t.phase {
		case phaseWhole:
			a.fillInputs(allG, allU)
			gateUp(a, 0, f)
			a.pd.fill(downKind, f, a.gs, nil)
			dm.mulRange(a.pd, 0, n, a.ds)
		case phaseGateUp:
			gateUp(a, t.lo, t.hi)
			if a.pending.Add(-1) == 0 {
				a.pd.fill(downKind, f, a.gs, nil)
				close(a.ready)
			}
		case phaseDown:
			<-a.ready
			dm.mulRange(a.pd, t.lo, t.hi, a.ds)
		}
	})
	y := c.newF32(T, n)
	for t := range T {
		dst := y.f[t*n : (t+1)*n]
		for j := range k {
			kernel.MulAddF32(dst, outs[(t*k+j)*n:(t*k+j+1)*n], wt.f[t*k+j])
		}
	}
	return y
}

// expertBytes is the size of one expert's rows×in matrix of w.
func expertBytes(w *tensor, rows, in int) int {
	if w.parts != nil {
		w = w.parts[0]
	}
	return rows * rowBytes(w.dt, in)
}

// moeWork is ExpertFFN's storage, reused from one call to the next: the
// (token, slot) pairs grouped by expert, the experts that have any, and
// the tasks they are split into.
type moeWork struct {
	counts []int32 // pairs per expert, then where each expert's start
	pairs  []int32 // t·k+slot, grouped by expert, in order within one
	acts   []activeExpert
	tasks  []moeTask
	rows   [][]float32 // backing of the experts' row lists
	tokens []int
	preps  []*prepared // owned by this moeWork, three per active expert
}

var moeWorks = sync.Pool{New: func() any { return new(moeWork) }}

// activeExpert is one expert with tokens routed to it and what its
// products need: its tokens' input rows (xs), gate and up outputs (gs,
// us; gs then holds the SwiGLU), the outputs of its down product (ds,
// one per pair), and the inputs prepared for each weight.
type activeExpert struct {
	e              int
	tokens         []int
	xs, gs, us, ds [][]float32
	pg, pu, pd     *prepared
	// pending counts the gate-and-up tasks of a split expert not yet done;
	// the goroutine that finishes the last prepares the down input and
	// closes ready.
	pending atomic.Int32
	ready   chan struct{}
}

// fillInputs packs the expert's rows of the tokens prepared for gate and
// up.
func (a *activeExpert) fillInputs(allG, allU *prepared) {
	a.pg.fillRows(allG, a.tokens, a.xs)
	if a.pu != a.pg {
		a.pu.fillRows(allU, a.tokens, a.xs)
	}
}

// moeTask is one piece of ExpertFFN's parallel section: all of an
// expert's products, rows [lo, hi) of its gate and up products (and their
// SwiGLU), or rows [lo, hi) of its down product.
type moeTask struct {
	phase  uint8
	expert int32 // index into moeWork.acts
	lo, hi int
}

const (
	phaseWhole = iota
	phaseGateUp
	phaseDown
)

// group sorts the pairs (t·k+slot) of ids by expert (a counting sort,
// stable: token order within an expert). It returns a bad id and false
// if one is outside [0, X).
func (w *moeWork) group(ids []int32, X int) (int32, bool) {
	w.counts = grow(w.counts, X+1)
	clear(w.counts)
	for _, e := range ids {
		if e < 0 || int(e) >= X {
			return e, false
		}
		w.counts[e+1]++
	}
	for e := range X {
		w.counts[e+1] += w.counts[e]
	}
	// counts[e] is now where expert e's pairs start; filling advances it to
	// where they end, which is where e+1's start.
	w.pairs = grow(w.pairs, len(ids))
	for p, e := range ids {
		w.pairs[w.counts[e]] = int32(p)
		w.counts[e]++
	}
	return 0, true
}

// activate lists the experts with pairs after group and lays out their
// rows: x's rows of their tokens, their share of hidden (gate then up, f
// values per pair) and of outs (n per pair, at the pair's place).
func (w *moeWork) activate(xt *tensor, n, f, k int, hidden, outs []float32) []activeExpert {
	np := len(w.pairs)
	w.rows = grow(w.rows, 4*np)
	w.tokens = grow(w.tokens, np)
	nAct := 0
	for e, start := 0, int32(0); e < len(w.counts)-1; e++ {
		if w.counts[e] > start {
			nAct++
		}
		start = w.counts[e]
	}
	if nAct > cap(w.acts) {
		w.acts = make([]activeExpert, nAct)
	}
	w.acts = w.acts[:nAct]
	for len(w.preps) < 3*nAct {
		w.preps = append(w.preps, new(prepared))
	}
	i, start := 0, 0
	for e := range len(w.counts) - 1 {
		end := int(w.counts[e])
		if end == start {
			continue
		}
		a := &w.acts[i]
		a.e = e
		a.tokens = w.tokens[start:end]
		a.xs = w.rows[start:end:end]
		a.gs = w.rows[np+start : np+end : np+end]
		a.us = w.rows[2*np+start : 2*np+end : 2*np+end]
		a.ds = w.rows[3*np+start : 3*np+end : 3*np+end]
		for j, p := range w.pairs[start:end] {
			t := int(p) / k
			a.tokens[j] = t
			a.xs[j] = xt.f[t*n : (t+1)*n]
			a.gs[j] = hidden[2*(start+j)*f : (2*(start+j)+1)*f]
			a.us[j] = hidden[(2*(start+j)+1)*f : (2*(start+j)+2)*f]
			a.ds[j] = outs[int(p)*n : (int(p)+1)*n]
		}
		a.pg, a.pu, a.pd = w.preps[3*i], w.preps[3*i+1], w.preps[3*i+2]
		a.pending.Store(0)
		a.ready = nil
		i++
		start = end
	}
	return w.acts
}

// plan splits the active experts into tasks: each whole, or its gate and
// up rows in runs of about taskBytes (gateUpRow bytes a row) and then
// its down rows likewise (downRow bytes a row), every gate-and-up task
// before any down task so that a down task rarely waits for its expert.
// Runs are whole groups of 16 rows (the R16 layout's).
func (w *moeWork) plan(whole bool, taskBytes, f, n, gateUpRow, downRow int) {
	w.tasks = w.tasks[:0]
	if whole {
		for i := range w.acts {
			w.tasks = append(w.tasks, moeTask{phase: phaseWhole, expert: int32(i)})
		}
		return
	}
	// run is the rows of one of the about rows·rowBytes/taskBytes even
	// tasks of a product.
	run := func(rows, rowBytes int) int {
		tasks := max(1, rows*rowBytes/max(taskBytes, 1))
		return max(16, ((rows+tasks-1)/tasks+15)&^15)
	}
	gu, dr := run(f, gateUpRow), run(n, downRow)
	for i := range w.acts {
		a := &w.acts[i]
		for lo := 0; lo < f; lo += gu {
			w.tasks = append(w.tasks, moeTask{phase: phaseGateUp, expert: int32(i), lo: lo, hi: min(lo+gu, f)})
			a.pending.Add(1)
		}
	}
	for i := range w.acts {
		for lo := 0; lo < n; lo += dr {
			w.tasks = append(w.tasks, moeTask{phase: phaseDown, expert: int32(i), lo: lo, hi: min(lo+dr, n)})
		}
	}
}
