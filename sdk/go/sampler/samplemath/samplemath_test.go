package samplemath_test

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/sampler/samplemath"
)

// relErr is |got − want| / |want|, or |got| where want is 0.
func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}

// TestExpMatchesMath compares Exp with math.Exp over the range softmax and
// policies use (x ≤ 0 mostly) and beyond, including the subnormal results
// near the underflow.
func TestExpMatchesMath(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	worst := 0.0
	check := func(x float64) {
		got, want := samplemath.Exp(x), math.Exp(x)
		if x > 709 {
			// amd64's assembly math.Exp overflows to +Inf from about
			// 709.44 on, short of the true limit (709.78).
			want = math.Exp(x-10) * math.Exp(10)
		}
		if math.IsInf(want, 1) {
			require.True(t, math.IsInf(got, 1), "Exp(%v) = %v", x, got)
			return
		}
		if want < 0x1p-1022 { // subnormal: compare absolutely, in ulps of the smallest normal
			require.InDelta(t, want, got, 0x1p-1074*2, "Exp(%v)", x)
			return
		}
		e := relErr(got, want)
		worst = max(worst, e)
		require.Less(t, e, 1e-15, "Exp(%v) = %v, math.Exp %v", x, got, want)
	}
	for range 50000 {
		check((r.Float64()*2 - 1) * 30)
	}
	for range 10000 {
		check((r.Float64()*2 - 1) * 745)
	}
	for _, x := range []float64{1e-300, -1e-300, 1e-20, 0.5, -0.5, math.Ln2 / 2, -math.Ln2 / 2, 1, -1, 88.7, -87.3, 700, 709.78, -708.3, -744} {
		check(x)
	}
	t.Logf("largest relative error against math.Exp: %.3g", worst)

	require.Equal(t, 1.0, samplemath.Exp(0))
	require.Equal(t, 1.0, samplemath.Exp(math.Copysign(0, -1)))
	require.Equal(t, 0.0, samplemath.Exp(math.Inf(-1)))
	require.Equal(t, 0.0, samplemath.Exp(-746))
	require.True(t, math.IsInf(samplemath.Exp(math.Inf(1)), 1))
	require.True(t, math.IsInf(samplemath.Exp(710), 1))
	require.True(t, math.IsNaN(samplemath.Exp(math.NaN())))
}

func TestLogMatchesMath(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	worst := 0.0
	check := func(x float64) {
		got, want := samplemath.Log(x), math.Log(x)
		if x < 0x1p-1022 {
			// amd64's assembly math.Log answers about −709.09 for every
			// subnormal x (log of the smallest normal), the pure-Go one
			// the true value: scale into the normal range for the reference.
			want = math.Log(x*0x1p100) - 100*math.Ln2
		}
		e := relErr(got, want)
		worst = max(worst, e)
		require.Less(t, e, 1e-15, "Log(%v) = %v, math.Log %v", x, got, want)
	}
	for range 50000 {
		check(r.Float64() * 4)
	}
	for range 10000 {
		check(math.Exp((r.Float64()*2 - 1) * 700))
	}
	for range 10000 {
		check(1 + (r.Float64()*2-1)*1e-6) // near 1, where log is small
	}
	for _, x := range []float64{0x1p-1074, 0x1p-1060, 0x1p-1022, math.SmallestNonzeroFloat64 * 3, 0.5, 2, math.Sqrt2, math.Sqrt2 / 2, math.E, 10, math.MaxFloat64, 1 + 0x1p-52, 1 - 0x1p-53} {
		check(x)
	}
	t.Logf("largest relative error against math.Log: %.3g", worst)

	require.Equal(t, 0.0, samplemath.Log(1))
	require.True(t, math.IsInf(samplemath.Log(0), -1))
	require.True(t, math.IsInf(samplemath.Log(math.Inf(1)), 1))
	require.True(t, math.IsNaN(samplemath.Log(-1)))
	require.True(t, math.IsNaN(samplemath.Log(math.NaN())))
}

// TestExpLogGolden pins a few outputs bit for bit, so a change to the
// algorithms (which would change sampled tokens for a seed) is noticed.
func TestExpLogGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f    func(float64) float64
		x    float64
		bits uint64
	}{
		{samplemath.Exp, -1.5, 0x3fcc8f87724b5c1d},
		{samplemath.Exp, 3.25, 0x4039ca53b781114b},
		{samplemath.Exp, -20.125, 0x3e1f3fe0cb68b20c},
		{samplemath.Log, 0.3, 0xbff34378fcbda721},
		{samplemath.Log, 12345.678, 0x4022d79559791e31},
		{samplemath.Log, 1e-30, 0xc05144f69ff9ffc4},
	} {
		require.Equal(t, tc.bits, math.Float64bits(tc.f(tc.x)), "%v: got %#x", tc.x, math.Float64bits(tc.f(tc.x)))
	}
}

func TestTopKMatchesSort(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	nan := float32(math.NaN())
	for _, n := range []int{0, 1, 2, 5, 64, 1000, 20000} {
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(math.Round(r.NormFloat64()*4) / 4) // many ties
			if r.IntN(50) == 0 {
				vals[i] = nan
			}
		}
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		// NaN as smallest, then stable: ties (NaNs too) to the lower index.
		key := func(i int) float64 {
			if v := vals[i]; v == v {
				return float64(v)
			}
			return math.Inf(-1)
		}
		sort.SliceStable(want, func(a, b int) bool {
			ka, kb := key(want[a]), key(want[b])
			if ka != kb {
				return ka > kb
			}
			return vals[want[a]] == vals[want[a]] && vals[want[b]] != vals[want[b]]
		})
		for _, k := range []int{0, 1, 7, 64, 200, n} {
			ids, out := make([]int32, k), make([]float32, k)
			m, err := samplemath.TopK(vals, k, ids, out)
			require.NoError(t, err)
			require.Equal(t, min(k, n), m)
			for j := range m {
				require.Equal(t, int32(want[j]), ids[j], "n %d k %d rank %d", n, k, j)
				require.Equal(t, math.Float32bits(vals[want[j]]), math.Float32bits(out[j]))
			}
		}
	}
	_, err := samplemath.TopK(make([]float32, 4), 3, make([]int32, 2), make([]float32, 3))
	require.ErrorIs(t, err, samplemath.ErrInput)
	_, err = samplemath.TopK(nil, -1, nil, nil)
	require.ErrorIs(t, err, samplemath.ErrInput)
}

func TestSoftmaxDrawTopPCut(t *testing.T) {
	t.Parallel()
	out := make([]float32, 3)
	require.NoError(t, samplemath.Softmax([]float32{0, 0, float32(math.Inf(-1))}, 1, out))
	require.Equal(t, []float32{0.5, 0.5, 0}, out)
	require.NoError(t, samplemath.Softmax([]float32{1, 2, float32(math.Inf(-1))}, 0.5, out))
	z := math.Exp(2) + math.Exp(4)
	require.InDeltaSlice(t, []float32{float32(math.Exp(2) / z), float32(math.Exp(4) / z), 0}, out, 1e-7)
	for _, bad := range [][]float32{nil, {float32(math.NaN())}, {float32(math.Inf(-1))}} {
		require.ErrorIs(t, samplemath.Softmax(bad, 1, out), samplemath.ErrInput)
	}
	require.ErrorIs(t, samplemath.Softmax([]float32{1}, 0, out), samplemath.ErrInput)
	require.ErrorIs(t, samplemath.Softmax([]float32{1, 2}, 1, out[:1]), samplemath.ErrInput)

	i, err := samplemath.Draw([]float32{0.5, 0.5, 0}, 0.9999)
	require.NoError(t, err)
	require.Equal(t, 1, i, "never an index of probability 0")
	_, err = samplemath.Draw([]float32{0.5}, 1)
	require.ErrorIs(t, err, samplemath.ErrInput)

	m, err := samplemath.TopPCut([]float32{0.5, 0.25, 0.25}, 0.6)
	require.NoError(t, err)
	require.Equal(t, 2, m)
	_, err = samplemath.TopPCut([]float32{0.5}, 0)
	require.ErrorIs(t, err, samplemath.ErrInput)
}

// TestNoAllocations: the host calls these on every step.
func TestNoAllocations(t *testing.T) {
	vals := make([]float32, 4096)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range vals {
		vals[i] = float32(r.NormFloat64())
	}
	ids, out, probs := make([]int32, 64), make([]float32, 64), make([]float32, len(vals))
	allocs := testing.AllocsPerRun(20, func() {
		_, _ = samplemath.TopK(vals, 64, ids, out)
		_ = samplemath.Softmax(vals, 0.7, probs)
		_, _ = samplemath.Draw(probs, 0.3)
		_, _ = samplemath.TopPCut(probs, 0.9)
		_ = samplemath.Exp(-1.5) + samplemath.Log(0.25)
	})
	require.Zero(t, allocs)
}

func BenchmarkExp(b *testing.B) {
	x := -3.7
	for b.Loop() {
		x = samplemath.Exp(x) - 4
	}
}

func BenchmarkMathExp(b *testing.B) {
	x := -3.7
	for b.Loop() {
		x = math.Exp(x) - 4
	}
}

func BenchmarkTopK64Of129280(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]float32, 129280)
	for i := range vals {
		vals[i] = float32(r.NormFloat64())
	}
	ids, out := make([]int32, 64), make([]float32, 64)
	b.SetBytes(int64(4 * len(vals)))
	for b.Loop() {
		if _, err := samplemath.TopK(vals, 64, ids, out); err != nil {
			b.Fatal(err)
		}
	}
}

// TestExpLogDigest hashes Exp and Log over 100,000 inputs spread over
// their ranges and pins the digest: the same bits on every platform and
// build (CI may run it with GOAMD64=v3, where Go could otherwise fuse
// multiply-adds, with GOARCH=386, or as wasip1 under wazero).
func TestExpLogDigest(t *testing.T) {
	t.Parallel()
	h := fnv.New64a()
	var b [8]byte
	put := func(v float64) {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		h.Write(b[:])
	}
	r := rand.New(rand.NewPCG(9, 10))
	for range 50000 {
		x := (r.Float64()*2 - 1) * 750
		put(samplemath.Exp(x))
		put(samplemath.Log(math.Ldexp(math.Abs(x), r.IntN(2000)-1000)))
	}
	require.Equal(t, uint64(0x22efbd8e48b70f6b), h.Sum64(), "digest %#x", h.Sum64())
}

// TestExpGather: the batched exponential gives Exp's bits for every
// argument, in the ordinary range (the unrolled path), at and beyond its
// edges, and for ±Inf, NaN and zero (the scalar path), whatever the order
// of the indices and the length (tails of one to three).
func TestExpGather(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	src := make([]float32, 0, 4096)
	for range 3000 {
		src = append(src, float32((r.Float64()*2-1)*40))
	}
	for range 500 {
		src = append(src, float32((r.Float64()*2-1)*760))
	}
	src = append(src, 0, -0, 689.9, 690, -690, 690.1, -689.9, 709.7, 709.8, -745.1, -745.2, -800, 800,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-30, -1e-30)
	for _, shift := range []float64{0, 3.5, -12.25, 700, math.Inf(1)} {
		for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 40, len(src)} {
			idx := make([]int32, n)
			for j := range idx {
				idx[j] = int32(r.IntN(len(src)))
			}
			if n == len(src) {
				for j := range idx {
					idx[j] = int32(j)
				}
			}
			dst := make([]float64, n+1)
			dst[n] = 42
			samplemath.ExpGather(dst[:n], src, idx, shift)
			for j, i := range idx {
				want := samplemath.Exp(float64(src[i]) - shift)
				require.Equal(t, math.Float64bits(want), math.Float64bits(dst[j]), "Exp(%v − %v)", src[i], shift)
			}
			require.Equal(t, 42.0, dst[n], "wrote past len(idx)")
		}
	}
}
