package cpu

import (
	"sync"
	"unsafe"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// matrix is a run of rows of a weight tensor, each `in` values wide, starting
// at row `first`: a whole 2-D weight, one head of a per-head weight, or one
// expert of a stacked expert weight.
type matrix struct {
	t     *tensor
	first int
	in    int
}

// dot multiplies row r of a float matrix (F32, F16, BF16, F8E4M3,
// F4E2M1) with x.
func (m matrix) dot(r int, x []float32) float32 {
	row := m.first + r
	switch m.t.dt {
	case engine.F32:
		return kernel.DotF32(m.t.f[row*m.in:(row+1)*m.in], x)
	case engine.F16:
		return kernel.DotF16(u16(m.t.raw, row*m.in, m.in), x)
	case engine.BF16:
		return kernel.DotBF16(u16(m.t.raw, row*m.in, m.in), x)
	case engine.F8E4M3:
		return m.dotF8(row, x)
	case engine.F4E2M1:
		return m.dotF4(row, x)
	}
	return 0
}

// dot4 multiplies row r of a float matrix with four inputs at once,
// reading the row once.
func (m matrix) dot4(r int, x [][]float32, out *[4]float32) {
	row := m.first + r
	switch m.t.dt {
	case engine.F32:
		kernel.DotF32x4(m.t.f[row*m.in:(row+1)*m.in], x[0], x[1], x[2], x[3], out)
	case engine.F16:
		kernel.DotF16x4(u16(m.t.raw, row*m.in, m.in), x[0], x[1], x[2], x[3], out)
	case engine.BF16:
		kernel.DotBF16x4(u16(m.t.raw, row*m.in, m.in), x[0], x[1], x[2], x[3], out)
	case engine.F8E4M3:
		m.dot4F8(row, x, out)
	case engine.F4E2M1:
		m.dot4F4(row, x, out)
	}
}

// u16 views n uint16 values starting at element off of raw bytes.
func u16(raw []byte, off, n int) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(&raw[2*off])), n)
}

// prepared holds input rows ready for one weight type: as they are for the
// float types, quantized to Q8_0 (as llama.cpp's vec_dot_type) and packed in
// groups of four for kernel.MulQ8_0x4 for Q8_0 as stored, or in chunks of
// up to eight for kernel.MulQ8_0R16 for repacked Q8_0. Preparing once and
// then splitting rows among goroutines keeps the parallel part free of
// setup. A context hands them out from prepPool and takes them back on
// Close, so that a decode step reuses the last step's storage.
type prepared struct {
	xs     [][]float32
	nb     int    // Q8_0 blocks per row
	q      []byte // quantized rows, in the activation format of kind
	groups []kernel.Q8_0x4
	lone   int            // the last input when their count is 4k+1, else -1
	one    *kernel.Q8_0x1 // that input, packed for kernel.MulQ8_0x1
	pair   *kernel.Q8_0x2 // the last two inputs when their count is 4k+2, else nil
	chunks []kernel.Q8_0R16In
	kind   any // inputKind of the weights prepared for

	pairBuf kernel.Q8_0x2 // pair's storage
}

// r16Kind is the input kind of Q8_0 weights repacked to kernel's R16
// layout: quantized to Q8_0 as for stored Q8_0, packed in chunks.
type r16Kind struct{}

// inputKind says how prepare readies inputs for weights of type dt as
// stored: as they are (floats), quantized and packed for Q8_0's kernels,
// or quantized to a format's activation type.
func inputKind(dt engine.DType) any {
	if f := quantFormats[dt]; f != nil {
		return f.act
	}
	if dt == engine.Q8_0 {
		return engine.Q8_0
	}
	return nil
}

// weightKind is inputKind for the weight tensor w, repacked or not.
func weightKind(w *tensor) any {
	if w.rep != nil {
		return r16Kind{}
	}
	return inputKind(w.dt)
}

// actRowBytes is the size of one input row of in values quantized for
// the input kind (0 for the float types), and the quantizer.
func actRowBytes(kind any, in int) (int, func(x []float32, dst []byte)) {
	switch k := kind.(type) {
	case *actFormat:
		return in / k.block * k.bytes, k.quantize
	case engine.DType, r16Kind:
		return in / kernel.Q8_0BlockLen * kernel.Q8_0BlockSize, kernel.QuantizeQ8_0
	}
	return 0, nil
}

// fill sets p to xs prepared for weights of the input kind with rows of in
// values, reusing p's storage. With b, the rows are quantized and packed
// across b's goroutines (a prompt's hundreds of rows); without, on this
// one.
func (p *prepared) fill(kind any, in int, xs [][]float32, b *Backend) *prepared {
	p.xs, p.kind, p.nb = xs, kind, in/kernel.Q8_0BlockLen
	rb, quantize := actRowBytes(kind, in)
	p.q = grow(p.q, rb*len(xs))
	if rb == 0 {
		p.pack(nil)
		return p
	}
	const grain = 16 // rows a goroutine quantizes
	if b == nil || len(xs) <= grain {
		// One piece: no closure for the team to allocate.
		for t := range xs {
			quantize(xs[t], p.q[t*rb:(t+1)*rb])
		}
	} else {
		b.parallel(len(xs), grain, func(lo, hi int) {
			for t := lo; t < hi; t++ {
				quantize(xs[t], p.q[t*rb:(t+1)*rb])
			}
		})
	}
	p.pack(b)
	return p
}

// fillRows sets p to the rows tokens of src, already quantized, for the
// same weights: an expert's share of a batch whose rows were quantized once
// for every expert. xs are those rows as floats.
func (p *prepared) fillRows(src *prepared, tokens []int, xs [][]float32) *prepared {
	p.xs, p.kind, p.nb = xs, src.kind, src.nb
	rb := 0
	if len(src.xs) > 0 {
		rb = len(src.q) / len(src.xs)
	}
	p.q = grow(p.q, rb*len(tokens))
	for i, t := range tokens {
		copy(p.q[i*rb:(i+1)*rb], src.q[t*rb:(t+1)*rb])
	}
	p.pack(nil)
	return p
}

// pack lays Q8_0 inputs out for the batched kernels: groups of four, a
// last pair or a lone last input.
func (p *prepared) pack(b *Backend) {
	p.lone, p.pair = -1, nil
	p.groups, p.chunks = p.groups[:0], p.chunks[:0]
	nt := len(p.xs)
	if p.kind == (r16Kind{}) {
		p.packChunks(b)
		return
	}
	if p.kind != engine.Q8_0 {
		return
	}
	switch nt % 4 {
	case 1:
		p.lone = nt - 1
		if p.one == nil {
			p.one = new(kernel.Q8_0x1)
		}
		p.one.Pack(p.xq(nt-1), p.nb)
	case 2:
		// Batched decode gives most experts one or two tokens; a pair
		// padded to four would cost twice its arithmetic.
		p.pair = &p.pairBuf
		p.pair.Pack(p.xq(nt-2), p.xq(nt-1), p.nb)
	}
	// A last group of three inputs is filled up by repeating its last
	// input; outputs are the same bits either way. Groups keep their
	// storage from one fill to the next.
	ng := (nt + 1) / 4
	if ng > cap(p.groups) {
		p.groups = append(p.groups[:cap(p.groups)], make([]kernel.Q8_0x4, ng-cap(p.groups))...)
	}
	p.groups = p.groups[:ng]
	const grain = 4 // groups a goroutine packs
	if b == nil || ng <= grain {
		// One piece: no closure for the team to allocate.
		p.packGroups(0, ng)
	} else {
		b.parallel(ng, grain, func(lo, hi int) { p.packGroups(lo, hi) })
	}
}

// packGroups packs groups [lo, hi) of four inputs for pack.
func (p *prepared) packGroups(lo, hi int) {
	nt := len(p.xs)
	for g := lo; g < hi; g++ {
		x := func(j int) []byte { return p.xq(min(4*g+j, nt-1)) }
		p.groups[g].Pack(x(0), x(1), x(2), x(3), p.nb)
	}
}

// packChunks packs the inputs in chunks of up to eight for the R16 tiles.
func (p *prepared) packChunks(b *Backend) {
	nt := len(p.xs)
	nc := (nt + kernel.R16MaxVectors - 1) / kernel.R16MaxVectors
	if nc > cap(p.chunks) {
		p.chunks = append(p.chunks[:cap(p.chunks)], make([]kernel.Q8_0R16In, nc-cap(p.chunks))...)
	}
	p.chunks = p.chunks[:nc]
	const grain = 2 // chunks a goroutine packs
	if b == nil || nc <= grain {
		// One piece: no closure for the team to allocate.
		p.packRange(0, nc)
	} else {
		b.parallel(nc, grain, func(lo, hi int) { p.packRange(lo, hi) })
	}
}

// packRange packs chunks [lo, hi) of packChunks.
func (p *prepared) packRange(lo, hi int) {
	nt := len(p.xs)
	var xs [kernel.R16MaxVectors][]byte
	for c := lo; c < hi; c++ {
		n := min(kernel.R16MaxVectors, nt-c*kernel.R16MaxVectors)
		for j := range n {
			xs[j] = p.xq(c*kernel.R16MaxVectors + j)
		}
		p.chunks[c].Pack(xs[:n], p.nb)
	}
}

func (p *prepared) xq(t int) []byte {
	rowBytes := p.nb * 34
	return p.q[t*rowBytes : (t+1)*rowBytes]
}

// grow returns s resized to n, reusing its storage when it is big enough.
func grow[T any](s []T, n int) []T {
	if n > cap(s) {
		return make([]T, n)
	}
	return s[:n]
}

// prepPool recycles prepared inputs between contexts.
var prepPool = sync.Pool{New: func() any { return new(prepared) }}

// prepKey names an input tensor prepared for one kind of weight.
type prepKey struct {
	x    *tensor
	kind any
}

// newPrepared takes a prepared from the pool for this context.
func (c *context) newPrepared() *prepared {
	p := prepPool.Get().(*prepared)
	c.preps = append(c.preps, p)
	return p
}

// prepare readies every row of x for the weights w, once per context:
// products that share an input (q_a and kv_a, the router, the shared and
// the routed experts) quantize and pack it once.
func (c *context) prepare(x, w *tensor, in int) *prepared {
	key := prepKey{x, weightKind(w)}
	if p, ok := c.memo[key]; ok {
		return p
	}
	p := c.newPrepared().fill(key.kind, in, rowsOf(x), c.b)
	if c.memo == nil {
		c.memo = make(map[prepKey]*prepared)
	}
	c.memo[key] = p
	return p
}

// releasePrepared gives the context's prepared inputs back to the pool.
func (c *context) releasePrepared() {
	for _, p := range c.preps {
		p.xs = nil
		prepPool.Put(p)
	}
	clear(c.preps)
	c.preps = c.preps[:0]
	clear(c.memo)
}

// mul computes y[t][r] = row r · x[t] for rows [0, rows) and every prepared
// input, reading each weight row once for all inputs (batched decode and
// prefill are bound by weight reads, not by arithmetic).
func (b *Backend) mul(m matrix, rows int, p *prepared, ys [][]float32) {
	b.parallel(rows, mulGrain(m.in, len(ys)), func(lo, hi int) { m.mulRange(p, lo, hi, ys) })
}

// mulGrain is the fewest rows a goroutine takes of a product of rows in
// values wide with inputs inputs: a multiple of 16 (R16's row groups) worth
// at least minPieceWork multiply-adds, so that a small model's small
// products (a 128-wide projection of one token: 16k) run on the calling
// goroutine rather than pay a hand-off that costs more than they do.
func mulGrain(in, inputs int) int {
	rows := minPieceWork / max(1, in*inputs)
	return max(16, (rows+15)&^15)
}

// minPieceWork is the least work, in multiply-adds, worth a parallel
// piece: a few microseconds, about what waking another goroutine costs.
const minPieceWork = 64 << 10

// mulRange computes rows [lo, hi) of m for every prepared input, on the
// calling goroutine.
func (m matrix) mulRange(p *prepared, lo, hi int, ys [][]float32) {
	if m.t.rep != nil {
		m.mulRangeR16(p, lo, hi, ys)
		return
	}
	if m.t.dt == engine.Q8_0 {
		m.mulRangeQ8_0(p, lo, hi, ys)
		return
	}
	if f := quantFormats[m.t.dt]; f != nil {
		m.mulRangeQuant(f, p, lo, hi, ys)
		return
	}
	xs := p.xs
	if m.t.dt == engine.F32 {
		done := len(xs) - len(m.mulRangeF32Rows(xs, lo, hi, ys))
		xs, ys = xs[done:], ys[done:]
	}
	var out [4]float32
	// Tiles of tokens keep their activations in L2 while the rows of this
	// range stream past them.
	for t0 := 0; t0 < len(xs); t0 += tokenTile {
		tile := xs[t0:min(t0+tokenTile, len(xs))]
		for r := lo; r < hi; r++ {
			t := 0
			for ; t+4 <= len(tile); t += 4 {
				m.dot4(r, tile[t:t+4], &out)
				ys[t0+t][r], ys[t0+t+1][r], ys[t0+t+2][r], ys[t0+t+3][r] = out[0], out[1], out[2], out[3]
			}
			for ; t < len(tile); t++ {
				ys[t0+t][r] = m.dot(r, tile[t])
			}
		}
	}
}

// f32RowsMax is the most weight values mulRangeF32Rows takes at once (1 MiB):
// it passes over the range once per four inputs, so the range must stay
// in cache; a bigger one goes to mulRange's loop, which tiles the inputs.
const f32RowsMax = 1 << 18

// mulRangeF32Rows multiplies F32 rows [lo, hi) by the leading inputs in
// fours through kernel.DotRowsF32x4 where four inputs lie one after another
// in memory and their outputs are rows of one array (a tensor's rows, as
// in every decode step): one call for the range instead of one DotF32x4
// per row, with the same bits (DotRowsF32x4 gives DotF32x4's, times a
// scale of 1). It returns the inputs it left to mulRange's loop, whose
// outputs are ys' last ones.
func (m matrix) mulRangeF32Rows(xs [][]float32, lo, hi int, ys [][]float32) [][]float32 {
	if len(xs) < 4 || hi <= lo || (hi-lo)*m.in > f32RowsMax {
		return xs
	}
	rp := rowPtrs.Get().(*[]*float32)
	defer rowPtrs.Put(rp)
	rows := (*rp)[:0]
	for r := lo; r < hi; r++ {
		rows = append(rows, &m.t.f[(m.first+r)*m.in])
	}
	*rp = rows
	t := 0
	for ; t+4 <= len(xs); t += 4 {
		q, qs, ok := evenRows(xs[t : t+4])
		if !ok || qs != m.in {
			break
		}
		out, stride, ok := evenRows(ys[t : t+4])
		if !ok {
			break
		}
		kernel.DotRowsF32x4(rows, q, 1, out[lo:], stride)
	}
	return xs[t:]
}

// mulRangeQ8_0 is mulRange for Q8_0 weights: kernel.MulQ8_0x8 multiplies
// a block of rows (in L1, see q8Block) at a time by each two packed groups
// of four inputs and kernel.MulQ8_0x4 by a last odd group, a last pair goes
// through kernel.MulQ8_0x2 and a lone last input through kernel.MulQ8_0x1;
// every output is the bits DotQ8_0 gives, so no result depends on how
// inputs were grouped.
func (m matrix) mulRangeQ8_0(p *prepared, lo, hi int, ys [][]float32) {
	nb := p.nb
	rowBytes := nb * 34
	nt := len(p.xs)
	w := m.t.raw[m.first*rowBytes:]
	block := q8Block(rowBytes)
	scratch := q8Scratch.Get().(*q8Outs)
	defer q8Scratch.Put(scratch)
	out, out2 := &scratch.x8, &scratch.x2
	// scatter copies the outputs of group g (out[per·i+off+j] for row i)
	// to its inputs' rows.
	scatter := func(g, r, n, per, off int) {
		for j := range min(4, nt-4*g) {
			y := ys[4*g+j][r : r+n]
			for i := range y {
				y[i] = out[per*i+off+j]
			}
		}
	}
	for g0 := 0; g0 == 0 || g0 < len(p.groups); g0 += tokenTile / 4 {
		tile := p.groups[g0:min(g0+tokenTile/4, len(p.groups))]
		for r := lo; r < hi; r += block {
			n := min(block, hi-r)
			g := 0
			for ; g+2 <= len(tile); g += 2 {
				kernel.MulQ8_0x8(w[r*rowBytes:], n, &tile[g], &tile[g+1], out[:8*n])
				scatter(g0+g, r, n, 8, 0)
				scatter(g0+g+1, r, n, 8, 4)
			}
			if g < len(tile) {
				kernel.MulQ8_0x4(w[r*rowBytes:], n, &tile[g], out[:4*n])
				scatter(g0+g, r, n, 4, 0)
			}
			if g0 == 0 && p.lone >= 0 {
				kernel.MulQ8_0x1(w[r*rowBytes:], n, p.one, ys[p.lone][r:r+n])
			}
			if g0 == 0 && p.pair != nil {
				kernel.MulQ8_0x2(w[r*rowBytes:], n, p.pair, out2[:2*n])
				y0, y1 := ys[nt-2][r:r+n], ys[nt-1][r:r+n]
				for i := range y0 {
					y0[i], y1[i] = out2[2*i], out2[2*i+1]
				}
			}
		}
	}
}

// mulRangeR16 is mulRange for Q8_0 weights repacked to R16 (lo, hi and
// m.first multiples of 16): kernel.MulQ8_0R16 multiplies a run of row
// groups by each chunk of up to eight inputs in turn. With more than one
// chunk (prefill) a run is about r16RunBytes of weights, which stay in L2
// while every chunk passes over them.
func (m matrix) mulRangeR16(p *prepared, lo, hi int, ys [][]float32) {
	nb := m.in / kernel.Q8_0BlockLen
	gb := nb * kernel.Q8_0BlockSize * kernel.R16Rows
	first, groups := (m.first+lo)/kernel.R16Rows, (hi-lo)/kernel.R16Rows
	w := m.t.rep[first*gb:]
	run := r16MaxRun
	if len(p.chunks) > 1 {
		run = max(1, min(r16MaxRun, r16RunBytes/max(gb, 1)))
	}
	scratch := r16Scratch.Get().(*r16Outs)
	defer r16Scratch.Put(scratch)
	for g0 := 0; g0 < groups; g0 += run {
		gn := min(run, groups-g0)
		for c := range p.chunks {
			ch := &p.chunks[c]
			n := ch.Len()
			// A chunk whose outputs are equally spaced rows of one
			// tensor (a product's output) gets them written in place;
			// others (an expert's tokens) go through a compact scratch.
			if base, stride, ok := evenRows(ys[c*kernel.R16MaxVectors : c*kernel.R16MaxVectors+n]); ok {
				kernel.MulQ8_0R16Rows(w[g0*gb:], gn, ch, base[lo+g0*kernel.R16Rows:], stride)
				continue
			}
			out := scratch[:gn*kernel.R16Rows*n]
			kernel.MulQ8_0R16(w[g0*gb:], gn, ch, out)
			for g := range gn {
				row := lo + (g0+g)*kernel.R16Rows
				for j := range n {
					// One 64-byte array assignment (four vector moves),
					// not a call: memmove per row group cost as much as
					// the kernel for a small model's output projection,
					// and sixteen scalar moves a third of it.
					dst := (*[kernel.R16Rows]float32)(ys[c*kernel.R16MaxVectors+j][row:])
					v := *(*[kernel.R16Rows]float32)(out[(g*n+j)*kernel.R16Rows:])
					*dst = v
				}
			}
		}
	}
}

// evenRows reports whether the rows ys, all of one length, are slices of
// one array stride values apart (rows of one tensor), and returns that
// array from the first row's start to the last row's end, resliced from
// the first row within its capacity: never past the array it belongs to.
func evenRows(ys [][]float32) (base []float32, stride int, ok bool) {
	n, l := len(ys), len(ys[0])
	if l == 0 {
		return nil, 0, false
	}
	stride = l
	if n > 1 {
		p0, p1 := uintptr(unsafe.Pointer(&ys[0][0])), uintptr(unsafe.Pointer(&ys[1][0]))
		if p1 <= p0 || (p1-p0)%4 != 0 {
			return nil, 0, false
		}
		stride = int((p1 - p0) / 4)
	}
	span := (n-1)*stride + l
	if stride < l || cap(ys[0]) < span {
		return nil, 0, false
	}
	base = ys[0][:span]
	for j, y := range ys {
		if len(y) != l || &y[0] != &base[j*stride] {
			return nil, 0, false
		}
	}
	return base, stride, true
}

const (
	r16MaxRun   = 64        // row groups per kernel call
	r16RunBytes = 256 << 10 // weights per run when several chunks pass over it
)

// r16Outs is mulRangeR16's scratch for the kernel's outputs.
type r16Outs [r16MaxRun * kernel.R16Rows * kernel.R16MaxVectors]float32

var r16Scratch = sync.Pool{New: func() any { return new(r16Outs) }}

// job is one piece of a batch of matrix products run in a single parallel
// section: rows [lo, hi) of m for the prepared inputs p into ys.
type job struct {
	m      matrix
	p      *prepared
	lo, hi int
	ys     [][]float32
}

// jobRows is how many rows a job covers: enough to amortise the hand-off,
// few enough to balance uneven work between goroutines.
const jobRows = 64

// appendJobs splits rows of m into jobs.
func appendJobs(jobs []job, m matrix, p *prepared, rows int, ys [][]float32) []job {
	for lo := 0; lo < rows; lo += jobRows {
		jobs = append(jobs, job{m: m, p: p, lo: lo, hi: min(lo+jobRows, rows), ys: ys})
	}
	return jobs
}

// runJobs runs jobs across the backend's goroutines, which take them in
// turn, so many small products (heads, experts) share one parallel section
// instead of paying one each.
func (b *Backend) runJobs(jobs []job) {
	b.each(len(jobs), func(i int) {
		j := &jobs[i]
		j.m.mulRange(j.p, j.lo, j.hi, j.ys)
	})
}

// q8Block is how many weight rows of rowBytes bytes mulRangeQ8_0
// multiplies by each group of inputs before moving on: about q8BlockBytes
// of weights, which stay in L1 while every group passes over them, and an
// even number from 4 to q8MaxRows, for the kernels' two-row tiles. Wide
// rows (a 7168-wide model's 7616 bytes) take 4 at a time; narrow ones (a
// small model's output projection, 136 bytes) take many, so that the calls
// and the copies out are paid per block and not per four rows.
func q8Block(rowBytes int) int {
	n := q8BlockBytes / rowBytes
	return max(4, min(q8MaxRows, n&^1))
}

const (
	q8BlockBytes = 8 << 10
	q8MaxRows    = 64
)

// q8Outs is mulRangeQ8_0's scratch for the kernels' outputs: too big for
// every call to allocate (it escapes through the kernels' function
// values), so calls take one from q8Scratch.
type q8Outs struct {
	x8 [8 * q8MaxRows]float32
	x2 [2 * q8MaxRows]float32
}

var q8Scratch = sync.Pool{New: func() any { return new(q8Outs) }}

// tokenTile is how many input rows mul multiplies against a weight row
// before moving to the next row.
const tokenTile = 32

// dequantRow writes row r of a weight tensor (rows of n values) as f32.
func dequantRow(t *tensor, r, n int, dst []float32) {
	switch t.dt {
	case engine.F32:
		copy(dst, t.f[r*n:(r+1)*n])
	case engine.F8E4M3:
		kernel.DequantE4M3RowBlocks(t.raw[r*n:], t.scales, r, n, t.bh, t.bw, dst)
	case engine.F4E2M1:
		kernel.DequantE2M1Row(t.raw[r*n/2:], t.e8[r*n/kernel.E2M1BlockLen:], n, dst)
	case engine.Q8_0:
		if t.rep != nil {
			kernel.DequantQ8_0R16Row(t.rep, r, n/kernel.Q8_0BlockLen, dst)
			return
		}
		fallthrough
	default: // F16, BF16, plain Q8_0 and the formats of quantFormats
		rb := rowBytes(t.dt, n)
		dequantize(t.dt, t.raw[r*rb:(r+1)*rb], dst[:n])
	}
}
