//go:build !wasip1

package tokenizer

import (
	"regexp"
	"sync"
)

var (
	nativeMu       sync.Mutex
	nativePatterns []*regexp.Regexp
	nativeTables   []map[[2]int32][2]int32 // pair → rank, result
)

func compile(expr string) (Pattern, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return -1, sdkError("tokenizer: pattern " + expr + ": " + err.Error())
	}
	nativeMu.Lock()
	defer nativeMu.Unlock()
	nativePatterns = append(nativePatterns, re)
	return Pattern(len(nativePatterns) - 1), nil
}

func (p Pattern) split(text string) ([][2]int, error) {
	nativeMu.Lock()
	if parts, ok := nativeSequences[p]; ok {
		nativeMu.Unlock()
		spans := [][2]int{{0, len(text)}}
		for _, part := range parts {
			var next [][2]int
			for _, sp := range spans {
				sub, err := part.split(text[sp[0]:sp[1]])
				if err != nil {
					return nil, err
				}
				for _, x := range sub {
					next = append(next, [2]int{sp[0] + x[0], sp[0] + x[1]})
				}
			}
			spans = next
		}
		return spans, nil
	}
	if p < 0 || int(p) >= len(nativePatterns) {
		nativeMu.Unlock()
		return nil, sdkError("tokenizer: unknown pattern")
	}
	re := nativePatterns[p]
	nativeMu.Unlock()
	var spans [][2]int
	last := 0
	for _, m := range re.FindAllStringIndex(text, -1) {
		if m[0] == m[1] {
			continue
		}
		if m[0] > last {
			spans = append(spans, [2]int{last, m[0]})
		}
		spans = append(spans, [2]int{m[0], m[1]})
		last = m[1]
	}
	if last < len(text) {
		spans = append(spans, [2]int{last, len(text)})
	}
	return spans, nil
}

func register(left, right, result []int32) (Merges, error) {
	t := make(map[[2]int32][2]int32, len(left))
	for i := range left {
		k := [2]int32{left[i], right[i]}
		if _, dup := t[k]; !dup {
			t[k] = [2]int32{int32(i), result[i]}
		}
	}
	nativeMu.Lock()
	defer nativeMu.Unlock()
	nativeTables = append(nativeTables, t)
	return Merges(len(nativeTables) - 1), nil
}

func (m Merges) merge(symbols []int32) ([]int32, error) {
	nativeMu.Lock()
	if m < 0 || int(m) >= len(nativeTables) {
		nativeMu.Unlock()
		return nil, sdkError("tokenizer: unknown merge table")
	}
	t := nativeTables[m]
	nativeMu.Unlock()
	ids := append([]int32(nil), symbols...)
	for {
		best, at := int32(-1), -1
		for i := 0; i+1 < len(ids); i++ {
			if r, ok := t[[2]int32{ids[i], ids[i+1]}]; ok && (at < 0 || r[0] < best) {
				best, at = r[0], i
			}
		}
		if at < 0 {
			return ids, nil
		}
		ids[at] = t[[2]int32{ids[at], ids[at+1]}][1]
		ids = append(ids[:at+1], ids[at+2:]...)
	}
}

// nativeSequences maps a sequence's pattern id to its parts (natively).
var nativeSequences = map[Pattern][]Pattern{}

func sequence(parts []Pattern) (Pattern, error) {
	nativeMu.Lock()
	defer nativeMu.Unlock()
	for _, p := range parts {
		if p < 0 || int(p) >= len(nativePatterns) {
			return -1, sdkError("tokenizer: unknown pattern")
		}
	}
	nativePatterns = append(nativePatterns, nil)
	id := Pattern(len(nativePatterns) - 1)
	nativeSequences[id] = append([]Pattern(nil), parts...)
	return id, nil
}

func (m Merges) mergeBatch(symbols []int32, lens []int32) ([]int32, error) {
	var out []int32
	off := 0
	for i, n := range lens {
		merged, err := m.merge(symbols[off : off+int(n)])
		if err != nil {
			return nil, err
		}
		out = append(out, merged...)
		off += int(n)
		lens[i] = int32(len(merged))
	}
	return out, nil
}

// nativeEncoders are the byte encoders (natively).
var nativeEncoders []struct {
	p     Pattern
	m     Merges
	bytes [256]int32
}

func newEncoder(p Pattern, m Merges, byteIDs [256]int32) (Encoder, error) {
	nativeMu.Lock()
	defer nativeMu.Unlock()
	nativeEncoders = append(nativeEncoders, struct {
		p     Pattern
		m     Merges
		bytes [256]int32
	}{p, m, byteIDs})
	return Encoder(len(nativeEncoders) - 1), nil
}

func (e Encoder) encode(text string) ([]int32, error) {
	nativeMu.Lock()
	if e < 0 || int(e) >= len(nativeEncoders) {
		nativeMu.Unlock()
		return nil, sdkError("tokenizer: unknown encoder")
	}
	enc := nativeEncoders[e]
	nativeMu.Unlock()
	spans, err := enc.p.split(text)
	if err != nil {
		return nil, err
	}
	var ids []int32
	for _, sp := range spans {
		syms := make([]int32, 0, sp[1]-sp[0])
		for i := sp[0]; i < sp[1]; i++ {
			syms = append(syms, enc.bytes[text[i]])
		}
		merged, err := enc.m.Merge(syms)
		if err != nil {
			return nil, err
		}
		ids = append(ids, merged...)
	}
	return ids, nil
}
