package deepseekv3

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// LoadDir builds the model of a Hugging Face directory (config.json
// model_type deepseek_v2 or deepseek_v3, safetensors in F32, F16, BF16 or
// FP8 e4m3 with 128×128 weight_scale_inv blocks) on backend b, viewing the
// memory-mapped weights in place: experts stay one tensor each, kv_b_proj is
// split into W_UK (transposed) and W_UV as llama.cpp's converter does. MTP
// layers (num_nextn_predict_layers) are loaded and checked when present and
// not used by Forward. Errors name the tensor and its file.
func LoadDir(m *safetensors.Model, cfg *safetensors.Config, b engine.Backend) (engine.Model, error) {
	p, err := paramsFromConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(m.Dir(), safetensors.ConfigFile), err)
	}
	if err := checkLayers(m, p.Layers+max(cfg.NumNextNPredictLayers, 0)); err != nil {
		return nil, err
	}
	w := weights{src: &hfSource{m: m, p: p}, b: b}
	model := build(p, &w)
	if w.err != nil {
		return nil, w.err
	}
	// The MTP layers are not part of what a token reads, nor counted.
	model.info = info(cfg.ModelType, filepath.Base(m.Dir()), p, &w)
	for k := range cfg.NumNextNPredictLayers {
		i := p.Layers + k
		if !w.src.has(blk(i, "nextn.eh_proj.weight")) {
			break // MTP layers are optional: many conversions drop them.
		}
		model.mtp = append(model.mtp, loadMTP(p, &w, i))
	}
	if w.err != nil {
		return nil, w.err
	}
	return model, nil
}

// checkLayers fails for a tensor of a layer at or past limit (the decoder
// layers plus the MTP layers config.json declares): such a checkpoint
// holds another model than its config describes, and loading the layers
// the config names would run a shallower one without a word. Other names
// the loader does not read are let through, as transformers does.
func checkLayers(m *safetensors.Model, limit int) error {
	if name, n, where, found := m.LayerPast("model.layers.", limit); found {
		return fmt.Errorf("deepseekv3: %s: tensor %q: layer %d is past the %d layers config.json describes (num_hidden_layers plus num_nextn_predict_layers)", where, name, n, limit)
	}
	return nil
}

// mtpLayer is a multi-token-prediction module (spec §2.8 of V3's paper):
// it combines the normalised hidden state and the next token's embedding
// through eh_proj, runs a full MoE block and predicts with its own head.
type mtpLayer struct {
	enorm, hnorm engine.Tensor // [E]
	ehProj       engine.Tensor // [E, 2E]
	embed        engine.Tensor // [V, E]
	block        layer
	headNorm     engine.Tensor // [E]
	head         engine.Tensor // [V, E]
}

// loadMTP loads MTP layer i (i ≥ Layers).
func loadMTP(p Params, w *weights, i int) mtpLayer {
	E, V := p.Hidden, p.Vocab
	n := func(s string) string { return blk(i, s) }
	return mtpLayer{
		enorm:    w.get(n("nextn.enorm.weight"), E),
		hnorm:    w.get(n("nextn.hnorm.weight"), E),
		ehProj:   w.get(n("nextn.eh_proj.weight"), E, 2*E),
		embed:    w.get(n("nextn.embed_tokens.weight"), V, E),
		block:    loadLayer(p, w, i),
		headNorm: w.get(n("nextn.shared_head_norm.weight"), E),
		head:     w.get(n("nextn.shared_head_head.weight"), V, E),
	}
}

// MTPLayers is the number of multi-token-prediction layers loaded.
func (m *Model) MTPLayers() int { return len(m.mtp) }

// paramsFromConfig reads config.json's fields (spec §1.2).
func paramsFromConfig(c *safetensors.Config) (Params, error) {
	if err := c.Validate(); err != nil {
		return Params{}, err
	}
	p := Params{
		Vocab: c.VocabSize, Hidden: c.HiddenSize, Layers: c.NumHiddenLayers,
		DenseLayers: c.FirstKDenseReplace, DenseFFN: c.IntermediateSize, ExpertFFN: c.MoEIntermediateSize,
		Heads: c.NumAttentionHeads, KVLoRA: c.KVLoRARank,
		NopeDim: c.QKNopeHeadDim, RopeDim: c.QKRopeHeadDim, ValueDim: c.VHeadDim,
		Experts: c.NRoutedExperts, ExpertsUsed: c.NumExpertsPerTok, Shared: c.NSharedExperts,
		Groups: c.NGroup, GroupsUsed: c.TopkGroup, NormTopK: c.NormTopkProb,
		RoutedScale: float32(c.RoutedScalingFactor), Eps: float32(c.RMSNormEps),
		Context: c.MaxPositionEmbeddings, RopeBase: float32(c.RopeTheta),
	}
	if c.QLoRARank != nil {
		p.QLoRA = *c.QLoRARank
	}
	if p.RoutedScale == 0 {
		p.RoutedScale = 1
	}
	if p.RopeBase == 0 {
		p.RopeBase = 10000
	}
	// part reads every FP8 scale as a 128×128 block's, as V3 and R1 ship;
	// a config declaring other blocks describes scales it would misread.
	if q := c.QuantizationConfig; q != nil && !slices.Equal(q.WeightBlockSize, []int{128, 128}) {
		return Params{}, fmt.Errorf("deepseekv3: quantization_config.weight_block_size %v is not supported (128×128 blocks only)", q.WeightBlockSize)
	}
	if f := c.MoELayerFreq; f > 1 {
		return Params{}, fmt.Errorf("deepseekv3: moe_layer_freq %d is not supported (every DeepSeek model has 1)", f)
	}
	switch c.ScoringFunc {
	case "sigmoid":
		p.Scoring = engine.Sigmoid
	case "softmax", "":
		p.Scoring = engine.Softmax
	default:
		return Params{}, fmt.Errorf("deepseekv3: scoring_func %q is not softmax or sigmoid", c.ScoringFunc)
	}
	// See RATIONALE.md, "Why does a V2 directory route by the group's best
	// expert when its GGUF routes by the best two?".
	switch c.TopkMethod {
	case "noaux_tc":
		p.GroupScore = engine.GroupTop2Sum
	case "group_limited_greedy":
		p.GroupScore = engine.GroupMax
	case "greedy", "":
		p.Groups, p.GroupsUsed, p.GroupScore = 0, 0, engine.GroupTop2Sum
	default:
		return Params{}, fmt.Errorf("deepseekv3: topk_method %q is not greedy, group_limited_greedy or noaux_tc", c.TopkMethod)
	}
	if r := c.RopeScaling; r != nil && r.Type == "yarn" {
		p.YarnFactor = float32(r.Factor)
		p.YarnOrigContext = r.OriginalMaxPositionEmbeddings
		p.YarnBetaFast = float32(r.BetaFast)
		p.YarnBetaSlow = float32(r.BetaSlow)
		p.MscaleAllDim = float32(r.MScaleAllDim)
	} else if r != nil && r.Type != "" {
		return Params{}, fmt.Errorf("deepseekv3: rope_scaling type %q is not supported (yarn only)", r.Type)
	}
	return p, p.validate()
}

// hfSource reads weights from a Hugging Face directory, by GGUF name.
type hfSource struct {
	m *safetensors.Model
	p Params
}

func (s *hfSource) has(name string) bool {
	if hf, ok := hfName(name); ok {
		_, ok := s.m.Tensor(hf)
		return ok
	}
	return false
}

// where names a tensor and its file for an error.
func (s *hfSource) where(hf string) string {
	if shard, ok := s.m.ShardOf(hf); ok {
		return fmt.Sprintf("%s: tensor %q", shard, hf)
	}
	return fmt.Sprintf("%s: tensor %q", s.m.Dir(), hf)
}

func (s *hfSource) load(b engine.Backend, name string, shape []int) (engine.Tensor, uint64, uint64, error) {
	if hf, ok := hfName(name); ok {
		part, dt, size, err := s.part(hf, shape)
		if err != nil {
			return nil, 0, 0, err
		}
		if len(shape) == 1 && dt != engine.F32 {
			// Norms and biases feed f32 arithmetic; checkpoints keep them
			// in BF16, so they are widened (exactly) here.
			part.Data, dt = widen(part.Data, dt), engine.F32
		}
		t, err := b.WeightParts(name, dt, slices.Clone(shape), []engine.WeightPart{part})
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%s: %w", s.where(hf), err)
		}
		return t, uint64(numel(shape)), size, nil
	}
	layer, rest, ok := splitBlk(name)
	switch {
	case ok && hfExpertNames[rest] != "" && len(shape) == 3:
		return s.experts(b, name, layer, hfExpertNames[rest], shape)
	case ok && (rest == "attn_k_b.weight" || rest == "attn_v_b.weight"):
		return s.kvB(b, name, layer, rest == "attn_k_b.weight", shape)
	}
	return nil, 0, 0, fmt.Errorf("tensor %q has no Hugging Face name", name)
}

// numel is the product of a shape.
func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// hfDTypes maps the safetensors types the engine computes with.
var hfDTypes = map[safetensors.DType]engine.DType{
	safetensors.F32:     engine.F32,
	safetensors.F16:     engine.F16,
	safetensors.BF16:    engine.BF16,
	safetensors.F8_E4M3: engine.F8E4M3,
}

// part finds tensor hf, checks its shape and type, and returns its bytes
// (with its weight_scale_inv for F8_E4M3), engine type and stored size.
func (s *hfSource) part(hf string, shape []int) (engine.WeightPart, engine.DType, uint64, error) {
	t, ok := s.m.Tensor(hf)
	if !ok {
		return engine.WeightPart{}, 0, 0, fmt.Errorf("%s: tensor %q is missing", s.m.Dir(), hf)
	}
	if !slices.Equal(t.Shape, shape) {
		return engine.WeightPart{}, 0, 0, fmt.Errorf("%s: shape %v, want %v", s.where(hf), t.Shape, shape)
	}
	dt, ok := hfDTypes[t.DType]
	if !ok {
		return engine.WeightPart{}, 0, 0, fmt.Errorf("%s: dtype %v is not supported (F32, F16, BF16, F8_E4M3)", s.where(hf), t.DType)
	}
	part := engine.WeightPart{Data: t.Data}
	size := uint64(len(t.Data))
	if dt != engine.F8E4M3 {
		return part, dt, size, nil
	}
	if len(shape) != 2 {
		return engine.WeightPart{}, 0, 0, fmt.Errorf("%s: F8_E4M3 %v: only matrices may be FP8", s.where(hf), shape)
	}
	name := safetensors.ScaleName(hf)
	st, ok := s.m.Tensor(name)
	if !ok {
		return engine.WeightPart{}, 0, 0, fmt.Errorf("%s: F8_E4M3 without its scale tensor %q", s.where(hf), name)
	}
	want := safetensors.ScaleShape(shape[0], shape[1], 128, 128)
	if st.DType != safetensors.F32 || !slices.Equal(st.Shape, want) {
		return engine.WeightPart{}, 0, 0, fmt.Errorf("%s: %v %v, want F32 %v (128×128 blocks)", s.where(name), st.DType, st.Shape, want)
	}
	part.Scales = st.Data
	return part, dt, size + uint64(len(st.Data)), nil
}

// experts makes the stacked [X, rows, cols] weight from X expert tensors,
// viewed in place.
func (s *hfSource) experts(b engine.Backend, name string, layer int, proj string, shape []int) (engine.Tensor, uint64, uint64, error) {
	parts := make([]engine.WeightPart, shape[0])
	var dt0 engine.DType
	var size uint64
	for e := range parts {
		hf := safetensors.ExpertPrefix(layer, e) + proj
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
		return nil, 0, 0, fmt.Errorf("%s: %w", s.where(safetensors.ExpertPrefix(layer, 0)+proj), err)
	}
	return t, uint64(numel(shape)), size, nil
}

// kvB makes W_UK ([H, KVLoRA, nope], k true) or W_UV ([H, v, KVLoRA]) from
// kv_b_proj [H·(nope+v), KVLoRA], which llama.cpp views as
// [H, nope+v, KVLoRA] and splits, transposing the first part per head
// (convert_hf_to_gguf.py, DeepseekV2Model). These are small and are
// materialized: F32, F16 and BF16 in their type (a copy of the same
// values), FP8 dequantized to F32 (see RATIONALE.md, "Why is an FP8
// kv_b_proj dequantized at load?").
func (s *hfSource) kvB(b engine.Backend, name string, layer int, k bool, shape []int) (engine.Tensor, uint64, uint64, error) {
	p := s.p
	H, c, nope, v := p.Heads, p.KVLoRA, p.NopeDim, p.ValueDim
	hf := safetensors.LayerPrefix(layer) + "self_attn.kv_b_proj.weight"
	part, dt, size, err := s.part(hf, []int{H * (nope + v), c})
	if err != nil {
		return nil, 0, 0, err
	}
	want := []int{H, v, c}
	if k {
		want = []int{H, c, nope}
	}
	if !slices.Equal(shape, want) {
		return nil, 0, 0, fmt.Errorf("%s: %s wanted as %v, kv_b_proj gives %v", s.where(hf), name, shape, want)
	}
	src, es := part.Data, 0
	if dt == engine.F8E4M3 {
		src, es, dt = dequantE4M3(part.Data, part.Scales, H*(nope+v), c), 4, engine.F32
	} else {
		es = map[engine.DType]int{engine.F32: 4, engine.F16: 2, engine.BF16: 2}[dt]
	}
	// at is element (r, j) of kv_b_proj; out[o] gets it.
	out := make([]byte, numel(shape)*es)
	move := func(o, r, j int) { copy(out[o*es:(o+1)*es], src[(r*c+j)*es:]) }
	for h := range H {
		base := h * (nope + v)
		if k {
			for j := range c {
				for i := range nope {
					move((h*c+j)*nope+i, base+i, j)
				}
			}
			continue
		}
		for i := range v {
			for j := range c {
				move((h*v+i)*c+j, base+nope+i, j)
			}
		}
	}
	t, err := b.Weight(name, dt, slices.Clone(shape), out)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", s.where(hf), err)
	}
	// kv_b_proj's bytes count once, with W_UV.
	if k {
		size = 0
	}
	return t, uint64(numel(shape)), size, nil
}

// dequantE4M3 decodes an FP8 matrix to little-endian F32 bytes, each value
// the code's value times its block's scale in one float32 multiply (what
// the CPU backend's kernel.DequantE4M3Row gives).
func dequantE4M3(codes, scales []byte, rows, cols int) []byte {
	bc := (cols + 127) / 128
	out := make([]byte, 4*rows*cols)
	for r := range rows {
		for j := range cols {
			s := math.Float32frombits(binary.LittleEndian.Uint32(scales[4*(r/128*bc+j/128):]))
			v := safetensors.E4M3ToFloat32(codes[r*cols+j]) * s
			binary.LittleEndian.PutUint32(out[4*(r*cols+j):], math.Float32bits(v))
		}
	}
	return out
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
