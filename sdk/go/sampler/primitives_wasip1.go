//go:build wasip1

package sampler

import "unsafe"

//go:wasmimport ulan_v1 top_k
func hostTopK(vals unsafe.Pointer, n, k int32, outIDs, outVals unsafe.Pointer) int32

//go:wasmimport ulan_v1 softmax
func hostSoftmax(vals unsafe.Pointer, n int32, temp float32, out unsafe.Pointer) int32

//go:wasmimport ulan_v1 draw
func hostDraw(probs unsafe.Pointer, n int32, u float32) int32

//go:wasmimport ulan_v1 top_p_cut
func hostTopPCut(probs unsafe.Pointer, n int32, p float32) int32

//go:wasmimport ulan_v1 history
func hostHistory(h int64, buf unsafe.Pointer, cap int32) int32

//go:wasmimport ulan_v1 row_lse
func hostRowLSE(row int32) float32

func rowLSE(row int32) float32 { return hostRowLSE(row) }

//go:wasmimport ulan_v1 token_bytes
func hostTokenBytes(id int32, buf unsafe.Pointer, cap int32) int32

func topPCut(probs []float32, p float32) (int, error) {
	m := hostTopPCut(unsafe.Pointer(&probs[0]), int32(len(probs)), p)
	if m < 0 {
		return 0, errPrimitive("top_p_cut: the host refused the input")
	}
	return int(m), nil
}

func history(h int64, max int) ([]int32, error) {
	buf := make([]int32, 256)
	if max > 0 {
		buf = make([]int32, max)
	}
	for {
		var p unsafe.Pointer
		if len(buf) > 0 {
			p = unsafe.Pointer(&buf[0])
		}
		n := hostHistory(h, p, int32(len(buf)))
		if n < 0 {
			return nil, errPrimitive("history: the host knows no such sequence")
		}
		if int(n) <= len(buf) {
			return buf[:n], nil
		}
		if max > 0 {
			return buf, nil // the last max of n
		}
		buf = make([]int32, n)
	}
}

func tokenBytes(id int32, buf []byte) ([]byte, error) {
	buf = buf[:cap(buf)]
	if len(buf) == 0 {
		buf = make([]byte, 32)
	}
	for {
		n := hostTokenBytes(id, unsafe.Pointer(&buf[0]), int32(len(buf)))
		if n < 0 {
			return nil, errPrimitive("token_bytes: no such token, or the host has no vocabulary")
		}
		if int(n) <= len(buf) {
			return buf[:n], nil
		}
		buf = make([]byte, n)
	}
}

func topK(vals []float32, k int, ids []int32, out []float32) (int, error) {
	m := hostTopK(unsafe.Pointer(&vals[0]), int32(len(vals)), int32(k), unsafe.Pointer(&ids[0]), unsafe.Pointer(&out[0]))
	if m < 0 {
		return 0, errPrimitive("top_k: the host refused the input")
	}
	return int(m), nil
}

func softmax(vals []float32, temp float32, out []float32) error {
	if hostSoftmax(unsafe.Pointer(&vals[0]), int32(len(vals)), temp, unsafe.Pointer(&out[0])) != 0 {
		return errPrimitive("softmax: the host refused the input")
	}
	return nil
}

func draw(probs []float32, u float32) (int, error) {
	i := hostDraw(unsafe.Pointer(&probs[0]), int32(len(probs)), u)
	if i < 0 {
		return 0, errPrimitive("draw: the host refused the input")
	}
	return int(i), nil
}
