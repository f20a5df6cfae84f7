package kernel

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// sameFloat is bit equality, with any NaN equal to any NaN (a NaN code's
// payload is unspecified).
func sameFloat(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
}

// TestE4M3DotMatchesGeneric holds the active set's DotE4M3 and DotE4M3x4
// to the generic loop bit for bit, on lengths from 0 to past three blocks
// (every tail length, partial and whole blocks), odd offsets into w and x
// (alignment), every code (subnormals, ±0, ±448, NaN) and activations with
// zeros, huge and tiny values. The kernels fuse nothing, so there is no
// tolerance.
func TestE4M3DotMatchesGeneric(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 9))
	lengths := []int{0, 1, 7, 15, 16, 17, 31, 33, 100, 127, 128, 129, 143, 144, 255, 256, 257, 300, 385, 1000, 7168}
	for _, n := range lengths {
		for _, off := range []int{0, 1, 3} {
			w := make([]byte, n+off)
			for i := range w {
				w[i] = byte(r.UintN(256))
				if r.IntN(50) != 0 && w[i]&0x7F == 0x7F {
					w[i] ^= 1 // NaN codes are rare but present
				}
			}
			xs := make([][]float32, 4)
			for j := range xs {
				xs[j] = make([]float32, n+off+5)
				for i := range xs[j] {
					switch r.IntN(20) {
					case 0:
						xs[j][i] = 0
					case 1:
						xs[j][i] = float32(r.NormFloat64() * 1e30)
					case 2:
						xs[j][i] = float32(r.NormFloat64() * 1e-38)
					default:
						xs[j][i] = float32(r.NormFloat64())
					}
				}
				xs[j] = xs[j][off:]
			}
			nb := (n + 127) / 128
			s := make([]float32, 2*nb)
			for i := range s {
				s[i] = float32(math.Ldexp(1+r.Float64(), -r.IntN(20)))
			}
			wr := w[off:]
			for row := range 2 {
				rs := s[row*nb : (row+1)*nb]
				var out [4]float32
				DotE4M3x4(wr, s, row*128, n, xs[0], xs[1], xs[2], xs[3], &out)
				for j := range xs {
					want := dotE4M3Generic(wr, rs, xs[j][:n])
					got := DotE4M3(wr, s, row*128, n, xs[j])
					require.True(t, sameFloat(want, got), "n %d off %d row %d x%d: %v (%#x), generic %v (%#x)", n, off, row, j, got, math.Float32bits(got), want, math.Float32bits(want))
					require.True(t, sameFloat(want, out[j]), "x4: n %d off %d x%d: %v, generic %v", n, off, j, out[j], want)
				}
			}
		}
	}
	t.Logf("implementation %s", Impl())
}

// FuzzE4M3Dot compares DotE4M3 with the generic loop on fuzzed codes and
// activations.
func FuzzE4M3Dot(f *testing.F) {
	f.Add([]byte{0x7E, 0x01, 0x80, 0x7F, 0x38}, float32(1), float32(0.5))
	f.Fuzz(func(t *testing.T, w []byte, scale, xv float32) {
		n := len(w)
		s := make([]float32, (n+127)/128)
		for i := range s {
			s[i] = scale
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = xv * float32(i%7-3)
		}
		want := dotE4M3Generic(w, s, x)
		got := DotE4M3(w, s, 0, n, x)
		if !sameFloat(want, got) {
			t.Fatalf("n %d: %v, generic %v", n, got, want)
		}
	})
}

// BenchmarkDotE4M3 streams a 7168-column FP8 row (V3's hidden size) against
// one and four vectors, with the active set and the generic loop; bytes are
// weight bytes.
func BenchmarkDotE4M3(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 256, 7168
	w, scales, x := e4m3TestMatrix(r, rows, cols)
	impls := []struct {
		name string
		set  fp8Impls
	}{{"generic", fp8Generic}, {Impl(), active.fp8}}
	for _, im := range impls {
		b.Run(im.name+"/x1", func(b *testing.B) {
			b.SetBytes(int64(len(w)))
			for b.Loop() {
				for row := range rows {
					im.set.dotE4M3(w[row*cols:(row+1)*cols], scales[row/128*56:(row/128+1)*56], x)
				}
			}
		})
		b.Run(im.name+"/x4", func(b *testing.B) {
			var out [4]float32
			b.SetBytes(int64(len(w)))
			for b.Loop() {
				for row := range rows {
					im.set.dotE4M3x4(w[row*cols:(row+1)*cols], scales[row/128*56:(row/128+1)*56], x, x, x, x, &out)
				}
			}
		})
	}
}
