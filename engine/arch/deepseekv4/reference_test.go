package deepseekv4

import (
	"math"
	"sort"
)

// A plain DeepSeek-V4 forward pass written from the spec (§2), in float64
// loops over the weights, with no backend and no cache: every token of
// one sequence, starting at position 0, attends densely to its key set
// (its window, plus every visible HCA entry or the indexer's top-k CSA
// entries), computed from the whole sequence at once.
type reference struct {
	c    tinyConfig
	w    tinyWeights
	tabs tinyTables
}

const refEps = 1e-6

func (r reference) mat(name string) []float64 {
	v := r.w[name]
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// linear is x·Wᵀ for W [out, in] stored row-major.
func linear(x, w []float64, out int) []float64 {
	in := len(x)
	y := make([]float64, out)
	for o := range out {
		var s float64
		for i := range in {
			s += w[o*in+i] * x[i]
		}
		y[o] = s
	}
	return y
}

func rmsnorm(x, w []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	sc := 1 / math.Sqrt(ss/float64(len(x))+refEps)
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v * sc
		if w != nil {
			y[i] *= w[i]
		}
	}
	return y
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// inverse frequencies of the trailing rd channels (spec §2.3), with YaRN
// when yarn is set.
func invFreq(rd int, base float64, yarn bool) []float64 {
	inv := make([]float64, rd/2)
	for i := range inv {
		inv[i] = math.Pow(base, -2*float64(i)/float64(rd))
	}
	if !yarn {
		return inv
	}
	factor, orig, fast, slow := 4.0, 64.0, 32.0, 1.0
	corr := func(n float64) float64 { return float64(rd) * math.Log(orig/(n*2*math.Pi)) / (2 * math.Log(base)) }
	low := math.Max(math.Floor(corr(fast)), 0)
	high := math.Min(math.Ceil(corr(slow)), float64(rd-1))
	if low == high {
		high += 0.001
	}
	for i := range inv {
		ramp := math.Min(1, math.Max(0, (float64(i)-low)/(high-low)))
		inv[i] = inv[i]/factor*ramp + inv[i]*(1-ramp)
	}
	return inv
}

// rope rotates adjacent pairs of v's trailing len(inv)·2 channels by pos
// (backwards when inverse).
func rope(v []float64, inv []float64, pos int, inverse bool) {
	o := len(v) - 2*len(inv)
	for i, f := range inv {
		th := float64(pos) * f
		s, c := math.Sin(th), math.Cos(th)
		if inverse {
			s = -s
		}
		a, b := v[o+2*i], v[o+2*i+1]
		v[o+2*i] = a*c - b*s
		v[o+2*i+1] = a*s + b*c
	}
}

// mhcPre returns (block input, post, comb) for one token's streams.
func (r reference) mhcPre(x [][]float64, fn, scale, base []float64) ([]float64, []float64, [][]float64) {
	hc := len(x)
	var flat []float64
	for _, s := range x {
		flat = append(flat, s...)
	}
	mix := linear(rmsnorm(flat, nil), fn, (2+hc)*hc)
	pre, post := make([]float64, hc), make([]float64, hc)
	for k := range hc {
		pre[k] = sigmoid(mix[k]*scale[0]+base[k]) + refEps
		post[k] = 2 * sigmoid(mix[hc+k]*scale[1]+base[hc+k])
	}
	C := make([][]float64, hc)
	for j := range hc {
		C[j] = make([]float64, hc)
		mx := math.Inf(-1)
		for k := range hc {
			C[j][k] = mix[2*hc+j*hc+k]*scale[2] + base[2*hc+j*hc+k]
			mx = math.Max(mx, C[j][k])
		}
		var s float64
		for k := range hc {
			C[j][k] = math.Exp(C[j][k] - mx)
			s += C[j][k]
		}
		for k := range hc {
			C[j][k] = C[j][k]/s + refEps
		}
	}
	col := func() {
		for k := range hc {
			s := refEps
			for j := range hc {
				s += C[j][k]
			}
			for j := range hc {
				C[j][k] /= s
			}
		}
	}
	row := func() {
		for j := range hc {
			s := refEps
			for k := range hc {
				s += C[j][k]
			}
			for k := range hc {
				C[j][k] /= s
			}
		}
	}
	col()
	for range 19 {
		row()
		col()
	}
	in := make([]float64, len(x[0]))
	for k := range hc {
		for i := range in {
			in[i] += pre[k] * x[k][i]
		}
	}
	return in, post, C
}

func mhcPost(y []float64, x [][]float64, post []float64, C [][]float64) [][]float64 {
	out := make([][]float64, len(x))
	for k := range x {
		out[k] = make([]float64, len(y))
		for i := range y {
			out[k][i] = post[k] * y[i]
			for j := range x {
				out[k][i] += C[j][k] * x[j][i]
			}
		}
	}
	return out
}

// compress pools every complete window of the series a, g (per token,
// width c·d) into entries (spec §2.5).
func (r reference) compress(a, g [][]float64, ratio, d int, overlap bool, ape, norm []float64, inv []float64) [][]float64 {
	T := len(a)
	cd := len(a[0])
	var entries [][]float64
	for w := 0; (w+1)*ratio <= T; w++ {
		type slot struct{ v, g float64 }
		e := make([]float64, d)
		for ch := range d {
			var slots []slot
			if overlap {
				for i := range ratio {
					if w == 0 {
						slots = append(slots, slot{0, math.Inf(-1)})
						continue
					}
					p := (w-1)*ratio + i
					slots = append(slots, slot{a[p][ch], g[p][ch] + ape[(p%ratio)*cd+ch]})
				}
				for i := range ratio {
					p := w*ratio + i
					slots = append(slots, slot{a[p][d+ch], g[p][d+ch] + ape[(p%ratio)*cd+d+ch]})
				}
			} else {
				for i := range ratio {
					p := w*ratio + i
					slots = append(slots, slot{a[p][ch], g[p][ch] + ape[(p%ratio)*cd+ch]})
				}
			}
			mx := math.Inf(-1)
			for _, s := range slots {
				mx = math.Max(mx, s.g)
			}
			var den, num float64
			for _, s := range slots {
				ex := math.Exp(s.g - mx)
				den += ex
				num += ex * s.v
			}
			e[ch] = num / den
		}
		e = rmsnorm(e, norm)
		rope(e, inv, w*ratio, false)
		entries = append(entries, e)
	}
	return entries
}

// forward returns the logits of every token.
func (r reference) forward(tokens []int32) [][]float64 {
	c := r.c
	T, D, hc := len(tokens), c.D, 4
	X := make([][][]float64, T)
	emb := r.mat("token_embd.weight")
	for t, tok := range tokens {
		X[t] = make([][]float64, hc)
		for k := range hc {
			X[t][k] = append([]float64(nil), emb[int(tok)*D:(int(tok)+1)*D]...)
		}
	}
	for l := range c.Layers {
		n := func(s string) string { return blk(l, s) }
		ys := make([][]float64, T)
		posts := make([][]float64, T)
		combs := make([][][]float64, T)
		xs := make([][]float64, T)
		for t := range T {
			var in []float64
			in, posts[t], combs[t] = r.mhcPre(X[t], r.mat(n("hc_attn_fn.weight")), r.mat(n("hc_attn_scale.weight")), r.mat(n("hc_attn_base.weight")))
			xs[t] = rmsnorm(in, r.mat(n("attn_norm.weight")))
		}
		ys = r.attention(l, xs)
		for t := range T {
			X[t] = mhcPost(ys[t], X[t], posts[t], combs[t])
		}
		for t := range T {
			in, post, comb := r.mhcPre(X[t], r.mat(n("hc_ffn_fn.weight")), r.mat(n("hc_ffn_scale.weight")), r.mat(n("hc_ffn_base.weight")))
			y := r.moe(l, rmsnorm(in, r.mat(n("ffn_norm.weight"))), tokens[t])
			X[t] = mhcPost(y, X[t], post, comb)
		}
	}
	out := make([][]float64, T)
	fn, sc, bs := r.mat("output_hc_fn.weight"), r.mat("output_hc_scale.weight"), r.mat("output_hc_base.weight")
	for t := range T {
		var flat []float64
		for _, s := range X[t] {
			flat = append(flat, s...)
		}
		mix := linear(rmsnorm(flat, nil), fn, hc)
		h := make([]float64, D)
		for k := range hc {
			wk := sigmoid(mix[k]*sc[0]+bs[k]) + refEps
			for i := range h {
				h[i] += wk * X[t][k][i]
			}
		}
		out[t] = linear(rmsnorm(h, r.mat("output_norm.weight")), r.mat("output.weight"), c.Vocab)
	}
	return out
}

// attention of layer l for the normalised inputs xs of every token.
func (r reference) attention(l int, xs [][]float64) [][]float64 {
	c := r.c
	n := func(s string) string { return blk(l, s) }
	T, H, hd := len(xs), c.H, c.HD
	ratio := c.Ratios[l]
	var inv []float64
	if ratio == 0 {
		inv = invFreq(c.RD, 10000, false)
	} else {
		inv = invFreq(c.RD, 160000, true)
	}
	qs := make([][][]float64, T)
	kvs := make([][]float64, T)
	qrs := make([][]float64, T)
	for t, x := range xs {
		qrs[t] = rmsnorm(linear(x, r.mat(n("attn_q_a.weight")), c.Lq), r.mat(n("attn_q_a_norm.weight")))
		q := linear(qrs[t], r.mat(n("attn_q_b.weight")), H*hd)
		qs[t] = make([][]float64, H)
		for h := range H {
			qs[t][h] = rmsnorm(q[h*hd:(h+1)*hd], nil)
			rope(qs[t][h], inv, t, false)
		}
		kvs[t] = rmsnorm(linear(x, r.mat(n("attn_kv.weight")), hd), r.mat(n("attn_kv_a_norm.weight")))
		rope(kvs[t], inv, t, false)
	}
	var entries, ikeys [][]float64
	if ratio > 0 {
		co := 1
		if ratio == 4 {
			co = 2
		}
		a, g := make([][]float64, T), make([][]float64, T)
		for t, x := range xs {
			a[t] = linear(x, r.mat(n("attn_compressor_kv.weight")), co*hd)
			g[t] = linear(x, r.mat(n("attn_compressor_gate.weight")), co*hd)
		}
		entries = r.compress(a, g, ratio, hd, ratio == 4, r.mat(n("attn_compressor_ape.weight")), r.mat(n("attn_compressor_norm.weight")), inv)
	}
	if ratio == 4 {
		a, g := make([][]float64, T), make([][]float64, T)
		for t, x := range xs {
			a[t] = linear(x, r.mat(n("indexer_compressor_kv.weight")), 2*c.DI)
			g[t] = linear(x, r.mat(n("indexer_compressor_gate.weight")), 2*c.DI)
		}
		ikeys = r.compress(a, g, 4, c.DI, true, r.mat(n("indexer_compressor_ape.weight")), r.mat(n("indexer_compressor_norm.weight")), inv)
	}
	sinks := r.mat(n("attn_sinks.weight"))
	outs := make([][]float64, T)
	for t := range T {
		var keys [][]float64
		for j := max(0, t-c.Window+1); j <= t; j++ {
			keys = append(keys, kvs[j])
		}
		visible := 0
		if ratio > 0 {
			visible = (t + 1) / ratio
		}
		switch {
		case ratio == 128 || (ratio == 4 && visible <= c.TopK):
			keys = append(keys, entries[:visible]...)
		case ratio == 4:
			for _, w := range r.indexer(l, xs[t], qrs[t], ikeys[:visible], t, inv) {
				keys = append(keys, entries[w])
			}
		}
		o := make([]float64, 0, H*hd)
		for h := range H {
			sc := make([]float64, len(keys))
			mx := sinks[h]
			for j, k := range keys {
				var s float64
				for i := range hd {
					s += qs[t][h][i] * k[i]
				}
				sc[j] = s / math.Sqrt(float64(hd))
				mx = math.Max(mx, sc[j])
			}
			den := math.Exp(sinks[h] - mx)
			for j := range sc {
				sc[j] = math.Exp(sc[j] - mx)
				den += sc[j]
			}
			oh := make([]float64, hd)
			for j, k := range keys {
				for i := range hd {
					oh[i] += sc[j] / den * k[i]
				}
			}
			rope(oh, inv, t, true)
			o = append(o, oh...)
		}
		// Grouped output: wo_a's rows g·Lo… act on group g's heads.
		woA := r.mat(n("attn_output_a.weight"))
		gin := H * hd / c.G
		var z []float64
		for g := range c.G {
			z = append(z, linear(o[g*gin:(g+1)*gin], woA[g*c.Lo*gin:(g+1)*c.Lo*gin], c.Lo)...)
		}
		outs[t] = linear(z, r.mat(n("attn_output_b.weight")), c.D)
	}
	return outs
}

// indexer returns the top-k visible entries for token t (spec §2.6).
func (r reference) indexer(l int, x, qr []float64, keys [][]float64, t int, inv []float64) []int {
	c := r.c
	n := func(s string) string { return blk(l, s) }
	q := linear(qr, r.mat(n("indexer.attn_q_b.weight")), c.HI*c.DI)
	wt := linear(x, r.mat(n("indexer.proj.weight")), c.HI)
	for h := range c.HI {
		rope(q[h*c.DI:(h+1)*c.DI], inv, t, false)
	}
	scores := make([]float64, len(keys))
	for w, k := range keys {
		for h := range c.HI {
			var d float64
			for i := range c.DI {
				d += q[h*c.DI+i] * k[i]
			}
			scores[w] += wt[h] / math.Sqrt(float64(c.DI*c.HI)) * math.Max(d, 0)
		}
	}
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx[:c.TopK]
}

// moe of layer l for the normalised input x of token tok (spec §2.7).
func (r reference) moe(l int, x []float64, tok int32) []float64 {
	c := r.c
	n := func(s string) string { return blk(l, s) }
	logits := linear(x, r.mat(n("ffn_gate_inp.weight")), c.X)
	s := make([]float64, c.X)
	for e, v := range logits {
		s[e] = math.Sqrt(math.Log1p(math.Exp(v)))
	}
	var ids []int
	if l < c.Hash {
		for _, e := range r.tabs[n("ffn_gate_tid2eid.weight")][int(tok)*c.K : (int(tok)+1)*c.K] {
			ids = append(ids, int(e))
		}
	} else {
		bias := r.mat(n("exp_probs_b.bias"))
		sel := make([]int, c.X)
		for i := range sel {
			sel[i] = i
		}
		sort.SliceStable(sel, func(a, b int) bool { return s[sel[a]]+bias[sel[a]] > s[sel[b]]+bias[sel[b]] })
		ids = sel[:c.K]
	}
	var sum float64
	for _, e := range ids {
		sum += s[e]
	}
	L := float64(c.Clamp[l])
	ffn := func(gate, up, down []float64, x []float64) []float64 {
		g := linear(x, gate, c.F)
		u := linear(x, up, c.F)
		h := make([]float64, c.F)
		for i := range h {
			gi := math.Min(g[i], L)
			ui := math.Max(-L, math.Min(u[i], L))
			h[i] = gi * sigmoid(gi) * ui
		}
		return linear(h, down, c.D)
	}
	y := ffn(r.mat(n("ffn_gate_shexp.weight")), r.mat(n("ffn_up_shexp.weight")), r.mat(n("ffn_down_shexp.weight")), x)
	gate, up, down := r.mat(n("ffn_gate_exps.weight")), r.mat(n("ffn_up_exps.weight")), r.mat(n("ffn_down_exps.weight"))
	fd := c.F * c.D
	for _, e := range ids {
		we := s[e] / sum * float64(c.Scale)
		ye := ffn(gate[e*fd:(e+1)*fd], up[e*fd:(e+1)*fd], down[e*fd:(e+1)*fd], x)
		for i := range y {
			y[i] += we * ye[i]
		}
	}
	return y
}
