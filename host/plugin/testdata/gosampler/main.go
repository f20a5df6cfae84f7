// Command gosampler is a sampler plugin built with the Go SDK for the
// runtime's tests: a processor that divides logits by the request's
// "divide" parameter, or, with "select": true, a selector that picks the
// candidate the first uniform lands on among equal-weight candidates. The
// host-state primitives have modes of their own: "repeat" selects the
// sequence's last recorded token, "prefer" the first candidate whose bytes
// are that text, and "top_p" keeps the nucleus of that mass (the others'
// logits become −Inf).
package main

import (
	"encoding/json"
	"math"

	"github.com/ulan-ai/ulan/sdk/go/sampler"
)

type params struct {
	Divide float32 `json:"divide"`
	Select bool    `json:"select"`
	Repeat bool    `json:"repeat"`
	Prefer string  `json:"prefer"`
	TopP   float32 `json:"top_p"`
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
	switch {
	case p.Repeat:
		h, err := r.History(1)
		if err != nil {
			return err
		}
		if len(h) == 1 {
			r.Token = h[0]
		}
		return nil
	case p.Prefer != "":
		var buf []byte
		for _, id := range r.IDs {
			b, err := sampler.TokenBytes(id, buf)
			if err != nil {
				return err
			}
			if string(b) == p.Prefer {
				r.Token = id
				return nil
			}
			buf = b
		}
		return nil
	case p.TopP > 0:
		return nucleus(r, p.TopP)
	}
	if p.Select {
		r.Token = r.IDs[int(r.U0*float32(len(r.IDs)))%len(r.IDs)]
		return nil
	}
	for i := range r.Out {
		r.Out[i] = r.Logits[i] / p.Divide
	}
	return nil
}

// nucleus keeps the candidates whose mass, largest first, reaches topP.
func nucleus(r *sampler.Row, topP float32) error {
	n := len(r.Logits)
	idx, vals := make([]int32, n), make([]float32, n)
	if _, err := sampler.TopK(r.Logits, n, idx, vals); err != nil {
		return err
	}
	if err := sampler.Softmax(vals, 1, vals); err != nil {
		return err
	}
	m, err := sampler.TopPCut(vals, topP)
	if err != nil {
		return err
	}
	for _, i := range idx[m:] {
		r.Out[i] = float32(math.Inf(-1))
	}
	return nil
}

func (params) Close() {}

func init() { sampler.Register(plugin{}) }

func main() {}
