// Package standard is the standard sampling policy — llama.cpp's sampler
// chain of top_k, typical_p, top_p, min_p and temperature — for Go sampler
// plugins and for the host, which runs it natively as the fallback when a
// sampler plugin fails. The first-party plugin plugins/standard is its C
// port, which computes the same bits (the arithmetic is
// sdk/go/sampler/samplemath's, operation for operation; host/plugin's tests
// compare the two row by row), so a seed gives the same tokens either way.
//
// The policy is exact: where a stage needs probability mass beyond the
// candidates the host pre-selected, Apply asks for a wider set instead of
// guessing (sdk/ABI.md §6.2, out_token −2).
package standard

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/ulan-ai/ulan/sdk/go/sampler"
	"github.com/ulan-ai/ulan/sdk/go/sampler/samplemath"
)

// stage is one step of the chain.
type stage uint8

const (
	topK stage = iota
	typicalP
	topP
	minP
	temperature
)

var stageNames = map[string]stage{
	"top_k": topK, "typical_p": typicalP, "top_p": topP, "min_p": minP, "temperature": temperature,
}

// defaultOrder is llama.cpp's (common_params_sampling's samplers, less the
// ones the host runs itself: penalties, DRY, and less XTC and top-n-sigma).
var defaultOrder = []stage{topK, typicalP, topP, minP, temperature}

// Policy is one sequence's standard policy: its parameters, read once by
// Parse, and buffers that Apply reuses from step to step. It is not safe
// for concurrent use.
type Policy struct {
	vocab       int     // smp_open's vocab_size (0: not given)
	order       []stage // the stages that do something, in order
	temperature float32
	topK        int
	topP        float32
	minP        float32
	typicalP    float32

	live    []int32   // surviving candidates, by index, ascending
	ident   []int32   // 0, 1, 2, …: live's start
	scratch []int32   // typical_p's order
	shifted []float64 // typical_p's |surprise − entropy|, by candidate
	exps    []float64 // the survivors' e^(l − shift), in live's order
}

// Parse reads the policy from smp_open's JSON (sdk/ABI.md §6.2; see
// sampler.OpenRequest):
//
//	{"sampling": {"temperature": 0.7, "top_k": 40, "top_p": 0.9,
//	              "min_p": 0.05, "typical_p": 1},
//	 "params": {"order": ["top_k", "typical_p", "top_p", "min_p", "temperature"]},
//	 "vocab_size": 129280}
//
// From sampling it reads temperature (finite, ≥ 0; unset means 1, 0 means
// greedy), top_k (≥ 0; 0 or unset: off), top_p and typical_p (in (0, 1];
// 1 or unset: off) and min_p (in [0, 1]; 0 or unset: off); other fields are
// the host's. params may set order, the stages to run, in order, each at
// most once; a stage left out does not run. The default is llama.cpp's:
// top_k, typical_p, top_p, min_p, temperature. Anything else, or a value
// out of range, is an error naming the field.
func Parse(openJSON []byte) (*Policy, error) {
	// One pass over the JSON (sampler.ParseOpen and then the parts would be
	// three, each slow in a WebAssembly guest).
	var o struct {
		Sampling struct {
			Temperature *float32 `json:"temperature"`
			TopK        *int32   `json:"top_k"`
			TopP        *float32 `json:"top_p"`
			MinP        *float32 `json:"min_p"`
			TypicalP    *float32 `json:"typical_p"`
		} `json:"sampling"`
		Params struct {
			Order []string `json:"order"`
		} `json:"params"`
		VocabSize int `json:"vocab_size"`
	}
	if err := json.Unmarshal(openJSON, &o); err != nil {
		return nil, fmt.Errorf("standard: smp_open: %w", err)
	}
	if o.VocabSize < 0 {
		return nil, fmt.Errorf("standard: smp_open: vocab_size %d", o.VocabSize)
	}
	s, params := o.Sampling, o.Params
	p := &Policy{temperature: 1, topP: 1, typicalP: 1, vocab: o.VocabSize}
	get := func(v *float32, def float32) float32 {
		if v == nil {
			return def
		}
		return *v
	}
	p.temperature = get(s.Temperature, 1)
	p.topP = get(s.TopP, 1)
	p.minP = get(s.MinP, 0)
	p.typicalP = get(s.TypicalP, 1)
	if s.TopK != nil {
		p.topK = int(*s.TopK)
	}
	switch {
	case !(p.temperature >= 0) || math.IsInf(float64(p.temperature), 1):
		return nil, fmt.Errorf("standard: sampling.temperature %v: want a finite number ≥ 0", p.temperature)
	case p.topK < 0:
		return nil, fmt.Errorf("standard: sampling.top_k %d: want ≥ 0 (0 is off)", p.topK)
	case !(p.topP > 0 && p.topP <= 1):
		return nil, fmt.Errorf("standard: sampling.top_p %v: want more than 0, at most 1", p.topP)
	case !(p.minP >= 0 && p.minP <= 1):
		return nil, fmt.Errorf("standard: sampling.min_p %v: want 0 to 1", p.minP)
	case !(p.typicalP > 0 && p.typicalP <= 1):
		return nil, fmt.Errorf("standard: sampling.typical_p %v: want more than 0, at most 1", p.typicalP)
	}
	order := defaultOrder
	if params.Order != nil {
		order = nil
		for i, name := range params.Order {
			st, ok := stageNames[name]
			if !ok {
				return nil, fmt.Errorf("standard: params.order[%d]: %q is not one of top_k, typical_p, top_p, min_p, temperature", i, name)
			}
			if slices.Contains(order, st) {
				return nil, fmt.Errorf("standard: params.order[%d]: %q comes twice", i, name)
			}
			order = append(order, st)
		}
	}
	for _, st := range order {
		off := st == topK && p.topK == 0 || st == typicalP && p.typicalP == 1 || st == topP && p.topP == 1 ||
			st == minP && p.minP == 0 || st == temperature && p.temperature == 1
		if !off {
			p.order = append(p.order, st)
		}
	}
	return p, nil
}

// VocabSize is smp_open's vocab_size, 0 when it was not given.
func (p *Policy) VocabSize() int { return p.vocab }

// KeepsAll reports whether the policy keeps every token and only divides
// the logits by t (1 when it has no temperature stage): no truncating
// stage is on and the temperature is not 0. A host may then draw from the
// whole row, unsorted, with the logits Apply would give.
func (p *Policy) KeepsAll() (t float32, ok bool) {
	t = 1
	for _, st := range p.order {
		if st != temperature || p.temperature == 0 {
			return 0, false
		}
		t = p.temperature
	}
	return t, true
}

// errRow reports a row Apply cannot work with.
var errRow = errors.New("standard: bad row")

// Apply runs the policy over one row in processor mode. r.IDs and r.Logits
// are the candidates, sorted by logit, largest first (ties to the lower
// id); r.FullLSE gives the log-sum-exp of the whole row, which Apply reads
// only for top_p over the whole, unscaled row (the first stage that runs is
// top_p); vocab is the number of
// tokens the row could hold (the vocabulary size, or fewer where the rest
// have probability 0): the candidates are complete when len(r.IDs) ≥ vocab.
// vocab ≤ 0 means unknown, never complete.
//
// Apply writes r.Out: −Inf for each candidate a stage dropped, the
// (temperature-scaled) logit of each one kept, for the host to draw from
// with softmax(Out). It reads only r's candidates and LSE, and allocates
// only when a row is longer than any before.
//
// Each stage sees the survivors of the stages before it, with their
// probabilities renormalised over them, as in llama.cpp's chain:
//
//   - top_k keeps the k most likely;
//   - typical_p (locally typical sampling, llama_sampler_typical) keeps
//     the fewest tokens closest to the entropy, in order of
//     |−log p − H|, whose mass exceeds typical_p;
//   - top_p keeps the smallest most-likely prefix whose mass reaches top_p
//     (at least one token);
//   - min_p keeps the tokens with p ≥ min_p·p_max;
//   - temperature divides the logits by T; T = 0 keeps only the most
//     likely token (greedy, ties to the lower id).
//
// Exactness: the set of survivors is open — it may hold tokens beyond the
// candidates — until a stage closes it: top_k when len(IDs) ≥ k, top_p
// when the candidates' mass reaches top_p, min_p when a candidate falls
// below its threshold, greedy always. Before any stage has run, the open
// set is the whole row and probabilities are exp(l − LSE), true ones.
// After a stage that leaves the set open (it may have dropped tokens past
// the candidates) or a temperature ≠ 1, the open set's normaliser is
// unknown: top_p then asks to widen, and typical_p, which needs every
// survivor, asks whenever the set is open. If the set is still open after
// the last stage, Apply asks to widen too. Asking to widen
// returns true and leaves r.Out unspecified; the caller widens the
// candidates (up to the whole vocabulary, where Apply never asks) and
// calls Apply again. A complete row never widens.
func (p *Policy) Apply(r *sampler.Row, vocab int) (widen bool, err error) {
	n := len(r.IDs)
	if len(r.Logits) != n || len(r.Out) < n {
		return false, fmt.Errorf("%w: %d ids, %d logits, room for %d outputs", errRow, n, len(r.Logits), len(r.Out))
	}
	if n == 0 {
		return false, nil
	}
	out := r.Out[:n]
	// The loops below are few and copies are bulk moves: Go compiled to
	// WebAssembly pays for every branch back to a loop's head (and a
	// sandboxed guest a meter count).
	if i := unsorted(r.Logits); i >= 0 {
		return false, fmt.Errorf("%w: candidate %d: logit %v: not sorted largest first, or NaN", errRow, i, r.Logits[i])
	}
	copy(out, r.Logits)
	if math.IsInf(float64(out[0]), 0) {
		return false, fmt.Errorf("%w: the best candidate's logit is %v", errRow, out[0])
	}
	if len(p.ident) < n {
		p.ident = make([]int32, max(n, 2*len(p.ident)))
		for i := range p.ident {
			p.ident[i] = int32(i)
		}
	}
	live := slices.Grow(p.live[:0], n)[:n]
	p.live = live // stages only shorten or rewrite it in place
	copy(live, p.ident)
	open := vocab <= 0 || n < vocab
	// While the set is open its survivors are a prefix of the whole row,
	// sorted, that holds every candidate. whole says they are the whole
	// row, unscaled: r.LSE is then their normaliser. Once a stage may have
	// dropped tokens beyond the candidates, or scaled them, the normaliser
	// is unknown until the set closes.
	whole := open
	for _, st := range p.order {
		switch st {
		case topK:
			if len(live) >= p.topK {
				live, open = live[:p.topK], false
			} else if vocab <= 0 || p.topK < vocab {
				whole = false
			}
		case topP:
			exps, total, ok, err := p.weights(r, out, live, open, whole)
			if err != nil || !ok {
				return !ok, err
			}
			if j := reach(exps, float64(p.topP)*total); j >= 0 {
				live, open = live[:j+1], false
			}
			whole = false
		case minP:
			// p_i ≥ min_p·p_max ⇔ l_i ≥ l_max + log min_p: no normaliser,
			// and a candidate that fails leaves every token after it out.
			thr := float64(out[live[0]]) + samplemath.Log(float64(p.minP))
			for j, i := range live {
				if float64(out[i]) < thr {
					live, open = live[:j], false
					break
				}
			}
			whole = false
		case typicalP:
			if open {
				return true, nil
			}
			live = p.typical(out, live)
		case temperature:
			if p.temperature == 0 {
				live, open = live[:1], false
				break
			}
			for _, i := range live {
				out[i] /= p.temperature
			}
			whole = false
		}
	}
	if open {
		return true, nil
	}
	if m := len(live); m > 0 && live[m-1] == int32(m-1) {
		// The survivors are ascending and distinct: the first m.
		fill(out[m:], float32(math.Inf(-1)))
		return false, nil
	}
	j := 0
	for i := range out {
		if j < len(live) && live[j] == int32(i) {
			j++
			continue
		}
		out[i] = float32(math.Inf(-1))
	}
	return false, nil
}

// unsorted returns the first index of x that is NaN or larger than the
// value before it, −1 when there is none. Eight values at a time, each
// group one branch.
func unsorted(x []float32) int {
	if len(x) == 0 {
		return -1
	}
	if x[0] != x[0] {
		return 0
	}
	// x[i] ≥ x[i+1] is false when either is NaN, so a NaN fails the
	// comparison with the value before it.
	i := 0
	for ; i+8 < len(x); i += 8 {
		g := x[i : i+9]
		if !(g[0] >= g[1] && g[1] >= g[2] && g[2] >= g[3] && g[3] >= g[4] &&
			g[4] >= g[5] && g[5] >= g[6] && g[6] >= g[7] && g[7] >= g[8]) {
			break
		}
	}
	for ; i+1 < len(x); i++ {
		if !(x[i] >= x[i+1]) {
			return i + 1
		}
	}
	return -1
}

// fill sets every value of x to v, by copies that double.
func fill(x []float32, v float32) {
	if len(x) == 0 {
		return
	}
	x[0] = v
	for k := 1; k < len(x); k *= 2 {
		copy(x[k:], x[:k])
	}
}

// weights returns the survivors' weights, e^(l − shift) in live's order,
// and the total their probabilities are the weights over: with shift the
// best survivor's logit and total their sum once the set is closed; with
// shift the row's LSE and total 1 while they are the whole row; and ok
// false (widen) when the set is open but no longer the whole row. (One
// pass of exponentials, where the log-sum-exp and then the probabilities
// took two.)
func (p *Policy) weights(r *sampler.Row, out []float32, live []int32, open, whole bool) (exps []float64, total float64, ok bool, err error) {
	if open {
		if !whole {
			return nil, 0, false, nil
		}
		lse, err := r.FullLSE()
		if err != nil {
			return nil, 0, false, fmt.Errorf("standard: %w", err)
		}
		if !(lse >= r.Logits[0]) || math.IsInf(float64(lse), 1) {
			return nil, 0, false, fmt.Errorf("%w: log-sum-exp %v below the best logit %v", errRow, lse, r.Logits[0])
		}
		return p.expsOf(out, live, float64(lse)), 1, true, nil
	}
	exps = p.expsOf(out, live, float64(out[live[0]]))
	return exps, sumInOrder(exps), true, nil
}

// logSumExp is log Σ e^out[i] over live, whose first is the largest.
func (p *Policy) logSumExp(out []float32, live []int32) float64 {
	m := float64(out[live[0]])
	return m + samplemath.Log(sumInOrder(p.expsOf(out, live, m)))
}

// expsOf returns e^(out[i] − shift) for each i in live, in p.exps.
func (p *Policy) expsOf(out []float32, live []int32, shift float64) []float64 {
	p.exps = slices.Grow(p.exps[:0], len(live))[:len(live)]
	samplemath.ExpGather(p.exps, out, live, shift)
	return p.exps
}

// sumInOrder is x[0] + x[1] + … added left to right, as a plain loop adds
// them, eight terms a turn (in WebAssembly every turn costs a branch to
// the function's dispatch loop).
func sumInOrder(x []float64) float64 {
	var s float64
	i := 0
	for ; i+8 <= len(x); i += 8 {
		s = s + x[i] + x[i+1] + x[i+2] + x[i+3] + x[i+4] + x[i+5] + x[i+6] + x[i+7]
	}
	for ; i < len(x); i++ {
		s += x[i]
	}
	return s
}

// reach returns the first j at which x[0] + … + x[j], added left to right,
// is at least target, or −1 if the whole sum stays below it. The terms are
// not negative, so the running sum never falls, and four of them are
// added between checks.
func reach(x []float64, target float64) int {
	var s float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 := s + x[i]
		s1 := s0 + x[i+1]
		s2 := s1 + x[i+2]
		s3 := s2 + x[i+3]
		if s3 >= target {
			switch {
			case s0 >= target:
				return i
			case s1 >= target:
				return i + 1
			case s2 >= target:
				return i + 2
			}
			return i + 3
		}
		s = s3
	}
	for ; i < len(x); i++ {
		if s += x[i]; s >= target {
			return i
		}
	}
	return -1
}

// typical is llama_sampler_typical over a closed set: with p_i the
// survivors' renormalised probabilities and H = −Σ p_i log p_i their
// entropy, order them by |−log p_i − H| (ties to the lower index) and keep
// the first ones whose mass exceeds typical_p (at least one). A token of
// probability 0 adds nothing to H and sorts last. It returns the kept
// indices, ascending.
func (p *Policy) typical(out []float32, live []int32) []int32 {
	lse := p.logSumExp(out, live)
	p.shifted = slices.Grow(p.shifted[:0], len(out))[:len(out)]
	var h float64
	for _, i := range live {
		nl := lse - float64(out[i]) // −log p_i
		if pi := samplemath.Exp(-nl); pi > 0 {
			h += float64(pi * nl)
		}
	}
	for _, i := range live {
		p.shifted[i] = math.Abs(lse - float64(out[i]) - h)
	}
	order := append(p.scratch[:0], live...)
	p.scratch = order
	shifted := p.shifted
	slices.SortFunc(order, func(a, b int32) int {
		if c := cmp.Compare(shifted[a], shifted[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var mass float64
	keep := len(order)
	for j, i := range order {
		mass += samplemath.Exp(float64(out[i]) - lse)
		if mass > float64(p.typicalP) {
			keep = j + 1
			break
		}
	}
	live = append(live[:0], order[:keep]...)
	slices.Sort(live)
	return live
}
