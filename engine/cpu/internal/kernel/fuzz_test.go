package kernel

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// Each fuzz target decodes its input into kernel arguments and compares the
// dispatched kernel (assembly where the CPU has it) with the generic twin,
// with the tolerance rules of the equivalence tests. Under -tags noasm they
// compare the generic code with itself and only check for panics.

func floatsFrom(b []byte) []float32 {
	f := make([]float32, len(b)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return f
}

func halvesFrom(b []byte) []uint16 {
	h := make([]uint16, len(b)/2)
	for i := range h {
		h[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return h
}

func bytesOf(fs ...float32) []byte {
	b := make([]byte, 4*len(fs))
	for i, f := range fs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// finiteAbsDot is Σ|wᵢxᵢ| over the finite products, and whether some
// ordering of the sum could overflow float32 (then results may differ
// between Inf and finite, and the case is skipped).
func finiteAbsDot(w, x []float32) (float64, bool) {
	var s float64
	for i := range w {
		p := math.Abs(float64(w[i]) * float64(x[i]))
		if !math.IsNaN(p) && !math.IsInf(p, 0) {
			s += p
		}
	}
	return s, s >= 1e38
}

// fuzzFloat compares single and x4 float kernels on weights w (already
// widened as wf) against activations x, reusing x rotated for the x4 form.
func fuzzFloat[W comparable](t *testing.T, k floatKernel[W], w []W, wf, x []float32) {
	n := len(w)
	xs := [4][]float32{x, make([]float32, n), make([]float32, n), wf}
	for i := range x {
		xs[1][i] = x[(i+1)%n]
		xs[2][i] = -x[n-1-i]
	}
	var out [4]float32
	k.fastX4(w, xs[0], xs[1], xs[2], xs[3], &out)
	for j, xj := range xs {
		abs, overflow := finiteAbsDot(wf, xj)
		if overflow {
			continue
		}
		ref := k.ref(w, xj)
		fast := k.fast(w, xj)
		requireSumClose(t, fast, ref, n, abs, "x%d", j)
		requireSameFloat(t, fast, out[j], "x4 out[%d]", j)
	}
}

func FuzzDotF32(f *testing.F) {
	f.Add(bytesOf(1, 2, 3, 4, 5, 6))
	f.Add(bytesOf(1e-40, -3, nan32, 7, 0.5, float32(math.Inf(1)), 2, 1, -1, 4))
	f.Add(make([]byte, 8*100+4))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := len(data) / 8
		w, x := floatsFrom(data[:4*n]), floatsFrom(data[4*n:8*n])
		fuzzFloat(t, f32Kernel, w, w, x)
	})
}

func FuzzDotF16(f *testing.F) {
	f.Add(append([]byte{0, 0x3C, 0xFF, 0x7B, 1, 0, 0, 0x7C}, bytesOf(1, 2, 3, 4)...))
	f.Add(make([]byte, 6*77))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := len(data) / 6
		w, x := halvesFrom(data[:2*n]), floatsFrom(data[2*n:6*n])
		wf := make([]float32, n)
		for i, h := range w {
			wf[i] = F16ToF32(h)
		}
		fuzzFloat(t, f16Kernel, w, wf, x)
	})
}

func FuzzDotBF16(f *testing.F) {
	f.Add(append([]byte{0x80, 0x3F, 0x7F, 0x7F, 1, 0, 0x80, 0x7F}, bytesOf(1, 2, 3, 4)...))
	f.Add(make([]byte, 6*77))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := len(data) / 6
		w, x := halvesFrom(data[:2*n]), floatsFrom(data[2*n:6*n])
		wf := make([]float32, n)
		for i, h := range w {
			wf[i] = BF16ToF32(h)
		}
		fuzzFloat(t, bf16Kernel, w, wf, x)
	})
}

// FuzzDotQ8_0 reads weights and activations as raw Q8_0 blocks and
// checks DotQ8_0 against the generic twin and MulQ8_0x4, MulQ8_0x2 and
// MulQ8_0x1 (two rows: w and x) against DotQ8_0, bit for bit.
func FuzzDotQ8_0(f *testing.F) {
	seed := make([]byte, 68*3)
	for i := range seed {
		seed[i] = byte(i * 37)
	}
	binary.LittleEndian.PutUint16(seed[0:], 0x3C00)
	binary.LittleEndian.PutUint16(seed[34:], 0x7C00)
	f.Add(seed)
	f.Add(make([]byte, 68*64))
	f.Fuzz(func(t *testing.T, data []byte) {
		nb := len(data) / 68
		data = append([]byte(nil), data[:68*nb]...)
		w, x := data[:34*nb], data[34*nb:]
		xs := [4][]byte{x, w, make([]byte, 34*nb), make([]byte, 34*nb)}
		for b := range nb { // x's blocks reversed; x's quants with w's scales
			copy(xs[2][34*b:34*b+34], x[34*(nb-1-b):])
			copy(xs[3][34*b:34*b+34], x[34*b:34*b+34])
			copy(xs[3][34*b:34*b+2], w[34*b:34*b+2])
		}
		var p Q8_0x4
		p.Pack(xs[0], xs[1], xs[2], xs[3], nb)
		out := make([]float32, 8)
		MulQ8_0x4(data, 2, &p, out) // rows w and x
		for j, xj := range xs {
			abs := absDotQ8(w, xj, nb)
			ref := dotQ8_0Generic(w, xj, nb)
			fast := DotQ8_0(w, xj, nb)
			requireQ8Close(t, fast, ref, nb, abs, "x%d", j)
			requireSameFloat(t, fast, out[j], "MulQ8_0x4 out[%d]", j)
			requireSameFloat(t, DotQ8_0(x, xj, nb), out[4+j], "MulQ8_0x4 out[%d]", 4+j)
		}
		var p2 Q8_0x2
		p2.Pack(xs[2], xs[3], nb)
		MulQ8_0x2(data, 2, &p2, out[:4])
		for j, xj := range xs[2:] {
			requireSameFloat(t, DotQ8_0(w, xj, nb), out[j], "MulQ8_0x2 out[%d]", j)
			requireSameFloat(t, DotQ8_0(x, xj, nb), out[2+j], "MulQ8_0x2 out[%d]", 2+j)
		}
		var p1 Q8_0x1
		p1.Pack(xs[2], nb)
		MulQ8_0x1(data, 2, &p1, out[:2])
		requireSameFloat(t, DotQ8_0(w, xs[2], nb), out[0], "MulQ8_0x1 out[0]")
		requireSameFloat(t, DotQ8_0(x, xs[2], nb), out[1], "MulQ8_0x1 out[1]")
	})
}

// FuzzQuantizeQ8_0 checks the dispatched and generic quantizers bit for
// bit against the restated ggml reference on arbitrary float32 patterns.
func FuzzQuantizeQ8_0(f *testing.F) {
	f.Add(bytesOf(127, -127, 0.5, -0.5, 1.5, 2.5, nan32, 3, 1e-40, 65504*127, 4, 5, 6, 7, 8, 9,
		10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := floatsFrom(data)
		x = x[:len(x)/32*32]
		want := make([]byte, len(x)/32*34)
		got := make([]byte, len(want))
		refQuantizeQ8_0(x, want)
		QuantizeQ8_0(x, got)
		require.Equal(t, want, got, Impl())
		quantizeQ8_0Generic(x, got)
		require.Equal(t, want, got, "generic")
	})
}

// FuzzF32ToF16 checks the scalar conversion against ggml's and the slice
// conversion (F16C's VCVTPS2PH on AVX2 machines) against the scalar one.
func FuzzF32ToF16(f *testing.F) {
	f.Add(uint32(0x3F800000))
	f.Add(uint32(0x33000000)) // 2⁻²⁵
	f.Fuzz(func(t *testing.T, bits uint32) {
		v := math.Float32frombits(bits)
		h := F32ToF16(v)
		if v == v {
			require.Equal(t, ggmlFP32ToFP16(v), h)
		}
		dst := make([]uint16, 1)
		F32ToF16s(dst, []float32{v})
		require.Equal(t, h, dst[0])
		back := make([]float32, 1)
		F16ToF32s(back, dst)
		require.Equal(t, math.Float32bits(F16ToF32(h)), math.Float32bits(back[0]))
	})
}
