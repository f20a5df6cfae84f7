//go:build wasip1

package sampler

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

//go:wasmexport smp_open
func smpOpen(ptr, n uint32) int64 {
	h, err := open(append([]byte(nil), ulan.Bytes(ptr, n)...))
	if err != nil {
		return -int64(ulan.Status(err))
	}
	return h
}

//go:wasmexport smp_close
func smpClose(h int64) { closeSeq(h) }

// Arena layout (sdk/ABI.md §6.2): a 16-byte header (rows, k, flags, 0), rows
// of 32 bytes (handle i64, n_cands, position, u0, u1, lse — the keep-all
// temperature on the way out —, out_token), then
// candidate ids, candidate logits and output logits, rows×k each.
const (
	headerSize = 16
	rowSize    = 32
	// flagKeepAll is the header flag by which the host says it accepts
	// out_token −3.
	flagKeepAll = 1
)

// stepSeqs is smp_step's buffer of the rows' sequences.
var stepSeqs []Sequence

//go:wasmexport smp_step
func smpStep(ptr, n uint32) int32 {
	arena := ulan.Bytes(ptr, n)
	if len(arena) < headerSize {
		return ulan.Status(errArena)
	}
	rows := int(binary.LittleEndian.Uint32(arena))
	k := int(binary.LittleEndian.Uint32(arena[4:]))
	flags := binary.LittleEndian.Uint32(arena[8:])
	if rows < 0 || k < 0 || headerSize+rows*rowSize+3*4*rows*k > len(arena) {
		return ulan.Status(errArena)
	}
	base := headerSize + rows*rowSize
	ids := unsafe.Slice((*int32)(unsafe.Pointer(&arena[base])), rows*k)
	logits := unsafe.Slice((*float32)(unsafe.Pointer(&arena[base+4*rows*k])), rows*k)
	out := unsafe.Slice((*float32)(unsafe.Pointer(&arena[base+8*rows*k])), rows*k)
	// The rows' sequences, under one lock for the step: in WebAssembly
	// each call and loop turn of Go code costs more than natively.
	stepSeqs = stepSeqs[:0]
	mu.Lock()
	for i := range rows {
		stepSeqs = append(stepSeqs, seqs[int64(binary.LittleEndian.Uint64(arena[headerSize+i*rowSize:]))])
	}
	mu.Unlock()
	err := ulan.Guard(func() error {
		var r Row
		for i, q := range stepSeqs {
			rec := arena[headerSize+i*rowSize:]
			h := int64(binary.LittleEndian.Uint64(rec))
			if q == nil {
				return errNoSeq
			}
			nc := int(binary.LittleEndian.Uint32(rec[8:]))
			if nc < 0 || nc > k {
				return errArena
			}
			r = Row{
				Position: int32(binary.LittleEndian.Uint32(rec[12:])),
				U0:       math.Float32frombits(binary.LittleEndian.Uint32(rec[16:])),
				U1:       math.Float32frombits(binary.LittleEndian.Uint32(rec[20:])),
				LSE:      math.Float32frombits(binary.LittleEndian.Uint32(rec[24:])),
				IDs:      ids[i*k : i*k+nc],
				Logits:   logits[i*k : i*k+nc],
				Out:      out[i*k : i*k+nc],
				Token:    -1,
				handle:   h,
				index:    int32(i),
				keepAll:  flags&flagKeepAll != 0,
			}
			if err := q.Step(&r); err != nil {
				return err
			}
			if r.Token == TokenKeepAll {
				binary.LittleEndian.PutUint32(rec[24:], math.Float32bits(r.keepT))
			}
			binary.LittleEndian.PutUint32(rec[28:], uint32(r.Token))
		}
		return nil
	})
	return ulan.Status(err)
}
