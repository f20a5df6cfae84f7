//go:build wasip1

package hook

import (
	"unsafe"

	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

//go:wasmexport hook_open
func hookOpen(ptr, n uint32) int64 {
	meta := append([]byte(nil), ulan.Bytes(ptr, n)...)
	h, err := open(meta)
	if err != nil {
		return -int64(ulan.Status(err))
	}
	return h
}

//go:wasmexport hook_delta
func hookDelta(h int64, textPtr, textLen, idsPtr, nIDs uint32, flags int32) int64 {
	s := lookup(h)
	if s == nil {
		ulan.SetError(errNoSession.Error())
		return -int64(ulan.StatusNotFound)
	}
	text := string(ulan.Bytes(textPtr, textLen))
	var ids []int32
	if nIDs > 0 {
		ids = append(ids, unsafe.Slice((*int32)(unsafe.Add(nil, uintptr(idsPtr))), nIDs)...)
	}
	var rec []byte
	err := ulan.Guard(func() (err error) {
		rec, err = s.answer(s.s.Delta(text, ids, Channel(flags&3)))
		return err
	})
	if err != nil {
		return -int64(ulan.Status(err))
	}
	return ulan.Pack(rec)
}

//go:wasmexport hook_end
func hookEnd(h int64, finish int32) int64 {
	s := lookup(h)
	if s == nil {
		ulan.SetError(errNoSession.Error())
		return -int64(ulan.StatusNotFound)
	}
	var rec []byte
	err := ulan.Guard(func() (err error) {
		rec, err = s.answer(s.s.End(finish))
		return err
	})
	if err != nil {
		return -int64(ulan.Status(err))
	}
	return ulan.Pack(rec)
}

//go:wasmexport hook_close
func hookClose(h int64) { closeSession(h) }
