// Package kernel holds the CPU backend's inner loops: dot products of one
// weight row against one or four activation vectors for the ggml storage
// formats F32, F16, BF16 and Q8_0, the Q8_0 activation quantizer, and the
// scalar and slice converters between float32, IEEE half and bfloat16.
// The backend splits a matrix-vector product into row ranges, one per
// goroutine, and calls these kernels once per row; decode is bound by
// memory bandwidth, so every kernel reads its weight row exactly once.
//
// # Dispatch
//
// Every kernel has a generic Go twin whose doc comment is the reference loop
// and whose result defines the kernel. At package initialisation one set of
// implementations is chosen and kept for the life of the process: on amd64,
// unless built with the noasm tag, the AVX2 assembly when
// golang.org/x/sys/cpu reports AVX2, FMA and F16C together; otherwise the
// generic Go. [Impl] names the set in use and [ForceGeneric] swaps in the
// generic set for tests and benchmarks.
//
// The assembly sums in a different order from the generic loops and uses
// fused multiply-add, so float results agree to within the rounding of the
// summation (about n·2⁻²⁴·Σ|aᵢbᵢ|), not bit for bit. Integer parts (the
// per-block int8 products of Q8_0) and the converters are exact.
package kernel

//go:generate sh -c "cd _gen && go run . -pkg kernel -out ../dot_amd64.s -stubs ../dot_amd64.go"

// impls is one complete set of kernels. Exported functions check their
// arguments and call through the active set, so an implementation may
// assume its slices are long enough.
type impls struct {
	name string

	dotF32  func(a, b []float32) float32
	dotF16  func(w []uint16, x []float32) float32
	dotBF16 func(w []uint16, x []float32) float32

	dotF32x4  func(w, x0, x1, x2, x3 []float32, out *[4]float32)
	dotF16x4  func(w []uint16, x0, x1, x2, x3 []float32, out *[4]float32)
	dotBF16x4 func(w []uint16, x0, x1, x2, x3 []float32, out *[4]float32)

	dotQ8_0   func(w, x []byte, nBlocks int) float32
	dotQ8_0x4 func(w, x0, x1, x2, x3 []byte, nBlocks int, out *[4]float32)

	f16ToF32s func(dst []float32, src []uint16)
	f32ToF16s func(dst []uint16, src []float32)
}

// generic is the reference set, used where no assembly applies.
var generic = impls{
	name: "generic",

	dotF32:  dotF32Generic,
	dotF16:  dotF16Generic,
	dotBF16: dotBF16Generic,

	dotF32x4:  dotF32x4Generic,
	dotF16x4:  dotF16x4Generic,
	dotBF16x4: dotBF16x4Generic,

	dotQ8_0:   dotQ8_0Generic,
	dotQ8_0x4: dotQ8_0x4Generic,

	f16ToF32s: f16ToF32sGeneric,
	f32ToF16s: f32ToF16sGeneric,
}

// active is the set chosen at initialisation by bestImpls, which each
// architecture file defines (dispatch_amd64.go, dispatch_noasm.go).
var active = bestImpls()

// Impl names the implementation set in use: "avx2" or "generic".
func Impl() string { return active.name }

// ForceGeneric makes every kernel use its generic Go twin until the returned
// restore func is called. It exists for tests and benchmarks that compare the
// two paths, as klauspost/compress's cpuinfo.DisableBMI2 does, and must not
// race with kernel calls.
func ForceGeneric() (restore func()) {
	saved := active
	active = generic
	return func() { active = saved }
}
