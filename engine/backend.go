package engine

import "fmt"

// DType is the element type of a tensor.
type DType uint8

// The element types tensors hold. Weights keep the type they are stored in;
// activations are F32; ids are I32.
const (
	F32 DType = iota + 1
	F16
	BF16
	// Q8_0 is ggml's 8-bit block format: 32 values share one f16 scale
	// (34 bytes per block).
	Q8_0
	I32
	// ggml's other block formats, as llama.cpp's quantizer writes them:
	// 32-value blocks with a scale (Q4_0, Q5_0) or a scale and a minimum
	// (Q4_1, Q5_1), and the k-quants' 256-value super-blocks (Q4_K, Q5_K,
	// Q6_K). Rows must be whole blocks.
	Q4_0
	Q4_1
	Q5_0
	Q5_1
	Q4_K
	Q5_K
	Q6_K
	// F8E4M3 is OCP FP8 E4M3 ("e4m3fn") with one F32 scale per 128×128
	// block of each matrix, as DeepSeek-V3/R1 checkpoints store their
	// projections: value = E4M3(w[r][c]) · scales[r/128][c/128]. Its
	// scales come in WeightPart.Scales. DeepSeek-V4 stores E8M0 scales
	// (WeightPart.E8M0Scales), per 128×128 or 32×32 block
	// (WeightPart.Block).
	F8E4M3
	// F4E2M1 is OCP FP4 E2M1 ("MXFP4" values), two to a byte with the
	// even value in the low nibble, with one E8M0 scale per 32 values of
	// a row, as DeepSeek-V4 stores its routed experts: a [rows, cols]
	// matrix is rows·cols/2 bytes and value = E2M1(w[r][c]) ·
	// 2^(scales[r][c/32] − 127). Its scales come in WeightPart.Scales, one
	// byte each (E8M0Scales set); rows are whole 32-value blocks.
	F4E2M1
)

// String returns the type's name as model files spell it.
func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	case Q8_0:
		return "q8_0"
	case I32:
		return "i32"
	case Q4_0:
		return "q4_0"
	case Q4_1:
		return "q4_1"
	case Q5_0:
		return "q5_0"
	case Q5_1:
		return "q5_1"
	case Q4_K:
		return "q4_k"
	case Q5_K:
		return "q5_k"
	case Q6_K:
		return "q6_k"
	case F8E4M3:
		return "f8_e4m3"
	case F4E2M1:
		return "f4_e2m1"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// LogitTile is the number of consecutive logits one of a row's tile
// maxima covers (Context.TileMaxima). A sampler finds a row's k best
// logits among the k tiles with the largest maxima: the k maxima are k
// values at least the k-th best, so every one of the k best lies in a
// tile whose maximum is among them (ties go to the lower tile, as they go
// to the lower token).
const LogitTile = 64

// Tensor is a handle to memory a Backend owns. Its values are not readable
// until the Context that produced it has been computed.
type Tensor interface {
	// Shape lists the dimensions, outermost first (row-major): a weight that
	// maps in values to out values is [out, in].
	Shape() []int
	// DType is the element type.
	DType() DType
}

// DataCopier is implemented by weight tensors that may not read the bytes
// they were made from: a backend that copied them (the CPU backend
// repacking Q8_0 rows) answers true, and a loader can then let a memory
// map's pages go (gguf.File.Release).
type DataCopier interface {
	CopiedData() bool
}

// Backend owns device memory: weights, KV caches and the contexts that
// compute on them. The CPU backend is the reference; others (Ascend) must
// give the same results within floating-point tolerance.
//
// See RATIONALE.md, "Why does the Backend record work instead of computing
// each op?".
type Backend interface {
	// Name identifies the backend ("cpu", "ascend").
	Name() string
	// Weight makes a weight tensor from its stored bytes, kept in its stored
	// type (nothing is dequantized whole). The bytes may be viewed in place
	// (a memory-mapped file) and must stay valid until Close.
	Weight(name string, dt DType, shape []int, data []byte) (Tensor, error)
	// WeightParts makes one weight tensor from separately stored parts,
	// viewed in place like Weight's bytes: with one part, the whole
	// tensor; with more, shape[0] == len(parts) and part i is the slice
	// [i, …] of shape[1:] (a Hugging Face checkpoint's experts, one tensor
	// each, make one stacked [X, F, E] weight without a copy a 600 GB
	// model could not afford). F8E4M3 weights need it: each part is one
	// matrix with its own block scales. See RATIONALE.md, "Why does the
	// Backend take weights in parts?".
	WeightParts(name string, dt DType, shape []int, parts []WeightPart) (Tensor, error)
	// Cache allocates zeroed KV-cache memory for one layer: rows slots of
	// width values each, in type dt. Slots are addressed by Batch.Slots.
	Cache(rows, width int, dt DType) (Tensor, error)
	// NewContext starts recording work.
	NewContext() Context
	// Close frees everything the backend owns.
	Close() error
}

// WeightPart is one stored piece of a weight (see Backend.WeightParts).
type WeightPart struct {
	// Data is the part's values in the tensor's type, row-major.
	Data []byte
	// Scales is, for F8E4M3 and F4E2M1, the part's block scales,
	// row-major [⌈rows/bh⌉, ⌈cols/bw⌉] for a part of rows×cols values in
	// blocks of bh×bw (Block): little-endian F32 (V3's weight_scale_inv),
	// or one E8M0 byte each when E8M0Scales is set (V4's ".scale"). Nil
	// for other types.
	Scales []byte
	// E8M0Scales says Scales holds E8M0 bytes (the safetensors dtype
	// F8_E8M0; value 2^(b−127), 255 is NaN) rather than F32. F4E2M1 needs
	// it; for F8E4M3 it is optional. False by default.
	E8M0Scales bool
	// Block is the [rows, cols] shape of the blocks that share one scale:
	// for F8E4M3 the checkpoint's quantization_config.weight_block_size,
	// [128, 128] when zero; for F4E2M1 [1, 32], the only shape it has,
	// when zero.
	Block [2]int
}

// Context records tensor operations and computes them at Compute. Ops never
// fail on their own: a bad shape or type is recorded and returned by Compute,
// naming the op, so architecture code reads as maths. A Context is used by
// one goroutine; Close releases its intermediate tensors.
type Context interface {
	// Input copies host values into a new F32 tensor of the given shape.
	Input(values []float32, shape ...int) Tensor

	// Embed gathers rows of table ([vocab, n]) for the batch's tokens: [T, n].
	Embed(table Tensor, b *Batch) Tensor
	// MatMul computes x · wᵀ for x [T, in] and w [out, in] (any weight
	// type): [T, out]. A weight row is read once for all T rows.
	MatMul(x, w Tensor) Tensor
	// Logits is MatMul for a model's output projection, whose rows are
	// the next-token logits (x [T, in], w [V, in]: [T, V]). A backend may
	// also summarise each row while its values are at hand, for the
	// sampler: TileMaxima returns the summary.
	Logits(x, w Tensor) Tensor
	// MatMulHeads computes, for every row t and head h, w[h] · x[t, h] for
	// x [T, H, in] and w [H, out, in]: [T, H, out]. It serves MLA's absorbed
	// projections (per head) and V4's grouped output projection (per group).
	MatMulHeads(x, w Tensor) Tensor
	// RMSNorm normalises x over its last dimension, x / sqrt(mean(x²) + eps),
	// then multiplies by weight (its last dimension's length) unless weight is
	// nil.
	RMSNorm(x, weight Tensor, eps float32) Tensor
	// Rope rotates adjacent pairs of the last spec.Dims channels of every
	// vector along x's last dimension ([T, n] or [T, H, n]) by the positions
	// of the batch's tokens.
	Rope(x Tensor, b *Batch, spec RopeSpec) Tensor

	// Slice takes channels [lo, hi) of x's last dimension.
	Slice(x Tensor, lo, hi int) Tensor
	// Concat joins a and b along the last dimension; other dimensions must
	// match.
	Concat(a, b Tensor) Tensor
	// Reshape views x with a new shape of the same number of elements.
	Reshape(x Tensor, shape ...int) Tensor
	// Rows selects rows of x ([T, n]) by index: [len(rows), n].
	Rows(x Tensor, rows []int) Tensor

	// Add adds two tensors of the same shape.
	Add(a, b Tensor) Tensor
	// SwiGLU computes silu(gate) · up elementwise. A clamp > 0 first limits
	// gate to at most clamp and up to [−clamp, clamp] (V4's clamped SwiGLU,
	// spec §2.7 and trap 13: the gate is clamped from above only); 0 means
	// no clamp.
	SwiGLU(gate, up Tensor, clamp float32) Tensor

	// CacheStore writes x ([T, width]) into cache rows b.Slots[t].
	CacheStore(cache, x Tensor, b *Batch) Tensor
	// Attention is multi-query attention over a KV cache: every head of q
	// ([T, H, dk]) attends, causally, to the cache rows of its own sequence
	// (positions 0 … its own), using each row's first dk channels as the key
	// and its first spec.ValueDim channels as the value: [T, H, ValueDim].
	Attention(q, cache Tensor, b *Batch, spec AttentionSpec) Tensor

	// Route scores experts from router logits ([T, X]) and picks spec.TopK
	// per row: ids (I32 [T, k]) and their weights (F32 [T, k]). bias, if not
	// nil ([X]), is added to the scores for selection only.
	Route(logits, bias Tensor, spec RouteSpec) (ids, weights Tensor)
	// ExpertFFN runs the routed experts: for each row t,
	// Σ_k weights[t,k] · down[e] · SwiGLU(gate[e]·x, up[e]·x, clamp) with
	// e = ids[t,k], for x [T, n], gate and up [X, f, n], down [X, n, f]: [T, n].
	// Each expert's weights are read once for all rows routed to it.
	ExpertFFN(x, ids, weights, gate, up, down Tensor, clamp float32) Tensor

	// RouteHash is Route for V4's hash-routed layers (spec §2.7, trap 11):
	// the experts of row t are the stored table row of the batch's token t
	// (table I32 [vocab, k]), not chosen by score; their weights are the
	// scores of those experts, normalised and scaled as spec says.
	RouteHash(logits, table Tensor, b *Batch, spec RouteSpec) (ids, weights Tensor)

	// HyperPre is the mixing half of V4's manifold-constrained
	// hyper-connections before a sub-block (spec §2.2): from the streams x
	// ([T, hc, n]) and their mixes ([T, (2+hc)·hc], the RMS-normalised
	// flattened streams times fn), with scale [3] and base [(2+hc)·hc], it
	// returns the block input Σ_k pre[k]·x[k] ([T, n]), post ([T, hc]) and
	// the Sinkhorn-normalised comb ([T, hc, hc], row j, column k).
	HyperPre(x, mix, scale, base Tensor, spec HyperSpec) (in, post, comb Tensor)
	// HyperPost returns the streams after a sub-block with output y
	// ([T, n]): x'[k] = post[k]·y + Σ_j comb[j][k]·x[j] (trap 6: column k).
	HyperPost(y, x, post, comb Tensor) Tensor
	// HyperHead collapses the streams x ([T, hc, n]) to one ([T, n]):
	// Σ_k (sigmoid(mix[k]·scale[0] + base[k]) + spec.Eps)·x[k], for mix
	// [T, hc] (spec §2.2, hc_head).
	HyperHead(x, mix, scale, base Tensor, spec HyperSpec) Tensor

	// Compress runs a V4 compressor over the batch (spec §2.5, §4.1): kv
	// and score ([T, c·d], c = 2 for spec.Overlap) are the tokens'
	// projections (spec.Ape is added to score here, by position). Each
	// token's rows go to its sequence's state ([c·Ratio rows, 2·c·d] per
	// sequence: kv then score, slot p mod c·Ratio); every token that
	// completes a window (p+1 ≡ 0 mod Ratio) pools it per channel,
	// normalises, rotates it at the window's first position and stores the
	// entry in entries (a paged tensor, Every = Ratio, width d). Rows of
	// earlier positions are read from state, of this step's from kv and
	// score, so a step may hold any number of a sequence's tokens. It
	// returns entries.
	Compress(kv, score, state, entries Tensor, b *Batch, spec CompressSpec) Tensor
	// IndexTopK is V4's lightning indexer (spec §2.6): for every token t at
	// position p it scores the visible indexer keys w < (p+1)/spec.Ratio
	// of its sequence (keys: paged, Every = Ratio, width dI) as
	// Σ_h weights[t,h]·spec.Scale·relu(q[t,h]·K_w) for q [T, HI, dI] and
	// weights [T, HI], and returns the exact top spec.TopK entries (I32
	// [T, TopK], every visible entry while there are at most TopK, −1
	// where fewer).
	IndexTopK(q, weights, keys Tensor, b *Batch, spec IndexSpec) Tensor
	// SparseAttention is V4's attention (spec §2.3–2.6): every head of q
	// ([T, H, d]) attends to the keys of its sequence's window (positions
	// p−Window+1 … p: this step's kv ([T, d]) for the step's tokens, the
	// ring state ([Window rows, d] per sequence, slot p mod Window) for
	// earlier ones) and, when spec.Ratio > 0, to the compressed entries
	// (paged, Every = Ratio) w < (p+1)/Ratio — all of them when sel is
	// nil, else those sel ([T, k] I32, −1 for none) names. Keys are their
	// own values; spec.Sinks add to the denominator. Returns [T, H, d].
	SparseAttention(q, kv, ring, entries, sel Tensor, b *Batch, spec SparseSpec) Tensor
	// WindowStore writes each token's kv row ([T, d]) to its sequence's
	// ring (window rows per sequence, slot p mod window) after the reads
	// of SparseAttention recorded before it. It returns ring.
	WindowStore(ring, kv Tensor, b *Batch, window int) Tensor

	// Compute runs what has been recorded up to the outputs and reports the
	// first error any op recorded.
	Compute(outputs ...Tensor) error
	// TileMaxima returns the summary Logits made of its output t: for
	// each row, the largest of every LogitTile consecutive values
	// (⌈V/LogitTile⌉ of them, the last tile possibly short), or nil for a
	// row that holds a value that is not finite. It returns nil when the
	// backend made none. The slices, like Floats', alias backend memory.
	TileMaxima(t Tensor) [][]float32
	// Floats returns the values of a computed F32 tensor, row-major. The
	// slice may alias backend memory: it is valid until Close and must not be
	// modified.
	Floats(t Tensor) ([]float32, error)
	// Close releases the context's intermediate tensors.
	Close()
}

// RopeSpec describes rotary position embedding with optional YaRN scaling, as
// ggml computes it in its NORM (adjacent pairs) mode.
type RopeSpec struct {
	// Dims is the number of trailing channels that rotate (even).
	Dims int
	// Base is the frequency base θ (10000 in V3).
	Base float32
	// YaRN, when Factor > 1, blends interpolated and extrapolated
	// frequencies between the correction dimensions of BetaFast and BetaSlow
	// for an original context of OrigContext tokens. Attention magnitude is
	// not scaled here: DeepSeek folds it into the softmax scale.
	Factor      float32
	OrigContext int
	BetaFast    float32
	BetaSlow    float32
	// Inverse rotates backwards (V4 undoes the rotation its values carry).
	Inverse bool
}

// AttentionSpec parameterises Attention.
type AttentionSpec struct {
	// ValueDim is the width of the value: the first ValueDim channels of a
	// cache row.
	ValueDim int
	// Scale multiplies q·k before the softmax.
	Scale float32
	// Window, when > 0, limits each query to the Window most recent
	// positions, its own included (V4's sliding window of 128, spec §2.4).
	Window int
	// Sinks, when not nil ([H] f32), adds exp(sink[h]) to head h's softmax
	// denominator: an extra logit with a zero value, unscaled (V4's attention
	// sink, spec §2.3 and trap 4).
	Sinks Tensor
}

// Scoring is how router logits become expert scores.
type Scoring uint8

// Expert scoring functions.
const (
	Softmax      Scoring = iota + 1 // V2: softmax over all experts
	Sigmoid                         // V3: sigmoid per expert
	SqrtSoftplus                    // V4: sqrt(softplus(x)) per expert
)

// GroupScore is how a group of experts is scored for group-limited routing.
type GroupScore uint8

// Group scores.
const (
	// GroupTop2Sum scores a group by the sum of its two best selection
	// scores (V3's noaux_tc; what llama.cpp does for every deepseek2 file).
	GroupTop2Sum GroupScore = iota + 1
	// GroupMax scores a group by its best score (V2's group_limited_greedy).
	GroupMax
)

// RouteSpec parameterises Route.
type RouteSpec struct {
	Scoring Scoring
	// TopK experts are used per token.
	TopK int
	// Groups > 1 limits the choice to the TopKGroups best groups of
	// consecutive experts, scored by GroupScore; other groups are excluded
	// (−∞), never merely zeroed.
	Groups     int
	TopKGroups int
	GroupScore GroupScore
	// Normalize divides the chosen weights by their sum (at least
	// 6.103515625e-5, as llama.cpp clamps it).
	Normalize bool
	// Scale multiplies the weights afterwards (routed_scaling_factor); 0
	// means 1.
	Scale float32
}

// HyperSpec parameterises the hyper-connection ops.
type HyperSpec struct {
	// Streams is hc (4 in V4).
	Streams int
	// Iters is the number of Sinkhorn iterations (hc_sinkhorn_iters).
	Iters int
	// Eps is hc_eps.
	Eps float32
}

// CompressSpec parameterises Compress.
type CompressSpec struct {
	// Ratio is the number of tokens one entry covers (4 or 128).
	Ratio int
	// Overlap is CSA's pooling over two windows: a token's first d
	// channels feed the next window's entry, its last d its own.
	Overlap bool
	// Ape ([Ratio, c·d]) is added to the score of a token at position p
	// (row p mod Ratio).
	Ape Tensor
	// Norm ([d]) weighs the RMS-normalised entry; Eps is its epsilon.
	Norm Tensor
	Eps  float32
	// Rope rotates the entry at its window's first position.
	Rope RopeSpec
}

// IndexSpec parameterises IndexTopK.
type IndexSpec struct {
	// Ratio is the compression of the indexer keys (4).
	Ratio int
	// TopK is the number of entries kept per token (index_topk).
	TopK int
	// Scale multiplies the weights (index_head_dim^(−1/2) ·
	// index_n_heads^(−1/2)).
	Scale float32
}

// SparseSpec parameterises SparseAttention.
type SparseSpec struct {
	// Scale multiplies q·k before the softmax.
	Scale float32
	// Window is the number of raw positions a token sees, its own included.
	Window int
	// Ratio is the compression of the entries (0: none).
	Ratio int
	// Sinks ([H] f32), when not nil, add exp(sink[h]) to the denominator.
	Sinks Tensor
}
