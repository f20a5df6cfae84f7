// Package cpu is the engine's reference Backend: it computes every operation
// eagerly on the host, spreading the rows of each operation over a fixed
// number of goroutines, with the inner loops in engine/cpu/internal/kernel
// (AVX2/FMA assembly where the machine has it, plain Go otherwise).
//
// Weights stay in their stored type and, for a memory-mapped file, in place:
// a Q8_0 matrix is multiplied block by block against activations quantized
// to Q8_0, as llama.cpp does; F16 and BF16 rows are converted on the fly.
package cpu

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
	"github.com/ulan-ai/ulan/internal/team"
)

// Option configures a Backend.
type Option func(*Backend)

// WithThreads sets how many goroutines share each operation. The default is
// runtime.NumCPU(); values below 1 mean 1.
func WithThreads(n int) Option {
	return func(b *Backend) { b.threads = max(1, n) }
}

// WithRepack says whether Q8_0 weights are repacked sixteen rows at a time
// (kernel's R16 layout) when they are loaded. The default, kernel.PreferR16,
// repacks where the CPU multiplies that layout faster (AVX-512 VNNI); tests
// force it to check the layout's generic kernels elsewhere.
func WithRepack(on bool) Option {
	return func(b *Backend) { b.repack = on }
}

// WithCopied has Weight call fn with each run of a weight's bytes that it
// has finished copying (repacking Q8_0), on the goroutine that copied it,
// so that a loader can show progress while the backend reads the file and
// let a memory map's pages go as they are copied (gguf.File.ReleaseBytes).
func WithCopied(fn func(src []byte)) Option {
	return func(b *Backend) { b.copied = fn }
}

// Backend is the CPU implementation of engine.Backend.
type Backend struct {
	threads int
	repack  bool
	copied  func(src []byte)
}

var _ engine.Backend = (*Backend)(nil)

// Kernels names the set of kernels this process computes with: avx512vnni,
// avx2 (on amd64, as the CPU allows) or generic (the Go twins, elsewhere or
// under -tags noasm). Every set gives the same bits but where RATIONALE.md
// says otherwise (Q8_0's R16 layout).
func Kernels() string { return kernel.Impl() }

// New returns a CPU backend.
func New(opts ...Option) *Backend {
	b := &Backend{threads: runtime.NumCPU(), repack: kernel.PreferR16()}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Threads returns the number of goroutines per operation.
func (b *Backend) Threads() int { return b.threads }

// Close does nothing: weights belong to the file they were mapped from and
// everything else to the Go heap.
func (b *Backend) Close() error { return nil }

// tensor is the CPU backend's Tensor. Exactly one of f, raw, rep, i holds
// data: f for F32, raw for stored weight bytes (F16, BF16, the block
// formats), rep for Q8_0 weights repacked to kernel's R16 layout, i for
// I32.
type tensor struct {
	shape []int
	dt    engine.DType
	f     []float32
	raw   []byte
	rep   []byte
	i     []int32
	name  string
	// parts, when not nil, holds the slices [i, …] of a weight made of
	// separately stored parts (WeightParts); raw and f are then empty.
	parts []*tensor
	// scales are an F8E4M3 matrix's block scales (fp8.go), in blocks of
	// bh×bw values.
	scales []float32
	bh, bw int
	// e8 are an F4E2M1 weight's E8M0 scales, one per 32 values (fp4.go).
	e8 []byte
	// tiles are Logits' tile maxima of each row (nil for a row with a
	// value that is not finite).
	tiles [][]float32
}

func (t *tensor) Shape() []int { return t.shape }

// CopiedData reports whether the weight holds its own copy of the bytes it
// was made from (a repacked Q8_0 weight); see engine.DataCopier.
func (t *tensor) CopiedData() bool    { return t.rep != nil }
func (t *tensor) DType() engine.DType { return t.dt }

func (t *tensor) String() string {
	if t.name != "" {
		return fmt.Sprintf("%s %v %v", t.name, t.dt, t.shape)
	}
	return fmt.Sprintf("%v %v", t.dt, t.shape)
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// rowBytes is the size of one row of n values in type dt.
func rowBytes(dt engine.DType, n int) int {
	switch dt {
	case engine.F32, engine.I32:
		return 4 * n
	case engine.F16, engine.BF16:
		return 2 * n
	case engine.Q8_0:
		return n / 32 * 34
	case engine.F8E4M3:
		return n
	}
	if f := quantFormats[dt]; f != nil {
		return n / f.block * f.bytes
	}
	return 0
}

// Weight wraps stored weight bytes. F32 weights are viewed in place when the
// bytes are 4-byte aligned (GGUF aligns tensor data to 32 bytes).
func (b *Backend) Weight(name string, dt engine.DType, shape []int, data []byte) (engine.Tensor, error) {
	if len(shape) == 0 {
		return nil, fmt.Errorf("cpu: weight %q: no shape", name)
	}
	if dt == engine.F8E4M3 || dt == engine.F4E2M1 {
		return nil, fmt.Errorf("cpu: weight %q: %v needs its block scales (WeightParts)", name, dt)
	}
	n := numel(shape)
	last := shape[len(shape)-1]
	if dt == engine.Q8_0 && last%32 != 0 {
		return nil, fmt.Errorf("cpu: weight %q: q8_0 rows of %d values are not whole 32-value blocks", name, last)
	}
	if f := quantFormats[dt]; f != nil && last%f.block != 0 {
		return nil, fmt.Errorf("cpu: weight %q: %v rows of %d values are not whole %d-value blocks", name, dt, last, f.block)
	}
	want := rowBytes(dt, last) * (n / max(last, 1))
	if want == 0 && n != 0 {
		return nil, fmt.Errorf("cpu: weight %q: type %v is not supported", name, dt)
	}
	if len(data) != want {
		return nil, fmt.Errorf("cpu: weight %q: %d bytes for %v %v, want %d", name, len(data), dt, shape, want)
	}
	t := &tensor{shape: append([]int(nil), shape...), dt: dt, name: name}
	switch dt {
	case engine.F32:
		if n > 0 && uintptr(unsafe.Pointer(&data[0]))%4 == 0 {
			t.f = unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), n)
		} else {
			t.f = make([]float32, n)
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.f))), 4*n), data)
		}
	case engine.I32:
		t.i = make([]int32, n)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.i))), 4*n), data)
	case engine.Q8_0:
		if b.repack && len(shape) >= 2 && shape[len(shape)-2]%kernel.R16Rows == 0 {
			rep, free := offHeap(len(data))
			b.repackQ8_0(rep, data, n/last, last/kernel.Q8_0BlockLen)
			t.rep = rep
			// The mapping goes when the tensor is unreachable; rep is
			// only used through it.
			runtime.AddCleanup(t, func(free func()) { free() }, free)
		} else {
			t.raw = data
		}
	default:
		t.raw = data
	}
	return t, nil
}

// repackQ8_0 writes rows Q8_0 rows of nb blocks from data into rep in
// kernel's R16 layout, across the backend's goroutines. Every matrix of
// the weight (an expert, a head) starts at a multiple of 16 rows, so its
// rows are whole groups.
func (b *Backend) repackQ8_0(rep, data []byte, rows, nb int) {
	gb := kernel.R16Rows * nb * kernel.Q8_0BlockSize
	b.parallel(rows/kernel.R16Rows, 64, func(lo, hi int) {
		kernel.RepackQ8_0R16(rep[lo*gb:hi*gb], data[lo*gb:hi*gb], (hi-lo)*kernel.R16Rows, nb)
		if b.copied != nil {
			b.copied(data[lo*gb : hi*gb])
		}
	})
}

// Cache allocates zeroed cache rows, outside the Go heap (offHeap): a
// KV cache of gigabytes on the heap would let the garbage of the steps
// grow as large before the collector ran, and every step's buffers would
// come from memory never touched before (the demo model's decode steps
// ran 2–5% slower so). The rows are returned when the tensor is
// unreachable; every view of them is made from it by a context, which
// the Runner that holds the cache outlives.
func (b *Backend) Cache(rows, width int, dt engine.DType) (engine.Tensor, error) {
	if dt != engine.F32 {
		return nil, fmt.Errorf("cpu: cache type %v is not supported (f32 only)", dt)
	}
	if rows <= 0 || width <= 0 {
		return nil, fmt.Errorf("cpu: cache of %d rows × %d", rows, width)
	}
	raw, free := offHeap(4 * rows * width)
	t := &tensor{shape: []int{rows, width}, dt: dt, f: unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(raw))), rows*width)}
	runtime.AddCleanup(t, func(free func()) { free() }, free)
	return t, nil
}

// NewContext starts an eager context.
func (b *Backend) NewContext() engine.Context {
	return &context{b: b, mem: arenas.Get().(*arena)}
}

// parallel splits [0, n) into chunks of at least grain and runs fn on them
// across the backend's goroutines.
func (b *Backend) parallel(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	workers := min(b.threads, (n+grain-1)/grain)
	if workers <= 1 {
		fn(0, n)
		return
	}
	// About parallelChunks pieces per worker, taken in turn: when one
	// worker is slowed (another process, a vCPU the hypervisor preempts),
	// the others take its share instead of waiting for it.
	pieces := min((n+grain-1)/grain, workers*parallelChunks)
	chunk := ((n+pieces-1)/pieces + grain - 1) / grain * grain
	team.Run(workers, (n+chunk-1)/chunk, func(i int) { fn(i*chunk, min((i+1)*chunk, n)) })
}

// each runs fn(i) for every i in [0, n) across the backend's goroutines,
// which take the indices in turn.
func (b *Backend) each(n int, fn func(i int)) {
	team.Run(b.threads, n, fn)
}

// parallelChunks is how many pieces per worker parallel cuts work into.
const parallelChunks = 8

// context is an eager engine.Context: each op computes when it is called,
// and the first error sticks.
type context struct {
	b   *Backend
	err error
	mem *arena // the ops' buffers, returned on Close

	preps []*prepared           // prepared inputs, returned on Close
	memo  map[prepKey]*prepared // inputs prepared by c.prepare
	ropes map[ropeKey][]float32 // rotation angles by c.ropeAngles
}

var errPoisoned = errors.New("cpu: an earlier op failed")

// fail records the first error and returns a placeholder tensor so that
// architecture code can go on recording without checks.
func (c *context) fail(format string, args ...any) *tensor {
	if c.err == nil {
		c.err = fmt.Errorf("cpu: "+format, args...)
	}
	return &tensor{dt: engine.F32}
}

// f32 unwraps an activation tensor.
func (c *context) f32(op string, t engine.Tensor) (*tensor, bool) {
	if c.err != nil {
		return nil, false
	}
	ct, ok := t.(*tensor)
	if !ok || ct == nil {
		c.fail("%s: not a cpu tensor", op)
		return nil, false
	}
	if ct.dt != engine.F32 {
		c.fail("%s: %v, want f32", op, ct)
		return nil, false
	}
	return ct, true
}

func (c *context) Compute(...engine.Tensor) error { return c.err }

func (c *context) Floats(t engine.Tensor) ([]float32, error) {
	if c.err != nil {
		return nil, c.err
	}
	ct, ok := c.f32("Floats", t)
	if !ok {
		return nil, c.err
	}
	return ct.f, nil
}

// Close returns the context's buffers for the next context to reuse: every
// tensor it made, logits included, is invalid afterwards.
func (c *context) Close() {
	c.releasePrepared()
	clear(c.ropes)
	if c.mem != nil {
		c.mem.reset()
		arenas.Put(c.mem)
		c.mem = nil
	}
}

func (c *context) Input(values []float32, shape ...int) engine.Tensor {
	if numel(shape) != len(values) {
		return c.fail("Input: %d values for shape %v", len(values), shape)
	}
	return &tensor{shape: shape, dt: engine.F32, f: values}
}
