package cpu

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// WeightParts makes a weight from separately stored parts (see
// engine.Backend.WeightParts). One part is the whole tensor; several are
// the slices [i, …] of a 3-D weight (experts), each kept where it is and
// multiplied in place. F8E4M3 parts are 2-D matrices with their block
// scales, copied into float32 (they are 1/16384 of the weight).
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

// weightPart makes one part: Weight's tensor, or an F8E4M3 matrix.
func (b *Backend) weightPart(name string, dt engine.DType, shape []int, p engine.WeightPart) (engine.Tensor, error) {
	if dt != engine.F8E4M3 {
		if p.Scales != nil {
			return nil, fmt.Errorf("cpu: weight %q: scales given for %v", name, dt)
		}
		return b.Weight(name, dt, shape, p.Data)
	}
	if len(shape) != 2 {
		return nil, fmt.Errorf("cpu: weight %q: f8_e4m3 %v: want a matrix [rows, cols]", name, shape)
	}
	rows, cols := shape[0], shape[1]
	if len(p.Data) != rows*cols {
		return nil, fmt.Errorf("cpu: weight %q: %d bytes for f8_e4m3 %v, want %d", name, len(p.Data), shape, rows*cols)
	}
	bl := kernel.E4M3BlockLen
	ns := ((rows + bl - 1) / bl) * ((cols + bl - 1) / bl)
	if len(p.Scales) != 4*ns {
		return nil, fmt.Errorf("cpu: weight %q: %d bytes of block scales for %v, want %d (f32 [%d, %d])",
			name, len(p.Scales), shape, 4*ns, (rows+bl-1)/bl, (cols+bl-1)/bl)
	}
	scales := make([]float32, ns)
	for i := range scales {
		scales[i] = math.Float32frombits(binary.LittleEndian.Uint32(p.Scales[4*i:]))
	}
	return &tensor{shape: []int{rows, cols}, dt: dt, name: name, raw: p.Data, scales: scales}, nil
}

// partMatrix is slice i of a 3-D weight (a head or an expert, rows×in):
// its own part when the weight came in parts, else rows i·rows onwards.
func partMatrix(t *tensor, i, rows, in int) matrix {
	if t.parts != nil {
		return matrix{t: t.parts[i], in: in}
	}
	return matrix{t: t, first: i * rows, in: in}
}
