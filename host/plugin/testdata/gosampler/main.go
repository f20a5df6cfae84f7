// Command gosampler is a sampler plugin built with the Go SDK for the
// runtime's tests: a processor that divides logits by the request's
// "divide" parameter, or, with "select": true, a selector that picks the
// candidate the first uniform lands on among equal-weight candidates.
package main

import (
	"encoding/json"

	"github.com/ulan-ai/ulan/sdk/go/sampler"
)

type params struct {
	Divide float32 `json:"divide"`
	Select bool    `json:"select"`
}

type plugin struct{}

func (plugin) Open(raw []byte) (sampler.Sequence, error) {
	p := params{Divide: 1}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	return p, nil
}

func (p params) Step(r *sampler.Row) error {
	if p.Select {
		r.Token = r.IDs[int(r.U0*float32(len(r.IDs)))%len(r.IDs)]
		return nil
	}
	for i := range r.Out {
		r.Out[i] = r.Logits[i] / p.Divide
	}
	return nil
}

func (params) Close() {}

func init() { sampler.Register(plugin{}) }

func main() {}
