package hf

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// A bundle is a loaded tokenizer in a compact binary form, which the host
// makes from tokenizer.json once and hands to every plugin instance, so
// that an instance does not parse megabytes of JSON in WebAssembly (about
// 35 times slower than natively). It holds the same information: the
// components and added tokens (JSON, as tokenizer.json writes them), the
// vocabulary, and the merges as id triples. Layout, little-endian:
//
//	"ulantok1"
//	u32 n, then n bytes of the spec as JSON
//	u32 tokens, then per token: u32 length, the token's bytes
//	u32 merges, then per merge: i32 left, i32 right, i32 result
var bundleMagic = []byte("ulantok1")

// ErrBundle reports a malformed bundle.
var ErrBundle = errors.New("hf: malformed tokenizer bundle")

// Bundle returns the tokenizer in the bundle form LoadBundle reads.
func (t *Tokenizer) Bundle() ([]byte, error) {
	head, err := json.Marshal(t.spec)
	if err != nil {
		return nil, fmt.Errorf("hf: bundle: %w", err)
	}
	size := len(bundleMagic) + 4 + len(head) + 4 + 4 + 12*len(t.mergeL)
	for _, s := range t.tokens {
		size += 4 + len(s)
	}
	b := make([]byte, 0, size)
	b = append(b, bundleMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(head)))
	b = append(b, head...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(t.tokens)))
	for _, s := range t.tokens {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(t.mergeL)))
	for i := range t.mergeL {
		b = binary.LittleEndian.AppendUint32(b, uint32(t.mergeL[i]))
		b = binary.LittleEndian.AppendUint32(b, uint32(t.mergeR[i]))
		b = binary.LittleEndian.AppendUint32(b, uint32(t.mergeRes[i]))
	}
	return b, nil
}

// LoadBundle builds a Tokenizer from a bundle (see Bundle), with prims for
// the hot loops. Its tokens are substrings of one copy of the bundle.
func LoadBundle(bundle []byte, prims Primitives) (*Tokenizer, error) {
	if len(bundle) < len(bundleMagic) || string(bundle[:len(bundleMagic)]) != string(bundleMagic) {
		return nil, fmt.Errorf("%w: no %q header", ErrBundle, bundleMagic)
	}
	all := string(bundle) // one copy; tokens are substrings of it
	r := bundleReader{s: all, off: len(bundleMagic)}
	n := r.u32()
	headJSON := r.bytes(n)
	nTok := r.u32()
	if r.err == nil && (nTok == 0 || nTok > maxVocab) {
		r.fail("%d tokens", nTok)
	}
	tokens := make([]string, 0, min(nTok, maxVocab))
	for i := 0; i < nTok && r.err == nil; i++ {
		l := r.u32()
		if r.err == nil && l > maxTokLen {
			r.fail("token %d of %d bytes", i, l)
		}
		tokens = append(tokens, r.bytes(l))
	}
	nMerge := r.u32()
	if r.err == nil && nMerge > maxMerges {
		r.fail("%d merges", nMerge)
	}
	if r.err == nil && nMerge > (len(all)-r.off)/12 {
		r.fail("%d merges in %d bytes", nMerge, len(all)-r.off)
	}
	var left, right, result []int32
	if r.err == nil {
		left, right, result = make([]int32, nMerge), make([]int32, nMerge), make([]int32, nMerge)
		for i := range nMerge {
			left[i], right[i], result[i] = int32(r.u32()), int32(r.u32()), int32(r.u32())
		}
	}
	if r.err == nil && r.off != len(all) {
		r.fail("%d bytes after the merges", len(all)-r.off)
	}
	if r.err != nil {
		return nil, r.err
	}
	var s spec
	if err := json.Unmarshal([]byte(headJSON), &s); err != nil {
		return nil, fmt.Errorf("%w: spec: %v", ErrBundle, err)
	}
	return build(s, tokens, nil, left, right, result, prims)
}

// bundleReader reads a bundle, remembering the first error.
type bundleReader struct {
	s   string
	off int
	err error
}

func (r *bundleReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrBundle}, args...)...)
	}
}

func (r *bundleReader) u32() int {
	if r.err != nil {
		return 0
	}
	if len(r.s)-r.off < 4 {
		r.fail("truncated at byte %d", r.off)
		return 0
	}
	v := uint32(r.s[r.off]) | uint32(r.s[r.off+1])<<8 | uint32(r.s[r.off+2])<<16 | uint32(r.s[r.off+3])<<24
	r.off += 4
	return int(v)
}

func (r *bundleReader) bytes(n int) string {
	if r.err != nil {
		return ""
	}
	if n < 0 || n > len(r.s)-r.off {
		r.fail("%d bytes wanted at byte %d of %d", n, r.off, len(r.s))
		return ""
	}
	s := r.s[r.off : r.off+n]
	r.off += n
	return s
}
