package expsum

import (
	"math"
	"math/rand/v2"
	"testing"
)

func row(r *rand.Rand, n int, spread float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * spread)
		if r.IntN(50) == 0 {
			x[i] = float32(math.Inf(-1))
		}
	}
	return x
}

func maxOf(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// TestKernelMatchesGo: the kernel gives the Go code's bits, on lengths
// that are not multiples of eight and at offsets that are not aligned.
func TestKernelMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 1000, 129280} {
		for _, off := range []int{0, 1, 3} {
			x := row(r, n+off, 8)[off:]
			m := maxOf(x)
			var want, got [8]float64
			k := len(x) &^ 7
			sum8Go(x[:k], m, &want)
			sum8(x[:k], m, &got)
			if want != got {
				t.Fatalf("n %d, offset %d: kernel %v, Go %v", n, off, got, want)
			}
		}
	}
}

// TestSumIsAccurate against float64 math.Exp.
func TestSumIsAccurate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, spread := range []float64{0.01, 1, 5, 30} {
		x := row(r, 129280, spread)
		m := maxOf(x)
		var ref float64
		for _, v := range x {
			ref += math.Exp(float64(v) - float64(m))
		}
		got := Sum(x, m)
		if rel := math.Abs(got-ref) / ref; rel > 3e-7 {
			t.Fatalf("spread %v: %v against %v (relative %g)", spread, got, ref, rel)
		}
	}
	for _, v := range []float32{0, -1e-3, -0.5, -1, -10, -50, -86, -87, -100} {
		got, want := float64(exp(v)), math.Exp(float64(v))
		if v < floor {
			want = math.Exp(float64(floor))
		}
		if rel := math.Abs(got-want) / want; rel > 2e-7 {
			t.Fatalf("exp(%v) = %v, want %v (relative %g)", v, got, want, rel)
		}
	}
}

func BenchmarkSum(b *testing.B) {
	x := row(rand.New(rand.NewPCG(1, 1)), 129280, 3)
	m := maxOf(x)
	for b.Loop() {
		Sum(x, m)
	}
}

func BenchmarkSumGo(b *testing.B) {
	x := row(rand.New(rand.NewPCG(1, 1)), 129280, 3)
	m := maxOf(x)
	var lanes [8]float64
	for b.Loop() {
		sum8Go(x, m, &lanes)
	}
}

func TestExpsMatchesGoAndSum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 3, 8, 17, 1000, 129280} {
		x := row(r, n+1, 8)[1:]
		m := maxOf(x)
		got := make([]float32, n)
		Exps(x, m, got)
		for i, v := range x {
			if want := exp(v - m); got[i] != want {
				t.Fatalf("n %d, element %d: %v, want %v", n, i, got[i], want)
			}
		}
	}
}
