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
	"math/bits"
	"os"
	"regexp"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

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

// TinyQuant is TinyV3 widened until its matrices' rows are whole 256-value
// super-blocks, so that llama.cpp's quantizer gives them the k-quants (all
// but attn_k_b, whose 64-value rows fall back to a 32-value block format as
// DeepSeek's do): V3-shaped, 8 experts top-2 in 4 groups, a shared expert.
// Its f32 file is 270 MB, nearly all of it the two vocabulary-sized tables.
func TinyQuant() V3 {
	return V3{
		Name: "ulan-test-tiny-quant", Hidden: 256, Layers: 3, DenseLayers: 1, DenseFFN: 512, ExpertFFN: 256,
		Heads: 2, QLoRA: 256, KVLoRA: 256, NopeDim: 64, RopeDim: 32, ValueDim: 128,
		Experts: 8, ExpertsUsed: 2, Shared: 1, Groups: 4, GroupsUsed: 2, Sigmoid: true, NormTopK: true,
		RoutedScale: 2.5, Context: 4096, YarnFactor: 4, YarnOrigContext: 1024, MscaleAllDim: 1, Type: gguf.TypeF32,
	}
}

// DemoV3 is the model `ulan serve` runs when given none. It has every part
// of a V3 model (a dense layer then MoE layers, q-LoRA, 32 experts in 8
// groups with sigmoid routing, a selection bias and top-8 of 4 groups, a
// shared expert, V3's own YaRN: factor 40 over 4096 positions, context
// 163840) at a size that builds in about a second and decodes quickly on two
// cores. Its matrices are Q8_0, as served V3 checkpoints' usually are; the
// two vocabulary-sized ones are most of the file.
func DemoV3() V3 {
	return V3{
		Name: "ulan-demo-v3 (random weights)", Hidden: 128, Layers: 4, DenseLayers: 1, DenseFFN: 384, ExpertFFN: 64,
		Heads: 8, QLoRA: 96, KVLoRA: 64, NopeDim: 32, RopeDim: 32, ValueDim: 32,
		Experts: 32, ExpertsUsed: 8, Shared: 1, Groups: 8, GroupsUsed: 4, Sigmoid: true, NormTopK: true,
		RoutedScale: 2.5, Context: 163840, YarnFactor: 40, YarnOrigContext: 4096, MscaleAllDim: 1, Type: gguf.TypeQ8_0,
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

// Version is the generator's version. It changes whenever a preset's file
// changes for the same seed (a new metadata key, a different draw), so that
// files cached under a name derived from it are rebuilt.
const Version = 1

// Weights are exact functions of the seed: uniforms from PCG (math/rand/v2's,
// seeded with the seed and an FNV-1a hash of the tensor's name), normals as
// (u1+u2+u3+u4−2)·√3 (mean 0, variance 1), no math library calls whose last
// bit could differ between machines.

// stream is the second PCG seed of a tensor: FNV-1a of its name.
func stream(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	return h
}

// pcg steps math/rand/v2's PCG, line for line (a 128-bit LCG with the DXSM
// output; state hi, lo as rand.NewPCG(hi, lo) sets it), and returns the new
// state and rand.PCG's Uint64. It works on values rather than a *rand.PCG so
// that the state stays in registers: the race detector instruments every
// access through a pointer, which made -race builds of a model 15 times
// slower than plain ones instead of about 2.
func pcg(hi, lo uint64) (nhi, nlo, out uint64) {
	const (
		mulHi = 2549297995355413924
		mulLo = 4865540595714422341
		incHi = 6364136223846793005
		incLo = 1442695040888963407
	)
	nhi, nlo = bits.Mul64(lo, mulLo)
	nhi += hi*mulLo + lo*mulHi
	nlo, c := bits.Add64(nlo, incLo, 0)
	nhi, _ = bits.Add64(nhi, incHi, c)
	const cheapMul = 0xda942042e4dd58b5
	out = nhi
	out ^= out >> 32
	out *= cheapMul
	out ^= out >> 48
	out *= nlo | 1
	return nhi, nlo, out
}

// normals fills v with std·N(0, 1) (plus one when one is set) from the PCG
// state hi, lo and returns the new state. Each uniform is rand.Rand's
// Float64, summed left to right as the formula reads.
func normals(v []float32, std float64, one bool, hi, lo uint64) (uint64, uint64) {
	for i := range v {
		var sum float64
		for range 4 {
			var u uint64
			hi, lo, u = pcg(hi, lo)
			sum += float64(u<<11>>11) / (1 << 53)
		}
		v[i] = float32((sum - 2) * 1.7320508075688772 * std)
		if one {
			v[i] += 1
		}
	}
	return hi, lo
}

// WriteOption changes how Write and WriteFile write a model.
type WriteOption func(*writeOptions)

type writeOptions struct {
	progress     func(done, total int64)
	fp8Reference bool
	// v4Reference, when set, makes a V4 model's file the decoded values of
	// its Hugging Face directory (WithV4HFReference).
	v4Reference *hfOptions
	// chatTemplate, when set, replaces DeepSeek-V3's chat template
	// (WithChatTemplate).
	chatTemplate *string
}

// WithChatTemplate makes the model's tokenizer.chat_template template
// rather than DeepSeek-V3's (the tokenizer is the same), for tests of
// another checkpoint's chat format, such as DeepSeek-V3.1's.
func WithChatTemplate(template string) WriteOption {
	return func(o *writeOptions) { o.chatTemplate = &template }
}

// WithProgress has f called while the weights are drawn, with the bytes of
// tensor data drawn so far and in all (the file less its metadata, which is
// written after the last call). Weights are drawn on one goroutine per CPU;
// the calls are serialised and done never decreases. Default: no reports.
func WithProgress(f func(done, total int64)) WriteOption {
	return func(o *writeOptions) { o.progress = f }
}

// Write writes the model to w. Each tensor's values depend only on the seed
// and the tensor's name, so presets that share names share weights.
func (c V3) Write(w io.Writer, seed uint64, opts ...WriteOption) error {
	gw, err := c.writer(seed, opts)
	if err != nil {
		return err
	}
	_, err = gw.WriteTo(w)
	return err
}

// WriteFile writes the model to path.
func (c V3) WriteFile(path string, seed uint64, opts ...WriteOption) error {
	gw, err := c.writer(seed, opts)
	if err != nil {
		return err
	}
	return gw.WriteFile(path)
}

func (c V3) writer(seed uint64, opts []WriteOption) (*gguf.Writer, error) {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
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
	tok.add(w, "deepseek-v3", o.chatTemplate)

	t := c.declare(seed, c.Type, len(tok.tokens), false)
	if o.fp8Reference {
		return w, c.addFP8Reference(w, t)
	}
	t.draw(w, o.progress)
	return w, nil
}

// declare lists the model's tensors by their GGUF names, matrices stored as
// typ, with an MTP layer (blk.Layers) after the decoder layers when mtp is
// set (GGUF files never get one here).
func (c V3) declare(seed uint64, typ gguf.Type, vocab int, mtp bool) *tensors {
	E, V := c.Hidden, vocab
	t := &tensors{seed: seed, typ: typ}
	t.matrix("token_embd.weight", 1, V, E)
	t.ones("output_norm.weight", E)
	t.matrix("output.weight", 1/math.Sqrt(float64(E)), V, E)
	for l := range c.Layers {
		c.declareLayer(t, l)
	}
	if mtp {
		l := c.Layers
		n := func(s string) string { return fmt.Sprintf("blk.%d.%s", l, s) }
		t.ones(n("nextn.enorm.weight"), E)
		t.ones(n("nextn.hnorm.weight"), E)
		t.proj(n("nextn.eh_proj.weight"), E, 2*E)
		c.declareLayer(t, l)
		t.ones(n("nextn.shared_head_norm.weight"), E)
	}
	return t
}

// declareLayer lists the tensors of decoder layer l (an MoE layer from
// DenseLayers on, MTP layers included).
func (c V3) declareLayer(t *tensors, l int) {
	E, H := c.Hidden, c.Heads
	qk := c.NopeDim + c.RopeDim
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
		return
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

// tensors collects the seeded tensors of a model and draws them. Shapes are
// given row-major ([out, in]); GGUF stores them fastest dimension first.
type tensors struct {
	seed  uint64
	typ   gguf.Type
	specs []spec
}

// spec is one tensor: std·N(0, 1) per value, plus one for a norm weight,
// drawn in row-major order from the stream named after the tensor and stored
// as typ.
type spec struct {
	name  string
	typ   gguf.Type
	shape []int
	std   float64
	one   bool
	// proj marks an attention or MLP projection: what an FP8 checkpoint
	// stores as F8_E4M3 with block scales.
	proj bool
	// experts, for an I32 tensor, makes it a hash-routing table of distinct
	// expert ids below experts (see tableData in v4.go).
	experts int
}

func dims(shape []int) []uint64 {
	d := make([]uint64, len(shape))
	for i, s := range shape {
		d[len(shape)-1-i] = uint64(s)
	}
	return d
}

// rowBytes is the stored size of a row of n values (n a multiple of 32 for
// Q8_0).
func rowBytes(typ gguf.Type, n int) int {
	switch typ {
	case gguf.TypeQ8_0:
		return n / 32 * 34
	case gguf.TypeF16, gguf.TypeBF16:
		return 2 * n
	}
	return 4 * n
}

func (s spec) size() int {
	n := 1
	for _, d := range s.shape {
		n *= d
	}
	row := s.shape[len(s.shape)-1]
	return n / row * rowBytes(s.typ, row)
}

// reportEvery is how many bytes a tensor draws between progress reports.
const reportEvery = 1 << 18

// data draws the tensor a row at a time, so that no float32 copy of a large
// matrix is held; report gets the bytes stored since its last call. Rows
// hold whole Q8_0 blocks, so this stores what quantising the whole tensor
// at once would.
func (s spec) data(seed uint64, report func(int)) []byte {
	if s.typ == gguf.TypeI32 {
		return s.tableData(seed, report)
	}
	row := s.shape[len(s.shape)-1]
	rb := rowBytes(s.typ, row)
	out := make([]byte, s.size())
	hi, lo := seed, stream(s.name)
	v := make([]float32, row)
	pending := 0
	for off := 0; off < len(out); off += rb {
		hi, lo = normals(v, s.std, s.one, hi, lo)
		dst := out[off : off+rb]
		switch s.typ {
		case gguf.TypeQ8_0:
			quantizeQ8_0(dst, v)
		case gguf.TypeF16, gguf.TypeBF16:
			halves(dst, v, s.typ == gguf.TypeBF16)
		default:
			f32bytes(dst, v)
		}
		if pending += rb; pending >= reportEvery {
			report(pending)
			pending = 0
		}
	}
	if pending > 0 {
		report(pending)
	}
	return out
}

// draw draws every tensor, one goroutine per CPU, largest first (the two
// vocabulary-sized matrices are most of the work), and adds them to w in
// the order they were declared, so the file does not depend on scheduling.
func (t *tensors) draw(w *gguf.Writer, progress func(done, total int64)) {
	data := make([][]byte, len(t.specs))
	order := make([]int, len(t.specs))
	var total int64
	for i, s := range t.specs {
		order[i] = i
		total += int64(s.size())
	}
	sort.SliceStable(order, func(a, b int) bool { return t.specs[order[a]].size() > t.specs[order[b]].size() })
	var mu sync.Mutex
	var done int64
	report := func(n int) {
		if progress != nil {
			mu.Lock()
			done += int64(n)
			progress(done, total)
			mu.Unlock()
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(order)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(order) {
					return
				}
				k := order[i]
				data[k] = t.specs[k].data(t.seed, report)
			}
		})
	}
	wg.Wait()
	for i, s := range t.specs {
		w.AddTensor(s.name, s.typ, dims(s.shape), data[i])
	}
}

// proj is a weight matrix scaled so outputs keep unit variance: N(0, 1/in).
func (t *tensors) proj(name string, out, in int) {
	t.matrix(name, 1/math.Sqrt(float64(in)), out, in)
	t.specs[len(t.specs)-1].proj = true
}

func (t *tensors) proj3(name string, a, out, in int) {
	t.matrix(name, 1/math.Sqrt(float64(in)), a, out, in)
	t.specs[len(t.specs)-1].proj = true
}

func (t *tensors) matrix(name string, std float64, shape ...int) {
	typ := gguf.TypeF32
	switch {
	case t.typ == gguf.TypeQ8_0 && shape[len(shape)-1]%32 == 0:
		// Rows that are not whole Q8_0 blocks stay F32, as llama.cpp's
		// quantizer falls back for them.
		typ = gguf.TypeQ8_0
	case t.typ == gguf.TypeF16, t.typ == gguf.TypeBF16:
		typ = t.typ
	}
	t.specs = append(t.specs, spec{name: name, typ: typ, shape: shape, std: std})
}

func (t *tensors) f32(name string, std float64, shape ...int) {
	t.specs = append(t.specs, spec{name: name, typ: gguf.TypeF32, shape: shape, std: std})
}

// ones is a norm weight: 1 plus a little noise, so a transposed or misplaced
// norm weight shows.
func (t *tensors) ones(name string, n int) {
	t.specs = append(t.specs, spec{name: name, typ: gguf.TypeF32, shape: []int{n}, std: 0.05, one: true})
}

func f32bytes(dst []byte, v []float32) {
	for i, x := range v {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
	}
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

// add writes the tokenizer's keys, with tokenizer.ggml.pre pre, and the
// chat template template, or DeepSeek-V3's when template is nil.
func (t *tokenizer) add(w *gguf.Writer, pre string, template *string) {
	w.Add("tokenizer.ggml.model", "gpt2")
	w.Add("tokenizer.ggml.pre", pre)
	w.Add("tokenizer.ggml.tokens", t.tokens)
	w.Add("tokenizer.ggml.token_type", t.types)
	w.Add("tokenizer.ggml.merges", t.merges)
	w.Add("tokenizer.ggml.bos_token_id", uint32(0))
	w.Add("tokenizer.ggml.eos_token_id", uint32(1))
	w.Add("tokenizer.ggml.padding_token_id", uint32(1))
	w.Add("tokenizer.ggml.add_bos_token", true)
	w.Add("tokenizer.ggml.add_eos_token", false)
	if template == nil {
		template = &t.template
	}
	w.Add("tokenizer.chat_template", *template)
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
// tokenizer section every test model carries, for tokenizer tests; pre is
// its tokenizer.ggml.pre (every test model has "deepseek-v3").
func WriteTokenizerFile(path, pre string) error {
	tok, err := loadTokenizer()
	if err != nil {
		return err
	}
	w := &gguf.Writer{}
	w.Add("general.architecture", "deepseek2")
	tok.add(w, pre, nil)
	return w.WriteFile(path)
}
