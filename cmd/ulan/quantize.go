package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
)

// quantType is a type `model quantize` writes: its GGUF and engine types,
// llama.cpp's general.file_type for a file of it, and the type a matrix
// whose rows are not whole blocks of it takes instead (llama.cpp's
// fallback).
type quantType struct {
	gguf     gguf.Type
	dt       engine.DType
	fileType uint32
	fallback string
}

var quantTypes = map[string]quantType{
	"f32":  {gguf.TypeF32, engine.F32, 0, ""},
	"f16":  {gguf.TypeF16, engine.F16, 1, ""},
	"bf16": {gguf.TypeBF16, engine.BF16, 32, ""},
	"q8_0": {gguf.TypeQ8_0, engine.Q8_0, 7, "f16"},
	"q4_0": {gguf.TypeQ4_0, engine.Q4_0, 2, "f16"},
	"q4_1": {gguf.TypeQ4_1, engine.Q4_1, 3, "f16"},
	"q5_0": {gguf.TypeQ5_0, engine.Q5_0, 8, "f16"},
	"q5_1": {gguf.TypeQ5_1, engine.Q5_1, 9, "f16"},
	"q4_k": {gguf.TypeQ4_K, engine.Q4_K, 14, "q5_0"},
	"q5_k": {gguf.TypeQ5_K, engine.Q5_K, 16, "q5_1"},
	"q6_k": {gguf.TypeQ6_K, engine.Q6_K, 18, "q8_0"},
}

// sourceTypes are the stored types `model quantize` can decode.
var sourceTypes = map[gguf.Type]engine.DType{}

func init() {
	for _, q := range quantTypes {
		sourceTypes[q.gguf] = q.dt
	}
}

func quantTypeNames() string {
	names := make([]string, 0, len(quantTypes))
	for n := range quantTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func newModelQuantizeCmd() *cobra.Command {
	var typ string
	var force bool
	cmd := &cobra.Command{
		Use:   "quantize --type TYPE IN.gguf OUT.gguf",
		Short: "Rewrite a GGUF model's matrices in another type (q4_k, q5_k, q6_k, q8_0, …), as llama.cpp's llama-quantize does for one type",
		Long: `Rewrite a GGUF model's matrices in --type, as llama.cpp's llama-quantize does
for a single type without an importance matrix: each matrix is decoded from
its stored type and quantized with ggml's reference quantizers (the same
bytes as llama-quantize's from the same values); vectors (norms, biases), the
MoE router (ffn_gate_inp), DeepSeek-V4's compressor ape and hyper-connection
matrices, and integer tables stay as they are. A matrix whose rows are not
whole blocks of the type falls back as llama.cpp's does: q4_k to q5_0, q5_k to
q5_1, q6_k to q8_0, the 32-value formats to f16.

Types: ` + quantTypeNames() + `. No k-quant mixes (Q4_K_M's per-tensor
choices): every matrix gets --type. Quantizing an already quantized file
quantizes its decoded values, so the error adds up.

The model is read and written one tensor at a time; the file appears under
its name only once complete.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, ok := quantTypes[typ]
			if !ok {
				return fmt.Errorf("--type %q: use one of %s", typ, quantTypeNames())
			}
			if _, err := os.Stat(args[1]); err == nil && !force {
				return fmt.Errorf("%s exists; give --force to replace it", args[1])
			}
			return quantizeFile(args[0], args[1], q, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "matrix type: "+quantTypeNames()+" (required)")
	cmd.Flags().BoolVar(&force, "force", false, "replace OUT.gguf if it exists")
	return cmd
}

// quantizeFile writes in's model to out with its matrices in type q.
func quantizeFile(in, out string, q quantType, stderr io.Writer) error {
	f, err := gguf.Open(in)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	defer f.Close()
	var w gguf.Writer
	for _, kv := range f.KVs() {
		if kv.Key == "general.file_type" {
			w.Add(kv.Key, q.fileType)
			continue
		}
		w.Add(kv.Key, kv.Value)
	}
	counts := map[string]int{}
	for _, ti := range f.Tensors() {
		to, err := quantizedType(ti, q)
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		if to == nil {
			w.AddTensor(ti.Name, ti.Type, ti.Dims, f.Data(ti))
			counts[ti.Type.String()+" (kept)"]++
			continue
		}
		cols := ti.Dims[0]
		w.AddTensorFrom(ti.Name, to.gguf, ti.Dims, &requantizer{src: f.Data(ti), from: sourceTypes[ti.Type], to: to.dt, cols: int(cols),
			inRow: int(cols / ti.Type.BlockSize() * ti.Type.BytesPerBlock()), outRow: int(cols / to.gguf.BlockSize() * to.gguf.BytesPerBlock())})
		counts[to.gguf.String()]++
	}
	if err := w.WriteFile(out); err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	var parts []string
	for t, n := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", t, n))
	}
	sort.Strings(parts)
	fmt.Fprintf(stderr, "wrote %s: tensors %s\n", out, strings.Join(parts, ", "))
	return nil
}

// quantizedType returns the type tensor ti is written in, or nil when it is
// kept as it is stored.
func quantizedType(ti gguf.TensorInfo, q quantType) (*quantType, error) {
	name := ti.Name
	keep := len(ti.Dims) < 2 || ti.Type == gguf.TypeI32 ||
		strings.HasSuffix(name, "ffn_gate_inp.weight") || strings.HasSuffix(name, "_ape.weight") ||
		strings.HasSuffix(name, "hc_fn.weight") || strings.HasSuffix(name, "hc_attn_fn.weight") ||
		strings.HasSuffix(name, "hc_ffn_fn.weight")
	if keep {
		return nil, nil
	}
	if _, ok := sourceTypes[ti.Type]; !ok {
		return nil, fmt.Errorf("tensor %s is stored as %v, which quantize cannot decode (it reads %s)", name, ti.Type, quantTypeNames())
	}
	for {
		if ti.Dims[0]%q.gguf.BlockSize() == 0 {
			return &q, nil
		}
		if q.fallback == "" {
			return nil, fmt.Errorf("tensor %s: rows of %d values fit no type", name, ti.Dims[0])
		}
		q = quantTypes[q.fallback]
	}
}

// requantizer is the io.Reader of one tensor's bytes in type to, decoded
// from src (type from) and encoded a chunk of rows at a time; inRow and
// outRow are a row's bytes in each.
type requantizer struct {
	src           []byte
	from, to      engine.DType
	cols          int
	inRow, outRow int

	vals []float32
	out  []byte
}

// rowsPerWorker is how many rows each of GOMAXPROCS goroutines requantizes
// in one chunk.
const rowsPerWorker = 16

func (r *requantizer) Read(p []byte) (int, error) {
	if len(r.out) == 0 {
		if len(r.src) == 0 {
			return 0, io.EOF
		}
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// fill requantizes the next chunk of rows into r.out, its rows shared out
// among GOMAXPROCS goroutines (ggml's reference quantizers run one row at
// a time, so the bytes do not depend on how the rows are shared).
func (r *requantizer) fill() error {
	workers := runtime.GOMAXPROCS(0)
	rows := min(workers*rowsPerWorker, len(r.src)/r.inRow)
	if len(r.vals) < rows*r.cols {
		r.vals = make([]float32, rows*r.cols)
	}
	buf := make([]byte, rows*r.outRow)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for k := range workers {
		lo, hi := k*rows/workers, (k+1)*rows/workers
		if lo == hi {
			continue
		}
		wg.Go(func() {
			vals := r.vals[lo*r.cols : hi*r.cols]
			if err := cpu.Dequantize(r.from, r.src[lo*r.inRow:hi*r.inRow], vals); err != nil {
				errs[k] = err
				return
			}
			errs[k] = cpu.Quantize(r.to, vals, buf[lo*r.outRow:hi*r.outRow])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.src = r.src[rows*r.inRow:]
	r.out = buf
	return nil
}
