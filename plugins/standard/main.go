// Command standard is ulan's standard sampler plugin, in processor mode:
// llama.cpp's chain of top_k, typical_p, top_p, min_p and temperature over
// the request's sampling parameters, as sdk/go/sampler/standard defines
// it. This file only adapts that package to the SDK: the host runs the
// same package natively as the fallback when a sampler plugin fails, so
// the plugin and the fallback give the same tokens for a seed.
//
// smp_open's JSON (sdk/ABI.md §6.2) carries the request's parameters; the
// plugin's per-request params may set the order of the stages:
//
//	{"sampling": {"temperature": 0.7, "top_p": 0.9}, "params": {"order": ["top_p", "temperature"]}, "vocab_size": 129280}
//
// A row whose candidates are too few for the parameters (top_p near 1 on
// a flat distribution) is answered with a request to widen it (out_token
// −2); parameters that keep every token (temperature only) are answered
// with a keep-all temperature (out_token −3), which the host applies over
// the whole row. The plugin reads the row's log-sum-exp only for top_p
// over the whole row, and its manifest says so ("lse": "on_demand"). The
// plugin takes no configuration.
//
// Build it (the module is committed, and CI checks it is fresh) with
//
//	go run ./cmd/ulan plugin build plugins/standard
package main

import (
	"github.com/ulan-ai/ulan/sdk/go/sampler"
	"github.com/ulan-ai/ulan/sdk/go/sampler/standard"
)

type plugin struct{}

func (plugin) Open(raw []byte) (sampler.Sequence, error) {
	pol, err := standard.Parse(raw)
	if err != nil {
		return nil, err
	}
	return &sequence{pol: pol, vocab: pol.VocabSize()}, nil
}

// sequence is one choice's policy; it keeps no state between steps.
type sequence struct {
	pol   *standard.Policy
	vocab int
}

func (q *sequence) Step(r *sampler.Row) error {
	// A policy that keeps every token is a temperature over the whole row:
	// the host applies it natively, as its fallback does, rather than have
	// the row widened to the whole vocabulary to hand it here.
	if t, all := q.pol.KeepsAll(); all && r.KeepAll(t) {
		return nil
	}
	widen, err := q.pol.Apply(r, q.vocab)
	if err != nil {
		return err
	}
	if widen {
		r.Widen()
	}
	return nil
}

func (q *sequence) Close() {}

func init() { sampler.Register(plugin{}) }

func main() {}
