package kernel

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// normInputs is random vectors of lengths around the kernels' widths,
// some off their allocation's alignment.
func normInputs(seed uint64) [][]float32 {
	r := newRand(seed)
	var xs [][]float32
	for _, n := range []int{0, 1, 2, 6, 8, 14, 16, 17, 30, 32, 64, 100, 128, 130, 512} {
		for _, off := range []int{0, 1, 3} {
			x := make([]float32, n+off)[off:]
			for i := range x {
				x[i] = (r.Float32() - 0.5) * 8
			}
			xs = append(xs, x)
		}
	}
	return xs
}

// twins runs f with the active kernels and then with their generic
// twins (generic true).
func twins(f func(generic bool)) {
	f(false)
	f(true)
}

// TestSumSquaresF64 checks the sum against the sequential one (within
// float64 rounding) and the two sets against each other bit for bit.
func TestSumSquaresF64(t *testing.T) {
	t.Parallel()
	for _, x := range normInputs(51) {
		var seq float64
		for _, v := range x {
			seq += float64(v * v)
		}
		var got []float64
		got = append(got, SumSquaresF64(x), sumSquaresF64(x, true))
		require.InDelta(t, seq, got[0], 1e-13*seq, "n=%d", len(x))
		require.Equal(t, math.Float64bits(got[1]), math.Float64bits(got[0]), "n=%d: twins", len(x))
	}
}

// TestScaleF32 checks both forms against the plain loops, bit for bit, in
// both sets.
func TestScaleF32(t *testing.T) {
	t.Parallel()
	for _, x := range normInputs(52) {
		w := normInputs(53)
		ws := w[len(w)-1][:len(x)]
		const s = float32(0.731)
		twins(func(generic bool) {
			scale := ScaleF32
			if generic {
				scale = func(dst, x []float32, s float32, w []float32) {
					scaleF32(dst, x, s, w, scaleF32Generic, scaleMulF32Generic)
				}
			}
			dst := make([]float32, len(x))
			scale(dst, x, s, nil)
			for i, v := range x {
				require.Equal(t, math.Float32bits(v*s), math.Float32bits(dst[i]), "n=%d i=%d", len(x), i)
			}
			scale(dst, x, s, ws)
			for i, v := range x {
				want := v * s
				want *= ws[i]
				require.Equal(t, math.Float32bits(want), math.Float32bits(dst[i]), "n=%d i=%d: weighted", len(x), i)
			}
		})
	}
}

// TestMulAddF32 checks the multiply-then-add against the plain loop, bit
// for bit, in both sets.
func TestMulAddF32(t *testing.T) {
	t.Parallel()
	ys := normInputs(55)
	for k, x := range normInputs(54) {
		const a = float32(-1.37)
		twins(func(generic bool) {
			y := append([]float32(nil), ys[k]...)
			if generic {
				mulAddF32(y, x, a, mulAddF32Generic)
			} else {
				MulAddF32(y, x, a)
			}
			for i, v := range x {
				p := v * a
				want := ys[k][i] + p
				require.Equal(t, math.Float32bits(want), math.Float32bits(y[i]), "n=%d i=%d", len(x), i)
			}
		})
	}
}

// TestRotatePairsF32 checks the rotation against rope's expression per
// pair, forward and inverse, bit for bit, in both sets.
func TestRotatePairsF32(t *testing.T) {
	t.Parallel()
	r := newRand(56)
	for _, x := range normInputs(57) {
		if len(x)%2 != 0 {
			continue
		}
		half := len(x) / 2
		cs, sn := make([]float32, half), make([]float32, half)
		for i := range half {
			a := r.Float64() * 6
			cs[i], sn[i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
		for _, inverse := range []bool{false, true} {
			cc, ss := make([]float32, len(x)), make([]float32, len(x))
			for i := range half {
				cc[2*i], cc[2*i+1] = cs[i], cs[i]
				ss[2*i], ss[2*i+1] = -sn[i], sn[i]
				if inverse {
					ss[2*i], ss[2*i+1] = sn[i], -sn[i]
				}
			}
			twins(func(generic bool) {
				dst := make([]float32, len(x))
				if generic {
					rotatePairsF32(dst, x, cc, ss, rotatePairsF32Generic)
				} else {
					RotatePairsF32(dst, x, cc, ss)
				}
				for i := range half {
					x0, x1 := x[2*i], x[2*i+1]
					var w0, w1 float32
					if inverse {
						a, b := x0*cs[i], x1*sn[i]
						w0 = a + b
						c, d := x0*sn[i], x1*cs[i]
						w1 = -c + d
					} else {
						a, b := x0*cs[i], x1*sn[i]
						w0 = a - b
						c, d := x0*sn[i], x1*cs[i]
						w1 = c + d
					}
					require.Equal(t, math.Float32bits(w0), math.Float32bits(dst[2*i]), "n=%d pair %d inverse=%v", len(x), i, inverse)
					require.Equal(t, math.Float32bits(w1), math.Float32bits(dst[2*i+1]), "n=%d pair %d inverse=%v", len(x), i, inverse)
				}
			})
		}
	}
}

// TestSinkhorn4 checks both sets against a plain per-matrix loop, bit for
// bit: matrices of softmax-like values, of values spanning many binades,
// with zeros, and with eps zero (sums of zero divide to NaN and infinity).
func TestSinkhorn4(t *testing.T) {
	t.Parallel()
	r := newRand(56)
	plain := func(a *[16]float32, rounds int, eps float32) {
		norm := func(at func(i, l int) int) {
			for i := range 4 {
				var s float32
				for l := range 4 {
					s += a[at(i, l)]
				}
				s += eps
				for l := range 4 {
					a[at(i, l)] /= s
				}
			}
		}
		cols := func(k, j int) int { return 4*j + k }
		rows := func(j, k int) int { return 4*j + k }
		norm(cols)
		for range rounds {
			norm(rows)
			norm(cols)
		}
	}
	kinds := []func() float32{
		func() float32 { return r.Float32() + 1e-6 },
		func() float32 { return float32(math.Exp(float64((r.Float32() - 0.5) * 60))) },
		func() float32 {
			if r.IntN(3) == 0 {
				return 0
			}
			return r.Float32()
		},
	}
	for ki, kind := range kinds {
		for _, eps := range []float32{1e-6, 0.3, 0} {
			for _, rounds := range []int{0, 1, 19} {
				var mats [SinkhornLanes][16]float32
				var m [128]float32
				for tk := range mats {
					for i := range mats[tk] {
						mats[tk][i] = kind()
						m[SinkhornLanes*i+tk] = mats[tk][i]
					}
				}
				want := mats
				for tk := range want {
					plain(&want[tk], rounds, eps)
				}
				twins(func(generic bool) {
					got := m
					if generic {
						sinkhorn4x8Generic(&got, rounds, eps)
					} else {
						Sinkhorn4(&got, rounds, eps)
					}
					for tk := range want {
						for i, v := range want[tk] {
							require.Equal(t, math.Float32bits(v), math.Float32bits(got[SinkhornLanes*i+tk]),
								"kind %d, eps %v, rounds %d, generic %v: matrix %d element %d", ki, eps, rounds, generic, tk, i)
						}
					}
				})
			}
		}
	}
}

func BenchmarkSinkhorn4(b *testing.B) {
	var m0 [128]float32
	r := newRand(57)
	for i := range m0 {
		m0[i] = r.Float32() + 0.01
	}
	for b.Loop() {
		m := m0
		Sinkhorn4(&m, 19, 1e-6)
	}
}

// FuzzSinkhorn4: the active set gives the generic twin's bits for any
// eight matrices, rounds and eps.
func FuzzSinkhorn4(f *testing.F) {
	f.Add(bytesOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16), uint8(19), float32(1e-6))
	f.Add(bytesOf(0, 0, 0, 0, nan32, 1e30, 1e-30, -1), uint8(3), float32(0))
	f.Fuzz(func(t *testing.T, data []byte, rounds uint8, eps float32) {
		var m [128]float32
		vals := floatsFrom(data[:min(len(data), 4*128)/4*4])
		for i := range m {
			m[i] = 1
			if len(vals) > 0 {
				m[i] = vals[i%len(vals)]
			}
		}
		want := m
		sinkhorn4x8Generic(&want, int(rounds%32), eps)
		Sinkhorn4(&m, int(rounds%32), eps)
		for i := range m {
			if math.Float32bits(m[i]) != math.Float32bits(want[i]) {
				t.Fatalf("element %d: %v, generic %v", i, m[i], want[i])
			}
		}
	})
}
