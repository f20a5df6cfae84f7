//go:build unix

package cpu

import "golang.org/x/sys/unix"

// offHeap returns n zeroed bytes outside the Go heap, and the function that
// returns them to the system. Repacked weights and KV caches live there: a
// gigabyte of them on the heap would make the collector wait for another
// gigabyte of garbage before each cycle (GOGC paces by live heap), and a
// decode step's short-lived buffers would pile up to that.
func offHeap(n int) ([]byte, func()) {
	if n == 0 {
		return nil, func() {}
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		// Out of address space or mappings: the heap is the fallback.
		return make([]byte, n), func() {}
	}
	return b, func() { _ = unix.Munmap(b) }
}
