//go:build !unix

package cpu

// offHeap returns n zeroed bytes; off unix systems they come from the Go
// heap (see offheap_unix.go).
func offHeap(n int) ([]byte, func()) { return make([]byte, n), func() {} }
