//go:build wasip1

package ulan

import (
	"errors"
	"unsafe"
)

//go:wasmimport ulan_v1 log
func hostLog(level int32, ptr unsafe.Pointer, n int32)

//go:wasmimport ulan_v1 set_error
func hostSetError(ptr unsafe.Pointer, n int32)

// Log writes a message to the server's log, tagged with the plugin.
func Log(level Level, msg string) {
	if len(msg) == 0 {
		return
	}
	b := []byte(msg)
	hostLog(int32(level), unsafe.Pointer(&b[0]), int32(len(b)))
}

// SetError gives the host the text of the error an export is about to
// return (at most 4 KiB is kept).
func SetError(msg string) {
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	if len(msg) == 0 {
		return
	}
	b := []byte(msg)
	hostSetError(unsafe.Pointer(&b[0]), int32(len(b)))
}

// live keeps the buffers the host was handed reachable: Go's collector
// does not move objects on wasm, so an address stays valid while the buffer
// is referenced.
var live = map[uint32][]byte{}

//go:wasmexport ulan_abi_1
func abiMarker() {}

//go:wasmexport ulan_alloc
func alloc(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	b := make([]byte, size)
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	live[p] = b
	return p
}

//go:wasmexport ulan_free
func free(ptr uint32) { delete(live, ptr) }

//go:wasmexport ulan_init
func initExport(ptr, n uint32) int32 {
	cfg := append([]byte(nil), Bytes(ptr, n)...)
	return Status(Guard(func() error { return Init(cfg) }))
}

//go:wasmexport ulan_reconfigure
func reconfigureExport(ptr, n uint32) int32 {
	cfg := append([]byte(nil), Bytes(ptr, n)...)
	err := Guard(func() error { return Reconfigure(cfg) })
	if errors.Is(err, ErrUnsupported) {
		return StatusUnsupported
	}
	return Status(err)
}

// Bytes views n bytes of linear memory at ptr (valid during the call).
func Bytes(ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(nil, uintptr(ptr))), n)
}

// Pack returns b as the ABI's packed result, ptr<<32 | len; b must stay
// referenced until the next call (the kind packages keep it).
func Pack(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	return int64(uint64(uintptr(unsafe.Pointer(&b[0])))<<32 | uint64(len(b)))
}
