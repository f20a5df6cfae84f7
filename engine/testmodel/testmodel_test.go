package testmodel

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
)

// TestPCGIsMathRand: the hand-inlined generator is math/rand/v2's PCG and
// Float64, so files written before it are written the same.
func TestPCGIsMathRand(t *testing.T) {
	t.Parallel()
	for _, seed := range [][2]uint64{{0, 0}, {1, stream("token_embd.weight")}, {1 << 63, ^uint64(0)}} {
		r := rand.New(rand.NewPCG(seed[0], seed[1]))
		hi, lo := seed[0], seed[1]
		for range 1000 {
			var u uint64
			hi, lo, u = pcg(hi, lo)
			require.Equal(t, r.Float64(), float64(u<<11>>11)/(1<<53))
		}
	}
}

// TestDrawIsDeterministic draws tensors of every kind twice, on several
// goroutines, and expects the same file and progress that counts every
// tensor byte once. (The presets' own files are held to llama.cpp's goldens
// in engine/arch/deepseekv3 and to cmd/ulan's demo checksum.)
func TestDrawIsDeterministic(t *testing.T) {
	t.Parallel()
	draw := func(progress func(done, total int64)) ([]byte, *gguf.File) {
		ts := tensors{seed: 5, typ: gguf.TypeQ8_0}
		ts.matrix("big", 0.5, 300, 64)
		ts.proj3("experts", 4, 96, 32)
		ts.matrix("odd", 1, 7, 40) // rows that are not whole Q8_0 blocks stay F32
		ts.f32("router", 0.1, 8, 64)
		ts.ones("norm", 64)
		half := tensors{seed: 5, typ: gguf.TypeBF16}
		half.proj("bf16", 33, 17)
		ts.specs = append(ts.specs, half.specs...)
		var w gguf.Writer
		ts.draw(&w, progress)
		var b bytes.Buffer
		_, err := w.WriteTo(&b)
		require.NoError(t, err)
		f, err := gguf.Parse(b.Bytes())
		require.NoError(t, err)
		return b.Bytes(), f
	}
	var last, total int64
	a, f := draw(func(done, all int64) {
		require.Greater(t, done, last)
		last, total = done, all
	})
	b, _ := draw(nil)
	require.Equal(t, a, b)
	require.Equal(t, total, last)
	var sum int64
	types := map[string]gguf.Type{}
	for _, ti := range f.Tensors() {
		sum += int64(ti.Size)
		types[ti.Name] = ti.Type
	}
	require.Equal(t, sum, total, "progress counts the tensor data")
	require.Equal(t, map[string]gguf.Type{"big": gguf.TypeQ8_0, "experts": gguf.TypeQ8_0, "odd": gguf.TypeF32,
		"router": gguf.TypeF32, "norm": gguf.TypeF32, "bf16": gguf.TypeBF16}, types)
}
