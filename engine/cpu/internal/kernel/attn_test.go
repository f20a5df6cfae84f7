package kernel

import (
	"slices"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestAccumRowsF32x4 checks the value pass against AxpyF32 called row by
// row, bit for bit, in the active set and the generic one, with rows
// scattered over a buffer, several widths and row counts.
func TestAccumRowsF32x4(t *testing.T) {
	t.Parallel()
	r := newRand(31)
	for _, dv := range []int{16, 32, 48, 64, 80, 128, 144, 512, 576} {
		for _, n := range []int{1, 2, 7, 33} {
			buf := make([]float32, (n+3)*(dv+5))
			for i := range buf {
				buf[i] = (r.Float32() - 0.5) * 8
			}
			rows := make([]*float32, n)
			views := make([][]float32, n)
			for j := range rows {
				at := r.IntN(len(buf) - dv)
				rows[j] = &buf[at]
				views[j] = buf[at : at+dv]
			}
			stride := n + 3
			p := make([]float32, 4*stride)
			for i := range p {
				p[i] = r.Float32()
			}
			out := make([]float32, 4*dv)
			for i := range out {
				out[i] = (r.Float32() - 0.5) * 2
			}
			for _, set := range []impls{active, generic} {
				want := slices.Clone(out)
				for j := range rows {
					for k := range 4 {
						set.axpyF32(p[k*stride+j], views[j], want[k*dv:(k+1)*dv])
					}
				}
				got := slices.Clone(out)
				set.accumRowsF32x4(p, stride, rows, got)
				require.Equal(t, want, got, "%s: dv=%d n=%d", set.name, dv, n)
			}
		}
	}
	require.Panics(t, func() { AccumRowsF32x4(make([]float32, 8), 2, make([]*float32, 2), make([]float32, 40)) }, "dv not a multiple of 16")
	require.Panics(t, func() { AccumRowsF32x4(make([]float32, 7), 2, make([]*float32, 2), make([]float32, 64)) }, "short p")
	require.Panics(t, func() { AccumRowsF32x4(make([]float32, 8), 1, make([]*float32, 2), make([]float32, 64)) }, "stride below the rows")
}

// BenchmarkAccumRows compares the value pass of 16 heads over 8192 cache
// rows of 576 values (V3's latent rows, 18 MB) taken as AccumRowsF32x4 in
// blocks of 64 rows with AxpyF32 per row and head, in GMAC/s.
func BenchmarkAccumRows(b *testing.B) {
	const n, w, dv, heads, block = 8192, 576, 512, 16, 64
	r := newRand(32)
	cache := make([]float32, n*w)
	for i := range cache {
		cache[i] = r.Float32()
	}
	rows := make([]*float32, n)
	for j := range rows {
		rows[j] = &cache[j*w]
	}
	p := make([]float32, heads*n)
	for i := range p {
		p[i] = r.Float32()
	}
	out := make([]float32, heads*dv)
	macs := float64(n * dv * heads)
	b.Run("accum", func(b *testing.B) {
		for b.Loop() {
			for j0 := 0; j0 < n; j0 += block {
				for k := 0; k < heads; k += 4 {
					AccumRowsF32x4(p[k*n+j0:], n, rows[j0:j0+block], out[k*dv:(k+4)*dv])
				}
			}
		}
		b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
	})
	b.Run("axpy", func(b *testing.B) {
		for b.Loop() {
			for j := range n {
				for k := range heads {
					AxpyF32(p[k*n+j], cache[j*w:j*w+dv], out[k*dv:(k+1)*dv])
				}
			}
		}
		b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
	})
}

// TestDotRowsF32x4 checks the score pass against DotF32x4 per row times
// the scale, bit for bit, in the active set and the generic one, with
// rows scattered over a buffer and widths that exercise every path of
// the dot product (24-value chunks, 8-value chunks, the scalar tail).
func TestDotRowsF32x4(t *testing.T) {
	t.Parallel()
	r := newRand(33)
	for _, d := range []int{1, 7, 8, 16, 24, 31, 40, 128, 133, 512, 576} {
		for _, n := range []int{1, 2, 7, 33} {
			buf := make([]float32, (n+3)*(d+5))
			for i := range buf {
				buf[i] = (r.Float32() - 0.5) * 8
			}
			rows := make([]*float32, n)
			for j := range rows {
				rows[j] = &buf[r.IntN(len(buf)-d)]
			}
			q := make([]float32, 4*d)
			for i := range q {
				q[i] = (r.Float32() - 0.5) * 2
			}
			stride := n + 2
			scale := r.Float32()
			for _, set := range []impls{active, generic} {
				want := make([]float32, 4*stride)
				var o [4]float32
				for j, row := range rows {
					set.dotF32x4(unsafe.Slice(row, d), q[:d], q[d:2*d], q[2*d:3*d], q[3*d:], &o)
					for k := range 4 {
						want[k*stride+j] = o[k] * scale
					}
				}
				got := make([]float32, 4*stride)
				set.dotRowsF32x4(rows, q, scale, got, stride)
				require.Equal(t, want, got, "%s: d=%d n=%d", set.name, d, n)
			}
		}
	}
	require.Panics(t, func() { DotRowsF32x4(make([]*float32, 2), make([]float32, 7), 1, make([]float32, 8), 2) }, "q not four heads")
	require.Panics(t, func() { DotRowsF32x4(make([]*float32, 2), make([]float32, 8), 1, make([]float32, 7), 2) }, "short out")
	require.Panics(t, func() { DotRowsF32x4(make([]*float32, 2), make([]float32, 8), 1, make([]float32, 8), 1) }, "stride below the rows")
}

// BenchmarkDotRows compares the score pass of four heads of 128 over 203
// key rows (a V4 token's window and entries) taken as DotRowsF32x4 with
// DotF32x4 per row and a scaled scatter, in GMAC/s.
func BenchmarkDotRows(b *testing.B) {
	const n, d = 203, 128
	r := newRand(34)
	keys := make([]float32, n*d)
	for i := range keys {
		keys[i] = r.Float32()
	}
	rows := make([]*float32, n)
	for j := range rows {
		rows[j] = &keys[j*d]
	}
	q := make([]float32, 4*d)
	for i := range q {
		q[i] = r.Float32()
	}
	out := make([]float32, 4*n)
	macs := float64(4 * n * d)
	b.Run("rows", func(b *testing.B) {
		for b.Loop() {
			DotRowsF32x4(rows, q, 0.1, out, n)
		}
		b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
	})
	b.Run("x4", func(b *testing.B) {
		var o [4]float32
		for b.Loop() {
			for j := range n {
				DotF32x4(keys[j*d:(j+1)*d], q[:d], q[d:2*d], q[2*d:3*d], q[3*d:], &o)
				for k := range 4 {
					out[k*n+j] = o[k] * 0.1
				}
			}
		}
		b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
	})
}
