// Package convert writes a model's tensors into a GGUF file in a chosen
// type (F32, F16, BF16 or Q8_0), one tensor at a time and a few rows at a
// time, so that a model far larger than memory converts: each tensor is
// loaded when the writer reaches it, decoded row by row (FP8 as value ×
// block scale) and encoded with the CPU backend's quantizer, which writes
// what llama.cpp's does. Which tensors a model has, and their GGUF names,
// come from its architecture package (deepseekv3.ConvertDir).
package convert

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// Tensor is one tensor to write, by its GGUF name.
type Tensor struct {
	Name string
	// Shape is row-major, outermost first (GGUF lists it the other way
	// round).
	Shape []int
	// DType is the stored type: F32, F16, BF16, F8E4M3, F4E2M1 or I32
	// (written only as I32: a hash table).
	DType engine.DType
	// Load returns the tensor's bytes as engine.Backend.WeightParts takes
	// them: one part holding the whole tensor, or Shape[0] parts of
	// Shape[1:] each (a checkpoint's experts); F8E4M3 parts are matrices
	// with their block scales (F32 or E8M0, WeightPart.Block, 128×128 when
	// zero), F4E2M1 parts matrices with their E8M0 scale per 32 values. It is called once, when the writer
	// reaches the tensor, and its bytes are dropped after.
	Load func() ([]engine.WeightPart, error)
}

// Types lists the types a file may be converted to, as --type spells them.
var Types = map[string]engine.DType{
	"f32": engine.F32, "f16": engine.F16, "bf16": engine.BF16, "q8_0": engine.Q8_0,
}

// fileTypes are general.file_type's values (llama_ftype: ALL_F32, MOSTLY_F16,
// MOSTLY_Q8_0, MOSTLY_BF16).
var fileTypes = map[engine.DType]uint32{engine.F32: 0, engine.F16: 1, engine.Q8_0: 7, engine.BF16: 32}

var ggufTypes = map[engine.DType]gguf.Type{
	engine.F32: gguf.TypeF32, engine.F16: gguf.TypeF16, engine.BF16: gguf.TypeBF16, engine.Q8_0: gguf.TypeQ8_0,
	engine.I32: gguf.TypeI32,
}

// FileType is general.file_type for a file converted to want, or an error
// for a type Types does not list.
func FileType(want engine.DType) (uint32, error) {
	ft, ok := fileTypes[want]
	if !ok {
		return 0, fmt.Errorf("convert: type %v: want f32, f16, bf16 or q8_0", want)
	}
	return ft, nil
}

// OutType is the type t is written in when want is asked for, as
// convert_hf_to_gguf.py's prepare_tensors picks it: vectors (norms, biases)
// and the MoE router (ffn_gate_inp, which the converter keeps "in float32"
// with the position and token-type embeddings) stay F32; Q8_0 takes only
// rows of whole 32-value blocks, and other rows fall back to F16, as
// gguf.quants' QuantError makes the converter do (fellBack reports it).
//
// DeepSeek-V4's hash tables (I32) stay I32, and its other F32 tensors that
// feed f32 arithmetic or are F32 in the checkpoint, the compressors' ape and
// the hyper-connections' mixing matrices (hc_*_fn), stay F32, as
// testmodel's V4 writer keeps them.
func OutType(t Tensor, want engine.DType) (dt engine.DType, fellBack bool) {
	switch {
	case t.DType == engine.I32:
		return engine.I32, false
	case len(t.Shape) <= 1 || strings.HasSuffix(t.Name, "ffn_gate_inp.weight") ||
		strings.HasSuffix(t.Name, "_ape.weight") || strings.HasSuffix(t.Name, "hc_fn.weight") ||
		strings.HasSuffix(t.Name, "hc_attn_fn.weight") || strings.HasSuffix(t.Name, "hc_ffn_fn.weight"):
		return engine.F32, false
	case want == engine.Q8_0 && t.Shape[len(t.Shape)-1]%32 != 0:
		return engine.F16, true
	}
	return want, false
}

// Add records t on w, to be written in type dt: the bytes are loaded,
// decoded and encoded while w writes the file, and progress (if not nil)
// is called with the number of bytes encoded each time some are.
func Add(w *gguf.Writer, t Tensor, dt engine.DType, progress func(n int64)) error {
	gt, ok := ggufTypes[dt]
	if !ok {
		return fmt.Errorf("convert: tensor %q: type %v: want f32, f16, bf16 or q8_0", t.Name, dt)
	}
	if len(t.Shape) == 0 {
		return fmt.Errorf("convert: tensor %q has no shape", t.Name)
	}
	dims := make([]uint64, len(t.Shape))
	for i, d := range t.Shape {
		if d <= 0 {
			return fmt.Errorf("convert: tensor %q: shape %v", t.Name, t.Shape)
		}
		dims[len(t.Shape)-1-i] = uint64(d)
	}
	w.AddTensorFrom(t.Name, gt, dims, &encoder{t: t, dt: dt, progress: progress})
	return nil
}

// Size is the number of bytes t takes in type dt.
func Size(t Tensor, dt engine.DType) int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	cols := int64(t.Shape[len(t.Shape)-1])
	return n / cols * int64(rowBytes(dt, int(cols)))
}

// rowBytes is the stored size of a row of n values.
func rowBytes(dt engine.DType, n int) int {
	switch dt {
	case engine.Q8_0:
		return n / 32 * 34
	case engine.F16, engine.BF16:
		return 2 * n
	}
	return 4 * n
}

// chunkBytes is about how many encoded bytes an encoder makes at a time.
const chunkBytes = 1 << 20

// encoder is the io.Reader of one tensor's encoded bytes. It loads the
// tensor at its first Read and encodes a chunk of rows whenever its buffer
// runs out.
type encoder struct {
	t        Tensor
	dt       engine.DType
	progress func(n int64)

	loaded     bool
	parts      []engine.WeightPart
	rows, cols int // of each part
	part, row  int // next row to encode
	buf, out   []byte
	vals       []float32
}

func (e *encoder) Read(p []byte) (int, error) {
	if !e.loaded {
		if err := e.load(); err != nil {
			return 0, err
		}
		e.loaded = true
	}
	if len(e.out) == 0 {
		if e.part == len(e.parts) {
			return 0, io.EOF
		}
		if err := e.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	if e.part == len(e.parts) && len(e.out) == 0 {
		e.parts, e.part = nil, 0 // done: let the bytes go
	}
	return n, nil
}

// load gets the tensor's parts and checks their sizes.
func (e *encoder) load() error {
	parts, err := e.t.Load()
	if err != nil {
		return err
	}
	shape := e.t.Shape
	if len(parts) != 1 {
		if len(parts) != shape[0] {
			return fmt.Errorf("convert: tensor %q: %d parts for shape %v", e.t.Name, len(parts), shape)
		}
		shape = shape[1:]
	}
	e.cols = shape[len(shape)-1]
	e.rows = 1
	for _, d := range shape[:len(shape)-1] {
		e.rows *= d
	}
	// Bytes per two values.
	es2 := map[engine.DType]int{engine.F32: 8, engine.F16: 4, engine.BF16: 4, engine.F8E4M3: 2, engine.F4E2M1: 1, engine.I32: 8}[e.t.DType]
	if es2 == 0 {
		return fmt.Errorf("convert: tensor %q: stored type %v is not f32, f16, bf16, f8_e4m3, f4_e2m1 or i32", e.t.Name, e.t.DType)
	}
	if (e.t.DType == engine.I32) != (e.dt == engine.I32) {
		return fmt.Errorf("convert: tensor %q: %v cannot be written as %v", e.t.Name, e.t.DType, e.dt)
	}
	if e.t.DType == engine.F4E2M1 && e.cols%safetensors.FP4BlockLen != 0 {
		return fmt.Errorf("convert: tensor %q: f4_e2m1 rows of %d values are not whole 32-value blocks", e.t.Name, e.cols)
	}
	for i, pt := range parts {
		if want := e.rows * e.cols * es2 / 2; len(pt.Data) != want {
			return fmt.Errorf("convert: tensor %q: part %d holds %d bytes, want %d", e.t.Name, i, len(pt.Data), want)
		}
		var want int
		switch e.t.DType {
		case engine.F8E4M3:
			bh, bw := blockOf(pt)
			want = (e.rows + bh - 1) / bh * ((e.cols + bw - 1) / bw)
			if !pt.E8M0Scales {
				want *= 4
			}
		case engine.F4E2M1:
			if !pt.E8M0Scales || (pt.Block != [2]int{} && pt.Block != [2]int{1, safetensors.FP4BlockLen}) {
				return fmt.Errorf("convert: tensor %q: part %d: f4_e2m1 takes E8M0 scales in 1×32 blocks", e.t.Name, i)
			}
			want = e.rows * e.cols / safetensors.FP4BlockLen
		default:
			continue
		}
		if len(pt.Scales) != want {
			return fmt.Errorf("convert: tensor %q: part %d has %d bytes of scales, want %d", e.t.Name, i, len(pt.Scales), want)
		}
	}
	e.parts = parts
	e.vals = make([]float32, e.cols)
	return nil
}

// fill encodes the next rows, up to about chunkBytes, into e.out.
func (e *encoder) fill() error {
	rb := rowBytes(e.dt, e.cols)
	n := max(1, chunkBytes/rb)
	if cap(e.buf) < n*rb {
		e.buf = make([]byte, n*rb)
	}
	out := e.buf[:0]
	for k := 0; k < n && e.part < len(e.parts); k++ {
		dst := out[len(out) : len(out)+rb]
		if err := e.encodeRow(e.parts[e.part], e.row, dst); err != nil {
			return err
		}
		out = out[:len(out)+rb]
		if e.row++; e.row == e.rows {
			e.part, e.row = e.part+1, 0
		}
	}
	e.out = out
	if e.progress != nil {
		e.progress(int64(len(out)))
	}
	return nil
}

// encodeRow writes row r of part pt into dst in e.dt: a copy when the type
// does not change, else the row decoded to float32 (exactly: F16, BF16 and
// FP8 × scale are all float32 values) and encoded.
func (e *encoder) encodeRow(pt engine.WeightPart, r int, dst []byte) error {
	c := e.cols
	if e.t.DType == e.dt {
		es := len(dst) / c
		copy(dst, pt.Data[r*c*es:(r+1)*c*es])
		return nil
	}
	v := e.vals
	switch e.t.DType {
	case engine.F32:
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(pt.Data[4*(r*c+j):]))
		}
	case engine.BF16:
		for j := range v {
			v[j] = safetensors.BF16ToFloat32(binary.LittleEndian.Uint16(pt.Data[2*(r*c+j):]))
		}
	case engine.F16:
		for j := range v {
			v[j] = safetensors.F16ToFloat32(binary.LittleEndian.Uint16(pt.Data[2*(r*c+j):]))
		}
	case engine.F8E4M3:
		// The scales are [⌈rows/bh⌉, ⌈cols/bw⌉], F32 (V3's
		// weight_scale_inv) or E8M0 (V4's .scale); each value is one
		// float32 multiply, as the CPU backend's kernel.DequantE4M3Row.
		bh, bw := blockOf(pt)
		bc := (c + bw - 1) / bw
		codes := pt.Data[r*c : (r+1)*c]
		for j := range v {
			v[j] = safetensors.E4M3ToFloat32(codes[j]) * scaleAt(pt, r/bh*bc+j/bw)
		}
	case engine.F4E2M1:
		// Two values a byte, the even one in the low nibble; an E8M0
		// scale per 32 values of the row.
		codes := pt.Data[r*c/2 : (r+1)*c/2]
		s := pt.Scales[r*c/safetensors.FP4BlockLen:]
		for j := range v {
			v[j] = safetensors.E2M1ToFloat32(codes[j/2]>>(4*(j&1))) * safetensors.E8M0ToFloat32(s[j/safetensors.FP4BlockLen])
		}
	}
	if err := cpu.Quantize(e.dt, v, dst); err != nil {
		return fmt.Errorf("convert: tensor %q: %w", e.t.Name, err)
	}
	return nil
}

// blockOf is an FP8 part's block shape, 128×128 when not given.
func blockOf(pt engine.WeightPart) (int, int) {
	if pt.Block[0] > 0 && pt.Block[1] > 0 {
		return pt.Block[0], pt.Block[1]
	}
	return 128, 128
}

// scaleAt is block scale i of an FP8 part: an E8M0 byte or an F32.
func scaleAt(pt engine.WeightPart, i int) float32 {
	if pt.E8M0Scales {
		return safetensors.E8M0ToFloat32(pt.Scales[i])
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(pt.Scales[4*i:]))
}
