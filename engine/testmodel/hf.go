package testmodel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// The storage types WriteHFDir accepts.
const (
	// HFF32 stores every tensor as F32.
	HFF32 = "f32"
	// HFBF16 stores the matrices as BF16 and the norms, the router and the
	// selection bias as F32, as the BF16 GGUF writer does, so the two hold
	// bit-identical values.
	HFBF16 = "bf16"
	// HFFP8 stores the attention and MLP projections as F8_E4M3 with F32
	// weight_scale_inv blocks of 128×128 (the official V3/R1 layout), the
	// embedding and lm_head as BF16 and the rest as F32.
	HFFP8 = "fp8"
)

// HFOption changes how WriteHFDir writes a model.
type HFOption func(*hfOptions)

type hfOptions struct {
	mtp    bool
	shards int
	// V4 directories only (v4hf.go): the FP8 block side, whether
	// weight_block_size is left out, BF16 instead of FP8 and FP4,
	// transformers' names, and I64 hash tables.
	block        int
	noBlockSize  bool
	bf16         bool
	transformers bool
	i64Tables    bool
}

// WithMTP adds one multi-token-prediction layer after the decoder layers
// (num_nextn_predict_layers 1, tensors model.layers.{Layers}.*), as V3 and
// R1 ship. Its embedding and shared head repeat the model's, as V3's do.
// Default: none.
func WithMTP() HFOption { return func(o *hfOptions) { o.mtp = true } }

// WithShards sets how many safetensors shards to write (at least 1; one
// writes model.safetensors alone). Default: 2.
func WithShards(n int) HFOption { return func(o *hfOptions) { o.shards = max(1, n) } }

// WithFP8Reference makes Write and WriteFile store every tensor as F32
// holding exactly the values that WriteHFDir's HFFP8 directory of the same
// seed holds once decoded (each FP8 value times its block scale, as one
// float32 multiply; BF16 values widened), whatever c.Type says. It exists
// for the cross-format check: comparing differently rounded weights would
// prove nothing, since rounding flips MoE routing.
func WithFP8Reference() WriteOption { return func(o *writeOptions) { o.fp8Reference = true } }

// WriteHFDir writes the model as a Hugging Face directory: config.json with
// DeepSeek's field names (model_type deepseek_v3 for sigmoid routing,
// deepseek_v2 otherwise), safetensors shards with
// model.safetensors.index.json, tokenizer.json and tokenizer_config.json.
// dtype is HFF32, HFBF16 or HFFP8. Every tensor holds the values Write
// draws for the same seed, in Hugging Face's layout: stacked experts become
// one tensor per expert, and attn_k_b and attn_v_b become kv_b_proj (the
// inverse of llama.cpp's convert_hf_to_gguf.py split for deepseek2).
func (c V3) WriteHFDir(dir string, seed uint64, dtype string, opts ...HFOption) error {
	o := hfOptions{shards: 2}
	for _, opt := range opts {
		opt(&o)
	}
	if dtype != HFF32 && dtype != HFBF16 && dtype != HFFP8 {
		return fmt.Errorf("testmodel: dtype %q: want f32, bf16 or fp8", dtype)
	}
	tok, err := loadTokenizer()
	if err != nil {
		return err
	}
	t := c.declare(seed, gguf.TypeF32, len(tok.tokens), o.mtp)
	vals := t.values()
	hts := c.hfTensors(t.specs, vals, o.mtp)
	stored := make([]safetensors.Tensor, 0, len(hts))
	for _, h := range hts {
		stored = append(stored, h.store(dtype)...)
	}
	cfg, err := c.configJSON(len(tok.tokens), dtype, o.mtp)
	if err != nil {
		return err
	}
	if err := safetensors.WriteDir(dir, shard(stored, o.shards), cfg); err != nil {
		return err
	}
	tj, err := TokenizerJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
		return fmt.Errorf("testmodel: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), tokenizerConfig, 0o644); err != nil {
		return fmt.Errorf("testmodel: %w", err)
	}
	return nil
}

// shard splits tensors, in order, into n runs of about equal bytes.
func shard(ts []safetensors.Tensor, n int) [][]safetensors.Tensor {
	n = min(n, max(len(ts), 1))
	var total int
	for _, t := range ts {
		total += len(t.Data)
	}
	out := make([][]safetensors.Tensor, n)
	done := 0
	for _, t := range ts {
		i := min(n-1, done*n/max(total, 1))
		out[i] = append(out[i], t)
		done += len(t.Data)
	}
	// A shard left empty by one huge tensor takes the last tensor of the
	// one before it, so that every listed shard exists.
	for i := 1; i < n; i++ {
		if len(out[i]) == 0 && len(out[i-1]) > 1 {
			last := len(out[i-1]) - 1
			out[i] = append(out[i], out[i-1][last])
			out[i-1] = out[i-1][:last]
		}
	}
	return out
}

// values draws every tensor as float32, one goroutine per CPU.
func (t *tensors) values() [][]float32 {
	out := make([][]float32, len(t.specs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(t.specs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(t.specs) {
					return
				}
				s := t.specs[i]
				n := 1
				for _, d := range s.shape {
					n *= d
				}
				out[i] = make([]float32, n)
				// One call over the whole tensor continues the stream row
				// after row, as spec.data does.
				normals(out[i], s.std, s.one, t.seed, stream(s.name))
			}
		})
	}
	wg.Wait()
	return out
}

// hfKind says how a tensor is stored for each dtype.
type hfKind uint8

const (
	hfVector hfKind = iota // norms, biases, the router: F32
	hfTable                // embedding and lm_head: BF16 unless f32
	hfProj                 // projections: FP8 in fp8 directories
)

// hfTensor is one tensor in Hugging Face's name and layout, as float32.
type hfTensor struct {
	name       string
	rows, cols int // cols 0: a vector of rows values
	v          []float32
	kind       hfKind
}

// hfNames maps the per-layer GGUF names to Hugging Face's (after
// "blk.N." and "model.layers.N." respectively); experts and kv_b_proj are
// handled apart.
var hfNames = map[string]string{
	"attn_norm.weight":              "input_layernorm.weight",
	"attn_q_a.weight":               "self_attn.q_a_proj.weight",
	"attn_q_a_norm.weight":          "self_attn.q_a_layernorm.weight",
	"attn_q_b.weight":               "self_attn.q_b_proj.weight",
	"attn_q.weight":                 "self_attn.q_proj.weight",
	"attn_kv_a_mqa.weight":          "self_attn.kv_a_proj_with_mqa.weight",
	"attn_kv_a_norm.weight":         "self_attn.kv_a_layernorm.weight",
	"attn_output.weight":            "self_attn.o_proj.weight",
	"ffn_norm.weight":               "post_attention_layernorm.weight",
	"ffn_gate.weight":               "mlp.gate_proj.weight",
	"ffn_up.weight":                 "mlp.up_proj.weight",
	"ffn_down.weight":               "mlp.down_proj.weight",
	"ffn_gate_inp.weight":           "mlp.gate.weight",
	"exp_probs_b.bias":              "mlp.gate.e_score_correction_bias",
	"ffn_gate_shexp.weight":         "mlp.shared_experts.gate_proj.weight",
	"ffn_up_shexp.weight":           "mlp.shared_experts.up_proj.weight",
	"ffn_down_shexp.weight":         "mlp.shared_experts.down_proj.weight",
	"nextn.enorm.weight":            "enorm.weight",
	"nextn.hnorm.weight":            "hnorm.weight",
	"nextn.eh_proj.weight":          "eh_proj.weight",
	"nextn.shared_head_norm.weight": "shared_head.norm.weight",
}

// hfExperts maps the stacked expert tensors to the per-expert projection.
var hfExperts = map[string]string{
	"ffn_gate_exps.weight": "gate_proj.weight",
	"ffn_up_exps.weight":   "up_proj.weight",
	"ffn_down_exps.weight": "down_proj.weight",
}

// hfTensors lays the drawn GGUF tensors out as Hugging Face's, in
// declaration order.
func (c V3) hfTensors(specs []spec, vals [][]float32, mtp bool) []hfTensor {
	byName := make(map[string][]float32, len(specs))
	for i, s := range specs {
		byName[s.name] = vals[i]
	}
	var out []hfTensor
	add := func(name string, s spec, v []float32, rows, cols int) {
		k := hfVector
		switch {
		case s.proj:
			k = hfProj
		case s.name == "token_embd.weight" || s.name == "output.weight":
			k = hfTable
		}
		out = append(out, hfTensor{name: name, rows: rows, cols: cols, v: v, kind: k})
	}
	for i, s := range specs {
		v := vals[i]
		rows, cols := s.shape[0], 0
		if len(s.shape) == 2 {
			cols = s.shape[1]
		}
		switch s.name {
		case "token_embd.weight":
			add(safetensors.EmbedTokens, s, v, rows, cols)
			continue
		case "output_norm.weight":
			add(safetensors.FinalNorm, s, v, rows, cols)
			continue
		case "output.weight":
			add(safetensors.LMHead, s, v, rows, cols)
			continue
		}
		layer, rest := splitBlock(s.name)
		prefix := safetensors.LayerPrefix(layer)
		switch {
		case hfExperts[rest] != "":
			X, r, cl := s.shape[0], s.shape[1], s.shape[2]
			for e := range X {
				add(safetensors.ExpertPrefix(layer, e)+hfExperts[rest], s, v[e*r*cl:(e+1)*r*cl], r, cl)
			}
		case rest == "attn_k_b.weight":
			// Emitted with attn_v_b.
		case rest == "attn_v_b.weight":
			kb := byName[fmt.Sprintf("blk.%d.attn_k_b.weight", layer)]
			add(prefix+"self_attn.kv_b_proj.weight", s, mergeKVB(kb, v, c.Heads, c.KVLoRA, c.NopeDim, c.ValueDim),
				c.Heads*(c.NopeDim+c.ValueDim), c.KVLoRA)
		default:
			add(prefix+hfNames[rest], s, v, rows, cols)
		}
	}
	if mtp {
		// V3's MTP layer carries its own copies of the embedding and head.
		p := safetensors.LayerPrefix(c.Layers)
		for _, h := range out[:3] {
			switch h.name {
			case safetensors.EmbedTokens:
				h.name = p + "embed_tokens.weight"
				out = append(out, h)
			case safetensors.LMHead:
				h.name = p + "shared_head.head.weight"
				out = append(out, h)
			}
		}
	}
	return out
}

// splitBlock splits "blk.N.rest" into N and rest.
func splitBlock(name string) (int, string) {
	num, rest, _ := strings.Cut(strings.TrimPrefix(name, "blk."), ".")
	n, _ := strconv.Atoi(num)
	return n, rest
}

// mergeKVB builds kv_b_proj [H·(nope+v), c] from attn_k_b [H, c, nope] and
// attn_v_b [H, v, c]: llama.cpp views kv_b_proj as [H, nope+v, c], splits
// it into [H, nope, c] and [H, v, c] and transposes the first per head.
func mergeKVB(kb, vb []float32, H, c, nope, v int) []float32 {
	out := make([]float32, H*(nope+v)*c)
	for h := range H {
		base := h * (nope + v) * c
		for i := range nope {
			for j := range c {
				out[base+i*c+j] = kb[(h*c+j)*nope+i]
			}
		}
		copy(out[base+nope*c:base+(nope+v)*c], vb[h*v*c:(h+1)*v*c])
	}
	return out
}

// splitKVB is mergeKVB's inverse.
func splitKVB(kv []float32, H, c, nope, v int) (kb, vb []float32) {
	kb, vb = make([]float32, H*c*nope), make([]float32, H*v*c)
	for h := range H {
		base := h * (nope + v) * c
		for i := range nope {
			for j := range c {
				kb[(h*c+j)*nope+i] = kv[base+i*c+j]
			}
		}
		copy(vb[h*v*c:(h+1)*v*c], kv[base+nope*c:base+(nope+v)*c])
	}
	return kb, vb
}

// store encodes h for a directory of the given dtype: the tensor, and its
// weight_scale_inv for FP8.
func (h hfTensor) store(dtype string) []safetensors.Tensor {
	shape := []int{h.rows}
	if h.cols > 0 {
		shape = append(shape, h.cols)
	}
	switch {
	case dtype == HFFP8 && h.kind == hfProj:
		codes, scales := quantFP8(h.v, h.rows, h.cols)
		sb := make([]byte, 4*len(scales))
		f32bytes(sb, scales)
		return []safetensors.Tensor{
			{Name: h.name, DType: safetensors.F8_E4M3, Shape: shape, Data: codes},
			{Name: safetensors.ScaleName(h.name), DType: safetensors.F32,
				Shape: safetensors.ScaleShape(h.rows, h.cols, fp8Block, fp8Block), Data: sb},
		}
	case dtype != HFF32 && h.kind != hfVector:
		b := make([]byte, 2*len(h.v))
		halves(b, h.v, true)
		return []safetensors.Tensor{{Name: h.name, DType: safetensors.BF16, Shape: shape, Data: b}}
	}
	b := make([]byte, 4*len(h.v))
	f32bytes(b, h.v)
	return []safetensors.Tensor{{Name: h.name, DType: safetensors.F32, Shape: shape, Data: b}}
}

// decoded returns the values an HFFP8 directory holds for h, as the
// engine decodes them.
func (h hfTensor) decoded() []float32 {
	switch h.kind {
	case hfProj:
		codes, scales := quantFP8(h.v, h.rows, h.cols)
		return dequantFP8(codes, scales, h.rows, h.cols)
	case hfTable:
		out := make([]float32, len(h.v))
		b := make([]byte, 2*len(h.v))
		halves(b, h.v, true)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
		return out
	}
	return h.v
}

// addFP8Reference adds t's tensors to w as F32, holding the values of the
// HFFP8 directory (see WithFP8Reference), laid out back into GGUF's form.
func (c V3) addFP8Reference(w *gguf.Writer, t *tensors) error {
	vals := t.values()
	hts := c.hfTensors(t.specs, vals, false)
	byName := make(map[string][]float32, len(hts))
	for _, h := range hts {
		byName[h.name] = h.decoded()
	}
	for i, s := range t.specs {
		var v []float32
		switch s.name {
		case "token_embd.weight":
			v = byName[safetensors.EmbedTokens]
		case "output_norm.weight":
			v = byName[safetensors.FinalNorm]
		case "output.weight":
			v = byName[safetensors.LMHead]
		}
		if v == nil {
			layer, rest := splitBlock(s.name)
			prefix := safetensors.LayerPrefix(layer)
			switch {
			case hfExperts[rest] != "":
				v = make([]float32, 0, len(vals[i]))
				for e := range s.shape[0] {
					v = append(v, byName[safetensors.ExpertPrefix(layer, e)+hfExperts[rest]]...)
				}
			case rest == "attn_k_b.weight", rest == "attn_v_b.weight":
				kb, vb := splitKVB(byName[prefix+"self_attn.kv_b_proj.weight"], c.Heads, c.KVLoRA, c.NopeDim, c.ValueDim)
				v = vb
				if rest == "attn_k_b.weight" {
					v = kb
				}
			default:
				v = byName[prefix+hfNames[rest]]
			}
		}
		if len(v) != len(vals[i]) {
			return fmt.Errorf("testmodel: fp8 reference of %s: %d values, want %d", s.name, len(v), len(vals[i]))
		}
		b := make([]byte, 4*len(v))
		f32bytes(b, v)
		w.AddTensor(s.name, gguf.TypeF32, dims(s.shape), b)
	}
	return nil
}

// configJSON is config.json with DeepSeek's field names.
func (c V3) configJSON(vocab int, dtype string, mtp bool) ([]byte, error) {
	arch, modelType, topk := "DeepseekV2ForCausalLM", "deepseek_v2", "greedy"
	scoring := "softmax"
	if c.Groups > 1 {
		topk = "group_limited_greedy"
	}
	if c.Sigmoid {
		arch, modelType, topk, scoring = "DeepseekV3ForCausalLM", "deepseek_v3", "noaux_tc", "sigmoid"
	}
	var qLoRA any
	if c.QLoRA > 0 {
		qLoRA = c.QLoRA
	}
	cfg := map[string]any{
		"architectures": []string{arch}, "model_type": modelType,
		"vocab_size": vocab, "hidden_size": c.Hidden, "intermediate_size": c.DenseFFN,
		"moe_intermediate_size": c.ExpertFFN, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.Heads,
		"n_shared_experts": c.Shared, "n_routed_experts": c.Experts, "num_experts_per_tok": c.ExpertsUsed,
		"routed_scaling_factor": c.RoutedScale, "kv_lora_rank": c.KVLoRA, "q_lora_rank": qLoRA,
		"qk_rope_head_dim": c.RopeDim, "qk_nope_head_dim": c.NopeDim, "v_head_dim": c.ValueDim,
		"n_group": max(c.Groups, 1), "topk_group": max(c.GroupsUsed, 1), "topk_method": topk,
		"scoring_func": scoring, "norm_topk_prob": c.NormTopK,
		"first_k_dense_replace": c.DenseLayers, "moe_layer_freq": 1, "hidden_act": "silu",
		"rms_norm_eps": 1e-6, "rope_theta": 10000, "max_position_embeddings": c.Context,
		"bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": false,
		"torch_dtype":    map[string]string{HFF32: "float32", HFBF16: "bfloat16", HFFP8: "bfloat16"}[dtype],
		"attention_bias": false, "attention_dropout": 0.0, "initializer_range": 0.02,
		"pretraining_tp": 1, "use_cache": true, "ep_size": 1,
	}
	if c.YarnFactor > 1 {
		cfg["rope_scaling"] = map[string]any{
			"type": "yarn", "factor": c.YarnFactor, "original_max_position_embeddings": c.YarnOrigContext,
			"beta_fast": 32, "beta_slow": 1, "mscale": c.MscaleAllDim, "mscale_all_dim": c.MscaleAllDim,
		}
	} else {
		cfg["rope_scaling"] = nil
	}
	if mtp {
		cfg["num_nextn_predict_layers"] = 1
	}
	if dtype == HFFP8 {
		cfg["quantization_config"] = map[string]any{
			"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
			"weight_block_size": []int{fp8Block, fp8Block},
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("testmodel: config.json: %w", err)
	}
	return append(b, '\n'), nil
}
