package kernel

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// sameBits reports whether a and b are the same float32, any NaN matching
// any NaN.
func sameBits(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// requireExpShiftTwins runs the active set's and the generic ExpShift on
// copies of x and requires the same bits in every value and in the sum.
func requireExpShiftTwins(t *testing.T, x []float32, m float32, msg string) {
	t.Helper()
	got, want := slices.Clone(x), slices.Clone(x)
	gs := active.expShift(got, m)
	ws := generic.expShift(want, m)
	for i := range x {
		if !sameBits(got[i], want[i]) {
			t.Fatalf("%s: x[%d]=%g m=%g: %s gives %g (%#x), generic %g (%#x)", msg, i, x[i], m,
				active.name, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
	if math.Float64bits(gs) != math.Float64bits(ws) && !(math.IsNaN(gs) && math.IsNaN(ws)) {
		t.Fatalf("%s: sum %v (%s), generic %v", msg, gs, active.name, ws)
	}
}

// TestExpShift checks ExpShift at awkward lengths and offsets (the
// kernel's eight-value blocks and the tail): the same bits in the active
// set and the generic one, each value within ExpRelErr of math.Exp of the
// rounded difference, the sum within ExpRelErr of the exact sum of those,
// and nothing written past len(x).
func TestExpShift(t *testing.T) {
	t.Parallel()
	r := newRand(41)
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 129, 515} {
		for _, off := range []int{0, 1, 3} {
			buf := make([]float32, n+off+4)
			x := buf[off : off+n]
			m := float32(math.Inf(-1))
			for i := range x {
				x[i] = (r.Float32() - 0.5) * 40
				m = max(m, x[i])
			}
			if n == 0 {
				m = 0
			}
			requireExpShiftTwins(t, x, m, fmt.Sprintf("n=%d off=%d", n, off))
			for i := range buf {
				if i < off || i >= off+n {
					buf[i] = 7
				}
			}
			in := slices.Clone(x)
			sum := ExpShift(x, m)
			var want float64
			for i, v := range in {
				e := math.Exp(float64(v - m))
				want += e
				require.InEpsilon(t, e, float64(x[i]), ExpRelErr, "n=%d off=%d x=%g m=%g", n, off, v, m)
			}
			if n > 0 {
				require.InEpsilon(t, want, sum, ExpRelErr, "n=%d off=%d sum", n, off)
				require.GreaterOrEqual(t, sum, 1.0, "the largest value's exp is 1")
			} else {
				require.Zero(t, sum)
			}
			for i := range buf {
				if i < off || i >= off+n {
					require.Equal(t, float32(7), buf[i], "n=%d off=%d: index %d outside x", n, off, i)
				}
			}
		}
	}
}

// TestExpShiftRange sweeps the difference over the whole clamped range in
// small steps (every value within ExpRelErr of math.Exp, the same bits in
// both sets) and checks the edges: exp(0) is exactly 1, differences below
// −87 give exp(−87) (−Inf included), above 88 exp(88) (+Inf included),
// and a NaN stays NaN.
func TestExpShiftRange(t *testing.T) {
	t.Parallel()
	var x []float32
	for v := float32(-87); v <= 88; v += 0.00731 {
		x = append(x, v)
	}
	in := slices.Clone(x)
	requireExpShiftTwins(t, x, 0, "sweep")
	ExpShift(x, 0)
	worst := 0.0
	for i, v := range in {
		e := math.Exp(float64(v))
		worst = max(worst, math.Abs(float64(x[i])-e)/e)
	}
	require.LessOrEqual(t, worst, ExpRelErr, "largest relative error over [-87, 88]")
	t.Logf("largest relative error over [-87, 88]: %.3g", worst)

	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	edges := []float32{0, -90, -inf, 100, inf, nan, 2, 0, -1e30, 1e30, nan, 0, -0.5, 3, nan, -inf, 5}
	requireExpShiftTwins(t, edges, 2, "edges")
	got := slices.Clone(edges)
	ExpShift(got, 2)
	lo, hi := float32(math.Exp(-87)), float32(math.Exp(88))
	for i, v := range edges {
		switch d := v - 2; {
		case v != v:
			require.True(t, got[i] != got[i], "NaN at %d gives %g", i, got[i])
		case d == 0:
			require.Equal(t, float32(1), got[i])
		case d < -87:
			require.InEpsilon(t, lo, got[i], ExpRelErr, "x=%g", v)
		case d > 88:
			require.InEpsilon(t, hi, got[i], ExpRelErr, "x=%g", v)
		}
	}
}

// FuzzExpShift compares the active set's ExpShift with the generic one,
// bit for bit, on any floats (NaN and infinities included) and any shift.
// Under -tags noasm it compares the generic code with itself and only
// checks for panics.
func FuzzExpShift(f *testing.F) {
	f.Add(bytesOf(1, 2, 3, 4, 5, 6, 7, 8, 9), float32(9))
	f.Add(bytesOf(-1, float32(math.Inf(-1)), 0.5, float32(math.NaN()), 1e30, -1e30, 0, 88, 87), float32(0.5))
	f.Add(bytesOf(0, 0, 0), float32(math.Inf(1)))
	f.Fuzz(func(t *testing.T, b []byte, m float32) {
		requireExpShiftTwins(t, floatsFrom(b), m, "fuzz")
	})
}

// BenchmarkExpShift compares ExpShift with the loop it replaces in
// attention (float32(math.Exp(float64(x − m))), summed in float64) on a
// softmax row of 200 scores (a V4 head's window and entries) and of 4096.
func BenchmarkExpShift(b *testing.B) {
	for _, n := range []int{200, 4096} {
		r := newRand(42)
		src := make([]float32, n)
		m := float32(math.Inf(-1))
		for i := range src {
			src[i] = (r.Float32() - 0.5) * 20
			m = max(m, src[i])
		}
		x := make([]float32, n)
		var sink float64
		b.Run(fmt.Sprintf("n=%d/ExpShift", n), func(b *testing.B) {
			for b.Loop() {
				copy(x, src)
				sink += ExpShift(x, m)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gexp/s")
		})
		b.Run(fmt.Sprintf("n=%d/mathExp", n), func(b *testing.B) {
			for b.Loop() {
				copy(x, src)
				var sum float64
				for j, v := range x {
					e := float32(math.Exp(float64(v - m)))
					x[j] = e
					sum += float64(e)
				}
				sink += sum
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gexp/s")
		})
		_ = sink
	}
}

// TestMaxF32 checks MaxF32 at awkward lengths and offsets against Go's
// max folded over the values (equal as floats: −0 and +0 may differ), the
// same bits in the active set and the generic one, NaN wherever one value
// is NaN, and −Inf for nothing.
func TestMaxF32(t *testing.T) {
	t.Parallel()
	r := newRand(43)
	require.True(t, math.IsInf(float64(MaxF32(nil)), -1))
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 129, 515} {
		for _, off := range []int{0, 1, 3} {
			x := make([]float32, n+off)[off:]
			for i := range x {
				x[i] = (r.Float32() - 0.5) * 40
			}
			if n > 2 {
				x[r.IntN(n)] = float32(math.Inf(-1))
			}
			for _, at := range []int{-1, 0, n - 1, n / 2} {
				if at >= 0 {
					x[at] = 30 + float32(at)
				}
				want := float32(math.Inf(-1))
				for _, v := range x {
					want = max(want, v)
				}
				got := MaxF32(x)
				require.Equal(t, want, got, "n=%d off=%d at=%d", n, off, at)
				require.Equal(t, math.Float32bits(generic.maxF32(x)), math.Float32bits(got), "n=%d off=%d: twins", n, off)
			}
			at := r.IntN(n)
			v := x[at]
			x[at] = float32(math.NaN())
			require.True(t, math.IsNaN(float64(MaxF32(x))), "n=%d: NaN at %d", n, at)
			require.True(t, math.IsNaN(float64(generic.maxF32(x))), "n=%d: generic NaN at %d", n, at)
			x[at] = v
		}
	}
	require.Equal(t, float32(0), MaxF32([]float32{-1, float32(math.Copysign(0, -1)), 0, -3, -2, -5, -6, -7, -8}))
}

// FuzzMaxF32 compares the active set's MaxF32 with the generic one, bit
// for bit, and with Go's max folded over the values, on any floats.
func FuzzMaxF32(f *testing.F) {
	f.Add(bytesOf(1, 2, 3, 4, 5, 6, 7, 8, 9))
	f.Add(bytesOf(-1, float32(math.Inf(-1)), 0.5, float32(math.NaN()), 1e30, -1e30, 0, 88, 87))
	f.Fuzz(func(t *testing.T, b []byte) {
		x := floatsFrom(b)
		got := MaxF32(x)
		gen := generic.maxF32(x)
		if !sameBits(got, gen) {
			t.Fatalf("%v: %g (%s), generic %g", x, got, active.name, gen)
		}
		want := float32(math.Inf(-1))
		for _, v := range x {
			want = max(want, v)
		}
		if !(got == want || (got != got && want != want)) {
			t.Fatalf("%v: %g, Go's max %g", x, got, want)
		}
	})
}

// BenchmarkMaxF32 compares MaxF32 with Go's max folded over a softmax row
// of 200 scores, the loop it replaces in attention.
func BenchmarkMaxF32(b *testing.B) {
	r := newRand(44)
	x := make([]float32, 200)
	for i := range x {
		x[i] = (r.Float32() - 0.5) * 20
	}
	var sink float32
	b.Run("MaxF32", func(b *testing.B) {
		for b.Loop() {
			sink += MaxF32(x)
		}
	})
	b.Run("goMax", func(b *testing.B) {
		for b.Loop() {
			m := float32(math.Inf(-1))
			for _, v := range x {
				m = max(m, v)
			}
			sink += m
		}
	})
	_ = sink
}

// TestExpShiftMaxF32Allocate: attention calls both per head, so neither
// may allocate (the lanes stay on the stack).
func TestExpShiftMaxF32Allocate(t *testing.T) {
	x := make([]float32, 203)
	require.Zero(t, testing.AllocsPerRun(100, func() { ExpShift(x, MaxF32(x)) }))
}

// TestTileMax checks TileMax at lengths with and without a short last
// tile against each tile's largest value by Go's max, the kernel against
// its generic twin bit for bit, and the finite answer with a NaN, +Inf or
// −Inf at the first, a middle and the last position.
func TestTileMax(t *testing.T) {
	t.Parallel()
	r := newRand(44)
	for _, n := range []int{0, 1, 63, 64, 65, 128, 200, 64 * 37, 64*37 + 5} {
		for _, off := range []int{0, 1} {
			x := make([]float32, n+off)[off:]
			for i := range x {
				x[i] = (r.Float32() - 0.5) * 40
			}
			if n > 2 {
				x[r.IntN(n)] = float32(math.Inf(-1)) // not finite: checked below
				x[r.IntN(n)] = 35                    // a tile's largest
			}
			tiles := (n + Tile - 1) / Tile
			got, gen := make([]float32, tiles), make([]float32, tiles)
			TileMax(x, got)
			full := n / Tile
			generic.tileMax64(x[:full*Tile], gen[:full])
			for j := range tiles {
				want := float32(math.Inf(-1))
				for _, v := range x[j*Tile : min((j+1)*Tile, n)] {
					want = max(want, v)
				}
				require.Equal(t, want, got[j], "n=%d off=%d tile %d", n, off, j)
				if j < full {
					require.Equal(t, math.Float32bits(gen[j]), math.Float32bits(got[j]), "n=%d off=%d tile %d: twins", n, off, j)
				}
			}
			for i := range x {
				if math.IsInf(float64(x[i]), -1) {
					x[i] = 0
				}
			}
			require.True(t, TileMax(x, got), "n=%d: all finite", n)
			if n == 0 {
				continue
			}
			for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
				for _, at := range []int{0, n / 2, n - 1} {
					v := x[at]
					x[at] = bad
					require.False(t, TileMax(x, got), "n=%d: %v at %d", n, bad, at)
					if full > 0 && at < full*Tile {
						require.False(t, generic.tileMax64(x[:full*Tile], gen[:full]), "n=%d: generic, %v at %d", n, bad, at)
					}
					x[at] = v
				}
			}
		}
	}
	require.Panics(t, func() { TileMax(make([]float32, 65), make([]float32, 1)) })
}

// BenchmarkTileMax takes the tile maxima of a row of DeepSeek's
// vocabulary, hot in cache (as Logits takes them, right after a piece),
// with the active kernel and the generic code.
func BenchmarkTileMax(b *testing.B) {
	x := benchFloats(129280, 1)
	out := make([]float32, len(x)/Tile)
	for _, impl := range []struct {
		name string
		fn   func(x, out []float32) bool
	}{{"active", active.tileMax64}, {"generic", generic.tileMax64}} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				impl.fn(x, out)
			}
		})
	}
}
