//go:build wasip1

package sampler

import "unsafe"

//go:wasmimport ulan_v1 top_k
func hostTopK(vals unsafe.Pointer, n, k int32, outIDs, outVals unsafe.Pointer) int32

//go:wasmimport ulan_v1 softmax
func hostSoftmax(vals unsafe.Pointer, n int32, temp float32, out unsafe.Pointer) int32

//go:wasmimport ulan_v1 draw
func hostDraw(probs unsafe.Pointer, n int32, u float32) int32

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
