// Command mirostat is a sampler plugin in processor mode: Mirostat 2.0
// (Basu et al., "Mirostat: a neural text decoding algorithm that directly
// controls perplexity", ICLR 2021, Algorithm 2; llama.cpp's
// llama_sampler_mirostat_v2). It keeps the observed surprise of the
// sampled tokens near a target tau, in bits: each step it drops the
// candidates whose surprise −log2 p exceeds mu (keeping at least the most
// likely), the host draws from the rest, and mu ← mu − eta·(s − tau), where
// s is the drawn token's surprise under the truncated, renormalised
// distribution. mu starts at 2·tau.
//
// In processor mode the host draws after the plugin answers, so the
// plugin learns the drawn token only at the next step, as the last token of
// the sequence's history (Row.History, which the host records): it updates
// mu then, before truncating, with the surprise it kept from its previous
// answer. The result is llama.cpp's sequence of mu values, one step late
// in the bookkeeping only. A step the host repeats (a widened row, the same
// position again) changes nothing.
//
// Probabilities are true ones: p = exp(l − LSE) over the whole row (the
// plugin asks the host for the LSE, Row.FullLSE, only on the steps that
// need it: not greedy ones, nor rows it widened to the whole vocabulary,
// whose normaliser it computes itself; its manifest says "lse":
// "on_demand"). If
// every candidate's surprise is within mu, tokens past the candidates may
// be within it too, and the plugin asks the host to widen the row (out_token
// −2) unless it already holds the whole vocabulary.
//
// Per-request params (smp_open's "params"): tau (bits, default 5) and eta
// (the learning rate, default 0.1). The request's temperature applies
// before the truncation, as in llama.cpp's mirostat chain; 0 is greedy
// (mu then stays as it is). A temperature other than 0 or 1 makes the
// scaled row's normaliser unknown, so such rows are widened to the whole
// vocabulary. The plugin takes no configuration. Build it with
//
//	go run ./cmd/ulan plugin build plugins/mirostat
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/ulan-ai/ulan/sdk/go/sampler"
	"github.com/ulan-ai/ulan/sdk/go/sampler/samplemath"
)

type plugin struct{}

func (plugin) Open(raw []byte) (sampler.Sequence, error) {
	o, err := sampler.ParseOpen(raw)
	if err != nil {
		return nil, err
	}
	var s struct {
		Temperature *float32 `json:"temperature"`
	}
	if len(o.Sampling) > 0 {
		if err := json.Unmarshal(o.Sampling, &s); err != nil {
			return nil, fmt.Errorf("mirostat: sampling: %w", err)
		}
	}
	p := struct {
		Tau *float64 `json:"tau"`
		Eta *float64 `json:"eta"`
	}{}
	if len(o.Params) > 0 {
		if err := json.Unmarshal(o.Params, &p); err != nil {
			return nil, fmt.Errorf("mirostat: params: %w", err)
		}
	}
	q := &sequence{tau: 5, eta: 0.1, temp: 1, vocab: o.VocabSize}
	if p.Tau != nil {
		q.tau = *p.Tau
	}
	if p.Eta != nil {
		q.eta = *p.Eta
	}
	if s.Temperature != nil {
		q.temp = *s.Temperature
	}
	switch {
	case !(q.tau > 0 && q.tau <= 64):
		return nil, fmt.Errorf("mirostat: params.tau %v: want more than 0, at most 64 bits", q.tau)
	case !(q.eta > 0 && q.eta <= 1):
		return nil, fmt.Errorf("mirostat: params.eta %v: want more than 0, at most 1", q.eta)
	case !(q.temp >= 0) || math.IsInf(float64(q.temp), 1):
		return nil, fmt.Errorf("mirostat: sampling.temperature %v: want a finite number ≥ 0", q.temp)
	}
	q.mu = float64(2 * q.tau)
	return q, nil
}

// sequence is one choice's Mirostat state.
type sequence struct {
	tau, eta, mu float64
	temp         float32
	vocab        int

	// The last answer, until the host's draw from it shows in the history:
	// the position it answered and the kept candidates' ids and surprises.
	pending   bool
	pos       int32
	keptIDs   []int32
	surprises []float64
}

const ln2 = math.Ln2

func (q *sequence) Step(r *sampler.Row) error {
	if q.pending {
		q.pending = false
		if r.Position == q.pos+1 {
			if err := q.learn(r); err != nil {
				return err
			}
		}
	}
	n := len(r.IDs)
	if n == 0 {
		return nil
	}
	out := r.Out[:n]
	if q.temp == 0 { // greedy
		for i := 1; i < n; i++ {
			out[i] = float32(math.Inf(-1))
		}
		return nil
	}
	complete := q.vocab > 0 && n >= q.vocab
	if q.temp != 1 && !complete {
		r.Widen() // the scaled row's normaliser needs every token
		return nil
	}
	for i, l := range r.Logits {
		out[i] = l
		if q.temp != 1 {
			out[i] = l / q.temp
		}
	}
	var lse float64
	if complete {
		lse = logSumExp(out)
	} else {
		full, err := r.FullLSE()
		if err != nil {
			return fmt.Errorf("mirostat: %w", err)
		}
		if !(full >= r.Logits[0]) || math.IsInf(float64(full), 1) {
			return fmt.Errorf("mirostat: the row's log-sum-exp %v is below its best logit %v", full, r.Logits[0])
		}
		lse = float64(full)
	}
	// Candidates come sorted, largest first: surprise grows along them, and
	// the kept ones are a prefix.
	m := n
	for i, l := range out {
		if (lse-float64(l))/ln2 > q.mu {
			m = i
			break
		}
	}
	if m == n && !complete {
		r.Widen() // tokens past the candidates may be within mu too
		return nil
	}
	m = max(m, 1)
	for i := m; i < n; i++ {
		out[i] = float32(math.Inf(-1))
	}
	// The surprise of each kept token under the renormalised distribution
	// the host draws from, for the next step's update.
	keptLSE := logSumExp(out[:m])
	q.keptIDs = append(q.keptIDs[:0], r.IDs[:m]...)
	q.surprises = slices.Grow(q.surprises[:0], m)[:m]
	for i, l := range out[:m] {
		q.surprises[i] = (keptLSE - float64(l)) / ln2
	}
	q.pending, q.pos = true, r.Position
	return nil
}

// learn moves mu by the surprise of the token the host drew from the last
// answer: the newest in the sequence's history. A token that was not among
// the kept ones (the host sampled that step some other way), or a step
// that is not the one right after the answer, teaches nothing.
func (q *sequence) learn(r *sampler.Row) error {
	h, err := r.History(1)
	if err != nil {
		return err
	}
	if len(h) == 0 {
		return nil
	}
	if j := slices.Index(q.keptIDs, h[0]); j >= 0 {
		q.mu -= float64(q.eta * (q.surprises[j] - q.tau))
	}
	return nil
}

// logSumExp is log Σ e^v over vals, whose first is the largest.
func logSumExp(vals []float32) float64 {
	m := float64(vals[0])
	var sum float64
	for _, v := range vals {
		sum += samplemath.Exp(float64(v) - m)
	}
	return m + samplemath.Log(sum)
}

func (q *sequence) Close() {}

func init() { sampler.Register(plugin{}) }

func main() {}
