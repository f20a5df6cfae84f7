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
