package kernel

import (
	"fmt"
	"testing"
)

// Benchmarks report the weight bytes streamed per op (b.SetBytes), so MB/s
// compares with memory bandwidth: in decode, activations stay in cache and
// the weights stream from DRAM. Each runs the dispatched implementation and,
// where that is not already generic, the generic twin in the same run.
// Rows are DeepSeek's widths (hidden 7168, V2-Lite's 2048): one row sits in
// L1, so the Dot benchmarks measure compute; MatVec streams a matrix larger
// than the last-level cache, as decode does.

var benchLens = []int{2048, 7168}

var sinkF32 float32

// benchImpls runs fn as a sub-benchmark per implementation set: the
// active one, the assembly sets it supersedes (avx2 under avx512vnni) and
// the generic twins.
func benchImpls(b *testing.B, fn func(b *testing.B)) {
	b.Run(Impl(), fn)
	for _, s := range asmFallbacks() {
		b.Run(s.name, func(b *testing.B) {
			saved := active
			active = s
			defer func() { active = saved }()
			fn(b)
		})
	}
	if Impl() != "generic" {
		b.Run("generic", func(b *testing.B) {
			defer ForceGeneric()()
			fn(b)
		})
	}
}

// reportPerVector adds ns/vec for the x4 kernels: the cost of one
// activation vector's dot product when four share the weight row.
func reportPerVector(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/4, "ns/vec")
}

func benchFloats(n int, seed uint64) []float32 {
	r := newRand(seed)
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(r.NormFloat64())
	}
	return f
}

func benchWeights[W comparable](k floatKernel[W], n int) []W {
	w := make([]W, n)
	for i, f := range benchFloats(n, 9) {
		w[i] = k.toW(f * 0.02)
	}
	return w
}

func benchQ8(n int, seed uint64) []byte {
	q := make([]byte, n/32*34)
	QuantizeQ8_0(benchFloats(n, seed), q)
	return q
}

func BenchmarkDot(b *testing.B) {
	b.Run("F32", func(b *testing.B) { benchDotFloat(b, f32Kernel, 4) })
	b.Run("F16", func(b *testing.B) { benchDotFloat(b, f16Kernel, 2) })
	b.Run("BF16", func(b *testing.B) { benchDotFloat(b, bf16Kernel, 2) })
	b.Run("Q8_0", func(b *testing.B) {
		for _, n := range benchLens {
			w, x := benchQ8(n, 1), benchQ8(n, 2)
			b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
				benchImpls(b, func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						sinkF32 += DotQ8_0(w, x, n/32)
					}
					reportGMACs(b, n)
				})
			})
		}
	})
}

// BenchmarkDotKQuant: the block formats' dots, a weight row against a row of
// activations in the format's activation type.
func BenchmarkDotKQuant(b *testing.B) {
	for _, f := range []struct {
		name        string
		block, size int
		quantize    func([]float32, []byte)
		dot         func(w, x []byte, nBlocks int) float32
		xSize       int
		actQuantize func([]float32, []byte)
	}{
		{"Q4_0", 32, Q4_0BlockSize, QuantizeQ4_0, DotQ4_0, Q8_0BlockSize, QuantizeQ8_0},
		{"Q4_1", 32, Q4_1BlockSize, QuantizeQ4_1, DotQ4_1, Q8_1BlockSize, QuantizeQ8_1},
		{"Q5_0", 32, Q5_0BlockSize, QuantizeQ5_0, DotQ5_0, Q8_0BlockSize, QuantizeQ8_0},
		{"Q5_1", 32, Q5_1BlockSize, QuantizeQ5_1, DotQ5_1, Q8_1BlockSize, QuantizeQ8_1},
		{"Q4_K", 256, Q4_KBlockSize, QuantizeQ4_K, DotQ4_K, Q8_KBlockSize, QuantizeQ8_K},
		{"Q5_K", 256, Q5_KBlockSize, QuantizeQ5_K, DotQ5_K, Q8_KBlockSize, QuantizeQ8_K},
		{"Q6_K", 256, Q6_KBlockSize, QuantizeQ6_K, DotQ6_K, Q8_KBlockSize, QuantizeQ8_K},
	} {
		b.Run(f.name, func(b *testing.B) {
			for _, n := range benchLens {
				nb := n / f.block
				w := make([]byte, nb*f.size)
				f.quantize(benchFloats(n, 1), w)
				x := make([]byte, nb*f.xSize)
				f.actQuantize(benchFloats(n, 2), x)
				b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
					benchImpls(b, func(b *testing.B) {
						b.SetBytes(int64(len(w)))
						for b.Loop() {
							sinkF32 += f.dot(w, x, nb)
						}
						reportGMACs(b, n)
					})
				})
			}
		})
	}
}

// BenchmarkDotKQuantx4: the four-row dots, a weight row against four rows
// of Q8_K activations; ns/vec is per activation row, to set against
// BenchmarkDotKQuant's ns/op.
func BenchmarkDotKQuantx4(b *testing.B) {
	for _, f := range []struct {
		name     string
		size     int
		quantize func([]float32, []byte)
		x4       func(w, x []byte, xStride, nBlocks int, out *[4]float32)
	}{
		{"Q4_K", Q4_KBlockSize, QuantizeQ4_K, DotQ4_Kx4},
		{"Q5_K", Q5_KBlockSize, QuantizeQ5_K, DotQ5_Kx4},
		{"Q6_K", Q6_KBlockSize, QuantizeQ6_K, DotQ6_Kx4},
	} {
		b.Run(f.name, func(b *testing.B) {
			for _, n := range benchLens {
				nb := n / 256
				w := make([]byte, nb*f.size)
				f.quantize(benchFloats(n, 1), w)
				xRow := nb * Q8_KBlockSize
				x := make([]byte, 4*xRow)
				for t := range 4 {
					QuantizeQ8_K(benchFloats(n, uint64(2+t)), x[t*xRow:(t+1)*xRow])
				}
				var out [4]float32
				b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
					benchImpls(b, func(b *testing.B) {
						b.SetBytes(int64(len(w)))
						for b.Loop() {
							f.x4(w, x, xRow, nb, &out)
						}
						sinkF32 += out[0]
						reportGMACs(b, 4*n)
						b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(4*b.N), "ns/vec")
					})
				})
			}
		})
	}
}

func benchDotFloat[W comparable](b *testing.B, k floatKernel[W], size int) {
	for _, n := range benchLens {
		w, x := benchWeights(k, n), benchFloats(n, 2)
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(n * size))
				for b.Loop() {
					sinkF32 += k.fast(w, x)
				}
			})
		})
	}
}

func BenchmarkDotx4(b *testing.B) {
	b.Run("F32", func(b *testing.B) { benchDotx4Float(b, f32Kernel, 4) })
	b.Run("F16", func(b *testing.B) { benchDotx4Float(b, f16Kernel, 2) })
	b.Run("BF16", func(b *testing.B) { benchDotx4Float(b, bf16Kernel, 2) })
	b.Run("Q8_0", func(b *testing.B) {
		for _, n := range benchLens {
			w := benchQ8(n, 1)
			var p Q8_0x4
			p.Pack(benchQ8(n, 2), benchQ8(n, 3), benchQ8(n, 4), benchQ8(n, 5), n/32)
			b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
				benchImpls(b, func(b *testing.B) {
					out := make([]float32, 4)
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						MulQ8_0x4(w, 1, &p, out)
					}
					sinkF32 += out[0]
					reportPerVector(b)
					reportGMACs(b, 4*n)
				})
			})
		}
	})
}

// reportGMACs adds GMAC/s, for macs multiply-adds per op.
func reportGMACs(b *testing.B, macs int) {
	b.ReportMetric(float64(macs)*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "GMAC/s")
}

// BenchmarkMulQ8_0x4 is prefill's inner loop: a block of weight rows
// (16 KiB and more, in L1 and L2) against four packed activation vectors,
// in the row-tiled kernel, (x8) against eight in one pass, and (x2) against
// two, as batched decode does for an expert that two tokens chose. GMAC/s compares with DotQ8_0's
// (BenchmarkDot reports n MACs per op there as GMAC/s too).
func BenchmarkMulQ8_0x4(b *testing.B) {
	for _, n := range benchLens {
		rowBytes := n / 32 * 34
		rows := 16
		w := make([]byte, rows*rowBytes)
		for r := range rows {
			copy(w[r*rowBytes:], benchQ8(n, uint64(10+r)))
		}
		var p Q8_0x4
		p.Pack(benchQ8(n, 2), benchQ8(n, 3), benchQ8(n, 4), benchQ8(n, 5), n/32)
		var p2 Q8_0x2
		p2.Pack(benchQ8(n, 2), benchQ8(n, 3), n/32)
		out := make([]float32, 4*rows)
		b.Run(fmt.Sprintf("%dx%d", n, rows), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					MulQ8_0x4(w, rows, &p, out)
				}
				reportGMACs(b, 4*rows*n)
			})
		})
		var py Q8_0x4
		py.Pack(benchQ8(n, 6), benchQ8(n, 7), benchQ8(n, 8), benchQ8(n, 9), n/32)
		out8 := make([]float32, 8*rows)
		b.Run(fmt.Sprintf("x8/%dx%d", n, rows), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					MulQ8_0x8(w, rows, &p, &py, out8)
				}
				reportGMACs(b, 8*rows*n)
			})
		})
		b.Run(fmt.Sprintf("x2/%dx%d", n, rows), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					MulQ8_0x2(w, rows, &p2, out)
				}
				reportGMACs(b, 2*rows*n)
			})
		})
	}
}

func benchDotx4Float[W comparable](b *testing.B, k floatKernel[W], size int) {
	for _, n := range benchLens {
		w := benchWeights(k, n)
		x0, x1, x2, x3 := benchFloats(n, 2), benchFloats(n, 3), benchFloats(n, 4), benchFloats(n, 5)
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				var out [4]float32
				b.SetBytes(int64(n * size))
				for b.Loop() {
					k.fastX4(w, x0, x1, x2, x3, &out)
				}
				sinkF32 += out[0]
				reportPerVector(b)
			})
		})
	}
}

// BenchmarkMatVec multiplies a weight matrix of about 64 MiB, twice the
// last-level cache here, by one (x1) or four (x4) activation vectors on one
// goroutine, row by row as the backend does: the decode-time throughput of
// one core. llama.cpp's single-threaded Q8_0 decode streams about 10 GB/s on
// this machine.
func BenchmarkMatVec(b *testing.B) {
	const matBytes = 64 << 20
	for _, n := range benchLens {
		rowBytes := n / 32 * 34
		rows := matBytes / rowBytes
		b.Run(fmt.Sprintf("Q8_0/%dx%d", n, rows), func(b *testing.B) {
			w := make([]byte, rows*rowBytes)
			row := benchQ8(n, 1)
			for r := range rows {
				copy(w[r*rowBytes:], row)
			}
			x := [4][]byte{benchQ8(n, 2), benchQ8(n, 3), benchQ8(n, 4), benchQ8(n, 5)}
			var p Q8_0x4
			p.Pack(x[0], x[1], x[2], x[3], n/32)
			out := make([]float32, 4*rows)
			b.Run("x1", func(b *testing.B) {
				benchImpls(b, func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						for r := range rows {
							out[r] = DotQ8_0(w[r*rowBytes:(r+1)*rowBytes], x[0], n/32)
						}
					}
				})
			})
			var p1 Q8_0x1
			p1.Pack(x[0], n/32)
			b.Run("x1tile", func(b *testing.B) {
				benchImpls(b, func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						MulQ8_0x1(w, rows, &p1, out)
					}
				})
			})
			b.Run("x4", func(b *testing.B) {
				benchImpls(b, func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					for b.Loop() {
						MulQ8_0x4(w, rows, &p, out)
					}
					reportPerVector(b)
				})
			})
		})
	}
	b.Run("F16", func(b *testing.B) { benchMatVecFloat(b, f16Kernel, 2, matBytes) })
	b.Run("BF16", func(b *testing.B) { benchMatVecFloat(b, bf16Kernel, 2, matBytes) })
	b.Run("F32", func(b *testing.B) { benchMatVecFloat(b, f32Kernel, 4, matBytes) })
}

func benchMatVecFloat[W comparable](b *testing.B, k floatKernel[W], size, matBytes int) {
	for _, n := range benchLens {
		rows := matBytes / (n * size)
		b.Run(fmt.Sprintf("%dx%d", n, rows), func(b *testing.B) {
			w := make([]W, rows*n)
			row := benchWeights(k, n)
			for r := range rows {
				copy(w[r*n:], row)
			}
			x := [4][]float32{benchFloats(n, 2), benchFloats(n, 3), benchFloats(n, 4), benchFloats(n, 5)}
			out := make([]float32, rows)
			b.Run("x1", func(b *testing.B) {
				benchImpls(b, func(b *testing.B) {
					b.SetBytes(int64(len(w) * size))
					for b.Loop() {
						for r := range rows {
							out[r] = k.fast(w[r*n:(r+1)*n], x[0])
						}
					}
				})
			})
			b.Run("x4", func(b *testing.B) {
				benchImpls(b, func(b *testing.B) {
					var o [4]float32
					b.SetBytes(int64(len(w) * size))
					for b.Loop() {
						for r := range rows {
							k.fastX4(w[r*n:(r+1)*n], x[0], x[1], x[2], x[3], &o)
							out[r] = o[0]
						}
					}
					reportPerVector(b)
				})
			})
		})
	}
}

func BenchmarkQuantizeQ8_0(b *testing.B) {
	for _, n := range benchLens {
		x := benchFloats(n, 1)
		dst := make([]byte, n/32*34)
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(4 * n))
				for b.Loop() {
					QuantizeQ8_0(x, dst)
				}
			})
		})
	}
}

func BenchmarkConvert(b *testing.B) {
	for _, n := range benchLens {
		f := benchFloats(n, 1)
		h := make([]uint16, n)
		F32ToF16s(h, f)
		b.Run(fmt.Sprint("F16ToF32s/n=", n), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(2 * n))
				for b.Loop() {
					F16ToF32s(f, h)
				}
			})
		})
		b.Run(fmt.Sprint("F32ToF16s/n=", n), func(b *testing.B) {
			benchImpls(b, func(b *testing.B) {
				b.SetBytes(int64(4 * n))
				for b.Loop() {
					F32ToF16s(h, f)
				}
			})
		})
	}
}
