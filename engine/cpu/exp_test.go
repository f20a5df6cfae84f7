package cpu

import (
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
)

// TestExp32 checks exp32 against float32(math.Exp(float64(x))) on a
// million float32 bit patterns spread over all of them, on the special
// values and on the edges of its fast range; with ULAN_EXP32_ALL=1 on
// every float32 (a minute on two cores).
func TestExp32(t *testing.T) {
	t.Parallel()
	check := func(x float32) bool {
		want := float32(math.Exp(float64(x)))
		got := exp32(x)
		return math.Float32bits(got) == math.Float32bits(want) || (want != want && got != got)
	}
	for _, x := range []float32{0, float32(math.Copysign(0, -1)), 1, -1, -87, 88, 87.99999, -86.99999, 88.7, -103,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.SmallestNonzeroFloat32, math.MaxFloat32, 1e-30, -1e-30} {
		if !check(x) {
			t.Errorf("exp32(%g) = %g, want %g", x, exp32(x), float32(math.Exp(float64(x))))
		}
	}
	stride := uint64(4099)
	if os.Getenv("ULAN_EXP32_ALL") == "1" {
		stride = 1
	}
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	bad := make([]uint64, workers)
	for w := range workers {
		wg.Go(func() {
			for b := uint64(w) * stride; b < 1<<32; b += uint64(workers) * stride {
				if !check(math.Float32frombits(uint32(b))) {
					bad[w]++
					if bad[w] < 5 {
						x := math.Float32frombits(uint32(b))
						t.Errorf("exp32(%g) = %g, want %g", x, exp32(x), float32(math.Exp(float64(x))))
					}
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkExp32 compares exp32 with the expression it replaces over the
// range a decode step's softmaxes and SiLUs see.
func BenchmarkExp32(b *testing.B) {
	xs := make([]float32, 4096)
	for i := range xs {
		xs[i] = float32(i-2048) / 128
	}
	var sink float32
	b.Run("math.Exp", func(b *testing.B) {
		for b.Loop() {
			for _, x := range xs {
				sink += float32(math.Exp(float64(x)))
			}
		}
	})
	b.Run("exp32", func(b *testing.B) {
		for b.Loop() {
			for _, x := range xs {
				sink += exp32(x)
			}
		}
	})
	_ = sink
}

func BenchmarkExp32Slice(b *testing.B) {
	xs := make([]float32, 4096)
	ys := make([]float32, 4096)
	for i := range xs {
		xs[i] = float32(i-2048) / 128
	}
	b.Run("math.Exp", func(b *testing.B) {
		for b.Loop() {
			for i, x := range xs {
				ys[i] = float32(math.Exp(float64(x)))
			}
		}
	})
	b.Run("exp32", func(b *testing.B) {
		for b.Loop() {
			for i, x := range xs {
				ys[i] = exp32(x)
			}
		}
	})
}

func BenchmarkSwiGLURows(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	g, u := randn(r, 3072), randn(r, 3072)
	for i := range g {
		g[i] *= 8
	}
	dst := make([]float32, len(g))
	b.Run("swiglu", func(b *testing.B) {
		for b.Loop() {
			for i := range dst {
				dst[i] = swiglu(g[i], u[i], 10)
			}
		}
	})
	b.Run("swigluRows", func(b *testing.B) {
		for b.Loop() {
			copy(dst, g)
			swigluRows(dst, u, 10)
		}
	})
}

func TestSwiGLURows(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	g, u := randn(r, 100000), randn(r, 100000)
	for i := range g {
		g[i] *= 30
	}
	for _, clamp := range []float32{0, 10} {
		got := append([]float32(nil), g...)
		swigluRows(got, u, clamp)
		for i := range g {
			if want := swiglu(g[i], u[i], clamp); math.Float32bits(want) != math.Float32bits(got[i]) {
				t.Fatalf("swiglu(%g, %g, %g) = %g, swigluRows %g", g[i], u[i], clamp, want, got[i])
			}
		}
	}
}
