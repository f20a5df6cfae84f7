package deepseekv4

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

func init() {
	engine.RegisterDir(LoadDir, safetensors.ModelTypeV4)
}

// LoadDir builds the model of a DeepSeek-V4 Hugging Face directory in the
// release format (config.json model_type deepseek_v4 with the legacy field
// names, spec §1.1; tensors named as in spec §5.1) on backend b, viewing
// the memory-mapped weights in place through the same build as Load: FP8
// E4M3 projections stay FP8 with their E8M0 ".scale" blocks (the block
// shape from quantization_config.weight_block_size, or from each scale's
// shape when the config gives none), FP4 routed experts stay FP4 (one
// part per expert, stacked [X, F, D]), BF16 and F32 tensors stay as
// stored, except vectors and compressor ape tables, which are widened
// (exactly) to F32. tid2eid may be I32 or I64 on disk; it becomes I32,
// every id checked against n_routed_experts. MTP blocks
// (num_nextn_predict_layers, mtp.K.*) are loaded and checked when present
// and not used by Forward. Where a release name is absent, HF
// transformers' internal name (spec §5.3) is read instead, and its stacked
// experts in F32, F16 or BF16. Errors name the tensor and its file.
func LoadDir(m *safetensors.Model, cfg *safetensors.Config, b engine.Backend) (engine.Model, error) {
	p, err := paramsFromConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(m.Dir(), safetensors.ConfigFile), err)
	}
	if err := checkLayers(m, p.Layers, p.NextN); err != nil {
		return nil, err
	}
	src := &hfSource{m: m, p: p, block: cfg.V4BlockSize()}
	w := weights{src: src, b: b}
	model := build(p, &w)
	if w.err != nil {
		return nil, w.err
	}
	D, hc := p.Hidden, p.HCMult
	for k := range model.mtp {
		mb, n := &model.mtp[k], p.Layers+k
		mb.hcHeadFn = w.get(blk(n, "nextn.hc_head_fn.weight"), hc, hc*D)
		mb.hcHeadScale = w.get(blk(n, "nextn.hc_head_scale.weight"), 1)
		mb.hcHeadBase = w.get(blk(n, "nextn.hc_head_base.weight"), hc)
	}
	if w.err != nil {
		return nil, w.err
	}
	// As for V3 directories, the MTP blocks are not part of what a token
	// reads, nor counted.
	w.total -= src.mtp.params
	w.bytes -= src.mtp.bytes
	w.routedBytes -= src.mtp.routed
	model.info = info(filepath.Base(m.Dir()), p, &w, len(model.mtp))
	return model, nil
}

// checkLayers fails for a tensor of a block past those config.json
// declares: by its release name, layers.N. with N ≥ layers (MTP blocks are
// mtp.K.); by transformers', model.layers.N. with N ≥ layers + nextn.
// Such a checkpoint holds another model than its config describes, and
// loading the blocks the config names would run a shallower one without a
// word. Other names the loader does not read are let through, as
// transformers does.
func checkLayers(m *safetensors.Model, layers, nextn int) error {
	for _, c := range []struct {
		prefix string
		limit  int
	}{{"layers.", layers}, {"model.layers.", layers + max(nextn, 0)}} {
		if name, n, where, found := m.LayerPast(c.prefix, c.limit); found {
			return fmt.Errorf("deepseekv4: %s: tensor %q: block %d is past the %d blocks config.json describes (num_hidden_layers %d, num_nextn_predict_layers %d)", where, name, n, c.limit, layers, nextn)
		}
	}
	return nil
}

// MTPLayers is the number of multi-token-prediction blocks loaded (the
// method V3's Model has, which `ulan model inspect` reports).
func (m *Model) MTPLayers() int { return len(m.mtp) }

// paramsFromConfig reads config.json's V4 fields (spec §1.1).
func paramsFromConfig(c *safetensors.Config) (Params, error) {
	if c.ModelType != safetensors.ModelTypeV4 {
		return Params{}, fmt.Errorf("deepseekv4: model_type %q, want %q", c.ModelType, safetensors.ModelTypeV4)
	}
	if err := c.Validate(); err != nil {
		return Params{}, err
	}
	p := Params{
		Vocab: c.VocabSize, Hidden: c.HiddenSize, Layers: c.NumHiddenLayers,
		Heads: c.NumAttentionHeads, HeadDim: c.HeadDim, RopeDim: c.QKRopeHeadDim, QLoRA: *c.QLoRARank,
		OGroups: c.OGroups, OLoRA: c.OLoRARank, Window: c.SlidingWindow,
		Ratios:     slices.Clone(c.CompressRatios[:c.NumHiddenLayers]),
		IndexHeads: c.IndexNHeads, IndexHeadDim: c.IndexHeadDim, IndexTopK: c.IndexTopK,
		Experts: c.NRoutedExperts, ExpertsUsed: c.NumExpertsPerTok, Shared: c.NSharedExperts,
		ExpertFFN: c.MoEIntermediateSize, HashLayers: c.NumHashLayers, NormTopK: c.NormTopkProb,
		RoutedScale: float32(c.RoutedScalingFactor),
		HCMult:      c.HCMult, HCIters: c.HCSinkhornIters, HCEps: float32(c.HCEps), Eps: float32(c.RMSNormEps),
		Context: c.MaxPositionEmbeddings, RopeBase: float32(c.RopeTheta), CompressBase: float32(c.CompressRopeTheta),
		NextN: c.NumNextNPredictLayers,
	}
	p.ClampExp = make([]float32, p.Layers)
	for i := range p.ClampExp {
		p.ClampExp[i] = float32(c.SwigluLimit)
	}
	p.ClampShared = slices.Clone(p.ClampExp)
	if r := c.RopeScaling; r != nil {
		p.YarnFactor = float32(r.Factor)
		p.YarnOrigContext = r.OriginalMaxPositionEmbeddings
		p.YarnBetaFast = float32(r.BetaFast)
		p.YarnBetaSlow = float32(r.BetaSlow)
	}
	return p, p.validate()
}

// source is where a directory's weights come from, asked for by GGUF name
// (hfnames.go maps them) and row-major shape.
type source interface {
	// has reports whether the weight exists.
	has(name string) bool
	// load makes the backend tensor of a weight stored with shape file and
	// handed over as shape as (the same values), checking its shape and
	// type; it returns the tensor, its parameter count and stored bytes.
	load(b engine.Backend, name string, file, as []int) (t engine.Tensor, params, bytes uint64, err error)
}

// loadSource is weights.load for a source: the GGUF path's accounting
// (the hash tables count bytes but no parameters).
func (w *weights) loadSource(name string, file, as []int) (engine.Tensor, error) {
	t, params, size, err := w.src.load(w.b, name, file, as)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(name, "ffn_gate_tid2eid.weight") {
		w.total += params
	}
	w.bytes += size
	switch {
	case strings.HasSuffix(name, "_exps.weight"):
		w.routedBytes += size
	case name == "token_embd.weight":
		w.embedBytes += size
	}
	return t, nil
}

// hfSource reads weights from a Hugging Face directory in V4's release
// format.
type hfSource struct {
	m *safetensors.Model
	p Params
	// block is quantization_config.weight_block_size, or nil.
	block []int
	// mtp counts what the MTP blocks' weights add to the totals: their
	// parameters (the hash tables aside), bytes and routed experts' bytes.
	mtp struct{ params, bytes, routed uint64 }
}

func (s *hfSource) has(name string) bool {
	var hf string
	if n, ok := hfName(name, s.p.Layers); ok {
		hf = s.resolve(name, n)
	} else if b, rest, ok := splitBlk(name); ok && hfExpertNames[rest] != "" {
		hf = s.expertName(b, 0, rest)
		if _, ok := s.m.Tensor(hf); !ok {
			if tf, ok := s.tfStacked(b, rest); ok {
				hf = tf
			}
		}
	} else if ok && rest == ehProjName {
		hf = hfBlockPrefix(b, s.p.Layers) + "e_proj.weight"
	}
	_, ok := s.m.Tensor(hf)
	return hf != "" && ok
}

// resolve is the name tensor name (GGUF) has in the directory: its
// release name hf, or when that is absent and transformers' is present
// (spec §5.3), transformers' name. A tensor found under neither keeps hf,
// for the error.
func (s *hfSource) resolve(name, hf string) string {
	if _, ok := s.m.Tensor(hf); ok {
		return hf
	}
	if tf, ok := tfName(name, s.p.Layers); ok {
		for _, n := range []string{"model." + tf, tf} {
			if _, ok := s.m.Tensor(n); ok {
				return n
			}
		}
	}
	return hf
}

// tfStacked is the name of transformers' stacked expert tensor for GGUF
// block b's rest, if the directory has it.
func (s *hfSource) tfStacked(b int, rest string) (string, bool) {
	x, ok := tfExperts[rest]
	if !ok || b >= s.p.Layers {
		return "", false
	}
	tf := "layers." + strconv.Itoa(b) + ".mlp.experts." + x.name
	for _, n := range []string{"model." + tf, tf} {
		if _, ok := s.m.Tensor(n); ok {
			return n, true
		}
	}
	return "", false
}

// expertName is the release name of expert e's projection in block b.
func (s *hfSource) expertName(b, e int, rest string) string {
	return hfBlockPrefix(b, s.p.Layers) + "ffn.experts." + strconv.Itoa(e) + "." + hfExpertNames[rest]
}

// where names a tensor and its file for an error.
func (s *hfSource) where(hf string) string {
	if shard, ok := s.m.ShardOf(hf); ok {
		return fmt.Sprintf("%s: tensor %q", shard, hf)
	}
	return fmt.Sprintf("%s: tensor %q", s.m.Dir(), hf)
}

func (s *hfSource) load(b engine.Backend, name string, file, as []int) (engine.Tensor, uint64, uint64, error) {
	t, params, size, err := s.loadOne(b, name, file, as)
	if n, _, ok := splitBlk(name); ok && n >= s.p.Layers && err == nil {
		s.mtp.params += params
		s.mtp.bytes += size
		if strings.HasSuffix(name, "_exps.weight") {
			s.mtp.routed += size
		}
	}
	return t, params, size, err
}

// loadOne is load for one weight.
func (s *hfSource) loadOne(b engine.Backend, name string, file, as []int) (engine.Tensor, uint64, uint64, error) {
	if hf, ok := hfName(name, s.p.Layers); ok {
		hf = s.resolve(name, hf)
		if strings.HasSuffix(name, "ffn_gate_tid2eid.weight") {
			return s.table(b, name, hf, file, as)
		}
		part, dt, size, err := s.part(hf, file)
		if err != nil {
			return nil, 0, 0, err
		}
		// Vectors (norms, biases, sinks, mHC scales and bases) and the
		// compressors' ape feed f32 arithmetic; checkpoints keep the norms
		// in BF16, so they are widened (exactly) here.
		if (len(file) == 1 || strings.HasSuffix(name, "_ape.weight")) && dt != engine.F32 {
			if dt != engine.BF16 && dt != engine.F16 {
				return nil, 0, 0, fmt.Errorf("%s: dtype %v, want F32, F16 or BF16", s.where(hf), dt)
			}
			part.Data, dt = widen(part.Data, dt), engine.F32
		}
		t, err := b.WeightParts(name, dt, slices.Clone(as), []engine.WeightPart{part})
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%s: %w", s.where(hf), err)
		}
		return t, uint64(numel(file)), size, nil
	}
	blkN, rest, ok := splitBlk(name)
	switch {
	case ok && hfExpertNames[rest] != "" && len(file) == 3:
		if _, ok := s.m.Tensor(s.expertName(blkN, 0, rest)); !ok {
			if tf, ok := s.tfStacked(blkN, rest); ok {
				return s.stacked(b, name, tf, tfExperts[rest].half, file)
			}
		}
		return s.experts(b, name, blkN, rest, file)
	case ok && rest == ehProjName:
		return s.ehProj(b, name, blkN, file, as)
	}
	return nil, 0, 0, fmt.Errorf("tensor %q has no name in a DeepSeek-V4 checkpoint", name)
}

// numel is the product of a shape.
func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// scaleOf finds the scale tensor of quantized weight hf: the release's
// "<module>.scale", or transformers' "<name>_scale_inv".
func (s *hfSource) scaleOf(hf string) (safetensors.Tensor, bool) {
	if t, ok := s.m.Tensor(hfScaleName(hf)); ok {
		return t, true
	}
	return s.m.Tensor(safetensors.ScaleName(hf))
}

// part finds tensor hf, checks its shape and type, and returns its bytes
// (with its block scales for FP8 and FP4), engine type and stored size.
// shape is the weight's logical row-major shape: an FP4 weight's [rows,
// cols] is stored as bytes [rows, cols/2].
func (s *hfSource) part(hf string, shape []int) (engine.WeightPart, engine.DType, uint64, error) {
	var none engine.WeightPart
	t, ok := s.m.Tensor(hf)
	if !ok {
		return none, 0, 0, fmt.Errorf("%s: tensor %q is missing", s.m.Dir(), hf)
	}
	switch t.DType {
	case safetensors.F32, safetensors.F16, safetensors.BF16:
		if !slices.Equal(t.Shape, shape) {
			return none, 0, 0, fmt.Errorf("%s: shape %v, want %v", s.where(hf), t.Shape, shape)
		}
		dt := map[safetensors.DType]engine.DType{safetensors.F32: engine.F32, safetensors.F16: engine.F16, safetensors.BF16: engine.BF16}[t.DType]
		return engine.WeightPart{Data: t.Data}, dt, uint64(len(t.Data)), nil
	case safetensors.F8_E4M3:
		if !slices.Equal(t.Shape, shape) || len(shape) != 2 {
			return none, 0, 0, fmt.Errorf("%s: F8_E4M3 %v, want a matrix %v", s.where(hf), t.Shape, shape)
		}
		sc, ok := s.scaleOf(hf)
		if !ok {
			return none, 0, 0, fmt.Errorf("%s: F8_E4M3 without its scale tensor %q", s.where(hf), hfScaleName(hf))
		}
		block, err := safetensors.CheckFP8Blocks(t, sc, s.block)
		if err != nil {
			return none, 0, 0, fmt.Errorf("%s: %w", s.where(sc.Name), err)
		}
		part := engine.WeightPart{Data: t.Data, Scales: sc.Data, E8M0Scales: sc.DType == safetensors.F8_E8M0, Block: block}
		return part, engine.F8E4M3, uint64(len(t.Data) + len(sc.Data)), nil
	case safetensors.I8, safetensors.U8, safetensors.F4:
		sc, ok := s.scaleOf(hf)
		if !ok {
			return none, 0, 0, fmt.Errorf("%s: FP4 %v without its scale tensor %q", s.where(hf), t.DType, hfScaleName(hf))
		}
		rows, cols, err := safetensors.CheckFP4(t, sc)
		if err != nil {
			return none, 0, 0, fmt.Errorf("%s: %w", s.where(hf), err)
		}
		if len(shape) != 2 || rows != shape[0] || cols != shape[1] {
			return none, 0, 0, fmt.Errorf("%s: %v %v holds FP4 [%d %d], want %v", s.where(hf), t.DType, t.Shape, rows, cols, shape)
		}
		part := engine.WeightPart{Data: t.Data, Scales: sc.Data, E8M0Scales: true, Block: [2]int{1, safetensors.FP4BlockLen}}
		return part, engine.F4E2M1, uint64(len(t.Data) + len(sc.Data)), nil
	}
	return none, 0, 0, fmt.Errorf("%s: dtype %v is not supported (F32, F16, BF16, F8_E4M3 with a scale, FP4 as I8, U8 or F4 with an F8_E8M0 scale)", s.where(hf), t.DType)
}

// experts makes the stacked [X, rows, cols] weight from X expert tensors,
// viewed in place.
func (s *hfSource) experts(b engine.Backend, name string, blkN int, rest string, shape []int) (engine.Tensor, uint64, uint64, error) {
	parts := make([]engine.WeightPart, shape[0])
	var dt0 engine.DType
	var size uint64
	for e := range parts {
		hf := s.expertName(blkN, e, rest)
		part, dt, n, err := s.part(hf, shape[1:])
		if err != nil {
			return nil, 0, 0, err
		}
		if e == 0 {
			dt0 = dt
		} else if dt != dt0 {
			return nil, 0, 0, fmt.Errorf("%s: dtype %v, but expert 0 is %v: experts must share a type", s.where(hf), dt, dt0)
		}
		parts[e], size = part, size+n
	}
	t, err := b.WeightParts(name, dt0, slices.Clone(shape), parts)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", s.where(s.expertName(blkN, 0, rest)), err)
	}
	return t, uint64(numel(shape)), size, nil
}

// stacked makes the [X, rows, cols] expert weight from transformers'
// stacked tensor tf, [X, rows, cols] (half 0) or [X, 2·rows, cols] whose
// first (half 1) or second (half 2) rows of each expert are wanted, one
// part per expert viewed in place. Only F32, F16 and BF16 are read so.
func (s *hfSource) stacked(b engine.Backend, name, tf string, half int, shape []int) (engine.Tensor, uint64, uint64, error) {
	t, _ := s.m.Tensor(tf)
	X, rows, cols := shape[0], shape[1], shape[2]
	want := slices.Clone(shape)
	if half > 0 {
		want[1] *= 2
	}
	if !slices.Equal(t.Shape, want) {
		return nil, 0, 0, fmt.Errorf("%s: shape %v, want %v", s.where(tf), t.Shape, want)
	}
	dt, ok := map[safetensors.DType]engine.DType{safetensors.F32: engine.F32, safetensors.F16: engine.F16, safetensors.BF16: engine.BF16}[t.DType]
	if !ok {
		return nil, 0, 0, fmt.Errorf("%s: dtype %v: stacked experts are read in F32, F16 or BF16 only", s.where(tf), t.DType)
	}
	es := t.DType.Bits() / 8
	n := rows * cols * es // one expert's matrix
	per := len(t.Data) / X
	parts := make([]engine.WeightPart, X)
	for e := range parts {
		off := e * per
		if half == 2 {
			off += n
		}
		parts[e] = engine.WeightPart{Data: t.Data[off : off+n]}
	}
	w, err := b.WeightParts(name, dt, slices.Clone(shape), parts)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", s.where(tf), err)
	}
	return w, uint64(numel(shape)), uint64(X * n), nil
}

// table loads a hash-routing table [vocab, k] (ffn.gate.tid2eid), stored
// as I32 or I64, as I32, checking that every id names an expert.
func (s *hfSource) table(b engine.Backend, name, hf string, file, as []int) (engine.Tensor, uint64, uint64, error) {
	t, ok := s.m.Tensor(hf)
	if !ok {
		return nil, 0, 0, fmt.Errorf("%s: tensor %q is missing", s.m.Dir(), hf)
	}
	if !slices.Equal(t.Shape, file) {
		return nil, 0, 0, fmt.Errorf("%s: shape %v, want %v", s.where(hf), t.Shape, file)
	}
	n, X := numel(file), s.p.Experts
	data := t.Data
	switch t.DType {
	case safetensors.I32:
		for i := range n {
			if id := int32(binary.LittleEndian.Uint32(data[4*i:])); id < 0 || int(id) >= X {
				return nil, 0, 0, fmt.Errorf("%s: element %d is expert %d, outside [0, %d)", s.where(hf), i, id, X)
			}
		}
	case safetensors.I64:
		// Narrowed to I32 (a copy), each id checked first.
		data = make([]byte, 4*n)
		for i := range n {
			id := int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
			if id < 0 || id >= int64(X) {
				return nil, 0, 0, fmt.Errorf("%s: element %d is expert %d, outside [0, %d)", s.where(hf), i, id, X)
			}
			binary.LittleEndian.PutUint32(data[4*i:], uint32(id))
		}
	default:
		return nil, 0, 0, fmt.Errorf("%s: dtype %v, want I32 or I64 (expert ids)", s.where(hf), t.DType)
	}
	w, err := b.WeightParts(name, engine.I32, slices.Clone(as), []engine.WeightPart{{Data: data}})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", s.where(hf), err)
	}
	return w, uint64(n), uint64(len(t.Data)), nil
}

// ehProj makes an MTP block's eh_proj [D, 2D] (llama.cpp's layout: the
// embedding half's columns, then the hidden half's) from the release's
// e_proj and h_proj [D, D]. Its columns cut across FP8 scale blocks, so it
// is materialized in F32, each value decoded exactly as the backend would.
func (s *hfSource) ehProj(b engine.Backend, name string, blkN int, file, as []int) (engine.Tensor, uint64, uint64, error) {
	if len(file) != 2 || file[1]%2 != 0 {
		return nil, 0, 0, fmt.Errorf("tensor %q: shape %v is not [D, 2D]", name, file)
	}
	rows, half := file[0], file[1]/2
	prefix := hfBlockPrefix(blkN, s.p.Layers)
	out := make([]byte, 4*rows*2*half)
	var size uint64
	for k, hf := range []string{prefix + "e_proj.weight", prefix + "h_proj.weight"} {
		part, dt, n, err := s.part(hf, []int{rows, half})
		if err != nil {
			return nil, 0, 0, err
		}
		v, err := decode(part, dt, rows, half)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%s: %w", s.where(hf), err)
		}
		for r := range rows {
			for c := range half {
				binary.LittleEndian.PutUint32(out[4*(r*2*half+k*half+c):], math.Float32bits(v[r*half+c]))
			}
		}
		size += n
	}
	t, err := b.Weight(name, engine.F32, slices.Clone(as), out)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", s.where(prefix+"e_proj.weight"), err)
	}
	return t, uint64(numel(file)), size, nil
}

// decode returns a part's rows×cols values as float32, exactly: F16 and
// BF16 widened, FP8 and FP4 codes times their block's scale in one float32
// multiply (what the CPU backend's kernels use).
func decode(p engine.WeightPart, dt engine.DType, rows, cols int) ([]float32, error) {
	out := make([]float32, rows*cols)
	switch dt {
	case engine.F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(p.Data[4*i:]))
		}
	case engine.F16, engine.BF16:
		for i := range out {
			h := binary.LittleEndian.Uint16(p.Data[2*i:])
			if dt == engine.BF16 {
				out[i] = safetensors.BF16ToFloat32(h)
			} else {
				out[i] = safetensors.F16ToFloat32(h)
			}
		}
	case engine.F8E4M3, engine.F4E2M1:
		bh, bw := p.Block[0], p.Block[1]
		bc := (cols + bw - 1) / bw
		scale := func(i int) float32 {
			if p.E8M0Scales {
				return safetensors.E8M0ToFloat32(p.Scales[i])
			}
			return math.Float32frombits(binary.LittleEndian.Uint32(p.Scales[4*i:]))
		}
		for r := range rows {
			for c := range cols {
				var code float32
				if dt == engine.F8E4M3 {
					code = safetensors.E4M3ToFloat32(p.Data[r*cols+c])
				} else {
					code = safetensors.E2M1ToFloat32(p.Data[(r*cols+c)/2] >> (4 * (c & 1)))
				}
				out[r*cols+c] = code * scale(r/bh*bc+c/bw)
			}
		}
	default:
		return nil, fmt.Errorf("cannot decode %v", dt)
	}
	return out, nil
}

// widen converts an F16 or BF16 vector to F32 bytes, exactly.
func widen(data []byte, dt engine.DType) []byte {
	n := len(data) / 2
	out := make([]byte, 4*n)
	for i := range n {
		h := binary.LittleEndian.Uint16(data[2*i:])
		f := safetensors.F16ToFloat32(h)
		if dt == engine.BF16 {
			f = safetensors.BF16ToFloat32(h)
		}
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out
}
