package deepseekv3

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// TestAbsorbedMatchesNaiveMLA is trap 17: the weight-absorbed attention the
// engine runs (spec §3.3) must equal the naive form of §3.2, computed here in
// plain float64 Go straight from the file's f32 weights — per-head keys
// [k_nope | k_pe] and values decompressed from the latent, softmax scale
// (nope+rope)^(−1/2)·m².
func TestAbsorbedMatchesNaiveMLA(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-naive-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "m.gguf")
	require.NoError(t, testmodel.TinyV3().WriteFile(path, 3))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	be := cpu.New(cpu.WithThreads(1))
	em, err := Load(f, be)
	require.NoError(t, err)
	m := em.(*Model)
	p := m.p

	const T = 12
	b := &engine.Batch{BlockSize: 16, Seqs: []engine.BatchSeq{{Blocks: []int32{0}}}}
	for i := range T {
		b.Tokens = append(b.Tokens, int32(100+37*i))
		b.Positions = append(b.Positions, int32(i))
		b.Seq = append(b.Seq, 0)
		b.Slots = append(b.Slots, int32(i))
	}
	cache, err := be.Cache(16, p.CacheWidth(), engine.F32)
	require.NoError(t, err)
	ctx := be.NewContext()
	l := &m.layers[1]
	x := ctx.RMSNorm(ctx.Embed(m.embed, b), l.attnNorm, p.Eps)
	got := m.attention(ctx, l, x, b, cache)
	require.NoError(t, ctx.Compute(got))
	gv, _ := ctx.Floats(got)
	xv, _ := ctx.Floats(x)

	w := func(name string) []float64 {
		ti, ok := f.Tensor("blk.1." + name)
		require.True(t, ok, name)
		require.Equal(t, gguf.TypeF32, ti.Type)
		raw := f.Data(ti)
		v := make([]float64, len(raw)/4)
		for i := range v {
			v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		return v
	}
	// y = W x for W stored [out][in].
	mv := func(W []float64, in int, x []float64) []float64 {
		y := make([]float64, len(W)/in)
		for o := range y {
			for i := range in {
				y[o] += W[o*in+i] * x[i]
			}
		}
		return y
	}
	rms := func(v, wt []float64) []float64 {
		var ss float64
		for _, e := range v {
			ss += e * e
		}
		s := 1 / math.Sqrt(ss/float64(len(v))+float64(p.Eps))
		out := make([]float64, len(v))
		for i := range v {
			out[i] = v[i] * s * wt[i]
		}
		return out
	}
	rope := func(v []float64, pos int) {
		cosv, sinv := make([]float32, p.RopeDim/2), make([]float32, p.RopeDim/2)
		engine.RopeAngles(p.Rope(), pos, cosv, sinv)
		for i := range cosv {
			a, bb := v[2*i], v[2*i+1]
			v[2*i] = a*float64(cosv[i]) - bb*float64(sinv[i])
			v[2*i+1] = a*float64(sinv[i]) + bb*float64(cosv[i])
		}
	}
	qA, qANorm, qB := w("attn_q_a.weight"), w("attn_q_a_norm.weight"), w("attn_q_b.weight")
	kvA, kvANorm := w("attn_kv_a_mqa.weight"), w("attn_kv_a_norm.weight")
	kB, vB, wo := w("attn_k_b.weight"), w("attn_v_b.weight"), w("attn_output.weight")
	E, H, nope, rd, L, vd := p.Hidden, p.Heads, p.NopeDim, p.RopeDim, p.KVLoRA, p.ValueDim
	type tok struct{ q, k, v [][]float64 }
	toks := make([]tok, T)
	for t0 := range T {
		xt := make([]float64, E)
		for i := range xt {
			xt[i] = float64(xv[t0*E+i])
		}
		q := mv(qB, p.QLoRA, rms(mv(qA, E, xt), qANorm))
		ckv := mv(kvA, E, xt)
		c := rms(ckv[:L], kvANorm)
		kpe := append([]float64(nil), ckv[L:]...)
		rope(kpe, t0)
		var tk tok
		for h := range H {
			qh := append([]float64(nil), q[h*(nope+rd):(h+1)*(nope+rd)]...)
			rope(qh[nope:], t0)
			// k_nope[h] = W_UK[h]·c; the file stores W_UK[h] transposed, [L][nope].
			k := make([]float64, nope+rd)
			for d := range nope {
				for i := range L {
					k[d] += kB[(h*L+i)*nope+d] * c[i]
				}
			}
			copy(k[nope:], kpe)
			tk.q, tk.k, tk.v = append(tk.q, qh), append(tk.k, k), append(tk.v, mv(vB[h*vd*L:(h+1)*vd*L], L, c))
		}
		toks[t0] = tk
	}
	scale := float64(p.KQScale())
	for t0 := range T {
		o := make([]float64, 0, H*vd)
		for h := range H {
			sc := make([]float64, t0+1)
			mx := math.Inf(-1)
			for j := range sc {
				for d := range nope + rd {
					sc[j] += toks[t0].q[h][d] * toks[j].k[h][d]
				}
				sc[j] *= scale
				mx = max(mx, sc[j])
			}
			var sum float64
			for j := range sc {
				sc[j] = math.Exp(sc[j] - mx)
				sum += sc[j]
			}
			oh := make([]float64, vd)
			for j := range sc {
				for d := range vd {
					oh[d] += sc[j] / sum * toks[j].v[h][d]
				}
			}
			o = append(o, oh...)
		}
		want := mv(wo, H*vd, o)
		for i, wv := range want {
			require.InDelta(t, wv, gv[t0*E+i], 2e-5, "token %d channel %d", t0, i)
		}
	}
}
