package primitive

import (
	"fmt"
	"strings"
	"sync"
)

// ByteEncoder runs a byte-level BPE tokenizer's hot path in one call: it
// splits a text with a splitter, maps each piece's bytes to their symbols
// and merges them, with a cache of the pieces it has seen. A tokenizer
// plugin hands a whole stretch of text (between added tokens) to it at
// once, so the loop over pieces runs natively, not one host call per piece.
type ByteEncoder struct {
	ranks   *Ranks
	split   Splitter
	byteIDs [256]int32

	mu    sync.Mutex
	cache map[string][]int32
}

// maxEncoderCache bounds a ByteEncoder's cache; it is emptied when full.
const maxEncoderCache = 1 << 16

// NewByteEncoder returns the encoder of ranks over split, where byte b's
// symbol is byteIDs[b].
func NewByteEncoder(ranks *Ranks, split Splitter, byteIDs [256]int32) (*ByteEncoder, error) {
	if ranks == nil || split == nil {
		return nil, fmt.Errorf("%w: a byte encoder needs a rank table and a splitter", ErrBounds)
	}
	for b, id := range byteIDs {
		if id < 0 {
			return nil, fmt.Errorf("%w: byte 0x%02x has symbol %d", ErrBounds, b, id)
		}
	}
	return &ByteEncoder{ranks: ranks, split: split, byteIDs: byteIDs, cache: map[string][]int32{}}, nil
}

// Encode returns the ids of text: each piece's bytes as symbols, merged.
// It never returns more ids than text has bytes.
func (e *ByteEncoder) Encode(text string) ([]int32, error) {
	spans, err := e.split.Split(text)
	if err != nil {
		return nil, err
	}
	ids := make([]int32, 0, len(text)/3+1)
	var syms []int32
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, sp := range spans {
		piece := text[sp[0]:sp[1]]
		if cached, ok := e.cache[piece]; ok {
			ids = append(ids, cached...)
			continue
		}
		syms = syms[:0]
		for i := 0; i < len(piece); i++ {
			syms = append(syms, e.byteIDs[piece[i]])
		}
		merged := syms
		if len(syms) > 1 {
			if merged, err = e.ranks.Merge(syms); err != nil {
				return nil, err
			}
		}
		if len(e.cache) >= maxEncoderCache {
			clear(e.cache)
		}
		e.cache[strings.Clone(piece)] = append([]int32(nil), merged...)
		ids = append(ids, merged...)
	}
	return ids, nil
}
