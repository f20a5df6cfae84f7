package cpu

import (
	"math"
	"sync"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// Compress is V4's KV compressor (spec §2.5, §4.1). A sequence's state
// holds, for the last c·Ratio positions it stored (slot p mod c·Ratio),
// each token's kv row and its score row with ape added: enough to pool the
// next entry, including (for CSA) the previous window's first halves.
func (c *context) Compress(kv, score, state, entries engine.Tensor, b *engine.Batch, spec engine.CompressSpec) engine.Tensor {
	kt, ok := c.f32("Compress kv", kv)
	gt, ok2 := c.f32("Compress score", score)
	st, ok3 := c.f32("Compress state", state)
	et, ok4 := c.f32("Compress entries", entries)
	nt, ok5 := c.f32("Compress norm", spec.Norm)
	if !ok || !ok2 || !ok3 || !ok4 || !ok5 {
		return &tensor{}
	}
	ape, ok := c.weight("Compress ape", spec.Ape, 2)
	if !ok {
		return &tensor{}
	}
	T, r := len(b.Tokens), spec.Ratio
	series := 1
	if spec.Overlap {
		series = 2
	}
	d := et.shape[1]
	cd := series * d
	rows := series * r // state rows per sequence
	if r <= 0 || len(kt.shape) != 2 || kt.shape[0] != T || kt.shape[1] != cd || len(gt.shape) != 2 || gt.shape[0] != T || gt.shape[1] != cd ||
		st.shape[1] != 2*cd || ape.shape[0] != r || ape.shape[1] != cd || len(nt.f) != d ||
		spec.Rope.Dims <= 0 || spec.Rope.Dims > d || spec.Rope.Dims%2 != 0 {
		return c.fail("Compress: kv %v, score %v, state %v, entries %v, ape %v, norm %v, ratio %d, rope dims %d",
			kt, gt, st, et, ape, nt, r, spec.Rope.Dims)
	}
	sp, err := batchSpans(b)
	if err != nil {
		return c.fail("Compress: %v", err)
	}
	// The step's scores with ape added by position.
	sc := c.newF32(T, cd)
	apeRow := make([]float32, cd)
	for t := range T {
		dequantRow(ape, int(b.Positions[t])%r, cd, apeRow)
		dst := sc.f[t*cd : (t+1)*cd]
		for i := range dst {
			dst[i] = gt.f[t*cd+i] + apeRow[i]
		}
	}
	// row returns position j's kv and score rows for sequence s.
	row := func(s, j int) (v, g []float32) {
		if i, ok := sp.inStep(s, j); ok {
			return kt.f[i*cd : (i+1)*cd], sc.f[i*cd : (i+1)*cd]
		}
		o := (b.StateRow(s, rows) + j%rows) * 2 * cd
		return st.f[o : o+cd], st.f[o+cd : o+2*cd]
	}
	var done []int // tokens that complete a window
	for t := range T {
		s, p := int(b.Seq[t]), int(b.Positions[t])
		if (b.StateRow(s, rows)+rows)*2*cd > len(st.f) {
			return c.fail("Compress: state slot %d beyond %v", b.Seqs[s].State, st)
		}
		if (p+1)%r == 0 {
			if er := b.PagedRow(s, p+1-r, r); (er+1)*d > len(et.f) {
				return c.fail("Compress: entry row %d beyond %v", er, et)
			}
			done = append(done, t)
		}
	}
	half := spec.Rope.Dims / 2
	c.b.each(len(done), func(i int) {
		t := done[i]
		s, p := int(b.Seq[t]), int(b.Positions[t])
		start := p + 1 - r
		slots := make([]poolSlot, 0, 2*r)
		if spec.Overlap {
			// The previous window's first halves (none before window 0),
			// then this window's second halves.
			if start > 0 {
				for j := start - r; j < start; j++ {
					v, g := row(s, j)
					slots = append(slots, poolSlot{v[:d], g[:d]})
				}
			}
			for j := start; j <= p; j++ {
				v, g := row(s, j)
				slots = append(slots, poolSlot{v[d:], g[d:]})
			}
		} else {
			for j := start; j <= p; j++ {
				v, g := row(s, j)
				slots = append(slots, poolSlot{v, g})
			}
		}
		dst := et.f[b.PagedRow(s, start, r)*d:][:d]
		poolSlots(dst, slots)
		var ss float64
		for _, v := range dst {
			ss += float64(v * v)
		}
		scale := float32(1 / math.Sqrt(float64(float32(ss/float64(d))+spec.Eps)))
		for ch := range dst {
			dst[ch] = dst[ch] * scale * nt.f[ch]
		}
		cos, sin := make([]float32, half), make([]float32, half)
		engine.RopeAngles(spec.Rope, start, cos, sin)
		seg := dst[d-spec.Rope.Dims:]
		for k := range half {
			x0, x1 := seg[2*k], seg[2*k+1]
			seg[2*k] = x0*cos[k] - x1*sin[k]
			seg[2*k+1] = x0*sin[k] + x1*cos[k]
		}
	})
	// Only now, every entry pooled, the step's rows become state.
	for t := range T {
		s, p := int(b.Seq[t]), int(b.Positions[t])
		o := (b.StateRow(s, rows) + p%rows) * 2 * cd
		copy(st.f[o:o+cd], kt.f[t*cd:(t+1)*cd])
		copy(st.f[o+cd:o+2*cd], sc.f[t*cd:(t+1)*cd])
	}
	return et
}

// poolSlot is one position's part of a compressed entry: its values and
// its scores, one per channel.
type poolSlot struct{ v, g []float32 }

// poolSlots sets dst[ch] to the slots' values of channel ch weighed by a
// softmax of their scores of that channel. The loops run slot by slot
// over all channels, each channel's operations in the order of
// poolChannel (its reference, in the tests): the maximum, the
// exponentials (kernel.Exp32s: float32(math.Exp(float64(x))), bit for
// bit, eight channels at a time), their float64 sum, and the float64 sum
// of the weighted values.
func poolSlots(dst []float32, slots []poolSlot) {
	d := len(dst)
	ps := poolScratches.Get().(*poolScratch)
	defer poolScratches.Put(ps)
	ps.f = grow(ps.f, (len(slots)+1)*d)
	ps.f64 = grow(ps.f64, 2*d)
	mx, e := ps.f[:d], ps.f[d:]
	sum, acc := ps.f64[:d], ps.f64[d:]
	clear(ps.f64)
	for ch := range mx {
		mx[ch] = float32(math.Inf(-1))
	}
	for _, sl := range slots {
		for ch, g := range sl.g[:d] {
			mx[ch] = max(mx[ch], g)
		}
	}
	for k, sl := range slots {
		ek := e[k*d : (k+1)*d]
		for ch, g := range sl.g[:d] {
			ek[ch] = g - mx[ch]
		}
		kernel.Exp32s(ek, ek)
		for ch, v := range ek {
			sum[ch] += float64(v)
		}
	}
	inv := mx // the maxima are done with
	for ch := range inv {
		inv[ch] = float32(1 / sum[ch])
	}
	for k, sl := range slots {
		ek := e[k*d : (k+1)*d]
		for ch, v := range sl.v[:d] {
			acc[ch] += float64(v * (ek[ch] * inv[ch]))
		}
	}
	for ch := range dst {
		dst[ch] = float32(acc[ch])
	}
}

// poolScratch is poolSlots' working storage: the channels' maxima (then
// their reciprocal sums) and the slots' exponentials, then the float64
// sums.
type poolScratch struct {
	f   []float32
	f64 []float64
}

var poolScratches = sync.Pool{New: func() any { return new(poolScratch) }}
