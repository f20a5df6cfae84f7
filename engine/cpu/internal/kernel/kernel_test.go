package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// vectorWidth is the widest unroll of the float kernels (32 float32 per
// iteration of dot<Kind>AVX2); equivalence tests cover every length from 0
// to 3× it, so each loop and tail runs zero, one and several times.
const vectorWidth = 32

// smallLens are the lengths 0…3·vectorWidth; largeLens are production rows
// (DeepSeek's 2048 and 7168) and a 7168 row with an odd tail.
var (
	smallLens = func() []int {
		var l []int
		for n := 0; n <= 3*vectorWidth; n++ {
			l = append(l, n)
		}
		return l
	}()
	largeLens = []int{255, 2048, 7168, 7168 + 13}
)

// offsets shift a slice's start by whole elements from a 32-byte aligned
// address, so the assembly's 32-byte loads meet aligned, element-aligned and
// (for Q8_0's 34-byte blocks, always) odd addresses.
var offsets = []int{0, 1, 3, 7}

func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x756c616e)) // "ulan"
}

// guarded returns a slice of n elements starting off elements into a
// backing array whose other elements all hold guard, and a check that those
// guard elements are unchanged. Input slices use a NaN guard, so a kernel
// that reads past the end poisons its result; output slices use the check.
func guarded[T comparable](n, off int, guard T) (s []T, check func(t testing.TB)) {
	const pad = 64
	back := make([]T, 32+off+n+pad)
	for i := range back {
		back[i] = guard
	}
	for uintptr(unsafe.Pointer(&back[0]))%32 != 0 { // element sizes divide 32
		back = back[1:]
	}
	s = back[off : off+n]
	return s, func(t testing.TB) {
		t.Helper()
		for i := range off {
			require.Equal(t, guard, back[i], "guard %d before the slice changed", off-i)
		}
		for i := off + n; i < len(back); i++ {
			require.Equal(t, guard, back[i], "guard %d after the slice changed", i-off-n)
		}
	}
}

// guardedOut returns an out array embedded between NaN guards, for the x4
// kernels, and a check that the guards are unchanged.
func guardedOut() (*[4]float32, func(t testing.TB)) {
	back := make([]float32, 8)
	for i := range back {
		back[i] = float32(math.NaN())
	}
	out := (*[4]float32)(back[2:6])
	return out, func(t testing.TB) {
		t.Helper()
		for _, i := range []int{0, 1, 6, 7} {
			require.True(t, math.IsNaN(float64(back[i])), "out guard %d changed to %v", i, back[i])
		}
	}
}

// sumTol is the largest difference allowed between two float32 sums of the
// same n products pᵢ taken in different orders, with and without FMA.
// Summing n terms in any order errs by at most γ(n-1)·Σ|pᵢ| (Higham,
// Accuracy and Stability of Numerical Algorithms, §4.2), rounding each
// product adds one unit u = 2⁻²⁴, and the assembly's lane split and final
// tree add a few more levels; γ(n+8)·Σ|pᵢ|, γ(k) = k·u/(1-k·u), covers each
// result, so two results differ by at most twice that. Rounding in the
// subnormal range errs absolutely, by up to 2⁻¹⁵⁰ per operation.
//
// The bound is rigorous but loose for long rows (about 8.5e-4·Σ|pᵢ| at
// 7168), so a lost element could hide in it; the exact tests, whose sums are
// representable in any order, catch those bit for bit.
func sumTol(n int, absSum float64) float64 {
	k := float64(n+8) * 0x1p-24
	return 2*k/(1-k)*absSum + 2*float64(n+8)*0x1p-150
}

// requireSumClose checks a fast result against its generic reference: NaN
// must give NaN and ±Inf the same Inf (an Inf - Inf or a NaN poisons every
// summation order alike); finite results must agree within sumTol.
// msgAndArgs name the case, as a format and its arguments.
func requireSumClose(t testing.TB, fast, ref float32, n int, absSum float64, msgAndArgs ...any) {
	t.Helper()
	name := ""
	if len(msgAndArgs) > 0 {
		name = fmt.Sprintf(msgAndArgs[0].(string), msgAndArgs[1:]...) + ": "
	}
	switch {
	case math.IsNaN(float64(ref)):
		require.True(t, math.IsNaN(float64(fast)), "%swant NaN, got %v", name, fast)
	case math.IsInf(float64(ref), 0):
		require.Equal(t, ref, fast, "%swant %v", name, ref)
	default:
		diff := math.Abs(float64(fast) - float64(ref))
		require.LessOrEqual(t, diff, sumTol(n, absSum), "%sfast %v, generic %v, n %d, Σ|p| %g", name, fast, ref, n, absSum)
	}
}

// requireSameFloat checks that a kernel's x4 form gave exactly its single
// form's result (any NaN matching any NaN): the batch-invariance contract.
func requireSameFloat(t testing.TB, single, x4 float32, msgAndArgs ...any) {
	t.Helper()
	if single != single && x4 != x4 {
		return
	}
	require.Equal(t, math.Float32bits(single), math.Float32bits(x4), msgAndArgs...)
}

func TestImpl(t *testing.T) {
	want := "generic"
	if runtime.GOARCH == "amd64" && !noasmBuild {
		want = expectedAsmImpl()
	}
	require.Equal(t, want, Impl())
}

func TestForceGeneric(t *testing.T) {
	before := Impl()
	restore := ForceGeneric()
	require.Equal(t, "generic", Impl())
	a := []float32{1, 2, 3}
	require.Equal(t, float32(14), DotF32(a, a))
	restore()
	require.Equal(t, before, Impl())
}

// TestAsmUsesOnlyAVX2Registers checks the generated assembly of every
// function but the …VNNI and …AVX512 ones (the avx512vnni set's) for
// registers that exist only with AVX-512
// (X16–X31, Y16–Y31, Z, K): avo's allocator would pick them if a function
// kept more than 16 vectors live, and the code would then fault on
// AVX2-only CPUs.
func TestAsmUsesOnlyAVX2Registers(t *testing.T) {
	src, err := os.ReadFile("dot_amd64.s")
	require.NoError(t, err)
	bad := regexp.MustCompile(`\b([XY](1[6-9]|2[0-9]|3[01])|Z[0-9]+|K[0-7])\b`)
	funcs := strings.Split(string(src), "\nTEXT ")
	require.Greater(t, len(funcs), 10)
	for _, f := range funcs[1:] {
		name, _, _ := strings.Cut(f, "(SB)")
		if strings.HasSuffix(name, "VNNI") || strings.HasSuffix(name, "AVX512") {
			continue
		}
		require.Empty(t, bad.FindAllString(f, -1), name)
	}
}
