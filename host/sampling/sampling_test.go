package sampling

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/generation"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

func f32(v float32) *float32 { return &v }
func i32(v int32) *int32     { return &v }
func u64(v uint64) *uint64   { return &v }

// randomRow is a logits row of normals scaled by spread.
func randomRow(r *rand.Rand, vocab int, spread float64) []float32 {
	l := make([]float32, vocab)
	for i := range l {
		l[i] = float32(r.NormFloat64() * spread)
	}
	return l
}

func newSeq(t testing.TB, p *ulanv1.SamplingParams, vocab int, prompt ...int32) *Seq {
	t.Helper()
	s, err := NewSeq(Config{Params: p, Vocab: vocab, EOS: []int32{0}, Prompt: prompt})
	require.NoError(t, err)
	return s
}

// step samples one token for s from a copy of row.
func step(t testing.TB, st *Stage, s *Seq, row []float32) Result {
	t.Helper()
	res := st.Step(context.Background(), []*Seq{s}, [][]float32{slices.Clone(row)})
	require.NoError(t, res[0].Err)
	return res[0]
}

// logSoftmax64 is an independent float64 log-softmax of l (−Inf stays
// −Inf).
func logSoftmax64(l []float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range l {
		mx = math.Max(mx, v)
	}
	var sum float64
	for _, v := range l {
		sum += math.Exp(v - mx)
	}
	out := make([]float64, len(l))
	for i, v := range l {
		out[i] = v - mx - math.Log(sum)
	}
	return out
}

func TestShapeAppliesEachStageAsDefined(t *testing.T) {
	const vocab = 12
	p := &ulanv1.SamplingParams{
		LogitBias:         map[uint32]float32{3: 2.5, 4: -100},
		BannedTokenIds:    []uint32{5},
		RepetitionPenalty: f32(1.5), PresencePenalty: f32(0.25), FrequencyPenalty: f32(0.5),
		MinTokens: 2, StopTokenIds: []uint32{7},
	}
	s := newSeq(t, p, vocab, 1, 2, 2, 6)
	row := make([]float32, vocab)
	for i := range row {
		row[i] = float32(i) - 4 // negative and positive logits
	}
	want := slices.Clone(row)
	want[3] += 2.5
	want[4] -= 100
	want[5] = float32(math.Inf(-1))
	want[0], want[7] = float32(math.Inf(-1)), float32(math.Inf(-1)) // EOS and stop id before min_tokens
	// History 1, 2, 2, 6: repetition divides positive, multiplies negative
	// logits; presence once; frequency per occurrence.
	rep, pres, freq := float32(1.5), float32(0.25), float32(0.5)
	want[1] = (-3)*rep - freq - pres
	want[2] = (-2)*rep - 2*freq - pres
	want[6] = 2/rep - freq - pres
	require.NoError(t, s.shape(row))
	require.Equal(t, want, row)
}

func TestPenaltyWindowSlides(t *testing.T) {
	s := newSeq(t, &ulanv1.SamplingParams{PenaltyWindow: i32(3), FrequencyPenalty: f32(1)}, 10, 1, 1, 2, 3)
	require.Equal(t, map[int32]int32{1: 1, 2: 1, 3: 1}, s.counts)
	s.Append(3)
	require.Equal(t, map[int32]int32{2: 1, 3: 2}, s.counts)
}

func TestAllowedTokensOnly(t *testing.T) {
	const vocab = 500
	st := NewStage()
	s := newSeq(t, &ulanv1.SamplingParams{AllowedTokenIds: []uint32{17, 300, 499}, Seed: u64(1)}, vocab)
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		tok := step(t, st, s, randomRow(r, vocab, 3)).Token
		require.Contains(t, []int32{17, 300, 499}, tok)
	}
}

func TestNothingToSampleIsAnError(t *testing.T) {
	// Known from the request: refused before any step.
	for _, p := range []*ulanv1.SamplingParams{
		{AllowedTokenIds: []uint32{2}, BannedTokenIds: []uint32{2}},
		{AllowedTokenIds: []uint32{0, 2}, BannedTokenIds: []uint32{2}, MinTokens: 1}, // 0 is EOS
		{AllowedTokenIds: []uint32{3}, StopTokenIds: []uint32{3}, MinTokens: 2},
	} {
		_, err := NewSeq(Config{Params: p, Vocab: 10, EOS: []int32{0}})
		var fe *FieldError
		require.ErrorAs(t, err, &fe, "%v", p)
		require.Equal(t, "sampling.allowed_token_ids", fe.Field)
	}
	s := newSeq(t, &ulanv1.SamplingParams{AllowedTokenIds: []uint32{0, 2}, BannedTokenIds: []uint32{2}}, 10)
	require.NotNil(t, s, "EOS may be sampled once min_tokens is reached")
	// Known from the logits only: the step fails.
	st := NewStage()
	s = newSeq(t, &ulanv1.SamplingParams{AllowedTokenIds: []uint32{2}}, 10)
	row := make([]float32, 10)
	row[2] = float32(math.Inf(-1))
	res := st.Step(context.Background(), []*Seq{s}, [][]float32{row})
	require.ErrorContains(t, res[0].Err, "no token can be sampled")
}

func TestTokenIDsOutsideTheVocabularyAreRefused(t *testing.T) {
	for _, p := range []*ulanv1.SamplingParams{
		{AllowedTokenIds: []uint32{1, 10}},
		{BannedTokenIds: []uint32{10}},
		{StopTokenIds: []uint32{11}},
		{LogitBias: map[uint32]float32{12: 1}},
	} {
		_, err := NewSeq(Config{Params: p, Vocab: 10})
		var fe *FieldError
		require.ErrorAs(t, err, &fe)
		require.Contains(t, fe.Reason, "outside the vocabulary of 10 tokens")
	}
}

func TestGreedyTakesTheArgmaxLowestIDOnTies(t *testing.T) {
	st := NewStage()
	s := newSeq(t, &ulanv1.SamplingParams{Temperature: f32(0)}, 8)
	require.Equal(t, int32(2), step(t, st, s, []float32{0, 1, 3, 3, -1, 2, 0, 0}).Token)
}

func TestSeedReproducesAndChoicesDiffer(t *testing.T) {
	const vocab = 1000
	run := func(choice int) []int32 {
		st := NewStage()
		s, err := NewSeq(Config{Params: &ulanv1.SamplingParams{Seed: u64(42), TopP: f32(0.95)}, Vocab: vocab, Choice: choice})
		require.NoError(t, err)
		r := rand.New(rand.NewPCG(7, 7))
		var toks []int32
		for range 64 {
			toks = append(toks, step(t, st, s, randomRow(r, vocab, 2)).Token)
		}
		return toks
	}
	require.Equal(t, run(0), run(0))
	require.NotEqual(t, run(0), run(1))
}

func TestMinTokensAndEnds(t *testing.T) {
	st := NewStage()
	s := newSeq(t, &ulanv1.SamplingParams{MinTokens: 3, StopTokenIds: []uint32{4}, Temperature: f32(0)}, 6)
	row := []float32{9, 0, 0, 1, 8, 0} // EOS (0) and the stop id (4) lead
	for range 3 {
		require.Equal(t, int32(3), step(t, st, s, row).Token)
	}
	tok := step(t, st, s, row).Token
	require.Equal(t, int32(0), tok)
	require.True(t, s.Ends(tok))
	require.True(t, s.Ends(4))
	require.False(t, s.Ends(3))
	ig := newSeq(t, &ulanv1.SamplingParams{IgnoreEos: true}, 6)
	require.False(t, ig.Ends(0))
}

// chiSquare returns the statistic of counts against probabilities, with
// bins of expected count below 5 merged, and its degrees of freedom.
func chiSquare(counts []int, probs []float64, n int) (float64, int) {
	var stat float64
	bins := 0
	var obs, exp float64
	flush := func() {
		if exp > 0 {
			stat += (obs - exp) * (obs - exp) / exp
			bins++
		}
		obs, exp = 0, 0
	}
	for i, p := range probs {
		obs += float64(counts[i])
		exp += p * float64(n)
		if exp >= 5 {
			flush()
		}
	}
	flush()
	return stat, bins - 1
}

// chiSquareCritical is the 1−alpha quantile of χ²(dof) by Wilson–Hilferty,
// with z for alpha = 0.001.
func chiSquareCritical(dof int) float64 {
	const z = 3.090
	k := float64(dof)
	return k * math.Pow(1-2/(9*k)+z*math.Sqrt(2/(9*k)), 3)
}

// TestExactWithoutTruncation draws with no truncation at all from a flat
// distribution, where the first candidates hold a small part of the mass:
// the draws must follow the whole vocabulary's softmax — with the built-in
// policy, and with the standard plugin, whose keep-all answer (temperature
// only) the host applies over the whole row.
func TestExactWithoutTruncation(t *testing.T) {
	vocab, n := 1000, 10000
	if raceEnabled || testing.Short() {
		vocab, n = 400, 4000
	}
	r := rand.New(rand.NewPCG(3, 4))
	row := randomRow(r, vocab, 0.5)
	var gp *generation.Plugin
	if !testing.Short() {
		gp = standardPlugin(t, nil)
	}
	for _, p := range []*ulanv1.SamplingParams{
		{Seed: u64(9)},
		{Seed: u64(9), Temperature: f32(1.7)},
		{Seed: u64(9), TopP: f32(0.999)},
		{Seed: u64(10), Temperature: f32(1.7)}, // through the plugin
	} {
		st := NewStage()
		s := newSeq(t, p, vocab)
		if p.GetSeed() == 10 {
			if gp == nil {
				continue
			}
			var err error
			s, err = NewSeq(Config{Params: p, Vocab: vocab, EOS: []int32{0}, Plugin: gp})
			require.NoError(t, err)
		}
		temp := 1.0
		if p.Temperature != nil {
			temp = float64(*p.Temperature)
		}
		l := make([]float64, vocab)
		for i, v := range row {
			l[i] = float64(v) / temp
		}
		lp := logSoftmax64(l)
		probs := make([]float64, vocab)
		for i := range lp {
			probs[i] = math.Exp(lp[i])
		}
		if p.TopP != nil {
			probs = nucleus(probs, float64(*p.TopP))
		}
		counts := make([]int, vocab)
		beyond := 0
		for range n {
			tok := step(t, st, s, row).Token
			counts[tok]++
			if rankOf(row, tok) >= firstK {
				beyond++
			}
		}
		stat, dof := chiSquare(counts, probs, n)
		t.Logf("%v: chi-square %.1f, dof %d, critical %.1f; %d of %d draws beyond the first %d candidates", p, stat, dof, chiSquareCritical(dof), beyond, n, firstK)
		require.Less(t, stat, chiSquareCritical(dof))
		require.Greater(t, beyond, n/2, "most of the mass lies beyond the first candidates")
	}
}

// nucleus keeps the smallest most-likely set reaching mass p, renormalised.
func nucleus(probs []float64, p float64) []float64 {
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case probs[a] > probs[b]:
			return -1
		case probs[a] < probs[b]:
			return 1
		}
		return 0
	})
	out := make([]float64, len(probs))
	var run float64
	for _, i := range idx {
		out[i] = probs[i]
		run += probs[i]
		if run >= p {
			break
		}
	}
	for i := range out {
		out[i] /= run
	}
	return out
}

// rankOf is tok's rank by logit in row (0 for the largest).
func rankOf(row []float32, tok int32) int {
	n := 0
	for i, v := range row {
		if v > row[tok] || (v == row[tok] && int32(i) < tok) {
			n++
		}
	}
	return n
}

func TestLogprobsAreTheSamplingDistributions(t *testing.T) {
	const vocab = 400
	r := rand.New(rand.NewPCG(5, 6))
	row := randomRow(r, vocab, 2)
	st := NewStage()
	p := &ulanv1.SamplingParams{Seed: u64(1), TopK: i32(5), Temperature: f32(0.5), Logprobs: true, TopLogprobs: 3,
		PresencePenalty: f32(1)}
	s := newSeq(t, p, vocab, 0)
	for range 20 {
		hist := slices.Clone(s.history)
		res := step(t, st, s, row)
		// Independently: presence penalty on seen tokens, top 5, /0.5.
		l := make([]float64, vocab)
		for i, v := range row {
			l[i] = float64(v)
			if slices.Contains(hist, int32(i)) {
				l[i] = float64(v - 1)
			}
		}
		idx := make([]int, vocab)
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case l[a] > l[b]:
				return -1
			case l[a] < l[b]:
				return 1
			}
			return 0
		})
		top := make([]float64, 5)
		for i := range top {
			top[i] = l[idx[i]] / 0.5
		}
		lp := logSoftmax64(top)
		k := slices.Index(idx[:5], int(res.Token))
		require.GreaterOrEqual(t, k, 0, "the token is one of the top 5")
		require.InDelta(t, lp[k], float64(res.Logprob), 1e-5)
		require.Len(t, res.Top, 3)
		for j, a := range res.Top {
			require.Equal(t, int32(idx[j]), a.Token)
			require.InDelta(t, lp[j], float64(a.Logprob), 1e-5)
		}
	}
}
