package kernel

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// r16Matrix returns groups·16 random stored Q8_0 rows of nb blocks, one
// after another, and the same rows repacked.
func r16Matrix(r *rand.Rand, groups, nb int, scale func() uint16) (stored, packed []byte) {
	rows := groups * R16Rows
	stored = make([]byte, 0, rows*nb*Q8_0BlockSize)
	for range rows {
		stored = append(stored, q8Row(r, nb, 0, 128, scale)...)
	}
	packed = make([]byte, len(stored))
	RepackQ8_0R16(packed, stored, rows, nb)
	return stored, packed
}

var r16Rows = flag.Int("r16rows", 4096, "rows of BenchmarkMulQ8_0R16's matrix")

func TestRepackQ8_0R16Dequantizes(t *testing.T) {
	t.Parallel()
	r := newRand(21)
	scale := func() uint16 { return F32ToF16((r.Float32() - 0.5) * 0.1) }
	for _, nb := range []int{1, 3, 8} {
		stored, packed := r16Matrix(r, 2, nb, scale)
		got := make([]float32, nb*Q8_0BlockLen)
		for row := range 2 * R16Rows {
			DequantQ8_0R16Row(packed, row, nb, got)
			blocks := stored[row*nb*Q8_0BlockSize:]
			for b := range nb {
				d := F16ToF32(uint16(blocks[b*34]) | uint16(blocks[b*34+1])<<8)
				for i := range Q8_0BlockLen {
					require.Equal(t, d*float32(int8(blocks[b*34+2+i])), got[b*Q8_0BlockLen+i], "nb=%d row %d block %d quant %d", nb, row, b, i)
				}
			}
		}
	}
}

// TestMulQ8_0R16 checks every vector count of the active set against the
// generic loop bit for bit, the generic loop against a float64 sum, and
// both against dotQ8_0Generic where every sum is exact.
func TestMulQ8_0R16(t *testing.T) {
	t.Parallel()
	r := newRand(22)
	wide := func() uint16 { return F32ToF16(float32(math.Ldexp(r.Float64()-0.5, -r.IntN(12)))) }
	exact := func() uint16 {
		s := F32ToF16(math.Float32frombits(uint32(127-r.IntN(4)) << 23))
		if r.IntN(2) == 0 {
			s |= 0x8000
		}
		return s
	}
	for _, nb := range q8BlockCounts {
		for n := 1; n <= R16MaxVectors; n++ {
			for _, isExact := range []bool{false, true} {
				scale, qmax := wide, 128
				if isExact {
					scale, qmax = exact, 4
				}
				groups := 1 + (nb+n)%3
				stored, packed := r16Matrix(r, groups, nb, scale)
				xs := make([][]byte, n)
				for j := range xs {
					xs[j] = q8Row(r, nb, j, qmax, scale)
				}
				var p Q8_0R16In
				p.Pack(xs, nb)
				name := fmt.Sprintf("nb=%d n=%d exact=%v", nb, n, isExact)
				want := make([]float32, groups*R16Rows*n)
				mulQ8_0R16Generic(packed, groups, &p, want, R16Rows*n, R16Rows)
				got, check := guarded(len(want), 3, float32(-7.25))
				MulQ8_0R16(packed, groups, &p, got)
				check(t)
				for i := range want {
					requireSameFloat(t, want[i], got[i], "%s: %s vs generic at %d", name, Impl(), i)
				}
				// The same products straight into rows stride apart, the
				// gaps between them untouched.
				stride := groups*R16Rows + 5
				rows, checkRows := guarded((n-1)*stride+groups*R16Rows, 3, float32(-7.25))
				for i := range rows {
					rows[i] = -7.25
				}
				MulQ8_0R16Rows(packed, groups, &p, rows, stride)
				checkRows(t)
				for j := range n {
					for i := range stride {
						at := j*stride + i
						if at >= len(rows) {
							break
						}
						if i >= groups*R16Rows {
							requireSameFloat(t, -7.25, rows[at], "%s: rows: gap of vector %d at %d written", name, j, i)
							continue
						}
						g, rr := i/R16Rows, i%R16Rows
						requireSameFloat(t, want[(g*n+j)*R16Rows+rr], rows[at], "%s: rows: vector %d, row %d", name, j, i)
					}
				}
				for g := range groups {
					for j := range n {
						for rr := range R16Rows {
							row := stored[(g*R16Rows+rr)*nb*Q8_0BlockSize:]
							v := want[(g*n+j)*R16Rows+rr]
							if isExact {
								requireSameFloat(t, dotQ8_0Generic(row, xs[j], nb), v, "%s: exact sum, group %d row %d x%d", name, g, rr, j)
								continue
							}
							var ref, mag float64
							for b := range nb {
								wb, xb := row[b*34:], xs[j][b*34:]
								d := float64(F16ToF32(uint16(wb[0])|uint16(wb[1])<<8)) * float64(F16ToF32(uint16(xb[0])|uint16(xb[1])<<8))
								for i := 2; i < 34; i++ {
									ref += d * float64(int8(wb[i])) * float64(int8(xb[i]))
									mag += math.Abs(d * float64(int8(wb[i])) * float64(int8(xb[i])))
								}
							}
							require.InDelta(t, ref, float64(v), 1e-6*mag+1e-30, "%s: group %d row %d x%d", name, g, rr, j)
						}
					}
				}
			}
		}
	}
}

func TestQ8_0R16InPackReuses(t *testing.T) {
	r := newRand(23)
	one := func() uint16 { return 0x3C00 }
	x := q8Row(r, 8, 0, 127, one)
	var p Q8_0R16In
	p.Pack([][]byte{x, x, x}, 8)
	require.Zero(t, testing.AllocsPerRun(10, func() { p.Pack([][]byte{x, x, x}, 8) }))
	require.Equal(t, 3, p.Len())
}

func TestR16Panics(t *testing.T) {
	t.Parallel()
	full := make([]byte, 16*2*34)
	require.Panics(t, func() { RepackQ8_0R16(full, full, 15, 2) }, "rows not a multiple of 16")
	require.Panics(t, func() { RepackQ8_0R16(full[:100], full, 16, 2) }, "short dst")
	var p Q8_0R16In
	require.Panics(t, func() { p.Pack(nil, 2) }, "no vectors")
	require.Panics(t, func() { p.Pack(make([][]byte, 9), 0) }, "nine vectors")
	require.Panics(t, func() { p.Pack([][]byte{full[:67]}, 2) }, "short vector")
	p.Pack([][]byte{full[:68]}, 2)
	out := make([]float32, 16)
	require.Panics(t, func() { MulQ8_0R16(full[:100], 1, &p, out) }, "short w")
	require.Panics(t, func() { MulQ8_0R16(full, 1, &p, out[:15]) }, "short out")
	require.Panics(t, func() { MulQ8_0R16Rows(full, 1, &p, out[:15], 16) }, "short rows")
	require.Panics(t, func() { MulQ8_0R16Rows(full, 1, &p, out, 15) }, "stride shorter than a row")
	require.Panics(t, func() { DequantQ8_0R16Row(full, 16, 2, make([]float32, 64)) }, "row outside")
}

// BenchmarkMulQ8_0R16 compares the R16 tiles with the stored-layout
// kernels on the same rows (a 2048-wide matrix of 4096 rows, 8.9 MB, or
// with -r16rows=32768 one of 71 MB, beyond the caches) for 1, 2, 4 and 8
// vectors: products per second, in GMAC/s.
func BenchmarkMulQ8_0R16(b *testing.B) {
	const nb = 64
	rows := *r16Rows
	r := newRand(24)
	scale := func() uint16 { return F32ToF16((r.Float32() - 0.5) * 0.1) }
	stored, packed := r16Matrix(r, rows/R16Rows, nb, scale)
	for _, n := range []int{1, 2, 4, 8} {
		xs := make([][]byte, n)
		for j := range xs {
			xs[j] = q8Row(r, nb, 0, 127, scale)
		}
		macs := float64(rows * nb * Q8_0BlockLen * n)
		b.Run(fmt.Sprintf("r16/n=%d", n), func(b *testing.B) {
			var p Q8_0R16In
			p.Pack(xs, nb)
			out := make([]float32, rows*n)
			for b.Loop() {
				MulQ8_0R16(packed, rows/R16Rows, &p, out)
			}
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
		b.Run(fmt.Sprintf("stored/n=%d", n), func(b *testing.B) {
			out := make([]float32, rows*8)
			var one Q8_0x1
			var two Q8_0x2
			var four, eight Q8_0x4
			switch n {
			case 1:
				one.Pack(xs[0], nb)
			case 2:
				two.Pack(xs[0], xs[1], nb)
			case 4:
				four.Pack(xs[0], xs[1], xs[2], xs[3], nb)
			case 8:
				four.Pack(xs[0], xs[1], xs[2], xs[3], nb)
				eight.Pack(xs[4], xs[5], xs[6], xs[7], nb)
			}
			for b.Loop() {
				for r0 := 0; r0 < rows; r0 += 64 {
					w := stored[r0*nb*Q8_0BlockSize:]
					switch n {
					case 1:
						MulQ8_0x1(w, 64, &one, out)
					case 2:
						MulQ8_0x2(w, 64, &two, out)
					case 4:
						MulQ8_0x4(w, 64, &four, out)
					case 8:
						MulQ8_0x8(w, 64, &four, &eight, out)
					}
				}
			}
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}

// FuzzMulQ8_0R16 checks the active set's R16 tiles against the generic
// loop bit for bit on arbitrary quants and scales (NaN and infinite scales
// included): one group of sixteen rows of nb blocks and one to eight
// vectors, all made from the fuzzer's bytes.
func FuzzMulQ8_0R16(f *testing.F) {
	f.Add([]byte{0x3C, 0x00, 0x80, 0x7F, 0x01}, uint8(3), uint8(2))
	f.Fuzz(func(t *testing.T, seed []byte, nb, n uint8) {
		blocks := int(nb%9) + 1
		vecs := int(n%R16MaxVectors) + 1
		if len(seed) == 0 {
			seed = []byte{0}
		}
		byteAt := func(i int) byte { return seed[i%len(seed)] ^ byte(i*131) }
		stored := make([]byte, R16Rows*blocks*Q8_0BlockSize)
		for i := range stored {
			stored[i] = byteAt(i)
		}
		packed := make([]byte, len(stored))
		RepackQ8_0R16(packed, stored, R16Rows, blocks)
		xs := make([][]byte, vecs)
		for j := range xs {
			xs[j] = make([]byte, blocks*Q8_0BlockSize)
			for i := range xs[j] {
				xs[j][i] = byteAt(len(stored) + j*977 + i)
			}
		}
		var p Q8_0R16In
		p.Pack(xs, blocks)
		want := make([]float32, R16Rows*vecs)
		mulQ8_0R16Generic(packed, 1, &p, want, R16Rows*vecs, R16Rows)
		got := make([]float32, len(want))
		MulQ8_0R16(packed, 1, &p, got)
		for i := range want {
			if math.Float32bits(want[i]) != math.Float32bits(got[i]) && !(want[i] != want[i] && got[i] != got[i]) {
				t.Fatalf("blocks %d, vectors %d, out %d: %v, generic %v", blocks, vecs, i, got[i], want[i])
			}
		}
	})
}

// TestPackQ8_0R16MatchesGeneric: the active set's Pack gives the generic
// loop's quants, scales (bit for bit: NaN, infinite and subnormal halves
// included) and sums, for one to eight vectors of zero to five blocks.
func TestPackQ8_0R16MatchesGeneric(t *testing.T) {
	t.Parallel()
	r := newRand(41)
	specials := []uint16{0x7C00, 0xFC00, 0x7E01, 0x7C01, 0x0001, 0x83FF, 0x0000, 0x8000, 0x3C00}
	for n := 1; n <= R16MaxVectors; n++ {
		for nb := range 6 {
			xs := make([][]byte, n)
			for j := range xs {
				xs[j] = make([]byte, nb*Q8_0BlockSize+r.IntN(3))
				for i := range xs[j] {
					xs[j][i] = byte(r.IntN(256))
				}
				for b := range nb {
					if r.IntN(3) == 0 {
						h := specials[r.IntN(len(specials))]
						xs[j][b*Q8_0BlockSize], xs[j][b*Q8_0BlockSize+1] = byte(h), byte(h>>8)
					}
				}
			}
			var got Q8_0R16In
			got.Pack(xs, nb)
			q, d, c := make([]byte, nb*n*Q8_0BlockLen), make([]float32, nb*n), make([]int32, nb*n)
			packQ8_0R16Generic(xs, nb, q, d, c)
			require.Equal(t, q, append([]byte{}, got.q...), "quants, n=%d nb=%d", n, nb)
			require.Equal(t, c, append([]int32{}, got.c...), "sums, n=%d nb=%d", n, nb)
			for i := range d {
				require.Equal(t, math.Float32bits(d[i]), math.Float32bits(got.d[i]), "scale %d, n=%d nb=%d", i, n, nb)
			}
		}
	}
}
