package standard_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/sampler"
	"github.com/ulan-ai/ulan/sdk/go/sampler/samplemath"
	"github.com/ulan-ai/ulan/sdk/go/sampler/standard"
)

// params is a test's view of the standard parameters; nil fields are unset.
type params struct {
	temp, topP, minP, typ *float32
	topK                  *int32
	order                 []string
}

func f32(v float32) *float32 { return &v }
func i32(v int32) *int32     { return &v }

// openJSON writes smp_open's JSON as the host does.
func (p params) openJSON(vocab int) []byte {
	var fields []string
	add := func(name string, v *float32) {
		if v != nil {
			fields = append(fields, fmt.Sprintf("%q: %s", name, strconv.FormatFloat(float64(*v), 'g', -1, 32)))
		}
	}
	add("temperature", p.temp)
	add("top_p", p.topP)
	add("min_p", p.minP)
	add("typical_p", p.typ)
	if p.topK != nil {
		fields = append(fields, fmt.Sprintf(`"top_k": %d`, *p.topK))
	}
	fields = append(fields, `"seed": "42"`, `"logit_bias": {"3": 1.5}`) // the host's fields, ignored
	s := `{"sampling": {` + strings.Join(fields, ", ") + `}`
	if p.order != nil {
		o, _ := json.Marshal(p.order)
		s += `, "params": {"order": ` + string(o) + `}`
	}
	return []byte(s + fmt.Sprintf(`, "vocab_size": %d}`, vocab))
}

// String names the parameters that are set, for test names.
func (p params) String() string {
	var s []string
	for _, f := range []struct {
		name string
		v    *float32
	}{{"temperature", p.temp}, {"top_p", p.topP}, {"min_p", p.minP}, {"typical_p", p.typ}} {
		if f.v != nil {
			s = append(s, fmt.Sprintf("%s=%v", f.name, *f.v))
		}
	}
	if p.topK != nil {
		s = append(s, fmt.Sprintf("top_k=%d", *p.topK))
	}
	if p.order != nil {
		s = append(s, "order="+strings.Join(p.order, "+"))
	}
	if len(s) == 0 {
		return "defaults"
	}
	return strings.Join(s, ",")
}

// reference is llama.cpp's chain written plainly over the whole row, in
// float64 with the math package: sort, then each stage renormalises its
// survivors with a softmax. It returns each kept token's final logit.
func reference(row []float32, p params) map[int32]float32 {
	type tok struct {
		id int32
		l  float32
	}
	toks := make([]tok, len(row))
	for i, l := range row {
		toks[i] = tok{int32(i), l}
	}
	byLogit := func() {
		sort.SliceStable(toks, func(a, b int) bool {
			if toks[a].l != toks[b].l {
				return toks[a].l > toks[b].l
			}
			return toks[a].id < toks[b].id
		})
	}
	byLogit()
	probs := func() []float64 {
		m := math.Inf(-1)
		for _, t := range toks {
			m = max(m, float64(t.l))
		}
		ps := make([]float64, len(toks))
		var z float64
		for i, t := range toks {
			ps[i] = math.Exp(float64(t.l) - m)
			z += ps[i]
		}
		for i := range ps {
			ps[i] /= z
		}
		return ps
	}
	order := p.order
	if order == nil {
		order = []string{"top_k", "typical_p", "top_p", "min_p", "temperature"}
	}
	for _, st := range order {
		switch st {
		case "top_k":
			if p.topK != nil && *p.topK > 0 && len(toks) > int(*p.topK) {
				toks = toks[:*p.topK]
			}
		case "top_p":
			if p.topP != nil && *p.topP < 1 {
				cum := 0.0
				for i, q := range probs() {
					if cum += q; cum >= float64(*p.topP) {
						toks = toks[:i+1]
						break
					}
				}
			}
		case "min_p":
			if p.minP != nil && *p.minP > 0 {
				ps := probs()
				var kept []tok
				for i, t := range toks {
					if ps[i] >= float64(*p.minP)*ps[0] {
						kept = append(kept, t)
					}
				}
				toks = kept
			}
		case "typical_p":
			if p.typ != nil && *p.typ < 1 {
				ps := probs()
				h := 0.0
				for _, q := range ps {
					if q > 0 {
						h -= q * math.Log(q)
					}
				}
				idx := make([]int, len(toks))
				for i := range idx {
					idx[i] = i
				}
				shift := func(i int) float64 { return math.Abs(-math.Log(ps[i]) - h) }
				sort.SliceStable(idx, func(a, b int) bool { return shift(idx[a]) < shift(idx[b]) })
				cum, keep := 0.0, len(idx)
				for j, i := range idx {
					if cum += ps[i]; cum > float64(*p.typ) {
						keep = j + 1
						break
					}
				}
				var kept []tok
				for _, i := range idx[:keep] {
					kept = append(kept, toks[i])
				}
				toks = kept
				byLogit()
			}
		case "temperature":
			if p.temp != nil && *p.temp == 0 {
				toks = toks[:1]
			} else if p.temp != nil && *p.temp != 1 {
				for i := range toks {
					toks[i].l /= *p.temp
				}
			}
		}
	}
	kept := map[int32]float32{}
	for _, t := range toks {
		kept[t.id] = t.l
	}
	return kept
}

// hostRow is what host/sampling hands a policy: the row's top k, sorted,
// ties to the lower id, and the whole row's log-sum-exp.
func hostRow(row []float32, k int) *sampler.Row {
	k = min(k, len(row))
	ids, cand := make([]int32, k), make([]float32, k)
	if _, err := samplemath.TopK(row, k, ids, cand); err != nil {
		panic(err)
	}
	m := math.Inf(-1)
	for _, l := range row {
		m = max(m, float64(l))
	}
	var sum float64
	for _, l := range row {
		sum += math.Exp(float64(l) - m)
	}
	return &sampler.Row{IDs: ids, Logits: cand, Out: slices.Clone(cand), Token: -1, LSE: float32(m + math.Log(sum))}
}

// apply runs the policy as the host does: from k candidates, widening by
// 16 up to the whole row while it asks to. It returns the final row and
// how often it widened.
func apply(t testing.TB, pol *standard.Policy, row []float32, k int) (*sampler.Row, int) {
	for n := 0; ; n++ {
		r := hostRow(row, k)
		widen, err := pol.Apply(r, len(row))
		require.NoError(t, err)
		if !widen {
			return r, n
		}
		require.Less(t, len(r.IDs), len(row), "asked to widen a complete row")
		k *= 16
	}
}

// kept is the row's surviving candidates and their output logits.
func kept(r *sampler.Row) map[int32]float32 {
	m := map[int32]float32{}
	for i, v := range r.Out {
		if !math.IsInf(float64(v), -1) {
			m[r.IDs[i]] = v
		}
	}
	return m
}

func randomRow(rng *rand.Rand, n int) []float32 {
	row := make([]float32, n)
	sigma := 0.5 + 3*rng.Float64()
	for i := range row {
		row[i] = float32(rng.NormFloat64() * sigma)
		if rng.IntN(20) == 0 && i > 0 {
			row[i] = row[rng.IntN(i)] // ties
		}
	}
	return row
}

func randomParams(rng *rand.Rand) params {
	var p params
	if rng.IntN(2) == 0 {
		p.temp = f32([]float32{0, 0.3, 0.7, 1, 1.5}[rng.IntN(5)])
	}
	if rng.IntN(2) == 0 {
		p.topK = i32(int32(1 + rng.IntN(60)))
	}
	if rng.IntN(2) == 0 {
		p.topP = f32(float32(0.3 + 0.69*rng.Float64()))
	}
	if rng.IntN(2) == 0 {
		p.minP = f32(float32(0.001 + 0.3*rng.Float64()))
	}
	if rng.IntN(3) == 0 {
		p.typ = f32(float32(0.2 + 0.79*rng.Float64()))
	}
	if rng.IntN(3) == 0 {
		names := []string{"top_k", "typical_p", "top_p", "min_p", "temperature"}
		rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		p.order = names[:1+rng.IntN(len(names))]
	}
	return p
}

// TestMatchesReference: on random rows and parameters, what the policy
// keeps (widening as it asks, from 8 candidates) is exactly what the
// reference chain keeps over the whole row, with the same logits.
func TestMatchesReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	widened := 0
	for c := range 600 {
		row := randomRow(rng, 50+rng.IntN(400))
		p := randomParams(rng)
		pol, err := standard.Parse(p.openJSON(len(row)))
		require.NoError(t, err, p)
		r, n := apply(t, pol, row, 8)
		widened += n
		require.Equal(t, reference(row, p), kept(r), "case %d: %v", c, p)
		// The complete row gives the same answer, without widening.
		full, n := apply(t, pol, row, len(row))
		require.Zero(t, n)
		require.Equal(t, kept(r), kept(full), "case %d: %v", c, p)
	}
	t.Logf("%d widenings over 600 rows", widened)
}

// TestStages checks each stage alone against the reference on its own,
// with and without a temperature after it.
func TestStages(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 14))
	for _, p := range []params{
		{topK: i32(5)}, {topK: i32(1)}, {topP: f32(0.9)}, {topP: f32(0.5)}, {minP: f32(0.1)}, {minP: f32(1)},
		{typ: f32(0.8)}, {typ: f32(0.2)}, {temp: f32(0.7)}, {temp: f32(0)},
		{topK: i32(20), temp: f32(0.7)}, {topP: f32(0.9), temp: f32(2)},
		{temp: f32(0.5), topP: f32(0.9), order: []string{"temperature", "top_p"}},
		{temp: f32(0.5), minP: f32(0.05), order: []string{"temperature", "min_p"}},
	} {
		t.Run(p.String(), func(t *testing.T) {
			for range 40 {
				row := randomRow(rng, 300)
				pol, err := standard.Parse(p.openJSON(len(row)))
				require.NoError(t, err)
				r, _ := apply(t, pol, row, 8)
				require.Equal(t, reference(row, p), kept(r))
			}
		})
	}
}

// TestExactness: the policy widens exactly when the candidates cannot
// decide.
func TestExactness(t *testing.T) {
	t.Parallel()
	flat := make([]float32, 1000)
	for _, tc := range []struct {
		p     params
		widen bool
	}{
		{params{topP: f32(0.99)}, true},               // 64 of 1000 equal tokens hold 6.4%
		{params{topP: f32(0.05)}, false},              // 50 of them reach 5%
		{params{}, true},                              // no truncation at all
		{params{temp: f32(0.7)}, true},                // nor with a temperature
		{params{topK: i32(64)}, false},                // the candidates are the top 64
		{params{topK: i32(65)}, true},                 // one short
		{params{minP: f32(0.5)}, true},                // every token passes
		{params{typ: f32(0.5)}, true},                 // needs the whole distribution
		{params{temp: f32(0)}, false},                 // greedy
		{params{topK: i32(10), typ: f32(0.5)}, false}, // after top_k the set is known
		{params{temp: f32(2), topP: f32(0.05), order: []string{"temperature", "top_p"}}, true},
	} {
		pol, err := standard.Parse(tc.p.openJSON(len(flat)))
		require.NoError(t, err)
		r := hostRow(flat, 64)
		widen, err := pol.Apply(r, len(flat))
		require.NoError(t, err)
		require.Equal(t, tc.widen, widen, "%v", tc.p)
	}

	// A complete row never widens, whatever the parameters.
	rng := rand.New(rand.NewPCG(15, 16))
	for range 300 {
		row := randomRow(rng, 1+rng.IntN(200))
		p := randomParams(rng)
		pol, err := standard.Parse(p.openJSON(len(row)))
		require.NoError(t, err)
		widen, err := pol.Apply(hostRow(row, len(row)), len(row))
		require.NoError(t, err)
		require.False(t, widen, "%v", p)
	}

	// An unknown vocabulary is never complete.
	pol, err := standard.Parse([]byte(`{}`))
	require.NoError(t, err)
	widen, err := pol.Apply(hostRow([]float32{1, 2}, 2), 0)
	require.NoError(t, err)
	require.True(t, widen)
}

func TestGreedy(t *testing.T) {
	t.Parallel()
	pol, err := standard.Parse(params{temp: f32(0)}.openJSON(100))
	require.NoError(t, err)
	row := make([]float32, 100)
	row[7], row[3], row[50] = 5, 5, 4 // a tie: the lower id wins
	r := hostRow(row, 4)
	widen, err := pol.Apply(r, 100)
	require.NoError(t, err)
	require.False(t, widen)
	require.Equal(t, map[int32]float32{3: 5}, kept(r))
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		`not json`,
		`{"sampling": {"temperature": -1}}`,
		`{"sampling": {"top_k": -2}}`,
		`{"sampling": {"top_p": 0}}`,
		`{"sampling": {"top_p": 1.5}}`,
		`{"sampling": {"min_p": 2}}`,
		`{"sampling": {"typical_p": 0}}`,
		`{"sampling": {"temperature": "NaN"}}`,
		`{"params": {"order": ["top_k", "nucleus"]}}`,
		`{"params": {"order": ["top_k", "top_k"]}}`,
		`{"vocab_size": -1}`,
	} {
		_, err := standard.Parse([]byte(bad))
		require.Error(t, err, bad)
	}
	_, err := standard.Parse([]byte(`{"sampling": {"temperature": 0.7, "top_k": 0, "top_p": 1, "min_p": 0, "typical_p": 1}, "params": {"order": []}, "vocab_size": 10}`))
	require.NoError(t, err)

	// A stage left out of order does not run.
	pol, err := standard.Parse([]byte(`{"sampling": {"top_k": 1}, "params": {"order": ["temperature"]}}`))
	require.NoError(t, err)
	r := hostRow([]float32{3, 2, 1}, 3)
	widen, err := pol.Apply(r, 3)
	require.NoError(t, err)
	require.False(t, widen)
	require.Len(t, kept(r), 3)
}

func TestBadRows(t *testing.T) {
	t.Parallel()
	pol, err := standard.Parse(params{topP: f32(0.5)}.openJSON(10))
	require.NoError(t, err)
	for _, r := range []*sampler.Row{
		{IDs: []int32{1, 2}, Logits: []float32{1}, Out: make([]float32, 2)},
		{IDs: []int32{1, 2}, Logits: []float32{1, 2}, Out: make([]float32, 2)},                           // not sorted
		{IDs: []int32{1}, Logits: []float32{float32(math.NaN())}, Out: make([]float32, 1)},               // NaN
		{IDs: []int32{1}, Logits: []float32{float32(math.Inf(-1))}, Out: make([]float32, 1)},             // nothing possible
		{IDs: []int32{1, 2}, Logits: []float32{2, 1}, Out: make([]float32, 2), LSE: 1},                   // LSE below the best logit
		{IDs: []int32{1, 2}, Logits: []float32{2, 1}, Out: make([]float32, 2), LSE: float32(math.NaN())}, // LSE NaN
	} {
		_, err := pol.Apply(r, 10)
		require.Error(t, err, "%+v", r)
	}
	widen, err := pol.Apply(&sampler.Row{}, 10)
	require.NoError(t, err)
	require.False(t, widen, "an empty row is left to the host")
}

// TestApplyAllocatesNothing: Apply runs on every step of every sequence;
// once its buffers have grown it allocates nothing.
func TestApplyAllocatesNothing(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	row := randomRow(rng, 4096)
	for _, p := range []params{
		{topK: i32(40), topP: f32(0.95), minP: f32(0.05), temp: f32(0.8)},
		{topK: i32(100), typ: f32(0.7), temp: f32(0.8)},
	} {
		pol, err := standard.Parse(p.openJSON(len(row)))
		require.NoError(t, err)
		r := hostRow(row, len(row))
		allocs := testing.AllocsPerRun(20, func() {
			copy(r.Out, r.Logits)
			if _, err := pol.Apply(r, len(row)); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, allocs, "%v", p)
	}
}

func BenchmarkApply(b *testing.B) {
	rng := rand.New(rand.NewPCG(19, 20))
	row := randomRow(rng, 129280)
	for _, tc := range []struct {
		name string
		p    params
		k    int
	}{
		{"llama.cpp-defaults/k64", params{topK: i32(40), topP: f32(0.95), minP: f32(0.05), temp: f32(0.8)}, 64},
		{"top_p/k4096", params{topP: f32(0.9)}, 4096},
		{"typical/vocab", params{typ: f32(0.9)}, len(row)},
	} {
		pol, err := standard.Parse(tc.p.openJSON(len(row)))
		require.NoError(b, err)
		r := hostRow(row, tc.k)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := pol.Apply(r, len(row)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
