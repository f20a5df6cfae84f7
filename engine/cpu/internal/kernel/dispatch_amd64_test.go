//go:build !noasm

package kernel

import (
	"fmt"
	"testing"
)

// noasmBuild and expectedAsmImpl tell TestImpl which set to expect.

const noasmBuild = false

func expectedAsmImpl() string {
	switch {
	case haveVNNI():
		return "avx512vnni"
	case haveAVX2():
		return "avx2"
	}
	return "generic"
}

// asmFallbacks lists the assembly sets that the active one supersedes, for
// benchmarks that compare them in one run.
func asmFallbacks() []impls {
	if Impl() == avx512vnni.name {
		return []impls{avx2}
	}
	return nil
}

// TestMulQ8_0x4VNNIMatchesAVX2 runs both x4 tilings on the same packs and
// requires the same bits (and so DotQ8_0's): on a VNNI machine the AVX2
// tile no longer runs through MulQ8_0x4, so it is checked here; a pack
// made without the VNNI form must fall back.
func TestMulQ8_0x4VNNIMatchesAVX2(t *testing.T) {
	if !haveVNNI() {
		t.Skip("no AVX-512 VNNI on this CPU")
	}
	t.Parallel()
	r := newRand(11)
	scale := func() uint16 { return F32ToF16((r.Float32() - 0.5) * 0.1) }
	for _, nb := range q8BlockCounts {
		for _, rows := range []int{0, 1, 2, 3, 4, 5, 37} { // 37: more than one 16-row chunk in mulQ8_0x8Halves
			w := make([]byte, 0, rows*nb*34)
			for i := range rows {
				w = append(w, q8Row(r, nb, i, 128, scale)...)
			}
			var x [4][]byte
			for j := range x {
				x[j] = q8Row(r, nb, j, 128, scale)
			}
			var p Q8_0x4
			p.Pack(x[0], x[1], x[2], x[3], nb)
			want, got := make([]float32, 4*rows), make([]float32, 4*rows)
			mulQ8_0x4Tiles(w, rows, &p, want)
			mulQ8_0x4VNNI(w, rows, &p, got)
			name := fmt.Sprintf("nb=%d rows=%d", nb, rows)
			for i := range want {
				requireSameFloat(t, want[i], got[i], "%s out[%d]", name, i)
				requireSameFloat(t, DotQ8_0(w[i/4*nb*34:], x[i%4], nb), got[i], "%s out[%d] vs DotQ8_0", name, i)
			}
			var py Q8_0x4
			py.Pack(x[2], x[0], x[3], x[1], nb)
			want8, got8 := make([]float32, 8*rows), make([]float32, 8*rows)
			avx2.mulQ8_0x8(w, rows, &p, &py, want8)
			mulQ8_0x8VNNI(w, rows, &p, &py, got8)
			for i := range want8 {
				requireSameFloat(t, want8[i], got8[i], "%s MulQ8_0x8 out[%d]", name, i)
			}
			p.vnni = false
			clear(got)
			mulQ8_0x4VNNI(w, rows, &p, got)
			for i := range want {
				requireSameFloat(t, want[i], got[i], "%s out[%d] without the VNNI form", name, i)
			}
			clear(got8)
			mulQ8_0x8VNNI(w, rows, &p, &py, got8)
			for i := range want8 {
				requireSameFloat(t, want8[i], got8[i], "%s MulQ8_0x8 out[%d] without the VNNI form", name, i)
			}
		}
	}
}
