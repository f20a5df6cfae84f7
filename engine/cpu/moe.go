package cpu

import (
	"math"
	"sort"

	"github.com/ulan-ai/ulan/engine"
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
	probs := make([]float32, X)
	sel := make([]float32, X)
	order := make([]int, X)
	for t := range T {
		row := lt.f[t*X : (t+1)*X]
		score(spec.Scoring, row, probs)
		copy(sel, probs)
		for i := range bv {
			sel[i] += bv[i]
		}
		if spec.Groups > 1 {
			maskGroups(sel, spec)
		}
		for i := range order {
			order[i] = i
		}
		// Ties keep the lower expert id first, as a stable sort does.
		sort.SliceStable(order, func(a, b int) bool { return sel[order[a]] > sel[order[b]] })
		var sum float32
		for j := range k {
			e := order[j]
			ids.i[t*k+j] = int32(e)
			weights.f[t*k+j] = probs[e]
			sum += probs[e]
		}
		normalizeWeights(weights.f[t*k:(t+1)*k], sum, spec)
	}
	return ids, weights
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
			out[i] = 1 / (1 + float32(math.Exp(float64(-v))))
		}
	default: // Softmax
		mx := float32(math.Inf(-1))
		for _, v := range logits {
			mx = max(mx, v)
		}
		var sum float64
		for i, v := range logits {
			out[i] = float32(math.Exp(float64(v - mx)))
			sum += float64(out[i])
		}
		inv := float32(1 / sum)
		for i := range out {
			out[i] *= inv
		}
	}
}

// maskGroups keeps the TopKGroups best groups of consecutive experts and sets
// every other expert's selection score to −∞ (spec §7 trap 18: never 0).
func maskGroups(sel []float32, spec engine.RouteSpec) {
	per := len(sel) / spec.Groups
	type group struct {
		id    int
		score float32
	}
	groups := make([]group, spec.Groups)
	for g := range groups {
		best, second := float32(math.Inf(-1)), float32(math.Inf(-1))
		for _, v := range sel[g*per : (g+1)*per] {
			if v > best {
				best, second = v, best
			} else if v > second {
				second = v
			}
		}
		s := best
		if spec.GroupScore != engine.GroupMax {
			s = best + second
		}
		groups[g] = group{g, s}
	}
	sort.SliceStable(groups, func(a, b int) bool { return groups[a].score > groups[b].score })
	for _, g := range groups[spec.TopKGroups:] {
		for i := g.id * per; i < (g.id+1)*per; i++ {
			sel[i] = float32(math.Inf(-1))
		}
	}
}

func (c *context) ExpertFFN(x, ids, weights, gate, up, down engine.Tensor, clamp float32) engine.Tensor {
	xt, ok := c.f32("ExpertFFN", x)
	wt, ok2 := c.f32("ExpertFFN weights", weights)
	gt, ok3 := c.weight("ExpertFFN gate", gate, 3)
	ut, ok4 := c.weight("ExpertFFN up", up, 3)
	dt, ok5 := c.weight("ExpertFFN down", down, 3)
	if !ok || !ok2 || !ok3 || !ok4 || !ok5 {
		return &tensor{}
	}
	it, isT := ids.(*tensor)
	if !isT || it.dt != engine.I32 {
		return c.fail("ExpertFFN: ids must be i32")
	}
	T, n := xt.shape[0], xt.shape[1]
	X, f := gt.shape[0], gt.shape[1]
	k := it.shape[1]
	if gt.shape[2] != n || ut.shape[0] != X || ut.shape[1] != f || ut.shape[2] != n ||
		dt.shape[0] != X || dt.shape[1] != n || dt.shape[2] != f || it.shape[0] != T || len(wt.f) != T*k {
		return c.fail("ExpertFFN: x %v, gate %v, up %v, down %v, ids %v", xt, gt, ut, dt, it)
	}
	// Group the (token, slot) pairs by expert so each expert's weights are
	// read once per step for every token routed to it.
	type use struct{ t, slot int }
	byExpert := make([][]use, X)
	for t := range T {
		for j := range k {
			e := int(it.i[t*k+j])
			if e < 0 || e >= X {
				return c.fail("ExpertFFN: expert id %d of %d", e, X)
			}
			byExpert[e] = append(byExpert[e], use{t, j})
		}
	}
	// outs[t][slot] holds expert slot j's output for token t; they are summed
	// in slot order afterwards, as llama.cpp adds them. All experts' gate and
	// up products share one parallel section, and all down products another.
	// The tokens are quantized once for every expert (c.prepare); each
	// expert's inputs are then packed, and its down inputs prepared, on the
	// goroutines.
	outs := c.output(T * k * n)
	type active struct {
		e          int
		tokens     []int
		xs, gs, us [][]float32
		ds         [][]float32
		pg, pu, pd *prepared
	}
	allG := c.prepare(xt, gt, n)
	allU := c.prepare(xt, ut, n)
	var acts []*active
	for e, uses := range byExpert {
		if len(uses) == 0 {
			continue
		}
		m := len(uses)
		a := &active{e: e, tokens: make([]int, m), xs: make([][]float32, m), gs: make([][]float32, m), us: make([][]float32, m), ds: make([][]float32, m)}
		hidden := c.output(2 * f * m)
		for i, u := range uses {
			a.tokens[i] = u.t
			a.xs[i] = xt.f[u.t*n : (u.t+1)*n]
			a.gs[i] = hidden[2*i*f : (2*i+1)*f]
			a.us[i] = hidden[(2*i+1)*f : (2*i+2)*f]
			a.ds[i] = outs[(u.t*k+u.slot)*n : (u.t*k+u.slot+1)*n]
		}
		a.pg, a.pd = c.newPrepared(), c.newPrepared()
		a.pu = a.pg
		if allU != allG {
			a.pu = c.newPrepared()
		}
		acts = append(acts, a)
	}
	c.b.each(len(acts), func(i int) {
		a := acts[i]
		a.pg.fillRows(allG, a.tokens, a.xs)
		if a.pu != a.pg {
			a.pu.fillRows(allU, a.tokens, a.xs)
		}
	})
	var jobs []job
	for _, a := range acts {
		jobs = appendJobs(jobs, partMatrix(gt, a.e, f, n), a.pg, f, a.gs)
		jobs = appendJobs(jobs, partMatrix(ut, a.e, f, n), a.pu, f, a.us)
	}
	c.b.runJobs(jobs)
	c.b.each(len(acts), func(i int) {
		a := acts[i]
		for i := range a.gs {
			for j := range a.gs[i] {
				a.gs[i][j] = swiglu(a.gs[i][j], a.us[i][j], clamp)
			}
		}
		a.pd.fill(weightKind(dt), f, a.gs, nil)
	})
	jobs = jobs[:0]
	for _, a := range acts {
		jobs = appendJobs(jobs, partMatrix(dt, a.e, n, f), a.pd, n, a.ds)
	}
	c.b.runJobs(jobs)
	y := c.newF32(T, n)
	for t := range T {
		dst := y.f[t*n : (t+1)*n]
		for j := range k {
			w := wt.f[t*k+j]
			src := outs[(t*k+j)*n : (t*k+j+1)*n]
			for i := range dst {
				dst[i] += src[i] * w
			}
		}
	}
	return y
}
