package kernel

import (
	"fmt"
	"testing"
)

// BenchmarkMatVecFormats multiplies 8192 rows of 2048 values (V4-Flash's
// expert width) by one (x1) or four (x4) activation vectors on one
// goroutine, row by row as the backend does, in each weight format a V4
// checkpoint or its GGUF uses: F32 (64 MiB), Q8_0 (17 MiB, activations
// quantized once outside the loop), FP8 E4M3 with 128×128 and 32×32 block
// scales (16 MiB) and FP4 E2M1 with E8M0 scales (8.5 MiB). Every case does
// the same multiply-adds, so GMAC/s compares them directly; the active
// implementation set only.
func BenchmarkMatVecFormats(b *testing.B) {
	const rows, n = 8192, 2048
	x := [4][]float32{benchFloats(n, 2), benchFloats(n, 3), benchFloats(n, 4), benchFloats(n, 5)}
	out := make([]float32, rows)
	var o [4]float32
	run := func(name string, bytes int, x1 func(r int) float32, x4 func(r int, o *[4]float32)) {
		b.Run(name+"/x1", func(b *testing.B) {
			b.SetBytes(int64(bytes))
			for b.Loop() {
				for r := range rows {
					out[r] = x1(r)
				}
			}
			reportGMACs(b, rows*n)
		})
		b.Run(name+"/x4", func(b *testing.B) {
			b.SetBytes(int64(bytes))
			for b.Loop() {
				for r := range rows {
					x4(r, &o)
				}
			}
			reportGMACs(b, 4*rows*n)
		})
	}

	wf := make([]float32, rows*n)
	row := benchFloats(n, 9)
	for r := range rows {
		copy(wf[r*n:], row)
	}
	run("F32", 4*len(wf), func(r int) float32 { return DotF32(wf[r*n:(r+1)*n], x[0]) },
		func(r int, o *[4]float32) { DotF32x4(wf[r*n:(r+1)*n], x[0], x[1], x[2], x[3], o) })
	wf = nil

	qb := n / 32 * 34
	wq := make([]byte, rows*qb)
	qrow := benchQ8(n, 1)
	for r := range rows {
		copy(wq[r*qb:], qrow)
	}
	xq := [4][]byte{benchQ8(n, 2), benchQ8(n, 3), benchQ8(n, 4), benchQ8(n, 5)}
	var p Q8_0x4
	p.Pack(xq[0], xq[1], xq[2], xq[3], n/32)
	var q4 [4 * 16]float32
	run("Q8_0", len(wq), func(r int) float32 { return DotQ8_0(wq[r*qb:(r+1)*qb], xq[0], n/32) },
		func(r int, o *[4]float32) {
			// MulQ8_0x4's tile takes 16 rows at once: one call per 16 rows.
			if r%16 == 0 {
				MulQ8_0x4(wq[r*qb:], 16, &p, q4[:])
			}
		})
	wq = nil

	// Codes of normal-distributed weights scaled to the format's range,
	// as a quantizer leaves them (few subnormal codes, whose conversion
	// takes a slow path on some CPUs).
	w8 := make([]byte, rows*n)
	row8 := make([]byte, n)
	for i, f := range benchFloats(n, 8) {
		row8[i] = F32ToE4M3(f * 100)
	}
	for r := range rows {
		copy(w8[r*n:], row8)
	}
	for _, bl := range []int{128, 32} {
		s := make([]float32, ((rows+bl-1)/bl)*((n+bl-1)/bl))
		for i := range s {
			s[i] = 0x1p-8
		}
		run(fmt.Sprintf("F8E4M3-%d", bl), len(w8)+4*len(s),
			func(r int) float32 { return DotE4M3Blocks(w8[r*n:(r+1)*n], s, r, n, bl, bl, x[0]) },
			func(r int, o *[4]float32) {
				DotE4M3x4Blocks(w8[r*n:(r+1)*n], s, r, n, bl, bl, x[0], x[1], x[2], x[3], o)
			})
	}
	w8 = nil

	w4, s4, _ := e2m1Random(newRand(7), rows*n)
	run("F4E2M1", len(w4)+len(s4),
		func(r int) float32 { return DotE2M1(w4[r*n/2:(r+1)*n/2], s4[r*n/32:(r+1)*n/32], n, x[0]) },
		func(r int, o *[4]float32) {
			DotE2M1x4(w4[r*n/2:(r+1)*n/2], s4[r*n/32:(r+1)*n/32], n, x[0], x[1], x[2], x[3], o)
		})
}
