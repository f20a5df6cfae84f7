package cpu

import (
	"math"
	"slices"
	"sync/atomic"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

func (c *context) newF32(shape ...int) *tensor {
	return &tensor{shape: shape, dt: engine.F32, f: c.floats(numel(shape))}
}

// floats returns n zeroed floats from the context's arena (or the heap
// once the context is closed).
func (c *context) floats(n int) []float32 {
	if c.mem == nil {
		return make([]float32, n)
	}
	return c.mem.floats(n)
}

// output returns n floats for an op that writes every one of them (a
// matrix product's result), not cleared first.
func (c *context) output(n int) []float32 {
	if c.mem == nil {
		return make([]float32, n)
	}
	return c.mem.dirty(n)
}

// weight unwraps a weight tensor of any stored type.
func (c *context) weight(op string, t engine.Tensor, dims int) (*tensor, bool) {
	if c.err != nil {
		return nil, false
	}
	w, ok := t.(*tensor)
	if !ok || w == nil {
		c.fail("%s: weight is not a cpu tensor", op)
		return nil, false
	}
	if len(w.shape) != dims {
		c.fail("%s: weight %v, want %d dimensions", op, w, dims)
		return nil, false
	}
	return w, true
}

// rowsOf splits an F32 tensor into rows of its last dimension.
func rowsOf(t *tensor) [][]float32 {
	n := t.shape[len(t.shape)-1]
	rows := make([][]float32, len(t.f)/max(n, 1))
	for i := range rows {
		rows[i] = t.f[i*n : (i+1)*n]
	}
	return rows
}

func (c *context) Embed(table engine.Tensor, b *engine.Batch) engine.Tensor {
	w, ok := c.weight("Embed", table, 2)
	if !ok {
		return &tensor{}
	}
	vocab, n := w.shape[0], w.shape[1]
	out := c.newF32(len(b.Tokens), n)
	for i, id := range b.Tokens {
		if id < 0 || int(id) >= vocab {
			return c.fail("Embed: token %d: id %d outside the vocabulary of %d", i, id, vocab)
		}
		dequantRow(w, int(id), n, out.f[i*n:(i+1)*n])
	}
	return out
}

func (c *context) MatMul(x, w engine.Tensor) engine.Tensor {
	return c.matMul("MatMul", x, w, false)
}

// Logits is MatMul that also takes each output row's tile maxima
// (kernel.TileMax) in the goroutine that computed the row's piece, while
// the piece is in its cache: the sampler's search for the row's best
// logits then reads the maxima and a few tiles, not the whole row again.
func (c *context) Logits(x, w engine.Tensor) engine.Tensor {
	return c.matMul("Logits", x, w, true)
}

// The tile kernel's tiles are the engine's (a negative constant does not
// convert to uint).
const _ = uint(engine.LogitTile-kernel.Tile) + uint(kernel.Tile-engine.LogitTile)

func (c *context) matMul(op string, x, w engine.Tensor, tiles bool) engine.Tensor {
	xt, ok := c.f32(op, x)
	wt, ok2 := c.weight(op, w, 2)
	if !ok || !ok2 {
		return &tensor{}
	}
	out, in := wt.shape[0], wt.shape[1]
	if len(xt.shape) != 2 || xt.shape[1] != in {
		return c.fail("%s: x %v against weight %v", op, xt, wt)
	}
	y := &tensor{shape: []int{xt.shape[0], out}, dt: engine.F32, f: c.output(xt.shape[0] * out)}
	m, p, ys := matrix{t: wt, in: in}, c.prepare(xt, wt, in), rowsOf(y)
	if !tiles {
		c.b.mul(m, out, p, ys)
		return y
	}
	nt := (out + kernel.Tile - 1) / kernel.Tile
	maxima := c.output(len(ys) * nt)
	y.tiles = make([][]float32, len(ys))
	for t := range ys {
		y.tiles[t] = maxima[t*nt : (t+1)*nt : (t+1)*nt]
	}
	finite := make([]atomic.Bool, len(ys))
	for t := range finite {
		finite[t].Store(true)
	}
	// Pieces start on a tile's first row, so that each tile is one
	// piece's.
	grain := (mulGrain(in, len(ys)) + kernel.Tile - 1) / kernel.Tile * kernel.Tile
	c.b.parallel(out, grain, func(lo, hi int) {
		// In runs short enough that the run's outputs are still in
		// this core's cache when their maxima are taken: a whole piece
		// streams more weight rows through the cache than it holds.
		for lo := lo; lo < hi; lo += tileRun {
			hi := min(lo+tileRun, hi)
			m.mulRange(p, lo, hi, ys)
			for t, row := range ys {
				if !kernel.TileMax(row[lo:hi], y.tiles[t][lo/kernel.Tile:(hi+kernel.Tile-1)/kernel.Tile]) {
					finite[t].Store(false)
				}
			}
		}
	})
	for t := range finite {
		if !finite[t].Load() {
			y.tiles[t] = nil
		}
	}
	return y
}

// tileRun is how many output rows Logits computes before it takes their
// tile maxima: a multiple of the tile, and of R16's sixteen rows, whose
// weights (about 140 KB at hidden 128 in Q8_0, 1 MB at 7168) leave its
// outputs (8 KB a token) in the core's cache.
const tileRun = 1024

// TileMaxima returns the tile maxima Logits took of t's rows, nil for
// any other tensor.
func (c *context) TileMaxima(t engine.Tensor) [][]float32 {
	if ct, ok := t.(*tensor); ok && c.err == nil {
		return ct.tiles
	}
	return nil
}

func (c *context) MatMulHeads(x, w engine.Tensor) engine.Tensor {
	xt, ok := c.f32("MatMulHeads", x)
	wt, ok2 := c.weight("MatMulHeads", w, 3)
	if !ok || !ok2 {
		return &tensor{}
	}
	h, out, in := wt.shape[0], wt.shape[1], wt.shape[2]
	if len(xt.shape) != 3 || xt.shape[1] != h || xt.shape[2] != in {
		return c.fail("MatMulHeads: x %v against weight %v", xt, wt)
	}
	T := xt.shape[0]
	y := &tensor{shape: []int{T, h, out}, dt: engine.F32, f: c.output(T * h * out)}
	// Each head's inputs are prepared on the goroutines that then share
	// the products.
	ps := make([]*prepared, h)
	for head := range ps {
		ps[head] = c.newPrepared()
	}
	yss := make([][][]float32, h)
	c.b.each(h, func(head int) {
		xs := make([][]float32, T)
		ys := make([][]float32, T)
		for t := range T {
			xs[t] = xt.f[(t*h+head)*in : (t*h+head+1)*in]
			ys[t] = y.f[(t*h+head)*out : (t*h+head+1)*out]
		}
		ps[head].fill(weightKind(wt), in, xs, nil)
		yss[head] = ys
	})
	var jobs []job
	for head := range h {
		jobs = appendJobs(jobs, partMatrix(wt, head, out, in), ps[head], out, yss[head])
	}
	c.b.runJobs(jobs)
	return y
}

func (c *context) RMSNorm(x, weight engine.Tensor, eps float32) engine.Tensor {
	xt, ok := c.f32("RMSNorm", x)
	if !ok {
		return &tensor{}
	}
	n := xt.shape[len(xt.shape)-1]
	var w []float32
	if weight != nil {
		wt, ok := c.f32("RMSNorm weight", weight)
		if !ok {
			return &tensor{}
		}
		if len(wt.f) != n {
			return c.fail("RMSNorm: weight %v for rows of %d", wt, n)
		}
		w = wt.f
	}
	// Every element is written: the output need not be cleared.
	y := &tensor{shape: slices.Clone(xt.shape), dt: engine.F32, f: c.output(len(xt.f))}
	if n == 0 {
		return y
	}
	c.b.parallel(len(xt.f)/n, rowGrain(n), func(lo, hi int) {
		for r := lo * n; r < hi*n; r += n {
			// ggml sums the f32 squares in double precision
			// (ggml_float), in order; SumSquaresF64 in sixteen lanes
			// (see its doc).
			row := xt.f[r : r+n]
			sum := kernel.SumSquaresF64(row)
			scale := float32(1 / math.Sqrt(float64(float32(sum/float64(n))+eps)))
			kernel.ScaleF32(y.f[r:r+n], row, scale, w)
		}
	})
	return y
}

// rowGrain is the fewest rows of n values a goroutine takes of an
// operation that works row by row (a norm, a rotation, a router's
// choice): at least minRowValues values, so that a decode step's few
// short rows run on the calling goroutine and a batch's share the
// team.
func rowGrain(n int) int { return max(1, minRowValues/max(n, 1)) }

// minRowValues is rowGrain's least share, in values: about a
// microsecond of a norm's or a rotation's work, a few times what handing
// a piece to a spinning helper costs.
const minRowValues = 2048

func (c *context) Slice(x engine.Tensor, lo, hi int) engine.Tensor {
	xt, ok := c.f32("Slice", x)
	if !ok {
		return &tensor{}
	}
	n := xt.shape[len(xt.shape)-1]
	if lo < 0 || hi > n || lo >= hi {
		return c.fail("Slice: [%d, %d) of %v", lo, hi, xt)
	}
	shape := slices.Clone(xt.shape)
	shape[len(shape)-1] = hi - lo
	y := c.newF32(shape...)
	for r, row := range rowsOf(xt) {
		copy(y.f[r*(hi-lo):], row[lo:hi])
	}
	return y
}

func (c *context) Concat(a, b engine.Tensor) engine.Tensor {
	at, ok := c.f32("Concat", a)
	bt, ok2 := c.f32("Concat", b)
	if !ok || !ok2 {
		return &tensor{}
	}
	if len(at.shape) != len(bt.shape) || !slices.Equal(at.shape[:len(at.shape)-1], bt.shape[:len(bt.shape)-1]) {
		return c.fail("Concat: %v and %v", at, bt)
	}
	na, nb := at.shape[len(at.shape)-1], bt.shape[len(bt.shape)-1]
	shape := slices.Clone(at.shape)
	shape[len(shape)-1] = na + nb
	y := c.newF32(shape...)
	ra, rb := rowsOf(at), rowsOf(bt)
	for r := range ra {
		copy(y.f[r*(na+nb):], ra[r])
		copy(y.f[r*(na+nb)+na:], rb[r])
	}
	return y
}

func (c *context) Reshape(x engine.Tensor, shape ...int) engine.Tensor {
	xt, ok := c.f32("Reshape", x)
	if !ok {
		return &tensor{}
	}
	if numel(shape) != len(xt.f) {
		return c.fail("Reshape: %v to %v", xt, shape)
	}
	return &tensor{shape: shape, dt: engine.F32, f: xt.f}
}

func (c *context) Rows(x engine.Tensor, rows []int) engine.Tensor {
	xt, ok := c.f32("Rows", x)
	if !ok {
		return &tensor{}
	}
	all := rowsOf(xt)
	n := xt.shape[len(xt.shape)-1]
	y := c.newF32(len(rows), n)
	for i, r := range rows {
		if r < 0 || r >= len(all) {
			return c.fail("Rows: row %d of %d", r, len(all))
		}
		copy(y.f[i*n:], all[r])
	}
	return y
}

func (c *context) Add(a, b engine.Tensor) engine.Tensor {
	at, ok := c.f32("Add", a)
	bt, ok2 := c.f32("Add", b)
	if !ok || !ok2 {
		return &tensor{}
	}
	if !slices.Equal(at.shape, bt.shape) {
		return c.fail("Add: %v and %v", at, bt)
	}
	y := c.newF32(slices.Clone(at.shape)...)
	for i := range y.f {
		y.f[i] = at.f[i] + bt.f[i]
	}
	return y
}

// silu is ggml's x / (1 + e^-x), in f32 (e^-x through exp32, the bits of
// float32(math.Exp(float64(-x)))).
func silu(x float32) float32 { return x / (1 + exp32(-x)) }

// swiglu is one element of SwiGLU with V4's asymmetric clamp (none when
// clamp is 0).
func swiglu(g, u, clamp float32) float32 {
	if clamp > 0 {
		g = min(g, clamp)
		u = max(-clamp, min(u, clamp))
	}
	return silu(g) * u
}

func (c *context) SwiGLU(gate, up engine.Tensor, clamp float32) engine.Tensor {
	gt, ok := c.f32("SwiGLU", gate)
	ut, ok2 := c.f32("SwiGLU", up)
	if !ok || !ok2 {
		return &tensor{}
	}
	if !slices.Equal(gt.shape, ut.shape) {
		return c.fail("SwiGLU: %v and %v", gt, ut)
	}
	y := &tensor{shape: slices.Clone(gt.shape), dt: engine.F32, f: c.output(len(gt.f))}
	copy(y.f, gt.f)
	swigluRows(y.f, ut.f, clamp) // swiglu's bits, exp32 inlined
	return y
}
