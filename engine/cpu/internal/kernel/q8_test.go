package kernel

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// refQuantizeQ8_0 is ggml's quantize_row_q8_0_ref restated statement by
// statement with C's float32 arithmetic: MAX as a ?: on >, roundf as
// math.Round (exact on a float32 value), the float → int8_t conversion as
// amd64 compilers emit it (CVTTSS2SI, then the low byte), and the scale
// through ggml's own software half conversion. It shares no code with
// QuantizeQ8_0.
func refQuantizeQ8_0(x []float32, y []byte) {
	const qk = 32
	nb := len(x) / qk
	for i := 0; i < nb; i++ {
		var amax float32 // absolute max
		for j := 0; j < qk; j++ {
			v := x[i*qk+j]
			a := float32(math.Abs(float64(v)))
			if amax > a {
				// MAX(amax, a) keeps amax
			} else {
				amax = a
			}
		}
		d := amax / ((1 << 7) - 1)
		var id float32
		if d != 0 {
			id = 1.0 / d
		}
		binary.LittleEndian.PutUint16(y[i*34:], ggmlFP32ToFP16(d))
		for j := 0; j < qk; j++ {
			x0 := x[i*qk+j] * id
			y[i*34+2+j] = byte(cvttss2si(float32(math.Round(float64(x0)))))
		}
	}
}

// cvttss2si converts as the x86 instruction does: toward zero, and the
// "integer indefinite" 0x80000000 for NaN and out-of-range values.
func cvttss2si(f float32) int32 {
	if f != f || f >= 0x1p31 || f < -0x1p31 {
		return math.MinInt32
	}
	return int32(f)
}

func TestQuantizeQ8_0Known(t *testing.T) {
	t.Parallel()
	var x [32]float32
	// amax 127 gives d = 1 and id = 1, so the quants are roundf(x): halves
	// go away from zero (2.5 → 3, -0.5 → -1), unlike round-to-even.
	copy(x[:], []float32{127, -127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997, 126.5, 3.25})
	dst := make([]byte, 34)
	QuantizeQ8_0(x[:], dst)
	require.Equal(t, uint16(0x3C00), binary.LittleEndian.Uint16(dst)) // d = 1
	want := []int8{127, -127, 1, -1, 2, -2, 3, -3, 0, 0, 127, 3}
	for i, q := range want {
		require.Equal(t, q, int8(dst[2+i]), "quant %d of %v", i, x[i])
	}
	for i := len(want); i < 32; i++ {
		require.Zero(t, dst[2+i])
	}

	// All zeros: d = 0, id = 0, quants 0.
	clear(x[:])
	QuantizeQ8_0(x[:], dst)
	require.Equal(t, make([]byte, 34), dst)

	// The scale rounds to nearest even: d = 1+3·2⁻¹¹ is a tie between
	// halves 0x3C01 and 0x3C02 (truncation would give 0x3C01).
	x[5] = -127 * (1 + 3*0x1p-11)
	QuantizeQ8_0(x[:], dst)
	require.Equal(t, uint16(0x3C02), binary.LittleEndian.Uint16(dst))
	require.Equal(t, int8(-127), int8(dst[2+5]))
}

// q8Source generates activation rows of several shapes: the scale of the
// values, the share of exact zeros, and rare outliers all change amax, d
// and the rounding of the quants.
func q8Source(r *rand.Rand, kind int) float32 {
	switch kind {
	case 0: // activations after RMSNorm
		return float32(r.NormFloat64())
	case 1: // wide dynamic range, overflowing the f16 scale at the top
		return float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(13)-6)))
	case 2: // exact ties: integers and halves with amax 127 (id = 1)
		if r.IntN(8) == 0 {
			return 127
		}
		return float32(r.IntN(254)-127) / 2
	case 3: // tiny: d subnormal as a half, or 1/d overflowing to +Inf
		return float32(r.NormFloat64() * 1e-38)
	default: // sparse with outliers
		if r.IntN(3) == 0 {
			return 0
		}
		if r.IntN(50) == 0 {
			return float32(r.NormFloat64() * 100)
		}
		return float32(r.NormFloat64())
	}
}

var q8Specials = []float32{nan32, float32(math.Inf(1)), float32(math.Inf(-1)), 0x1p-149, -0x1p-130,
	float32(math.Copysign(0, -1)), math.MaxFloat32, 3e9}

// TestQuantizeQ8_0MatchesReference compares the dispatched quantizer (the
// AVX2 path hands blocks with NaN, Inf or an overflowing 1/d back to Go)
// and the generic one with the restated reference, bit for bit, on rows
// mixing ordinary and special blocks.
func TestQuantizeQ8_0MatchesReference(t *testing.T) {
	t.Parallel()
	r := newRand(4)
	for _, nb := range []int{0, 1, 2, 3, 7, 64, 224} {
		for kind := range 6 {
			for _, off := range offsets {
				name := fmt.Sprintf("nb=%d kind=%d off=%d", nb, kind, off)
				x, _ := guarded(nb*32, off, nan32)
				for i := range x {
					x[i] = q8Source(r, kind%5)
					if kind == 5 && r.IntN(20) == 0 {
						x[i] = q8Specials[r.IntN(len(q8Specials))]
					}
				}
				want := make([]byte, nb*34)
				refQuantizeQ8_0(x, want)
				got, check := guarded(nb*34, off, byte(0xA5))
				QuantizeQ8_0(x, got)
				check(t)
				require.Equal(t, want, got, "%s, %s", name, Impl())
				clear(got)
				quantizeQ8_0Generic(x, got)
				require.Equal(t, want, got, "%s, generic", name)
			}
		}
	}
}

func TestQuantizeQ8_0Contract(t *testing.T) { // not parallel: AllocsPerRun
	require.Panics(t, func() { QuantizeQ8_0(make([]float32, 33), make([]byte, 68)) })
	require.Panics(t, func() { QuantizeQ8_0(make([]float32, 64), make([]byte, 67)) })
	x := make([]float32, 7168)
	dst := make([]byte, 224*34)
	require.Zero(t, testing.AllocsPerRun(10, func() { QuantizeQ8_0(x, dst) }))
}

// q8Row returns nb blocks at byte offset off in a backing array whose
// bytes after the row repeat 00 7E: read as a block, that is a NaN scale
// (0x7E00), so a kernel reading past the row returns NaN.
func q8Row(r *rand.Rand, nb, off, qmax int, scale func() uint16) []byte {
	back := make([]byte, off+nb*34+2*34)
	for i := off + nb*34; i < len(back); i += 2 {
		back[i+1] = 0x7E
	}
	row := back[off : off+nb*34]
	for b := range nb {
		binary.LittleEndian.PutUint16(row[b*34:], scale())
		for i := 2; i < 34; i++ {
			row[b*34+i] = byte(int8(r.IntN(2*qmax+1) - qmax))
		}
	}
	return row
}

// absDotQ8 is Σ_b |d_w·d_x|·Σ_i |w.qᵢ·x.qᵢ|, the scale of the rounding bound.
func absDotQ8(w, x []byte, nb int) float64 {
	var s float64
	for b := range nb {
		wb, xb := w[b*34:], x[b*34:]
		d := math.Abs(float64(F16ToF32(binary.LittleEndian.Uint16(wb))) * float64(F16ToF32(binary.LittleEndian.Uint16(xb))))
		var si float64
		for i := 2; i < 34; i++ {
			si += math.Abs(float64(int8(wb[i])) * float64(int8(xb[i])))
		}
		s += d * si
	}
	return s
}

// requireQ8Close is requireSumClose with one licence: the assembly scales
// each of a block's eight lane sums, the generic twin the block's one sum,
// so an infinite scale meeting a zero lane (or lanes of both signs) gives
// NaN there where the generic gives ±Inf. Finite scales are checked with
// the full rule; the n of the bound is the number of blocks, the terms
// summed in float32.
func requireQ8Close(t testing.TB, fast, ref float32, nb int, abs float64, msgAndArgs ...any) {
	t.Helper()
	if math.IsInf(float64(ref), 0) && math.IsNaN(float64(fast)) {
		return
	}
	requireSumClose(t, fast, ref, nb, abs, msgAndArgs...)
}

var q8BlockCounts = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 64, 224, 225}

func TestDotQ8_0(t *testing.T) {
	// Exact: scales ±2⁻ᵏ (k ≤ 3, so products are exact) and quants in
	// [-4, 4] make every term a multiple of 2⁻⁶ below 2¹⁷ in magnitude:
	// all sums are exact in any order, so fast and generic agree bitwise.
	t.Run("exact", func(t *testing.T) {
		t.Parallel()
		r := newRand(5)
		scale := func() uint16 {
			s := F32ToF16(math.Float32frombits(uint32(127-r.IntN(4)) << 23))
			if r.IntN(2) == 0 {
				s |= 0x8000
			}
			return s
		}
		for _, nb := range q8BlockCounts {
			for _, off := range []int{0, 1, 3, 7, 31} {
				w := q8Row(r, nb, off, 4, scale)
				var x [4][]byte
				var want [4]float32
				for j := range x {
					x[j] = q8Row(r, nb, (off+j)%32, 4, scale)
					want[j] = dotQ8_0Generic(w, x[j], nb)
					require.Equal(t, want[j], DotQ8_0(w, x[j], nb), "nb=%d off=%d x%d", nb, off, j)
				}
				var p Q8_0x4
				p.Pack(x[0], x[1], x[2], x[3], nb)
				var ref [4]float32
				mulQ8_0x4Generic(w, 1, &p, ref[:])
				require.Equal(t, want, ref, "generic MulQ8_0x4 vs generic")
				out, check := guardedOut()
				MulQ8_0x4(w, 1, &p, out[:])
				check(t)
				require.Equal(t, want, *out, "nb=%d off=%d MulQ8_0x4", nb, off)
				var p2 Q8_0x2
				p2.Pack(x[1], x[3], nb)
				var out2 [2]float32
				MulQ8_0x2(w, 1, &p2, out2[:])
				require.Equal(t, [2]float32{want[1], want[3]}, out2, "nb=%d off=%d MulQ8_0x2", nb, off)
			}
		}
	})

	// Random: weights and activations quantized from random rows, as in
	// inference; only the float32 accumulation of the scaled block sums
	// differs, checked with requireQ8Close.
	t.Run("random", func(t *testing.T) {
		t.Parallel()
		r := newRand(6)
		for _, nb := range q8BlockCounts {
			for trial := range 4 {
				quant := func(kind, off int) []byte {
					f := make([]float32, nb*32)
					for i := range f {
						f[i] = q8Source(r, kind)
					}
					q := q8Row(r, nb, off, 0, func() uint16 { return 0 })
					QuantizeQ8_0(f, q)
					return q
				}
				w := quant(trial%3, trial)
				var x [4][]byte
				for j := range x {
					x[j] = quant(j%2*4, trial+j)
				}
				checkQ8Case(t, w, x, nb, fmt.Sprintf("nb=%d trial=%d", nb, trial))
			}
		}
	})

	// Special: scales NaN, ±Inf, subnormal, zero and the largest half, with
	// full-range quants.
	t.Run("special", func(t *testing.T) {
		t.Parallel()
		r := newRand(7)
		specials := []uint16{0x7E00, 0x7C00, 0xFC00, 0x0001, 0x03FF, 0x0000, 0x8000, 0x7BFF}
		scale := func() uint16 {
			if r.IntN(10) == 0 {
				return specials[r.IntN(len(specials))]
			}
			return F32ToF16(r.Float32() * 0.05)
		}
		for _, nb := range q8BlockCounts {
			for trial := range 8 {
				w := q8Row(r, nb, trial, 127, scale)
				var x [4][]byte
				for j := range x {
					x[j] = q8Row(r, nb, trial+j, 127, scale)
				}
				checkQ8Case(t, w, x, nb, fmt.Sprintf("nb=%d trial=%d", nb, trial))
			}
		}
	})
}

// checkQ8Case is checkFloatCase for Q8_0: close to the generic twin, and
// MulQ8_0x4's results exactly the single ones, with the rows w, x[1] and
// x[2] (so both the two-row tile and the odd row run).
func checkQ8Case(t *testing.T, w []byte, x [4][]byte, nb int, name string) {
	t.Helper()
	rows := [][]byte{w, x[1], x[2]}
	out := checkMulQ8(t, rows, x, nb, name)
	for j := range x {
		abs := absDotQ8(w, x[j], nb)
		ref := dotQ8_0Generic(w, x[j], nb)
		fast := DotQ8_0(w, x[j], nb)
		requireQ8Close(t, fast, ref, nb, abs, "%s x%d", name, j)
		requireSameFloat(t, fast, out[j], "%s: MulQ8_0x4 out[%d] differs from the single form", name, j)
	}
}

// checkMulQ8 multiplies the rows (laid one after another, guarded) by the
// packed x with MulQ8_0x4 and with its generic twin, requires every output
// to be its set's single dot product bit for bit, and returns the
// dispatched outputs.
func checkMulQ8(t *testing.T, rows [][]byte, x [4][]byte, nb int, name string) []float32 {
	t.Helper()
	w := make([]byte, 0, len(rows)*nb*34+34)
	for _, r := range rows {
		w = append(w, r[:nb*34]...)
	}
	w = append(w, 0x00, 0x7E) // a NaN scale just past the rows
	w = w[:len(rows)*nb*34]
	var p Q8_0x4
	p.Pack(x[0], x[1], x[2], x[3], nb)
	out, check := guarded(4*len(rows), 3, float32(-12345.5))
	MulQ8_0x4(w, len(rows), &p, out)
	check(t)
	ref := make([]float32, len(out))
	mulQ8_0x4Generic(w, len(rows), &p, ref)
	for r, row := range rows {
		for j := range x {
			requireSameFloat(t, DotQ8_0(row, x[j], nb), out[4*r+j], "%s: row %d x%d", name, r, j)
			requireSameFloat(t, dotQ8_0Generic(row, x[j], nb), ref[4*r+j], "generic %s: row %d x%d", name, r, j)
		}
	}
	checkMulQ8x2(t, w, len(rows), x[0], x[2], nb, name)
	checkMulQ8x1(t, w, len(rows), x[1], nb, name)
	checkMulQ8x8(t, w, rows, &p, x, nb, name)
	return out
}

// checkMulQ8x8 multiplies the rows laid one after another in w by p (the
// vectors x) and by x reversed, packed, with MulQ8_0x8 (guarded output) and
// its generic twin, and requires every output to be its set's single dot
// product bit for bit.
func checkMulQ8x8(t *testing.T, w []byte, rows [][]byte, p *Q8_0x4, x [4][]byte, nb int, name string) {
	t.Helper()
	var py Q8_0x4
	py.Pack(x[3], x[2], x[1], x[0], nb)
	out, check := guarded(8*len(rows), 7, float32(-12345.5))
	MulQ8_0x8(w, len(rows), p, &py, out)
	check(t)
	ref := make([]float32, len(out))
	generic.mulQ8_0x8(w, len(rows), p, &py, ref)
	for r, row := range rows {
		for j := range 8 {
			xj := x[min(j, 7-j)] // y is x reversed
			requireSameFloat(t, DotQ8_0(row, xj, nb), out[8*r+j], "%s: MulQ8_0x8 row %d out %d", name, r, j)
			requireSameFloat(t, dotQ8_0Generic(row, xj, nb), ref[8*r+j], "generic %s: MulQ8_0x8 row %d out %d", name, r, j)
		}
	}
}

// checkMulQ8x1 multiplies the rows laid one after another in w by x packed
// as a Q8_0x1, with MulQ8_0x1 (guarded output) and its generic twin, and
// requires every output to be its set's single dot product bit for bit.
func checkMulQ8x1(t *testing.T, w []byte, rows int, x []byte, nb int, name string) {
	t.Helper()
	var p Q8_0x1
	p.Pack(x, nb)
	out, check := guarded(rows, 3, float32(-12345.5))
	MulQ8_0x1(w, rows, &p, out)
	check(t)
	ref := make([]float32, len(out))
	mulQ8_0x1Generic(w, rows, &p, ref)
	rowBytes := nb * 34
	for r := range rows {
		row := w[r*rowBytes : (r+1)*rowBytes]
		requireSameFloat(t, DotQ8_0(row, x, nb), out[r], "%s: MulQ8_0x1 row %d", name, r)
		requireSameFloat(t, dotQ8_0Generic(row, x, nb), ref[r], "generic %s: MulQ8_0x1 row %d", name, r)
	}
}

// checkMulQ8x2 multiplies the rows laid one after another in w by x0 and x1
// packed as a Q8_0x2, with MulQ8_0x2 (guarded output) and its generic twin,
// and requires every output to be its set's single dot product bit for bit.
func checkMulQ8x2(t *testing.T, w []byte, rows int, x0, x1 []byte, nb int, name string) {
	t.Helper()
	var p Q8_0x2
	p.Pack(x0, x1, nb)
	out, check := guarded(2*rows, 5, float32(-12345.5))
	MulQ8_0x2(w, rows, &p, out)
	check(t)
	ref := make([]float32, len(out))
	mulQ8_0x2Generic(w, rows, &p, ref)
	rowBytes := nb * 34
	for r := range rows {
		row := w[r*rowBytes : (r+1)*rowBytes]
		for j, xj := range [][]byte{x0, x1} {
			requireSameFloat(t, DotQ8_0(row, xj, nb), out[2*r+j], "%s: MulQ8_0x2 row %d x%d", name, r, j)
			requireSameFloat(t, dotQ8_0Generic(row, xj, nb), ref[2*r+j], "generic %s: MulQ8_0x2 row %d x%d", name, r, j)
		}
	}
}

// TestMulQ8_0x4 runs MulQ8_0x4, MulQ8_0x2 and MulQ8_0x1 over every row
// count up to 11 (tiles of four and two rows and the rest) and awkward block counts, with full-range quants
// (-128 included) and random scales, each output against DotQ8_0.
func TestMulQ8_0x4(t *testing.T) {
	t.Parallel()
	r := newRand(8)
	scale := func() uint16 { return F32ToF16((r.Float32() - 0.5) * 0.1) }
	for _, nb := range q8BlockCounts {
		for nrows := range 12 {
			rows := make([][]byte, nrows)
			for i := range rows {
				rows[i] = q8Row(r, nb, i, 128, scale)
			}
			var x [4][]byte
			for j := range x {
				x[j] = q8Row(r, nb, j*5, 128, scale)
			}
			checkMulQ8(t, rows, x, nb, fmt.Sprintf("nb=%d rows=%d", nb, nrows))
		}
	}
}

// TestQ8_0x4PackReuses checks that Pack reuses its storage and that a
// smaller repack gives the smaller product.
func TestQ8_0x4PackReuses(t *testing.T) {
	r := newRand(9)
	one := func() uint16 { return 0x3C00 }
	x := q8Row(r, 8, 0, 127, one)
	w := q8Row(r, 8, 0, 127, one)
	var p Q8_0x4
	p.Pack(x, x, x, x, 8)
	require.Zero(t, testing.AllocsPerRun(10, func() { p.Pack(x, x, x, x, 8) }))
	p.Pack(x, x, x, x, 3)
	out := make([]float32, 4)
	MulQ8_0x4(w, 1, &p, out)
	require.Equal(t, DotQ8_0(w, x, 3), out[0])
	var p2 Q8_0x2
	p2.Pack(x, x, 8)
	require.Zero(t, testing.AllocsPerRun(10, func() { p2.Pack(x, x, 8) }))
	p2.Pack(x, x, 3)
	MulQ8_0x2(w, 1, &p2, out)
	require.Equal(t, DotQ8_0(w, x, 3), out[1])
}

func TestDotQ8_0PanicsOnShortInput(t *testing.T) {
	t.Parallel()
	full := make([]byte, 68)
	short := make([]byte, 67)
	var out [4]float32
	require.Panics(t, func() { DotQ8_0(short, full, 2) })
	require.Panics(t, func() { DotQ8_0(full, short, 2) })
	require.Panics(t, func() { DotQ8_0(full, full, -1) })
	var p Q8_0x4
	require.Panics(t, func() { p.Pack(full, full, full, short, 2) })
	p.Pack(full, full, full, full, 2)
	require.Panics(t, func() { MulQ8_0x4(short, 1, &p, out[:]) })
	require.Panics(t, func() { MulQ8_0x4(full, 1, &p, out[:3]) })
	require.Panics(t, func() { MulQ8_0x4(full, -1, &p, out[:]) })
	var p2 Q8_0x2
	require.Panics(t, func() { p2.Pack(full, short, 2) })
	p2.Pack(full, full, 2)
	require.Panics(t, func() { MulQ8_0x2(short, 1, &p2, out[:]) })
	require.Panics(t, func() { MulQ8_0x2(full, 1, &p2, out[:1]) })
	require.Panics(t, func() { MulQ8_0x2(full, -1, &p2, out[:]) })
	require.Equal(t, float32(0), DotQ8_0(full, full, 2))
}
