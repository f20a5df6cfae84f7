package kernel

import (
	"fmt"
	"runtime"
	"sort"
	"testing"

	"golang.org/x/sys/unix"
)

func threadNS() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

// cpuTime returns the median over reps of thread CPU ns per call.
func cpuTime(iters int, f func()) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ms []float64
	for rep := 0; rep < 15; rep++ {
		t0 := threadNS()
		for i := 0; i < iters; i++ {
			f()
		}
		ms = append(ms, float64(threadNS()-t0)/float64(iters))
	}
	sort.Float64s(ms)
	return ms[2] // near-min: robust to interference
}

func TestZZCPU(t *testing.T) {
	for _, n := range []int{2048, 7168} {
		w, x := benchQ8(n, 1), benchQ8(n, 2)
		x1, x2, x3 := benchQ8(n, 3), benchQ8(n, 4), benchQ8(n, 5)
		var o [4]float32
		wf, xf := benchWeights(f32Kernel, n), benchFloats(n, 2)
		w16 := benchWeights(f16Kernel, n)
		wb := benchWeights(bf16Kernel, n)
		xf1, xf2, xf3 := benchFloats(n, 3), benchFloats(n, 4), benchFloats(n, 5)
		it := 200000 / n * 50
		rep := func(name string, bytes int, ns float64, per int) {
			fmt.Printf("%-10s n=%d %8.1f ns/op %6.2f GB/s  %8.1f ns/vec\n", name, n, ns, float64(bytes)/ns, ns/float64(per))
		}
		rep("Q8_0", len(w), cpuTime(it, func() { sinkF32 += DotQ8_0(w, x, n/32) }), 1)
		rep("Q8_0x4", len(w), cpuTime(it, func() { DotQ8_0x4(w, x, x1, x2, x3, n/32, &o) }), 4)
		rep("F32", 4*n, cpuTime(it, func() { sinkF32 += DotF32(wf, xf) }), 1)
		rep("F32x4", 4*n, cpuTime(it, func() { DotF32x4(wf, xf, xf1, xf2, xf3, &o) }), 4)
		rep("F16", 2*n, cpuTime(it, func() { sinkF32 += DotF16(w16, xf) }), 1)
		rep("F16x4", 2*n, cpuTime(it, func() { DotF16x4(w16, xf, xf1, xf2, xf3, &o) }), 4)
		rep("BF16", 2*n, cpuTime(it, func() { sinkF32 += DotBF16(wb, xf) }), 1)
		rep("BF16x4", 2*n, cpuTime(it, func() { DotBF16x4(wb, xf, xf1, xf2, xf3, &o) }), 4)
	}
}

func TestZZMatVec(t *testing.T) {
	const matBytes = 64 << 20
	for _, n := range []int{2048, 7168} {
		rowBytes := n / 32 * 34
		rows := matBytes / rowBytes
		w := make([]byte, rows*rowBytes)
		row := benchQ8(n, 1)
		for r := range rows {
			copy(w[r*rowBytes:], row)
		}
		x := [4][]byte{benchQ8(n, 2), benchQ8(n, 3), benchQ8(n, 4), benchQ8(n, 5)}
		out := make([]float32, rows)
		var o [4]float32
		ns := cpuTime(3, func() {
			for r := range rows {
				out[r] = DotQ8_0(w[r*rowBytes:(r+1)*rowBytes], x[0], n/32)
			}
		})
		fmt.Printf("matvec Q8_0 n=%d: %.2f ms, %.2f GB/s\n", n, ns/1e6, float64(len(w))/ns)
		ns = cpuTime(3, func() {
			for r := range rows {
				DotQ8_0x4(w[r*rowBytes:(r+1)*rowBytes], x[0], x[1], x[2], x[3], n/32, &o)
				out[r] = o[0]
			}
		})
		fmt.Printf("matvec Q8_0x4 n=%d: %.2f ms, %.2f GB/s weights, %.2f GB/s per-vector-equivalent\n", n, ns/1e6, float64(len(w))/ns, 4*float64(len(w))/ns)
		w16 := make([]uint16, matBytes/2)
		for i := range w16 {
			w16[i] = uint16(0x3c00 + i%512)
		}
		xf := benchFloats(n, 2)
		ns = cpuTime(3, func() {
			for r := 0; r+n <= len(w16); r += n {
				sinkF32 += DotF16(w16[r:r+n], xf)
			}
		})
		fmt.Printf("matvec F16 n=%d: %.2f ms, %.2f GB/s\n", n, ns/1e6, float64(matBytes)/ns)
	}
}

func TestZZQuant(t *testing.T) {
	for _, n := range []int{2048, 7168} {
		x := benchFloats(n, 1)
		dst := make([]byte, n/32*34)
		ns := cpuTime(2000, func() { QuantizeQ8_0(x, dst) })
		fmt.Printf("quantize n=%d: %.0f ns, %.2f ns/elem\n", n, ns, ns/float64(n))
		h := make([]uint16, n)
		ns = cpuTime(2000, func() { F16ToF32s(x, h) })
		fmt.Printf("F16ToF32s n=%d: %.0f ns\n", n, ns)
		r := ForceGeneric()
		ns = cpuTime(200, func() { F16ToF32s(x, h) })
		fmt.Printf("F16ToF32s generic n=%d: %.0f ns\n", n, ns)
		r()
	}
}
