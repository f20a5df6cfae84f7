package convert

import (
	"errors"
	"slices"

	"github.com/ulan-ai/ulan/engine"
)

// Lister is a Backend that keeps what it is given instead of making
// tensors: an architecture's build run over it lists every weight the
// model reads, in order, with its stored type and shape, and with its
// bytes when Keep is set (a listing of a whole model drops them, so that
// weights the architecture materializes are not all held at once). It
// computes nothing.
type Lister struct {
	Keep bool
	Got  []Listed
}

// Listed is one weight a Lister was given.
type Listed struct {
	Name  string
	DType engine.DType
	Shape []int
	Parts []engine.WeightPart // nil unless Keep
}

// listedTensor is the handle Lister returns.
type listedTensor struct {
	dt    engine.DType
	shape []int
}

func (t listedTensor) Shape() []int        { return t.shape }
func (t listedTensor) DType() engine.DType { return t.dt }

// Name is "convert".
func (l *Lister) Name() string { return "convert" }

// Weight lists a weight of one part.
func (l *Lister) Weight(name string, dt engine.DType, shape []int, data []byte) (engine.Tensor, error) {
	return l.WeightParts(name, dt, shape, []engine.WeightPart{{Data: data}})
}

// WeightParts lists a weight.
func (l *Lister) WeightParts(name string, dt engine.DType, shape []int, parts []engine.WeightPart) (engine.Tensor, error) {
	if !l.Keep {
		parts = nil
	}
	l.Got = append(l.Got, Listed{Name: name, DType: dt, Shape: slices.Clone(shape), Parts: parts})
	return listedTensor{dt: dt, shape: shape}, nil
}

var errLister = errors.New("convert: the lister computes nothing")

// Cache fails: a Lister holds no cache.
func (l *Lister) Cache(int, int, engine.DType) (engine.Tensor, error) { return nil, errLister }

// NewContext returns nil: nothing runs while weights are listed.
func (l *Lister) NewContext() engine.Context { return nil }

// Close does nothing.
func (l *Lister) Close() error { return nil }

var _ engine.Backend = (*Lister)(nil)
