package testmodel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// DeepSeek-V4 Hugging Face directories in the release format (spec §5.1):
// no "model." prefix, projections FP8 E4M3 with F8_E8M0 ".scale" blocks,
// routed experts FP4 E2M1 packed two a byte as I8 [out, in/2] with an
// F8_E8M0 scale per 32 values, norms, embedding, head, router and
// compressor projections BF16, and the mHC parameters, sinks, ape and
// selection bias F32.

// TinyV4HF is TinyV4 widened for the release format: hidden 64 so that the
// FP4 experts' rows are whole 32-value blocks (two per gate/up row), and
// q_lora_rank 48 and o_lora_rank 24 so that FP8 matrices have partial edge
// blocks at 128×128 and at 32×32 alike.
func TinyV4HF() V4 {
	c := TinyV4()
	c.Name = "ulan-test-tiny-v4-hf"
	c.Hidden, c.QLoRA, c.OutLoRA = 64, 48, 24
	return c
}

// WithFP8Block sets the side of the square FP8 blocks of a V4 directory
// (quantization_config.weight_block_size [n, n]). Default: 128, as V4-Flash
// and V4-Pro ship. V3 directories ignore it.
func WithFP8Block(n int) HFOption { return func(o *hfOptions) { o.block = n } }

// WithoutBlockSize leaves weight_block_size out of a V4 directory's
// quantization_config, so that a loader must take each block shape from
// its scale tensor's shape.
func WithoutBlockSize() HFOption { return func(o *hfOptions) { o.noBlockSize = true } }

// WithBF16Weights stores a V4 directory's projections and routed experts
// as BF16 instead of FP8 and FP4, as a dequantized checkpoint holds them
// (no quantization_config, no expert_dtype).
func WithBF16Weights() HFOption { return func(o *hfOptions) { o.bf16 = true } }

// WithTransformersNames writes a V4 directory under HF transformers'
// internal names (spec §5.3: "model." prefixes, self_attn, mlp, attn_hc,
// routed experts stacked as gate_up_proj and down_proj), with BF16 weights
// as WithBF16Weights. It takes no MTP block (transformers keeps none).
func WithTransformersNames() HFOption {
	return func(o *hfOptions) { o.transformers, o.bf16 = true, true }
}

// WithI64Tables stores a V4 directory's tid2eid hash tables as I64 instead
// of I32 (one loader reports I64 on disk, spec §5.1).
func WithI64Tables() HFOption { return func(o *hfOptions) { o.i64Tables = true } }

// WithV4HFReference makes a V4 model's Write and WriteFile store every
// tensor as F32 (the hash tables as I32) holding exactly the values of the
// directory WriteHFDir writes for the same seed and options, decoded: FP8
// codes times their E8M0 block scale, FP4 codes times their E8M0 scale
// (one float32 multiply each), BF16 widened. Whatever c.Type says. It
// exists for the cross-format check: differently rounded weights would
// flip MoE routing and prove nothing.
func WithV4HFReference(opts ...HFOption) WriteOption {
	return func(o *writeOptions) {
		ho := v4HFOptions(opts)
		o.v4Reference = &ho
	}
}

func v4HFOptions(opts []HFOption) hfOptions {
	o := hfOptions{shards: 2, block: 128}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// v4Kind says how the release stores a tensor.
type v4Kind uint8

const (
	v4F32   v4Kind = iota // F32 as drawn
	v4BF16                // BF16
	v4FP8                 // F8_E4M3 with an F8_E8M0 block scale
	v4FP4                 // per expert, FP4 with an F8_E8M0 scale per 32
	v4Table               // I32 (or I64) expert ids
)

// v4HFNames maps a block's GGUF names (after "blk.N.") to the release's
// (after "layers.N." or "mtp.K.") and storage; experts are expanded apart.
var v4HFNames = map[string]struct {
	name string
	kind v4Kind
}{
	"attn_norm.weight":               {"attn_norm.weight", v4BF16},
	"attn_sinks.weight":              {"attn.attn_sink", v4F32},
	"attn_q_a.weight":                {"attn.wq_a.weight", v4FP8},
	"attn_q_a_norm.weight":           {"attn.q_norm.weight", v4BF16},
	"attn_q_b.weight":                {"attn.wq_b.weight", v4FP8},
	"attn_kv.weight":                 {"attn.wkv.weight", v4FP8},
	"attn_kv_a_norm.weight":          {"attn.kv_norm.weight", v4BF16},
	"attn_output_a.weight":           {"attn.wo_a.weight", v4FP8},
	"attn_output_b.weight":           {"attn.wo_b.weight", v4FP8},
	"hc_attn_fn.weight":              {"hc_attn_fn", v4F32},
	"hc_attn_base.weight":            {"hc_attn_base", v4F32},
	"hc_attn_scale.weight":           {"hc_attn_scale", v4F32},
	"hc_ffn_fn.weight":               {"hc_ffn_fn", v4F32},
	"hc_ffn_base.weight":             {"hc_ffn_base", v4F32},
	"hc_ffn_scale.weight":            {"hc_ffn_scale", v4F32},
	"attn_compressor_kv.weight":      {"attn.compressor.wkv.weight", v4BF16},
	"attn_compressor_gate.weight":    {"attn.compressor.wgate.weight", v4BF16},
	"attn_compressor_ape.weight":     {"attn.compressor.ape", v4F32},
	"attn_compressor_norm.weight":    {"attn.compressor.norm.weight", v4BF16},
	"indexer.attn_q_b.weight":        {"attn.indexer.wq_b.weight", v4FP8},
	"indexer.proj.weight":            {"attn.indexer.weights_proj.weight", v4BF16},
	"indexer_compressor_kv.weight":   {"attn.indexer.compressor.wkv.weight", v4BF16},
	"indexer_compressor_gate.weight": {"attn.indexer.compressor.wgate.weight", v4BF16},
	"indexer_compressor_ape.weight":  {"attn.indexer.compressor.ape", v4F32},
	"indexer_compressor_norm.weight": {"attn.indexer.compressor.norm.weight", v4BF16},
	"ffn_norm.weight":                {"ffn_norm.weight", v4BF16},
	"ffn_gate_inp.weight":            {"ffn.gate.weight", v4BF16},
	"exp_probs_b.bias":               {"ffn.gate.bias", v4F32},
	"ffn_gate_tid2eid.weight":        {"ffn.gate.tid2eid", v4Table},
	"ffn_gate_exps.weight":           {"w1", v4FP4},
	"ffn_up_exps.weight":             {"w3", v4FP4},
	"ffn_down_exps.weight":           {"w2", v4FP4},
	"ffn_gate_shexp.weight":          {"ffn.shared_experts.w1.weight", v4FP8},
	"ffn_up_shexp.weight":            {"ffn.shared_experts.w3.weight", v4FP8},
	"ffn_down_shexp.weight":          {"ffn.shared_experts.w2.weight", v4FP8},
	// The MTP block's own tensors.
	"nextn.e_proj.weight":        {"e_proj.weight", v4FP8},
	"nextn.h_proj.weight":        {"h_proj.weight", v4FP8},
	"nextn.enorm.weight":         {"enorm.weight", v4BF16},
	"nextn.hnorm.weight":         {"hnorm.weight", v4BF16},
	"nextn.norm.weight":          {"norm.weight", v4BF16},
	"nextn.hc_head_fn.weight":    {"hc_head_fn", v4F32},
	"nextn.hc_head_base.weight":  {"hc_head_base", v4F32},
	"nextn.hc_head_scale.weight": {"hc_head_scale", v4F32},
}

// v4HFGlobal maps the tensors outside the blocks.
var v4HFGlobal = map[string]struct {
	name string
	kind v4Kind
}{
	"token_embd.weight":      {"embed.weight", v4BF16},
	"output_norm.weight":     {"norm.weight", v4BF16},
	"output.weight":          {"head.weight", v4BF16},
	"output_hc_fn.weight":    {"hc_head_fn", v4F32},
	"output_hc_base.weight":  {"hc_head_base", v4F32},
	"output_hc_scale.weight": {"hc_head_scale", v4F32},
}

// v4Release returns the release name and storage of a GGUF-named tensor of
// a model with the given number of decoder layers (blocks from there on
// are MTP blocks).
func v4Release(name string, layers int) (string, v4Kind, error) {
	if g, ok := v4HFGlobal[name]; ok {
		return g.name, g.kind, nil
	}
	b, rest := splitBlock(name)
	m, ok := v4HFNames[rest]
	if !ok || !strings.HasPrefix(name, "blk.") {
		return "", 0, fmt.Errorf("testmodel: V4 tensor %q has no release name", name)
	}
	prefix := fmt.Sprintf("layers.%d.", b)
	if b >= layers {
		prefix = fmt.Sprintf("mtp.%d.", b-layers)
	}
	return prefix + m.name, m.kind, nil
}

// hfDeclare lists the tensors of the directory by GGUF name: the model's,
// then with mtp one MTP block (blk.Layers: a window-only block with
// biased routing, plus its own projections, norms and hc_head).
func (c V4) hfDeclare(seed uint64, mtp bool) *tensors {
	if !mtp {
		return c.declare(seed)
	}
	m := c
	m.Layers++
	m.CompressRatios = append(append([]int(nil), c.CompressRatios...), RatioSliding)
	t := m.declare(seed)
	E := c.Hidden
	n := func(s string) string { return fmt.Sprintf("blk.%d.nextn.%s", c.Layers, s) }
	t.proj(n("e_proj.weight"), E, E)
	t.proj(n("h_proj.weight"), E, E)
	t.ones(n("enorm.weight"), E)
	t.ones(n("hnorm.weight"), E)
	t.ones(n("norm.weight"), E)
	c.mhc(t, fmt.Sprintf("blk.%d.nextn.hc_head", c.Layers), c.HCMult, 1)
	return t
}

// hfStored is one drawn tensor as the release stores it, and its values
// decoded back to float32 (nil for a table).
type hfStored struct {
	tensors []safetensors.Tensor
	decoded []float32
}

// v4Store encodes tensor s (values v, or the table's bytes) under release
// name hf as kind.
func v4Store(s spec, hf string, kind v4Kind, v []float32, tab []byte, o hfOptions) (hfStored, error) {
	switch kind {
	case v4Table:
		if !o.i64Tables {
			return hfStored{tensors: []safetensors.Tensor{{Name: hf, DType: safetensors.I32, Shape: s.shape, Data: tab}}}, nil
		}
		wide := make([]byte, 2*len(tab))
		for i := range len(tab) / 4 {
			binary.LittleEndian.PutUint64(wide[8*i:], uint64(int64(int32(binary.LittleEndian.Uint32(tab[4*i:])))))
		}
		return hfStored{tensors: []safetensors.Tensor{{Name: hf, DType: safetensors.I64, Shape: s.shape, Data: wide}}}, nil
	case v4FP8:
		if o.bf16 {
			return v4Store(s, hf, v4BF16, v, tab, o)
		}
		rows, cols := s.shape[0], s.shape[1]
		codes, scales, err := QuantFP8E8M0(v, rows, cols, o.block, o.block)
		if err != nil {
			return hfStored{}, err
		}
		dec, err := DequantFP8E8M0(codes, scales, rows, cols, o.block, o.block)
		if err != nil {
			return hfStored{}, err
		}
		scaleName := strings.TrimSuffix(hf, ".weight") + ".scale"
		return hfStored{tensors: []safetensors.Tensor{
			{Name: hf, DType: safetensors.F8_E4M3, Shape: s.shape, Data: codes},
			{Name: scaleName, DType: safetensors.F8_E8M0, Shape: safetensors.ScaleShape(rows, cols, o.block, o.block), Data: scales},
		}, decoded: dec}, nil
	case v4FP4:
		// hf is "layers.N.ffn.experts." + the projection; one tensor pair
		// per expert.
		X, rows, cols := s.shape[0], s.shape[1], s.shape[2]
		prefix, proj, _ := strings.Cut(hf, "|")
		var out hfStored
		for e := range X {
			base := fmt.Sprintf("%s%d.%s", prefix, e, proj)
			if o.bf16 {
				st, err := v4Store(spec{name: s.name, shape: []int{rows, cols}}, base+".weight", v4BF16, v[e*rows*cols:(e+1)*rows*cols], nil, o)
				if err != nil {
					return hfStored{}, err
				}
				out.tensors = append(out.tensors, st.tensors...)
				out.decoded = append(out.decoded, st.decoded...)
				continue
			}
			packed, scales, err := QuantFP4(v[e*rows*cols:(e+1)*rows*cols], rows, cols)
			if err != nil {
				return hfStored{}, fmt.Errorf("testmodel: %s expert %d: %w", s.name, e, err)
			}
			dec, err := DequantFP4(packed, scales, rows, cols)
			if err != nil {
				return hfStored{}, err
			}
			out.tensors = append(out.tensors,
				safetensors.Tensor{Name: base + ".weight", DType: safetensors.I8, Shape: []int{rows, cols / 2}, Data: packed},
				safetensors.Tensor{Name: base + ".scale", DType: safetensors.F8_E8M0, Shape: []int{rows, cols / safetensors.FP4BlockLen}, Data: scales})
			out.decoded = append(out.decoded, dec...)
		}
		return out, nil
	case v4BF16:
		b := make([]byte, 2*len(v))
		halves(b, v, true)
		dec := make([]float32, len(v))
		for i := range dec {
			dec[i] = safetensors.BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return hfStored{tensors: []safetensors.Tensor{{Name: hf, DType: safetensors.BF16, Shape: s.shape, Data: b}}, decoded: dec}, nil
	}
	b := make([]byte, 4*len(v))
	f32bytes(b, v)
	return hfStored{tensors: []safetensors.Tensor{{Name: hf, DType: safetensors.F32, Shape: s.shape, Data: b}}, decoded: v}, nil
}

// hfStore draws every tensor of t and encodes it for the release format,
// in declaration order.
func (c V4) hfStore(t *tensors, o hfOptions) ([]hfStored, error) {
	vals := t.values()
	out := make([]hfStored, len(t.specs))
	for i, s := range t.specs {
		hf, kind, err := v4Release(s.name, c.Layers)
		if err != nil {
			return nil, err
		}
		if kind == v4FP4 {
			// Experts: "layers.N.ffn.experts.|w1", split by v4Store.
			b, _ := splitBlock(s.name)
			prefix := fmt.Sprintf("layers.%d.", b)
			if b >= c.Layers {
				prefix = fmt.Sprintf("mtp.%d.", b-c.Layers)
			}
			hf = prefix + "ffn.experts.|" + v4HFNames[strings.SplitN(s.name, ".", 3)[2]].name
		}
		var tab []byte
		if kind == v4Table {
			tab = s.tableData(t.seed, func(int) {})
		}
		if out[i], err = v4Store(s, hf, kind, vals[i], tab, o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// WriteHFDir writes the model as a DeepSeek-V4 Hugging Face directory in
// the release format: config.json with the legacy V4 field names (spec
// §1.1; quantization_config fp8 e4m3 with ue8m0 scales, expert_dtype fp4),
// safetensors shards with model.safetensors.index.json, tokenizer.json and
// tokenizer_config.json. Every tensor holds the values Write draws for the
// same seed, quantized as the release stores them (see the package's
// QuantFP8E8M0 and QuantFP4); WithV4HFReference writes the GGUF of the
// decoded values. Options: WithFP8Block, WithoutBlockSize, WithBF16Weights,
// WithI64Tables, WithMTP (one MTP block, mtp.0.*), WithShards.
func (c V4) WriteHFDir(dir string, seed uint64, opts ...HFOption) error {
	if err := c.Validate(); err != nil {
		return err
	}
	o := v4HFOptions(opts)
	if err := c.checkHF(o); err != nil {
		return err
	}
	var stored []safetensors.Tensor
	if o.transformers {
		if o.mtp {
			return fmt.Errorf("testmodel: V4 %q: transformers' names have no MTP block", c.Name)
		}
		var err error
		if stored, err = c.tfTensors(c.declare(seed)); err != nil {
			return err
		}
	} else {
		st, err := c.hfStore(c.hfDeclare(seed, o.mtp), o)
		if err != nil {
			return err
		}
		for _, s := range st {
			stored = append(stored, s.tensors...)
		}
	}
	cfg, err := c.hfConfigJSON(o)
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

// addHFReference adds t's tensors to w holding the decoded values of the
// directory WriteHFDir writes with options o (see WithV4HFReference).
func (c V4) addHFReference(w *gguf.Writer, t *tensors, o hfOptions) error {
	if err := c.checkHF(o); err != nil {
		return err
	}
	st, err := c.hfStore(t, o)
	if err != nil {
		return err
	}
	for i, s := range t.specs {
		if s.typ == gguf.TypeI32 {
			// The GGUF table is I32 whatever the directory holds.
			w.AddTensor(s.name, gguf.TypeI32, dims(s.shape), s.tableData(t.seed, func(int) {}))
			continue
		}
		v := st[i].decoded
		n := 1
		for _, d := range s.shape {
			n *= d
		}
		if len(v) != n {
			return fmt.Errorf("testmodel: reference of %s: %d values, want %d", s.name, len(v), n)
		}
		b := make([]byte, 4*len(v))
		f32bytes(b, v)
		w.AddTensor(s.name, gguf.TypeF32, dims(s.shape), b)
	}
	return nil
}

// checkHF reports, before anything is drawn, what keeps c from being
// written in the release format with options o.
func (c V4) checkHF(o hfOptions) error {
	if o.block <= 0 {
		return fmt.Errorf("testmodel: V4 %q: FP8 block %d, must be positive", c.Name, o.block)
	}
	if c.Hidden%safetensors.FP4BlockLen != 0 || c.ExpertFFN%safetensors.FP4BlockLen != 0 {
		return fmt.Errorf("testmodel: V4 %q: Hidden %d and ExpertFFN %d must be multiples of %d: FP4 experts' rows are whole 32-value blocks",
			c.Name, c.Hidden, c.ExpertFFN, safetensors.FP4BlockLen)
	}
	return nil
}

// hfConfigJSON is config.json as DeepSeek-V4's release writes it.
func (c V4) hfConfigJSON(o hfOptions) ([]byte, error) {
	ratios := append(append([]int(nil), c.CompressRatios...), RatioSliding) // the MTP block's entry
	nextn := 0
	if o.mtp {
		nextn = 1
	}
	quant := map[string]any{
		"quant_method": "fp8", "fmt": "e4m3", "scale_fmt": "ue8m0", "activation_scheme": "dynamic",
	}
	if !o.noBlockSize {
		quant["weight_block_size"] = []int{o.block, o.block}
	}
	if o.bf16 {
		quant = nil
	}
	cfg := map[string]any{
		"architectures": []string{"DeepseekV4ForCausalLM"}, "model_type": "deepseek_v4",
		"vocab_size": c.Vocab, "hidden_size": c.Hidden, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": 1, "head_dim": c.HeadDim,
		"qk_rope_head_dim": c.RopeDim, "q_lora_rank": c.QLoRA, "o_groups": c.OutGroups, "o_lora_rank": c.OutLoRA,
		"sliding_window": c.SlidingWindow, "compress_ratios": ratios, "compress_rope_theta": c.CompressRopeBase,
		"rope_theta": c.RopeBase, "index_n_heads": c.IndexHeads, "index_head_dim": c.IndexHeadDim,
		"index_topk": c.IndexTopK, "n_routed_experts": c.Experts, "n_shared_experts": c.Shared,
		"num_experts_per_tok": c.ExpertsUsed, "moe_intermediate_size": c.ExpertFFN,
		"num_hash_layers": c.HashLayers, "scoring_func": "sqrtsoftplus", "topk_method": "noaux_tc",
		"norm_topk_prob": true, "routed_scaling_factor": c.RoutedScale, "swiglu_limit": c.SwigluLimit,
		"hc_mult": c.HCMult, "hc_sinkhorn_iters": c.HCIters, "hc_eps": c.HCEps, "rms_norm_eps": c.NormEps,
		"num_nextn_predict_layers": nextn, "first_k_dense_replace": 0, "hidden_act": "silu",
		"max_position_embeddings": c.Context, "bos_token_id": 0, "eos_token_id": 1,
		"tie_word_embeddings": false, "torch_dtype": "bfloat16",
	}
	if quant != nil {
		cfg["quantization_config"] = quant
		cfg["expert_dtype"] = "fp4"
	}
	if c.YarnFactor > 1 {
		cfg["rope_scaling"] = map[string]any{
			"type": "yarn", "factor": c.YarnFactor, "original_max_position_embeddings": c.YarnOrigContext,
			"beta_fast": c.YarnBetaFast, "beta_slow": c.YarnBetaSlow,
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("testmodel: config.json: %w", err)
	}
	return append(b, '\n'), nil
}

// v4TFNames maps a block's GGUF names (after "blk.N.") to transformers'
// (after "model.layers.N."), spec §5.3; the routed experts are stacked
// apart.
var v4TFNames = map[string]string{
	"attn_norm.weight":               "input_layernorm.weight",
	"attn_sinks.weight":              "self_attn.sinks",
	"attn_q_a.weight":                "self_attn.q_a_proj.weight",
	"attn_q_a_norm.weight":           "self_attn.q_a_norm.weight",
	"attn_q_b.weight":                "self_attn.q_b_proj.weight",
	"attn_kv.weight":                 "self_attn.kv_proj.weight",
	"attn_kv_a_norm.weight":          "self_attn.kv_norm.weight",
	"attn_output_a.weight":           "self_attn.o_a_proj.weight",
	"attn_output_b.weight":           "self_attn.o_b_proj.weight",
	"hc_attn_fn.weight":              "attn_hc.fn",
	"hc_attn_base.weight":            "attn_hc.base",
	"hc_attn_scale.weight":           "attn_hc.scale",
	"hc_ffn_fn.weight":               "ffn_hc.fn",
	"hc_ffn_base.weight":             "ffn_hc.base",
	"hc_ffn_scale.weight":            "ffn_hc.scale",
	"attn_compressor_kv.weight":      "self_attn.compressor.kv_proj.weight",
	"attn_compressor_gate.weight":    "self_attn.compressor.gate_proj.weight",
	"attn_compressor_ape.weight":     "self_attn.compressor.position_bias",
	"attn_compressor_norm.weight":    "self_attn.compressor.kv_norm.weight",
	"indexer.attn_q_b.weight":        "self_attn.compressor.indexer.q_b_proj.weight",
	"indexer.proj.weight":            "self_attn.compressor.indexer.weights_proj.weight",
	"indexer_compressor_kv.weight":   "self_attn.compressor.indexer.kv_proj.weight",
	"indexer_compressor_gate.weight": "self_attn.compressor.indexer.gate_proj.weight",
	"indexer_compressor_ape.weight":  "self_attn.compressor.indexer.position_bias",
	"indexer_compressor_norm.weight": "self_attn.compressor.indexer.kv_norm.weight",
	"ffn_norm.weight":                "post_attention_layernorm.weight",
	"ffn_gate_inp.weight":            "mlp.gate.weight",
	"exp_probs_b.bias":               "mlp.gate.e_score_correction_bias",
	"ffn_gate_tid2eid.weight":        "mlp.gate.tid2eid",
	"ffn_gate_shexp.weight":          "mlp.shared_experts.gate_proj.weight",
	"ffn_up_shexp.weight":            "mlp.shared_experts.up_proj.weight",
	"ffn_down_shexp.weight":          "mlp.shared_experts.down_proj.weight",
	"ffn_down_exps.weight":           "mlp.experts.down_proj",
}

// v4TFGlobal maps the tensors outside the blocks.
var v4TFGlobal = map[string]string{
	"token_embd.weight":      "model.embed_tokens.weight",
	"output_norm.weight":     "model.norm.weight",
	"output.weight":          "lm_head.weight",
	"output_hc_fn.weight":    "model.hc_head.hc_fn",
	"output_hc_base.weight":  "model.hc_head.hc_base",
	"output_hc_scale.weight": "model.hc_head.hc_scale",
}

// tfTensors draws t's tensors and lays them out under transformers' names
// in BF16 (F32 where the release keeps F32, I32 tables), the routed
// experts' gate and up projections stacked into one gate_up_proj [X, 2F,
// D] (each expert's gate rows, then its up rows).
func (c V4) tfTensors(t *tensors) ([]safetensors.Tensor, error) {
	vals := t.values()
	o := hfOptions{bf16: true, block: 128}
	var out []safetensors.Tensor
	gate := map[int][]float32{}
	for i, s := range t.specs {
		b, rest := splitBlock(s.name)
		tf, ok := v4TFGlobal[s.name]
		kind := v4HFGlobal[s.name].kind
		if !ok {
			tf, kind = fmt.Sprintf("model.layers.%d.", b)+v4TFNames[rest], v4HFNames[rest].kind
		}
		v := vals[i]
		shape := s.shape
		switch rest {
		case "ffn_gate_exps.weight":
			gate[b] = v
			continue
		case "ffn_up_exps.weight":
			X, F, D := s.shape[0], s.shape[1], s.shape[2]
			g := gate[b]
			if g == nil {
				return nil, fmt.Errorf("testmodel: %s comes before its gate", s.name)
			}
			v = make([]float32, 0, 2*len(g))
			for e := range X {
				v = append(v, g[e*F*D:(e+1)*F*D]...)
				v = append(v, vals[i][e*F*D:(e+1)*F*D]...)
			}
			tf, shape = fmt.Sprintf("model.layers.%d.mlp.experts.gate_up_proj", b), []int{X, 2 * F, D}
		}
		if kind == v4FP4 || kind == v4FP8 {
			kind = v4BF16
		}
		var tab []byte
		if kind == v4Table {
			tab = s.tableData(t.seed, func(int) {})
		}
		st, err := v4Store(spec{name: s.name, shape: shape}, tf, kind, v, tab, o)
		if err != nil {
			return nil, err
		}
		out = append(out, st.tensors...)
	}
	return out, nil
}
