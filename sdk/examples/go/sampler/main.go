// Command sampler is an example sampler plugin in Go, in selector mode: for
// each row it keeps the top_k candidates, applies the temperature with a
// softmax, cuts the tail beyond top_p of the probability and draws with the
// row's first uniform, through the host's primitives (sampler.Softmax,
// TopPCut, Draw); temperature 0 picks the most likely candidate. The host
// hands a row's candidates sorted by logit, largest first (sdk/ABI.md
// §6.2), so the top_k are the row's first k. A row with fewer candidates
// than top_k asks the host to widen it (top_k 0 keeps every token, so it
// widens up to the whole vocabulary).
//
// The request's sampling parameters (smp_open's "sampling", read with
// sampler.ParseOpen) "temperature", "top_k" and "top_p" override the
// configured defaults; unset ones keep them.
//
// Config (manifest.json's schema): {"temperature": 0.8, "top_k": 40,
// "top_p": 0.95}. Build and check it with
//
//	ulan plugin build sdk/examples/go/sampler
//	ulan plugin test sdk/examples/go/sampler/sampler.wasm
package main

import (
	"encoding/json"
	"fmt"

	"github.com/ulan-ai/ulan/sdk/go/sampler"
	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

// params are the sampling parameters, configured and per request (named
// as the request's SamplingParams name them).
type params struct {
	Temperature float32 `json:"temperature"`
	TopK        int     `json:"top_k"`
	TopP        float32 `json:"top_p"`
}

func (p params) check() error {
	switch {
	case !(p.Temperature >= 0 && p.Temperature <= 100):
		return fmt.Errorf("temperature %v: want 0 to 100", p.Temperature)
	case p.TopK < 0:
		return fmt.Errorf("top_k %d: want 0 (all) or more", p.TopK)
	case !(p.TopP > 0 && p.TopP <= 1):
		return fmt.Errorf("top_p %v: want more than 0, at most 1", p.TopP)
	}
	return nil
}

// plugin holds the configured defaults.
type plugin struct{ defaults params }

var smp = &plugin{defaults: params{Temperature: 1, TopK: 40, TopP: 1}}

// Open reads smp_open's JSON: {"sampling": {...}, "params": {...},
// "vocab_size": N}. This plugin takes no per-request params of its own.
func (pl *plugin) Open(raw []byte) (sampler.Sequence, error) {
	o, err := sampler.ParseOpen(raw)
	if err != nil {
		return nil, err
	}
	p := pl.defaults
	if len(o.Sampling) > 0 {
		if err := json.Unmarshal(o.Sampling, &p); err != nil {
			return nil, fmt.Errorf("sampling: %w", err)
		}
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("sampling: %w", err)
	}
	return &sequence{p: p, vocab: o.VocabSize}, nil
}

// sequence samples one choice, with a buffer reused from step to step.
type sequence struct {
	p     params
	vocab int // the model's vocabulary size; 0 if the host did not say
	probs []float32
}

func (q *sequence) Step(r *sampler.Row) error {
	n := len(r.IDs)
	if n == 0 {
		return nil // nothing to choose from: the host decides
	}
	if q.p.Temperature == 0 {
		r.Token = r.IDs[0] // the candidates come best first
		return nil
	}
	k := n
	if want := q.p.TopK; want == 0 || want > n {
		// top_k needs more tokens than the row holds: ask for them, unless
		// the row is the whole vocabulary already.
		if q.vocab > n {
			r.Widen()
			return nil
		}
	} else {
		k = want
	}
	if cap(q.probs) < k {
		q.probs = make([]float32, k)
	}
	probs := q.probs[:k]
	if err := sampler.Softmax(r.Logits[:k], q.p.Temperature, probs); err != nil {
		return err
	}
	// top_p: the smallest prefix (most likely first) whose probability
	// reaches top_p; Draw takes the unnormalized prefix as it is.
	cut, err := sampler.TopPCut(probs, q.p.TopP)
	if err != nil {
		return err
	}
	i, err := sampler.Draw(probs[:cut], r.U0)
	if err != nil {
		return err
	}
	r.Token = r.IDs[i]
	return nil
}

func (q *sequence) Close() {}

// configure reads the configured defaults (already checked against the
// manifest's schema by the host).
func (pl *plugin) configure(raw []byte) error {
	p := params{Temperature: 1, TopK: 40, TopP: 1}
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := p.check(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	pl.defaults = p
	return nil
}

func init() {
	ulan.OnInit(smp.configure)
	sampler.Register(smp)
}

func main() {}
