// Package testmodel writes small random-weight DeepSeek models as GGUF files,
// deterministically from a seed, with DeepSeek-V3's real tokenizer section.
// They exist to check the engine against llama.cpp on the same file and to
// benchmark it, never to be smart.
package testmodel

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"sync"

	"github.com/ulan-ai/ulan/engine/gguf"
)

//go:embed tokenizer.json.gz
var tokenizerGz []byte

//go:embed tokenizer_config.json
var tokenizerConfig []byte

// V3 describes a deepseek2 model to generate (the fields of config.json,
// spec §1.2).
type V3 struct {
	Name                 string
	Hidden               int
	Layers               int
	DenseLayers          int
	DenseFFN             int
	ExpertFFN            int
	Heads                int
	QLoRA                int // 0: plain q projection (V2-Lite)
	KVLoRA               int
	NopeDim, RopeDim     int
	ValueDim             int
	Experts, ExpertsUsed int
	Shared               int
	Groups, GroupsUsed   int
	Sigmoid              bool // sigmoid scoring with a selection bias (V3); softmax otherwise (V2)
	NormTopK             bool
	RoutedScale          float32
	Context              int
	YarnFactor           float32 // ≤ 1: no YaRN
	YarnOrigContext      int
	MscaleAllDim         float32
	// Type is the storage type of the matrices: F32, F16, BF16 or Q8_0
	// (norms, biases and the router stay F32, as llama.cpp's converter and
	// quantizer keep them).
	Type gguf.Type
}

// TinyV3 is a V3-shaped model: one dense layer then MoE layers, q-LoRA,
// 16 experts in 4 groups with sigmoid routing and a bias, a shared expert,
// YaRN.
func TinyV3() V3 {
	return V3{
		Name: "ulan-test-tiny-v3", Hidden: 64, Layers: 3, DenseLayers: 1, DenseFFN: 128, ExpertFFN: 32,
		Heads: 4, QLoRA: 32, KVLoRA: 32, NopeDim: 16, RopeDim: 8, ValueDim: 16,
		Experts: 16, ExpertsUsed: 4, Shared: 1, Groups: 4, GroupsUsed: 2, Sigmoid: true, NormTopK: true,
		RoutedScale: 2.5, Context: 4096, YarnFactor: 4, YarnOrigContext: 1024, MscaleAllDim: 1, Type: gguf.TypeF32,
	}
}

// TinyV2 is a V2-Lite-shaped model: no q-LoRA, softmax routing without
// groups or normalisation, two shared experts, YaRN with mscale 0.707.
func TinyV2() V3 {
	return V3{
		Name: "ulan-test-tiny-v2", Hidden: 64, Layers: 3, DenseLayers: 1, DenseFFN: 96, ExpertFFN: 32,
		Heads: 4, KVLoRA: 32, NopeDim: 16, RopeDim: 8, ValueDim: 16,
		Experts: 8, ExpertsUsed: 3, Shared: 2, RoutedScale: 1.5, Context: 4096,
		YarnFactor: 8, YarnOrigContext: 512, MscaleAllDim: 0.707, Type: gguf.TypeF32,
	}
}

// Bench is the 1.79 GB Q8_0 benchmark model of llamacpp-reference.md.
func Bench() V3 {
	return V3{
		Name: "ulan-bench-v3", Hidden: 2048, Layers: 6, DenseLayers: 1, DenseFFN: 5632, ExpertFFN: 512,
		Heads: 16, QLoRA: 1536, KVLoRA: 512, NopeDim: 128, RopeDim: 64, ValueDim: 128,
		Experts: 64, ExpertsUsed: 6, Shared: 1, Groups: 8, GroupsUsed: 4, Sigmoid: true, NormTopK: true,
		RoutedScale: 2.5, Context: 163840, YarnFactor: 40, YarnOrigContext: 4096, MscaleAllDim: 1, Type: gguf.TypeQ8_0,
	}
}

// rng draws weights. Values are exact functions of the seed: uniforms from
// PCG, normals as (u1+u2+u3+u4−2)·√3 (mean 0, variance 1), no math library
// calls whose last bit could differ between machines.
type rng struct{ r *rand.Rand }

func newRNG(seed uint64, stream string) *rng {
	h := uint64(14695981039346656037)
	for i := 0; i < len(stream); i++ {
		h = (h ^ uint64(stream[i])) * 1099511628211
	}
	return &rng{rand.New(rand.NewPCG(seed, h))}
}

func (g *rng) normal() float64 {
	return (g.r.Float64() + g.r.Float64() + g.r.Float64() + g.r.Float64() - 2) * 1.7320508075688772
}

// Write writes the model to w. Each tensor's values depend only on the seed
// and the tensor's name, so presets that share names share weights.
func (c V3) Write(w io.Writer, seed uint64) error {
	gw, err := c.writer(seed)
	if err != nil {
		return err
	}
	_, err = gw.WriteTo(w)
	return err
}

// WriteFile writes the model to path.
func (c V3) WriteFile(path string, seed uint64) error {
	gw, err := c.writer(seed)
	if err != nil {
		return err
	}
	return gw.WriteFile(path)
}

func (c V3) writer(seed uint64) (*gguf.Writer, error) {
	tok, err := loadTokenizer()
	if err != nil {
		return nil, err
	}
	w := &gguf.Writer{}
	a := func(k string, v any) { w.Add("deepseek2."+k, v) }
	w.Add("general.architecture", "deepseek2")
	w.Add("general.name", c.Name)
	fileType := map[gguf.Type]uint32{gguf.TypeF32: 0, gguf.TypeF16: 1, gguf.TypeQ8_0: 7, gguf.TypeBF16: 32}[c.Type]
	w.Add("general.file_type", fileType)
	w.Add("general.quantization_version", uint32(2))
	u := func(v int) uint32 { return uint32(v) }
	a("context_length", u(c.Context))
	a("embedding_length", u(c.Hidden))
	a("block_count", u(c.Layers))
	a("feed_forward_length", u(c.DenseFFN))
	a("attention.head_count", u(c.Heads))
	a("attention.head_count_kv", uint32(1))
	a("attention.layer_norm_rms_epsilon", float32(1e-6))
	a("attention.q_lora_rank", u(c.QLoRA))
	a("attention.kv_lora_rank", u(c.KVLoRA))
	a("attention.key_length", u(c.KVLoRA+c.RopeDim))
	a("attention.value_length", u(c.KVLoRA))
	a("attention.key_length_mla", u(c.NopeDim+c.RopeDim))
	a("attention.value_length_mla", u(c.ValueDim))
	a("rope.dimension_count", u(c.RopeDim))
	a("rope.freq_base", float32(10000))
	a("leading_dense_block_count", u(c.DenseLayers))
	a("vocab_size", u(len(tok.tokens)))
	a("expert_feed_forward_length", u(c.ExpertFFN))
	a("expert_count", u(c.Experts))
	a("expert_used_count", u(c.ExpertsUsed))
	a("expert_shared_count", u(c.Shared))
	if c.Groups > 1 {
		a("expert_group_count", u(c.Groups))
		a("expert_group_used_count", u(c.GroupsUsed))
	}
	a("expert_weights_scale", c.RoutedScale)
	a("expert_weights_norm", c.NormTopK)
	gating := uint32(1)
	if c.Sigmoid {
		gating = 2
	}
	a("expert_gating_func", gating)
	if c.YarnFactor > 1 {
		a("rope.scaling.type", "yarn")
		a("rope.scaling.factor", c.YarnFactor)
		a("rope.scaling.original_context_length", u(c.YarnOrigContext))
		a("rope.scaling.yarn_log_multiplier", 0.1*c.MscaleAllDim)
	}
	tok.add(w)

	E, H, V := c.Hidden, c.Heads, len(tok.tokens)
	qk := c.NopeDim + c.RopeDim
	t := tensors{w: w, seed: seed, typ: c.Type}
	t.matrix("token_embd.weight", 1, V, E)
	t.ones("output_norm.weight", E)
	t.matrix("output.weight", 1/math.Sqrt(float64(E)), V, E)
	for l := range c.Layers {
		n := func(s string) string { return fmt.Sprintf("blk.%d.%s", l, s) }
		t.ones(n("attn_norm.weight"), E)
		if c.QLoRA > 0 {
			t.proj(n("attn_q_a.weight"), c.QLoRA, E)
			t.ones(n("attn_q_a_norm.weight"), c.QLoRA)
			t.proj(n("attn_q_b.weight"), H*qk, c.QLoRA)
		} else {
			t.proj(n("attn_q.weight"), H*qk, E)
		}
		t.proj(n("attn_kv_a_mqa.weight"), c.KVLoRA+c.RopeDim, E)
		t.ones(n("attn_kv_a_norm.weight"), c.KVLoRA)
		t.proj3(n("attn_k_b.weight"), H, c.KVLoRA, c.NopeDim)
		t.proj3(n("attn_v_b.weight"), H, c.ValueDim, c.KVLoRA)
		t.proj(n("attn_output.weight"), E, H*c.ValueDim)
		t.ones(n("ffn_norm.weight"), E)
		if l < c.DenseLayers {
			t.proj(n("ffn_gate.weight"), c.DenseFFN, E)
			t.proj(n("ffn_up.weight"), c.DenseFFN, E)
			t.proj(n("ffn_down.weight"), E, c.DenseFFN)
			continue
		}
		t.f32(n("ffn_gate_inp.weight"), 1/math.Sqrt(float64(E)), c.Experts, E)
		if c.Sigmoid {
			t.f32(n("exp_probs_b.bias"), 0.1, c.Experts)
		}
		t.proj3(n("ffn_gate_exps.weight"), c.Experts, c.ExpertFFN, E)
		t.proj3(n("ffn_up_exps.weight"), c.Experts, c.ExpertFFN, E)
		t.proj3(n("ffn_down_exps.weight"), c.Experts, E, c.ExpertFFN)
		if c.Shared > 0 {
			F := c.ExpertFFN * c.Shared
			t.proj(n("ffn_gate_shexp.weight"), F, E)
			t.proj(n("ffn_up_shexp.weight"), F, E)
			t.proj(n("ffn_down_shexp.weight"), E, F)
		}
	}
	return w, t.err
}

// tensors adds seeded tensors to a writer. Shapes are given row-major
// ([out, in]); GGUF stores them fastest dimension first.
type tensors struct {
	w    *gguf.Writer
	seed uint64
	typ  gguf.Type
	err  error
}

func dims(shape []int) []uint64 {
	d := make([]uint64, len(shape))
	for i, s := range shape {
		d[len(shape)-1-i] = uint64(s)
	}
	return d
}

func (t *tensors) values(name string, std float64, shape []int) []float32 {
	n := 1
	for _, s := range shape {
		n *= s
	}
	g := newRNG(t.seed, name)
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(g.normal() * std)
	}
	return v
}

// proj is a weight matrix scaled so outputs keep unit variance: N(0, 1/in).
func (t *tensors) proj(name string, out, in int) {
	t.matrix(name, 1/math.Sqrt(float64(in)), out, in)
}

func (t *tensors) proj3(name string, a, out, in int) {
	t.matrix(name, 1/math.Sqrt(float64(in)), a, out, in)
}

func (t *tensors) matrix(name string, std float64, shape ...int) {
	v := t.values(name, std, shape)
	switch {
	case t.typ == gguf.TypeQ8_0 && shape[len(shape)-1]%32 == 0:
		// Rows that are not whole Q8_0 blocks stay F32, as llama.cpp's
		// quantizer falls back for them.
		t.w.AddTensor(name, gguf.TypeQ8_0, dims(shape), quantizeQ8_0(v))
		return
	case t.typ == gguf.TypeF16, t.typ == gguf.TypeBF16:
		t.w.AddTensor(name, t.typ, dims(shape), halves(v, t.typ == gguf.TypeBF16))
		return
	}
	t.w.AddTensor(name, gguf.TypeF32, dims(shape), f32bytes(v))
}

func (t *tensors) f32(name string, std float64, shape ...int) {
	t.w.AddTensor(name, gguf.TypeF32, dims(shape), f32bytes(t.values(name, std, shape)))
}

// ones is a norm weight: 1 plus a little noise, so a transposed or misplaced
// norm weight shows.
func (t *tensors) ones(name string, n int) {
	v := t.values(name, 0.05, []int{n})
	for i := range v {
		v[i] += 1
	}
	t.w.AddTensor(name, gguf.TypeF32, dims([]int{n}), f32bytes(v))
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// tokenizer is the GGUF tokenizer section built from tokenizer.json the way
// llama.cpp's converter does for "gpt2"-model tokenizers.
type tokenizer struct {
	tokens   []string
	types    []int32
	merges   []string
	template string
}

// GGUF token types.
const (
	tokenNormal      = 1
	tokenControl     = 3
	tokenUserDefined = 4
	tokenUnused      = 5
)

// vocabSize is DeepSeek-V3's padded vocabulary.
const vocabSize = 129280

var (
	tokOnce   sync.Once
	tokCached *tokenizer
	tokErr    error
	// looksSpecial is the converter's does_token_look_special for the
	// full-width bars DeepSeek uses.
	looksSpecial = regexp.MustCompile(`^<｜.*｜>$|^<\|.*\|>$`)
)

func loadTokenizer() (*tokenizer, error) {
	tokOnce.Do(func() { tokCached, tokErr = parseTokenizer() })
	return tokCached, tokErr
}

func parseTokenizer() (*tokenizer, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tokenizerGz))
	if err != nil {
		return nil, fmt.Errorf("testmodel: tokenizer.json.gz: %w", err)
	}
	var tj struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Vocab  map[string]int `json:"vocab"`
			Merges []string       `json:"merges"`
		} `json:"model"`
	}
	if err := json.NewDecoder(zr).Decode(&tj); err != nil {
		return nil, fmt.Errorf("testmodel: tokenizer.json: %w", err)
	}
	var tc struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(tokenizerConfig, &tc); err != nil {
		return nil, fmt.Errorf("testmodel: tokenizer_config.json: %w", err)
	}
	t := &tokenizer{tokens: make([]string, vocabSize), types: make([]int32, vocabSize), merges: tj.Model.Merges, template: tc.ChatTemplate}
	have := make([]bool, vocabSize)
	for s, id := range tj.Model.Vocab {
		t.tokens[id], t.types[id], have[id] = s, tokenNormal, true
	}
	for _, at := range tj.AddedTokens {
		t.tokens[at.ID], have[at.ID] = at.Content, true
		t.types[at.ID] = tokenUserDefined
		if at.Special || looksSpecial.MatchString(at.Content) {
			t.types[at.ID] = tokenControl
		}
	}
	for id := range t.tokens {
		if !have[id] {
			t.tokens[id], t.types[id] = fmt.Sprintf("[PAD%d]", id), tokenUnused
		}
	}
	return t, nil
}

func (t *tokenizer) add(w *gguf.Writer) {
	w.Add("tokenizer.ggml.model", "gpt2")
	w.Add("tokenizer.ggml.pre", "deepseek-v3")
	w.Add("tokenizer.ggml.tokens", t.tokens)
	w.Add("tokenizer.ggml.token_type", t.types)
	w.Add("tokenizer.ggml.merges", t.merges)
	w.Add("tokenizer.ggml.bos_token_id", uint32(0))
	w.Add("tokenizer.ggml.eos_token_id", uint32(1))
	w.Add("tokenizer.ggml.padding_token_id", uint32(1))
	w.Add("tokenizer.ggml.add_bos_token", true)
	w.Add("tokenizer.ggml.add_eos_token", false)
	w.Add("tokenizer.chat_template", t.template)
}

// TempRoot is where tests should put generated models: /dev/shm when it is
// a writable directory (memory, so that writing 70 MB files does not wait
// for a disk), else the default temporary directory.
func TempRoot() string {
	const shm = "/dev/shm"
	if fi, err := os.Stat(shm); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp(shm, "ulan-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return shm
		}
	}
	return os.TempDir()
}

// TokenizerJSON returns DeepSeek-V3's tokenizer.json (see README.md), the
// tokenizer every test model carries.
func TokenizerJSON() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tokenizerGz))
	if err != nil {
		return nil, fmt.Errorf("testmodel: tokenizer.json.gz: %w", err)
	}
	defer zr.Close()
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("testmodel: tokenizer.json.gz: %w", err)
	}
	return b, nil
}

// TokenizerConfigJSON returns DeepSeek-V3's tokenizer_config.json.
func TokenizerConfigJSON() []byte { return bytes.Clone(tokenizerConfig) }

// WriteTokenizerFile writes a GGUF file with no tensors and only the
// tokenizer section every test model carries, for tokenizer tests.
func WriteTokenizerFile(path string) error {
	tok, err := loadTokenizer()
	if err != nil {
		return err
	}
	w := &gguf.Writer{}
	w.Add("general.architecture", "deepseek2")
	tok.add(w)
	return w.WriteFile(path)
}
