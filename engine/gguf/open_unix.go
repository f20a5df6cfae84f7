//go:build unix

package gguf

import (
	"fmt"
	"math"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Open memory-maps the file at path read-only and parses it. Tensor data is
// not read until it is touched through Data, so opening a large model is
// cheap. Close the File to unmap it. A malformed file gives a *FormatError,
// which does not name the path; callers add it.
//
// As with any memory map, the file must not be truncated while it is open:
// touching data past the new end raises SIGBUS, not an error.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	// The mapping outlives the descriptor.
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		// mmap refuses a zero length; Parse reports the empty file.
		return Parse(nil)
	}
	if size < 0 || uint64(size) > math.MaxInt {
		return nil, fmt.Errorf("gguf: %s: %d bytes is too large to map on this platform", path, size)
	}
	data, err := unix.Mmap(int(fh.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("gguf: mmap %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		_ = unix.Munmap(data)
		return nil, err
	}
	f.unmap = func() error { return unix.Munmap(data) }
	f.release = func(b []byte) {
		page := uintptr(os.Getpagesize())
		start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		lo := int((page - start%page) % page)
		hi := len(b) - int((start+uintptr(len(b)))%page)
		if hi > lo {
			// Advice only: a failure leaves the pages resident.
			_ = unix.Madvise(b[lo:hi], unix.MADV_DONTNEED)
		}
	}
	return f, nil
}
