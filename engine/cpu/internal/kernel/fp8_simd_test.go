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
					want := dotE4M3Generic(wr, rs, 128, xs[j][:n])
					got := DotE4M3(wr, s, row*128, n, xs[j])
					require.True(t, sameFloat(want, got), "n %d off %d row %d x%d: %v (%#x), generic %v (%#x)", n, off, row, j, got, math.Float32bits(got), want, math.Float32bits(want))
					require.True(t, sameFloat(want, out[j]), "x4: n %d off %d x%d: %v, generic %v", n, off, j, out[j], want)
				}
			}
		}
	}
	t.Logf("implementation %s", Impl())
}

// TestE4M3BlocksMatchGeneric is TestE4M3DotMatchesGeneric for the block
// shapes of DeepSeek-V4 releases (32×32, 128×128), a width the assembly
// takes in 16-column steps only (48) and one it leaves to the generic loop
// (40), with rows in the second and third block rows: DotE4M3Blocks and
// DotE4M3x4Blocks give the generic's bits and DequantE4M3RowBlocks each
// value times its block's scale.
func TestE4M3BlocksMatchGeneric(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 17))
	for _, blk := range [][2]int{{32, 32}, {128, 128}, {1, 48}, {16, 40}, {64, 16}} {
		bh, bw := blk[0], blk[1]
		for _, n := range []int{0, 1, 15, 16, 31, 32, 33, 47, 48, 63, 64, 65, 100, 129, 256, 300, 2048} {
			rows := 3*bh - 1
			w := make([]byte, rows*n+1)
			for i := range w {
				w[i] = byte(r.UintN(256))
			}
			nb := (n + bw - 1) / bw
			s := make([]float32, 3*nb)
			for i := range s {
				s[i] = E8M0ToF32(byte(110 + r.IntN(30)))
			}
			xs := make([][]float32, 4)
			for j := range xs {
				xs[j] = make([]float32, n+1)
				for i := range xs[j] {
					xs[j][i] = float32(r.NormFloat64())
				}
				xs[j] = xs[j][1:]
			}
			for _, row := range []int{0, bh, rows - 1} {
				wr := w[1+row*n:]
				rs := s[row/bh*nb : (row/bh+1)*nb]
				var out [4]float32
				DotE4M3x4Blocks(wr, s, row, n, bh, bw, xs[0], xs[1], xs[2], xs[3], &out)
				for j := range xs {
					want := dotE4M3Generic(wr[:n], rs, bw, xs[j][:n])
					got := DotE4M3Blocks(wr, s, row, n, bh, bw, xs[j])
					require.True(t, sameFloat(want, got), "block %v n %d row %d x%d: %v, generic %v", blk, n, row, j, got, want)
					require.True(t, sameFloat(want, out[j]), "x4: block %v n %d row %d x%d: %v, generic %v", blk, n, row, j, out[j], want)
				}
				dst := make([]float32, n)
				DequantE4M3RowBlocks(wr, s, row, n, bh, bw, dst)
				for c := range dst {
					require.True(t, sameFloat(E4M3ToF32(wr[c])*rs[c/bw], dst[c]), "block %v n %d row %d col %d", blk, n, row, c)
				}
			}
		}
	}
	require.PanicsWithValue(t, "kernel: DotE4M3Blocks: block 0×32: not positive", func() { DotE4M3Blocks(nil, nil, 0, 0, 0, 32, nil) })
	require.Panics(t, func() { DotE4M3Blocks(make([]byte, 64), make([]float32, 2), 32, 64, 32, 32, make([]float32, 64)) }, "row 32 needs a second block row")
}

// FuzzE4M3Dot compares DotE4M3 with the generic loop on fuzzed codes and
// activations.
func FuzzE4M3Dot(f *testing.F) {
	f.Add([]byte{0x7E, 0x01, 0x80, 0x7F, 0x38}, float32(1), float32(0.5), uint8(0))
	f.Add(make([]byte, 70), float32(0x1p-20), float32(3), uint8(1))
	f.Fuzz(func(t *testing.T, w []byte, scale, xv float32, bwi uint8) {
		n := len(w)
		bw := []int{128, 32, 16, 48, 40, 1}[int(bwi)%6]
		s := make([]float32, (n+bw-1)/bw)
		for i := range s {
			s[i] = scale
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = xv * float32(i%7-3)
		}
		want := dotE4M3Generic(w, s, bw, x)
		got := DotE4M3Blocks(w, s, 0, n, 1, bw, x)
		if !sameFloat(want, got) {
			t.Fatalf("n %d, block width %d: %v, generic %v", n, bw, got, want)
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
					im.set.dotE4M3(w[row*cols:(row+1)*cols], scales[row/128*56:(row/128+1)*56], 128, x)
				}
			}
		})
		b.Run(im.name+"/x4", func(b *testing.B) {
			var out [4]float32
			b.SetBytes(int64(len(w)))
			for b.Loop() {
				for row := range rows {
					im.set.dotE4M3x4(w[row*cols:(row+1)*cols], scales[row/128*56:(row/128+1)*56], 128, x, x, x, x, &out)
				}
			}
		})
	}
}
