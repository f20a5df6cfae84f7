package kernel

import (
	"strconv"
	"unsafe"
)

// AccumRowsF32x4 is attention's value pass for four heads over a list of
// cache rows: for each head k < 4, row j < len(rows) and d < dv =
// len(out)/4,
//
//	out[k·dv + d] += p[k·stride + j] · rows[j][d]
//
// taking the rows in order, with the bits of AxpyF32(p[k·stride+j],
// rows[j][:dv], out[k·dv:(k+1)·dv]) called for j = 0, 1, … in turn. Each
// rows[j] must point at dv readable values; dv must be a multiple of 16
// (AccumRowsWidth). It panics if p is too short for the rows or len(out)
// is not four times a multiple of 16.
func AccumRowsF32x4(p []float32, stride int, rows []*float32, out []float32) {
	dv := len(out) / 4
	if len(out)%(4*AccumRowsWidth) != 0 || stride < len(rows) || (len(rows) > 0 && len(p) < 3*stride+len(rows)) {
		panic("kernel: AccumRowsF32x4: " + strconv.Itoa(len(rows)) + " rows, stride " + strconv.Itoa(stride) +
			", " + strconv.Itoa(len(p)) + " weights, output of " + strconv.Itoa(dv) + " per head")
	}
	if len(rows) == 0 {
		return
	}
	active.accumRowsF32x4(p, stride, rows, out)
}

// AccumRowsWidth is the multiple of which AccumRowsF32x4's dv must be.
const AccumRowsWidth = 16

// accumRowsF32x4Generic is the reference loop of [AccumRowsF32x4]:
//
//	for each row j:
//		for each head k:
//			axpyF32Generic(p[k·stride+j], rows[j][:dv], out[k·dv:(k+1)·dv])
func accumRowsF32x4Generic(p []float32, stride int, rows []*float32, out []float32) {
	dv := len(out) / 4
	for j, r := range rows {
		row := unsafe.Slice(r, dv)
		for k := range 4 {
			axpyF32Generic(p[k*stride+j], row, out[k*dv:(k+1)*dv])
		}
	}
}

// DotRowsF32x4 is attention's score pass for four heads over a list of
// key rows: for row j < len(rows) and head k < 4, with d = len(q)/4,
//
//	out[k·stride + j] = DotF32(rows[j][:d], q[k·d:(k+1)·d]) · scale
//
// each dot product with the bits of DotF32x4 (so of DotF32), then one
// rounding of the product by scale. Each rows[j] must point at d readable
// values. It panics if len(q) is not a multiple of 4, stride is less than
// len(rows) or out is shorter than 3·stride + len(rows).
func DotRowsF32x4(rows []*float32, q []float32, scale float32, out []float32, stride int) {
	if len(q)%4 != 0 || stride < len(rows) || (len(rows) > 0 && len(out) < 3*stride+len(rows)) {
		panic("kernel: DotRowsF32x4: " + strconv.Itoa(len(rows)) + " rows, " + strconv.Itoa(len(q)) + " query values, stride " +
			strconv.Itoa(stride) + ", " + strconv.Itoa(len(out)) + " outputs")
	}
	if len(rows) == 0 {
		return
	}
	active.dotRowsF32x4(rows, q, scale, out, stride)
}

// dotRowsF32x4Generic is the reference loop of [DotRowsF32x4]:
//
//	for each row j:
//		dotF32x4Generic(rows[j][:d], q's four heads, &o)
//		out[k·stride+j] = o[k]·scale for each head k
func dotRowsF32x4Generic(rows []*float32, q []float32, scale float32, out []float32, stride int) {
	d := len(q) / 4
	var o [4]float32
	for j, r := range rows {
		dotF32x4Generic(unsafe.Slice(r, d), q[:d], q[d:2*d], q[2*d:3*d], q[3*d:], &o)
		for k := range 4 {
			out[k*stride+j] = o[k] * scale
		}
	}
}
