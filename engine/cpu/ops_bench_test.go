package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ulan-ai/ulan/engine"
)

// The small per-token ops of the demo V4 model's decode step, for one and
// for eight tokens at two threads: their arithmetic is a few microseconds,
// so what they cost beyond that is overhead.

func BenchmarkRMSNorm(b *testing.B) {
	for _, shape := range [][]int{{1, 512}, {8, 128}, {8, 512}, {8, 8, 128}} {
		b.Run(fmt.Sprint(shape), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			x := randn(r, numel(shape))
			n := shape[len(shape)-1]
			w := randn(r, n)
			bk := New(WithThreads(2))
			for b.Loop() {
				c := bk.NewContext()
				y := c.RMSNorm(c.Input(x, shape...), c.Input(w, n), 1e-6)
				if err := c.Compute(y); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// benchBatch is a batch of T tokens at positions far apart.
func benchBatch(T int) *engine.Batch {
	bt := &engine.Batch{Tokens: make([]int32, T), Positions: make([]int32, T)}
	for t := range T {
		bt.Positions[t] = int32(1000*t + 17)
	}
	return bt
}

// BenchmarkRope does one layer's rotations of the demo V4 model (YaRN,
// 64 channels rotating) in a fresh context: the queries [T, 8, 128], the
// keys [T, 128], the outputs back [T, 8, 128] and the indexer's queries
// [T, 8, 64], the angles computed once.
func BenchmarkRope(b *testing.B) {
	spec := engine.RopeSpec{Dims: 64, Base: 160000, Factor: 16, OrigContext: 65536, BetaFast: 32, BetaSlow: 1}
	inv := spec
	inv.Inverse = true
	for _, T := range []int{1, 8} {
		b.Run(fmt.Sprintf("tokens=%d", T), func(b *testing.B) {
			r := rand.New(rand.NewPCG(3, 4))
			q := randn(r, T*8*128)
			k := randn(r, T*128)
			bt := benchBatch(T)
			bk := New(WithThreads(2))
			for b.Loop() {
				c := bk.NewContext()
				y := c.Rope(c.Input(q, T, 8, 128), bt, spec)
				z := c.Rope(c.Input(k, T, 128), bt, spec)
				o := c.Rope(c.Input(q, T, 8, 128), bt, inv)
				qi := c.Rope(c.Input(q[:T*8*64], T, 8, 64), bt, spec)
				if err := c.Compute(y, z, o, qi); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkHyper runs HyperPre, HyperPost and HyperHead on the demo V4
// model's 4 streams of 128 (20 Sinkhorn iterations).
func BenchmarkHyper(b *testing.B) {
	const hc, n = 4, 128
	spec := engine.HyperSpec{Streams: hc, Iters: 20, Eps: 1e-6}
	nmix := (2 + hc) * hc
	for _, T := range []int{1, 8} {
		r := rand.New(rand.NewPCG(5, 6))
		x := randn(r, T*hc*n)
		mix := randn(r, T*nmix)
		scale := randn(r, 3)
		base := randn(r, nmix)
		y := randn(r, T*n)
		bk := New(WithThreads(2))
		b.Run(fmt.Sprintf("pre/tokens=%d", T), func(b *testing.B) {
			for b.Loop() {
				c := bk.NewContext()
				in, post, comb := c.HyperPre(c.Input(x, T, hc, n), c.Input(mix, T, nmix), c.Input(scale, 3), c.Input(base, nmix), spec)
				if err := c.Compute(in, post, comb); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
		b.Run(fmt.Sprintf("post/tokens=%d", T), func(b *testing.B) {
			c0 := bk.NewContext()
			_, post, comb := c0.HyperPre(c0.Input(x, T, hc, n), c0.Input(mix, T, nmix), c0.Input(scale, 3), c0.Input(base, nmix), spec)
			for b.Loop() {
				c := bk.NewContext()
				out := c.HyperPost(c.Input(y, T, n), c.Input(x, T, hc, n), post, comb)
				if err := c.Compute(out); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
		b.Run(fmt.Sprintf("head/tokens=%d", T), func(b *testing.B) {
			for b.Loop() {
				c := bk.NewContext()
				out := c.HyperHead(c.Input(x, T, hc, n), c.Input(mix[:T*hc], T, hc), c.Input(scale[:1], 1), c.Input(base[:hc], hc), spec)
				if err := c.Compute(out); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

func BenchmarkSwiGLU(b *testing.B) {
	const T, F = 8, 64
	r := rand.New(rand.NewPCG(7, 8))
	g, u := randn(r, T*F), randn(r, T*F)
	bk := New(WithThreads(2))
	for b.Loop() {
		c := bk.NewContext()
		y := c.SwiGLU(c.Input(g, T, F), c.Input(u, T, F), 10)
		if err := c.Compute(y); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkContext is a context made and closed with one small op (a
// reshape), the floor under the benchmarks above.
func BenchmarkContext(b *testing.B) {
	bk := New(WithThreads(2))
	x := make([]float32, 8)
	for b.Loop() {
		c := bk.NewContext()
		y := c.Reshape(c.Input(x, 8), 2, 4)
		if err := c.Compute(y); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
