package expsum

import (
	"math"
	"math/rand/v2"
	"testing"
)

// special are values a logits row may hold after the host's stages, and
// ones it must report: zeros of both signs, denormals, the extremes, −Inf,
// +Inf and NaN.
var special = []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 1e-39, math.MaxFloat32, -math.MaxFloat32,
	float32(math.Inf(-1)), float32(math.Inf(1)), float32(math.NaN())}

// specialRow is a row of normals with some special values sprinkled in;
// bad says whether +Inf and NaN may be among them.
func specialRow(r *rand.Rand, n int, bad bool) []float32 {
	x := row(r, n, 8)
	for range n / 10 {
		v := special[r.IntN(len(special))]
		if !bad && (v != v || math.IsInf(float64(v), 1)) {
			continue
		}
		x[r.IntN(n)] = v
	}
	return x
}

// scanRef is Scan's definition, written plainly.
func scanRef(x []float32) (float32, int, bool) {
	mx, finite, ok := float32(math.Inf(-1)), 0, true
	for _, v := range x {
		switch {
		case v != v || math.IsInf(float64(v), 1):
			ok = false
		case math.IsInf(float64(v), -1):
		default:
			finite++
			mx = max(mx, v)
		}
	}
	return mx + 0, finite, ok
}

// TestScanKernelMatchesGo: the kernel's lanes hold the Go code's bits, on
// lengths around the vector width and offsets that are not aligned; Scan
// agrees with its plain definition.
func TestScanKernelMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 24, 63, 64, 1000, 129280} {
		for _, off := range []int{0, 1, 3} {
			for _, bad := range []bool{false, true} {
				x := specialRow(r, n+off, bad)[off:]
				k := len(x) &^ 7
				var want, got scanLanes
				for i := range want.max {
					want.max[i] = float32(math.Inf(-1))
					got.max[i] = want.max[i]
				}
				scan8Go(x[:k], &want)
				scan8(x[:k], &got)
				for i := range want.max {
					if math.Float32bits(want.max[i]) != math.Float32bits(got.max[i]) || want.finite[i] != got.finite[i] || want.negInf[i] != got.negInf[i] {
						t.Fatalf("n %d, offset %d: lane %d: kernel %v, Go %v", n, off, i, got, want)
					}
				}
				mx, finite, ok := Scan(x)
				rmx, rfinite, rok := scanRef(x)
				if math.Float32bits(mx) != math.Float32bits(rmx) || finite != rfinite || ok != rok {
					t.Fatalf("n %d, offset %d: Scan %v %d %v, want %v %d %v", n, off, mx, finite, ok, rmx, rfinite, rok)
				}
			}
		}
	}
}

func TestScanZerosAndEmpty(t *testing.T) {
	neg0 := float32(math.Copysign(0, -1))
	for _, x := range [][]float32{{neg0}, {neg0, 0}, {0, neg0}, {neg0, neg0, neg0, neg0, neg0, neg0, neg0, neg0, 0, neg0}} {
		mx, finite, ok := Scan(x)
		if math.Float32bits(mx) != 0 || finite != len(x) || !ok {
			t.Fatalf("%v: %v %d %v, want +0", x, mx, finite, ok)
		}
	}
	mx, finite, ok := Scan(nil)
	if !math.IsInf(float64(mx), -1) || finite != 0 || !ok {
		t.Fatalf("empty: %v %d %v", mx, finite, ok)
	}
}

// TestDivideMatchesGo: the kernel's quotients are Go's, bit for bit.
func TestDivideMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 1, 7, 8, 9, 17, 1000, 129280} {
		for _, tt := range []float32{1, 0.7, 1.3, 1e-3, 3e-39, 1e30} {
			x := specialRow(r, n+1, true)[1:]
			want := append([]float32(nil), x...)
			div8Go(want, tt)
			Divide(x, tt)
			for i := range x {
				if math.Float32bits(x[i]) != math.Float32bits(want[i]) && !(x[i] != x[i] && want[i] != want[i]) {
					t.Fatalf("n %d, t %v, element %d: %v, want %v", n, tt, i, x[i], want[i])
				}
			}
		}
	}
}

// FuzzScan compares the kernel with the Go code on fuzzed values.
func FuzzScan(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0xff, 0, 0, 0xc0, 0x7f, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		x := make([]float32, len(b)/4)
		for i := range x {
			x[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
		}
		mx, finite, ok := Scan(x)
		rmx, rfinite, rok := scanRef(x)
		if math.Float32bits(mx) != math.Float32bits(rmx) || finite != rfinite || ok != rok {
			t.Fatalf("%v: Scan %v %d %v, want %v %d %v", x, mx, finite, ok, rmx, rfinite, rok)
		}
	})
}

func BenchmarkScan(b *testing.B) {
	x := row(rand.New(rand.NewPCG(1, 1)), 129280, 3)
	b.SetBytes(4 * int64(len(x)))
	for b.Loop() {
		Scan(x)
	}
}

func BenchmarkScanGo(b *testing.B) {
	x := row(rand.New(rand.NewPCG(1, 1)), 129280, 3)
	b.SetBytes(4 * int64(len(x)))
	var l scanLanes
	for b.Loop() {
		scan8Go(x, &l)
	}
}

func BenchmarkDivide(b *testing.B) {
	x := row(rand.New(rand.NewPCG(1, 1)), 129280, 3)
	b.SetBytes(4 * int64(len(x)))
	for b.Loop() {
		Divide(x, 1)
	}
}

func BenchmarkDivideGo(b *testing.B) {
	x := row(rand.New(rand.NewPCG(1, 1)), 129280, 3)
	b.SetBytes(4 * int64(len(x)))
	for b.Loop() {
		div8Go(x, 1)
	}
}

// TestFirstAboveMatchesGo: the kernel finds the Go code's group, on rows
// where the values above the threshold are rare, common, absent, NaN or at
// the tail.
func TestFirstAboveMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 1000, 129280} {
		x := specialRow(r, n, true)
		for _, th := range []float32{-1, 5, 20, 30, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
			for from := 0; from < n; from += 1 + n/7 {
				k := (len(x) - from) &^ 7
				if want, got := firstAbove8Go(x[from:from+k], th), firstAbove8(x[from:from+k], th); want != got {
					t.Fatalf("n %d from %d t %v: kernel %d, Go %d", n, from, th, got, want)
				}
				i := FirstAbove(x[from:], th)
				ref := len(x) - from
				for j, v := range x[from:] {
					if v > th {
						ref = j &^ 7
						break
					}
				}
				if i != ref {
					t.Fatalf("n %d from %d t %v: FirstAbove %d, want %d", n, from, th, i, ref)
				}
			}
		}
	}
}

// TestScannerAddBelowIsScan: a row scanned by AddBelow and Add, group by
// group as a top-k pass does, gives Scan's result bit for bit, and the
// kernel stops where the Go code stops with the same lanes.
func TestScannerAddBelowIsScan(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 1000, 129280} {
		x := specialRow(r, n, true)
		wmx, wfinite, wok := Scan(x)
		for _, th := range []float32{-1, 5, 20, 30, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
			var s Scanner
			s.Reset()
			for i := 0; ; {
				i += s.AddBelow(x[i:], th)
				if len(x)-i < 8 {
					s.Add(x[i:])
					break
				}
				s.Add(x[i : i+8])
				i += 8
			}
			mx, finite, ok := s.Result()
			if math.Float32bits(mx) != math.Float32bits(wmx) || finite != wfinite || ok != wok {
				t.Fatalf("n %d t %v: %v %d %v, want Scan's %v %d %v", n, th, mx, finite, ok, wmx, wfinite, wok)
			}
			k := len(x) &^ 7
			var lk, lg scanLanes
			if gk, gg := scanAbove8(x[:k], th, &lk), scanAbove8Go(x[:k], th, &lg); gk != gg || lk != lg {
				t.Fatalf("n %d t %v: kernel stops at %d, Go at %d (lanes equal: %v)", n, th, gk, gg, lk == lg)
			}
		}
	}
}
