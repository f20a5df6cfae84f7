// Command sampler is an example sampler plugin in Go, in selector mode: for
// each row it keeps the top_k candidates, applies the temperature with a
// softmax, cuts the tail beyond top_p of the probability and draws with the
// row's first uniform, all through the host's primitives (sampler.TopK,
// Softmax, Draw); temperature 0 picks the most likely candidate. A
// request's "temperature", "top_k" and "top_p" parameters override the
// configured defaults.
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

// params are the sampling parameters, configured and per request.
type params struct {
	Temperature float32 `json:"temperature"`
	TopK        int     `json:"top_k"`
	TopP        float32 `json:"top_p"`
}

func (p params) check() error {
	switch {
	case !(p.Temperature >= 0 && p.Temperature <= 100):
		return fmt.Errorf("temperature %v: want 0 to 100", p.Temperature)
	case p.TopK < 0 || p.TopK > sampler.MaxTopK:
		return fmt.Errorf("top_k %d: want 0 (all) to %d", p.TopK, sampler.MaxTopK)
	case !(p.TopP > 0 && p.TopP <= 1):
		return fmt.Errorf("top_p %v: want more than 0, at most 1", p.TopP)
	}
	return nil
}

// plugin holds the configured defaults.
type plugin struct{ defaults params }

var smp = &plugin{defaults: params{Temperature: 1, TopK: 40, TopP: 1}}

func (pl *plugin) Open(raw []byte) (sampler.Sequence, error) {
	p := pl.defaults
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	return &sequence{p: p}, nil
}

// sequence samples one choice, with buffers reused from step to step.
type sequence struct {
	p     params
	top   []int32
	vals  []float32
	probs []float32
}

func (q *sequence) Step(r *sampler.Row) error {
	n := len(r.IDs)
	if n == 0 {
		return nil // nothing to choose from: the host decides
	}
	k := n
	if q.p.TopK > 0 {
		k = min(k, q.p.TopK)
	}
	if cap(q.top) < k {
		q.top, q.vals, q.probs = make([]int32, k), make([]float32, k), make([]float32, k)
	}
	top, vals, probs := q.top[:k], q.vals[:k], q.probs[:k]
	m, err := sampler.TopK(r.Logits, k, top, vals)
	if err != nil {
		return err
	}
	if q.p.Temperature == 0 {
		r.Token = r.IDs[top[0]]
		return nil
	}
	if err := sampler.Softmax(vals[:m], q.p.Temperature, probs[:m]); err != nil {
		return err
	}
	// top_p: the smallest prefix (most likely first) whose probability
	// reaches top_p; Draw takes the unnormalized prefix as it is.
	cut, sum := m, float32(0)
	for i, pr := range probs[:m] {
		sum += pr
		if sum >= q.p.TopP {
			cut = i + 1
			break
		}
	}
	i, err := sampler.Draw(probs[:cut], r.U0)
	if err != nil {
		return err
	}
	r.Token = r.IDs[top[i]]
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
