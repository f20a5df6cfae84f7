package deepseekv4

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/arch/internal/ggufkeys"
	"github.com/ulan-ai/ulan/engine/gguf"
)

func blk(i int, name string) string { return "blk." + strconv.Itoa(i) + "." + name }

// weights loads tensors from a GGUF file, keeping the first error, which
// names the tensor.
type weights struct {
	f *gguf.File
	// src, when set, is where the weights come from instead of f (a
	// Hugging Face directory: hf.go).
	src   source
	b     engine.Backend
	err   error
	total uint64 // parameters
	bytes uint64 // stored bytes of all weights
	// routedBytes and embedBytes are the stored bytes of the routed experts
	// and of the embedding table.
	routedBytes, embedBytes uint64
	// used names the GGUF tensors loaded (see checkUnused).
	used map[string]bool
}

func (w *weights) has(name string) bool {
	if w.src != nil {
		return w.src.has(name)
	}
	_, ok := w.f.Tensor(name)
	return ok
}

// get loads a weight of the given row-major shape (outermost first; GGUF
// lists it the other way round, trap 20).
func (w *weights) get(name string, shape ...int) engine.Tensor {
	return w.view(name, shape, shape)
}

// view loads a weight stored with shape file and hands it to the backend
// as shape as, the same bytes seen with more dimensions (wo_a as one
// matrix per group).
func (w *weights) view(name string, file, as []int) engine.Tensor {
	if w.err != nil {
		return nil
	}
	t, err := w.load(name, file, as)
	if err != nil {
		w.err = fmt.Errorf("deepseekv4: %w", err)
	}
	return t
}

func (w *weights) load(name string, file, as []int) (engine.Tensor, error) {
	if w.src != nil {
		return w.loadSource(name, file, as)
	}
	dims := make([]uint64, len(file))
	for i, d := range file {
		dims[len(file)-1-i] = uint64(d)
	}
	ti, err := w.f.ExpectOneOf(name, nil, dims...)
	if err != nil {
		return nil, err
	}
	if w.used != nil {
		w.used[name] = true
	}
	dt, ok := ggufkeys.DTypes[ti.Type]
	if ti.Type == gguf.TypeI32 {
		dt, ok = engine.I32, true
	}
	if !ok {
		return nil, fmt.Errorf("tensor %q: type %v is not supported (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)", name, ti.Type)
	}
	isTable := strings.HasSuffix(name, "ffn_gate_tid2eid.weight")
	if isTable != (dt == engine.I32) {
		return nil, fmt.Errorf("tensor %q: type %v (only the hash table is i32, and it must be)", name, ti.Type)
	}
	// Norms, biases, sinks and mHC scales and bases feed f32 arithmetic.
	if len(file) == 1 && dt != engine.F32 {
		return nil, fmt.Errorf("tensor %q: type %v, want f32", name, ti.Type)
	}
	t, err := w.b.Weight(name, dt, slices.Clone(as), w.f.Data(ti))
	if err != nil {
		return nil, err
	}
	if c, ok := t.(engine.DataCopier); ok && c.CopiedData() {
		w.f.Release(ti)
	}
	if !isTable {
		w.total += ti.NumElements()
	}
	w.bytes += ti.Size
	switch {
	case strings.HasSuffix(name, "_exps.weight"):
		w.routedBytes += ti.Size
	case name == "token_embd.weight":
		w.embedBytes += ti.Size
	}
	return t, nil
}

// checkUnused fails for a tensor of the GGUF file that the model did not
// load, as llama.cpp's loader does ("wrong number of tensors"): a tensor
// left over means the metadata describes another model than the file
// holds, and loading what the metadata names would run that other model
// without a word (a block_count of 3 over 4 stored blocks loads a
// shallower model). MTP blocks are loaded when present, so nothing is let
// through.
func (w *weights) checkUnused(p Params) error {
	for _, t := range w.f.Tensors() {
		if !w.used[t.Name] {
			return fmt.Errorf("deepseekv4: tensor %q is not part of a deepseek4 model of %d blocks (block_count) and %d MTP blocks (nextn_predict_layers) as the metadata describes it", t.Name, p.Layers, p.NextN)
		}
	}
	return nil
}
