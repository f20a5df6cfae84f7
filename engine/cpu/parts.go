package cpu

import (
	"fmt"

	"github.com/ulan-ai/ulan/engine"
)

// WeightParts makes a weight from separately stored parts (see
// engine.Backend.WeightParts). One part is the whole tensor; several are
// the slices [i, …] of a 3-D weight (experts), each kept where it is and
// multiplied in place. F8E4M3 parts are 2-D matrices with their block
// scales, copied into float32 (they are 1/16384 of the weight at 128×128,
// 1/1024 at 32×32); F4E2M1 parts keep their E8M0 scales as they are.
func (b *Backend) WeightParts(name string, dt engine.DType, shape []int, parts []engine.WeightPart) (engine.Tensor, error) {
	switch {
	case len(parts) == 0:
		return nil, fmt.Errorf("cpu: weight %q: no parts", name)
	case len(parts) == 1:
		return b.weightPart(name, dt, shape, parts[0])
	case len(shape) != 3 || shape[0] != len(parts):
		return nil, fmt.Errorf("cpu: weight %q: %d parts for shape %v (want [%d, rows, cols])", name, len(parts), shape, len(parts))
	}
	t := &tensor{shape: append([]int(nil), shape...), dt: dt, name: name, parts: make([]*tensor, len(parts))}
	for i, p := range parts {
		pt, err := b.weightPart(fmt.Sprintf("%s[%d]", name, i), dt, shape[1:], p)
		if err != nil {
			return nil, err
		}
		t.parts[i] = pt.(*tensor)
	}
	return t, nil
}

// weightPart makes one part: Weight's tensor, or a block-scaled FP8 or
// FP4 weight (fp8.go, fp4.go).
func (b *Backend) weightPart(name string, dt engine.DType, shape []int, p engine.WeightPart) (engine.Tensor, error) {
	switch dt {
	case engine.F8E4M3:
		return fp8Part(name, shape, p)
	case engine.F4E2M1:
		return fp4Part(name, shape, p)
	}
	if p.Scales != nil || p.E8M0Scales || p.Block != [2]int{} {
		return nil, fmt.Errorf("cpu: weight %q: scales given for %v", name, dt)
	}
	return b.Weight(name, dt, shape, p.Data)
}

// partMatrix is slice i of a 3-D weight (a head or an expert, rows×in):
// its own part when the weight came in parts, else rows i·rows onwards.
func partMatrix(t *tensor, i, rows, in int) matrix {
	if t.parts != nil {
		return matrix{t: t.parts[i], in: in}
	}
	return matrix{t: t, first: i * rows, in: in}
}
