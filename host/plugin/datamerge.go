package plugin

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// maxDataGap is the largest run of zero bytes mergeDataSegments writes out to join
// two data segments. Go's linker splits a module's data wherever 16 or more zero bytes
// follow each other; most of those runs are under 32 bytes long.
const maxDataGap = 32

// zeros fill the gaps between joined segments.
var zeros [maxDataGap]byte

// Wasm binary section ids (WebAssembly core spec §5.5).
const (
	sectionData      = 11
	sectionDataCount = 12
)

// dataSegment is an active data segment of memory 0 at a constant offset: it
// writes [start, end) from the data section's payload at offset at.
type dataSegment struct {
	start, end uint64
	at         int
}

// mergeDataSegments returns wasm with neighbouring active data segments joined, when
// the zeros between them (at most maxDataGap bytes) are written by no other segment:
// the memory an instance starts with is the same, byte for byte, but wazero sets it up
// from a few hundred segments instead of tens of thousands (Go's linker emits ~40,000
// for a 4 MB plugin, and wazero spends ~8 ms per instance evaluating their offsets).
// Anything it does not fully understand — a DataCount section (which memory.init and
// data.drop need, and whose segment indices a merge would break), a passive segment, an
// offset that is not an i32.const, a malformed section — leaves the module as it is,
// for wazero to run or refuse.
func mergeDataSegments(wasm []byte) []byte {
	if len(wasm) < 8 {
		return wasm
	}
	var header, dataAt, dataEnd int // the data section's header and payload
	for i := 8; i < len(wasm); {
		id := wasm[i]
		size, n := binary.Uvarint(wasm[i+1:])
		if n <= 0 || size > uint64(len(wasm)-i-1-n) {
			return wasm
		}
		start := i + 1 + n
		switch id {
		case sectionDataCount:
			return wasm
		case sectionData:
			if dataAt != 0 {
				return wasm // two data sections: not a module
			}
			header, dataAt, dataEnd = i, start, start+int(size)
		}
		i = start + int(size)
	}
	if dataAt == 0 {
		return wasm
	}
	data := wasm[dataAt:dataEnd]
	segs, ok := readDataSegments(data)
	if !ok || len(segs) < 2 {
		return wasm
	}
	runs := joinSegments(segs)
	if len(runs) == len(segs) {
		return wasm
	}
	// The new payload: the count, then per run its header and bytes, zeros between
	// its segments.
	size := uvarintLen(uint64(len(runs)))
	for k, from := range runs {
		to := len(segs)
		if k+1 < len(runs) {
			to = runs[k+1]
		}
		n := segs[to-1].end - segs[from].start
		size += 3 + len(appendSLEB32(nil, int32(uint32(segs[from].start)))) + uvarintLen(n) + int(n)
	}
	out := make([]byte, 0, header+1+uvarintLen(uint64(size))+size+len(wasm)-dataEnd)
	out = append(out, wasm[:header]...)
	out = append(out, sectionData)
	out = binary.AppendUvarint(out, uint64(size))
	out = binary.AppendUvarint(out, uint64(len(runs)))
	for k, from := range runs {
		to := len(segs)
		if k+1 < len(runs) {
			to = runs[k+1]
		}
		first := segs[from]
		out = append(out, 0, 0x41) // flags 0 (active, memory 0), i32.const
		out = appendSLEB32(out, int32(uint32(first.start)))
		out = append(out, 0x0b) // end
		out = binary.AppendUvarint(out, segs[to-1].end-first.start)
		pos := first.start
		for _, sg := range segs[from:to] {
			out = append(out, zeros[:sg.start-pos]...)
			out = append(out, data[sg.at:sg.at+int(sg.end-sg.start)]...)
			pos = sg.end
		}
	}
	return append(out, wasm[dataEnd:]...)
}

// readDataSegments parses a data section's payload; ok is false for anything but
// active segments of memory 0 at i32.const offsets, exactly filling the payload.
func readDataSegments(data []byte) (_ []dataSegment, ok bool) {
	count, n := binary.Uvarint(data)
	if n <= 0 || count > uint64(len(data)) {
		return nil, false
	}
	at := n
	segs := make([]dataSegment, 0, count)
	for range count {
		b := data[at:]
		if len(b) < 2 || b[0] != 0 || b[1] != 0x41 {
			return nil, false
		}
		off, n := readSLEB32(b[2:])
		if n <= 0 || len(b) < 3+n || b[2+n] != 0x0b {
			return nil, false
		}
		at += 3 + n
		size, n := binary.Uvarint(data[at:])
		if n <= 0 || size > uint64(len(data)-at-n) {
			return nil, false
		}
		at += n
		start := uint64(uint32(off)) // i32.const is signed, the address unsigned
		segs = append(segs, dataSegment{start: start, end: start + size, at: at})
		at += int(size)
	}
	return segs, at == len(data)
}

// joinSegments returns where each run of segments to join starts (indices into segs,
// ascending from 0): a segment joins the one before when the gap between them is at
// most maxDataGap zero bytes that no other segment writes.
func joinSegments(segs []dataSegment) []int {
	// A gap [e, s) is written by another segment exactly when one starting before s
	// ends after e: the segments are sorted by start (Go's linker emits a few sorted
	// runs), with the furthest end of any starting at or before each, and searched.
	type span struct{ start, end uint64 }
	spans := make([]span, len(segs))
	for i, sg := range segs {
		spans[i] = span{sg.start, sg.end}
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	starts := make([]uint64, len(spans))
	reach := make([]uint64, len(spans))
	for i, sp := range spans {
		starts[i], reach[i] = sp.start, sp.end
		if i > 0 {
			reach[i] = max(reach[i], reach[i-1])
		}
	}
	untouched := func(e, s uint64) bool {
		j, _ := slices.BinarySearch(starts, s) // the first starting at or after s
		return j == 0 || reach[j-1] <= e
	}
	runs := []int{0}
	end := segs[0].end
	for i := 1; i < len(segs); i++ {
		s := segs[i]
		if !(s.start >= end && s.start-end <= maxDataGap && untouched(end, s.start)) {
			runs = append(runs, i)
		}
		end = s.end
	}
	return runs
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// readSLEB32 reads a signed LEB128 of at most 5 bytes (an i32.const's operand),
// returning the value and the bytes read, or n ≤ 0 when b does not start with one.
func readSLEB32(b []byte) (v int32, n int) {
	var x int64
	var shift uint
	for n < len(b) && n < 5 {
		c := b[n]
		n++
		x |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				x |= -1 << shift
			}
			if x < -1<<31 || x >= 1<<31 {
				return 0, -1
			}
			return int32(x), n
		}
	}
	return 0, -1
}

// appendSLEB32 appends v as a signed LEB128.
func appendSLEB32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
