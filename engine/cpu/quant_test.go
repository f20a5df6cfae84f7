package cpu

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// TestQuantMatMul: for every block format, MatMul gives each row's dot product
// with the inputs as ggml defines it — the dequantised weights times the inputs
// quantized to the format's activation type, summed — and Embed gives the
// dequantised rows.
func TestQuantMatMul(t *testing.T) {
	t.Parallel()
	const out, in, T = 7, 512, 5
	vals := make([]float32, out*in)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)*0.37)) * float32(1+i%5)
	}
	xs := make([]float32, T*in)
	for i := range xs {
		xs[i] = float32(math.Cos(float64(i) * 0.11))
	}
	for dt, f := range quantFormats {
		t.Run(dt.String(), func(t *testing.T) {
			t.Parallel()
			b := New(WithThreads(2))
			raw := make([]byte, rowBytes(dt, in)*out)
			require.NoError(t, Quantize(dt, vals, raw))
			w, err := b.Weight("w", dt, []int{out, in}, raw)
			require.NoError(t, err)
			c := b.NewContext()
			y := c.MatMul(c.Input(xs, T, in), w)
			emb := c.Embed(w, &engine.Batch{Tokens: []int32{3, 0, 6}, Positions: []int32{0, 1, 2}})
			require.NoError(t, c.Compute(y, emb))
			got, _ := c.Floats(y)
			rows, _ := c.Floats(emb)

			deq := make([]float32, out*in)
			f.dequant(raw, deq)
			for i, r := range []int{3, 0, 6} {
				require.Equal(t, deq[r*in:(r+1)*in], rows[i*in:(i+1)*in], "Embed row %d", r)
			}
			xq := make([]byte, in/f.act.block*f.act.bytes)
			xd := make([]float32, in)
			for tok := range T {
				f.act.quantize(xs[tok*in:(tok+1)*in], xq)
				dequantAct(f.act, xq, xd)
				for r := range out {
					var want float64
					for k := range in {
						want += float64(deq[r*in+k]) * float64(xd[k])
					}
					if f.act == actQ8_1 {
						// Q4_1 and Q5_1 take each block's minimum times the
						// block's sum as Q8_1 stores it, an f16 s, not Σ d·q.
						want += q8_1SumCorrection(raw[r*rowBytes(dt, in):], f.bytes, xq, xd)
					}
					require.InDelta(t, want, got[tok*out+r], 1e-4*(1+math.Abs(want)), "token %d row %d", tok, r)
				}
			}
		})
	}
}

// q8_1SumCorrection is what Q8_1's stored sums s (f16) add to a row of Q4_1 or
// Q5_1 blocks of blockBytes each (minimum m at bytes 2–3) beyond m·Σ d·q of
// the exact activations.
func q8_1SumCorrection(w []byte, blockBytes int, xq []byte, xd []float32) float64 {
	var c float64
	for blk := range len(xd) / 32 {
		m := float64(kernel.F16ToF32(binary.LittleEndian.Uint16(w[blk*blockBytes+2:])))
		s := float64(kernel.F16ToF32(binary.LittleEndian.Uint16(xq[blk*36+2:])))
		var exact float64
		for _, v := range xd[blk*32 : (blk+1)*32] {
			exact += float64(v)
		}
		c += m * (s - exact)
	}
	return c
}

// dequantAct expands activations quantized to a: every activation format
// starts its block with its scale d (f16 for Q8_0 and Q8_1, f32 for Q8_K) and
// holds int8 quants, d·q.
func dequantAct(a *actFormat, q []byte, dst []float32) {
	for blk := range len(dst) / a.block {
		b := q[blk*a.bytes:]
		var d float32
		var qs []byte
		switch a.bytes {
		case 34: // Q8_0: f16 d, 32 quants
			d, qs = kernel.F16ToF32(binary.LittleEndian.Uint16(b)), b[2:34]
		case 36: // Q8_1: f16 d, f16 s, 32 quants
			d, qs = kernel.F16ToF32(binary.LittleEndian.Uint16(b)), b[4:36]
		default: // Q8_K: f32 d, 256 quants, 16 sums
			d, qs = math.Float32frombits(binary.LittleEndian.Uint32(b)), b[4:260]
		}
		for i, v := range qs {
			dst[blk*a.block+i] = d * float32(int8(v))
		}
	}
}

// TestPreparedInputsAreShared: products of different weight types reuse
// one preparation of an input only when their activation formats agree.
func TestPreparedInputsAreShared(t *testing.T) {
	t.Parallel()
	c := New(WithThreads(1), WithRepack(false)).NewContext().(*context)
	defer c.Close()
	x := c.Input(make([]float32, 256), 1, 256).(*tensor)
	prep := func(dt engine.DType) *prepared { return c.prepare(x, &tensor{dt: dt}, 256) }
	p := prep(engine.Q4_K)
	require.Same(t, p, prep(engine.Q6_K), "both take Q8_K")
	q := prep(engine.Q5_0)
	require.NotSame(t, p, q)
	require.Equal(t, inputKind(engine.Q5_0), q.kind)
	require.Same(t, q, prep(engine.Q4_0), "both take Q8_0 blocks")
	require.NotSame(t, q, prep(engine.Q8_0), "Q8_0's own kernels take packed groups")
	require.Nil(t, prep(engine.F32).kind)
}

// TestQuantizeRefuses: sizes and types that do not fit are errors.
func TestQuantizeRefuses(t *testing.T) {
	t.Parallel()
	require.ErrorContains(t, Quantize(engine.Q4_K, make([]float32, 128), make([]byte, 0)), "q4_k")
	require.ErrorContains(t, Quantize(engine.Q4_K, make([]float32, 256), make([]byte, 143)), "want 144")
	require.ErrorContains(t, Quantize(engine.I32, make([]float32, 4), make([]byte, 16)), "not a weight type")
	require.NoError(t, Quantize(engine.Q5_1, make([]float32, 64), make([]byte, 48)))
	_, err := New().Weight("w", engine.Q6_K, []int{2, 128}, make([]byte, 210))
	require.ErrorContains(t, err, "not whole 256-value blocks")
}
