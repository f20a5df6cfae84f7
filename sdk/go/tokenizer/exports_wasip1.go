//go:build wasip1

package tokenizer

import (
	"encoding/binary"
	"encoding/json"
	"unsafe"

	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

//go:wasmimport ulan_v1 regex_compile
func hostCompile(ptr unsafe.Pointer, n int32) int32

//go:wasmimport ulan_v1 regex_split
func hostSplit(id int32, text unsafe.Pointer, n int32, out unsafe.Pointer, cap int32) int32

//go:wasmimport ulan_v1 bpe_register
func hostRegister(left, right, result unsafe.Pointer, n int32) int32

//go:wasmimport ulan_v1 bpe_merge
func hostMerge(id int32, syms unsafe.Pointer, n int32, out unsafe.Pointer, cap int32) int32

//go:wasmimport ulan_v1 regex_sequence
func hostSequence(ids unsafe.Pointer, n int32) int32

//go:wasmimport ulan_v1 bpe_merge_batch
func hostMergeBatch(id int32, syms unsafe.Pointer, n int32, lens unsafe.Pointer, pieces int32, out unsafe.Pointer, cap int32) int32

//go:wasmimport ulan_v1 bpe_encoder
func hostEncoder(table, pattern int32, bytemap unsafe.Pointer) int32

//go:wasmimport ulan_v1 bpe_encode
func hostEncode(enc int32, text unsafe.Pointer, n int32, out unsafe.Pointer, cap int32) int32

func newEncoder(p Pattern, m Merges, byteIDs [256]int32) (Encoder, error) {
	id := hostEncoder(int32(m), int32(p), unsafe.Pointer(&byteIDs[0]))
	if id < 0 {
		return -1, sdkError("tokenizer: the host refused the byte encoder")
	}
	return Encoder(id), nil
}

func (e Encoder) encode(text string) ([]int32, error) {
	b := []byte(text)
	out := make([]int32, len(b)) // never more ids than bytes
	n := hostEncode(int32(e), unsafe.Pointer(&b[0]), int32(len(b)), unsafe.Pointer(&out[0]), int32(len(out)))
	if n < 0 || int(n) > len(out) {
		return nil, sdkError("tokenizer: encode failed")
	}
	return out[:n], nil
}

func sequence(parts []Pattern) (Pattern, error) {
	ids := make([]int32, len(parts))
	for i, p := range parts {
		ids[i] = int32(p)
	}
	id := hostSequence(unsafe.Pointer(&ids[0]), int32(len(ids)))
	if id < 0 {
		return -1, sdkError("tokenizer: the host refused the sequence")
	}
	return Pattern(id), nil
}

func (m Merges) mergeBatch(symbols []int32, lens []int32) ([]int32, error) {
	out := make([]int32, len(symbols))
	var lensPtr unsafe.Pointer
	if len(lens) > 0 {
		lensPtr = unsafe.Pointer(&lens[0])
	}
	n := hostMergeBatch(int32(m), unsafe.Pointer(&symbols[0]), int32(len(symbols)), lensPtr, int32(len(lens)), unsafe.Pointer(&out[0]), int32(len(out)))
	if n < 0 {
		return nil, sdkError("tokenizer: merge failed")
	}
	return out[:n], nil
}

func compile(expr string) (Pattern, error) {
	b := []byte(expr)
	id := hostCompile(unsafe.Pointer(&b[0]), int32(len(b)))
	if id < 0 {
		return -1, sdkError("tokenizer: the host refused pattern " + expr)
	}
	return Pattern(id), nil
}

func (p Pattern) split(text string) ([][2]int, error) {
	b := []byte(text)
	buf := make([]uint32, 2*64)
	for {
		n := hostSplit(int32(p), unsafe.Pointer(&b[0]), int32(len(b)), unsafe.Pointer(&buf[0]), int32(len(buf)/2))
		if n < 0 {
			return nil, sdkError("tokenizer: split failed")
		}
		if int(n) <= len(buf)/2 {
			spans := make([][2]int, n)
			for i := range spans {
				spans[i] = [2]int{int(buf[2*i]), int(buf[2*i+1])}
			}
			return spans, nil
		}
		buf = make([]uint32, 2*n)
	}
}

func register(left, right, result []int32) (Merges, error) {
	id := hostRegister(unsafe.Pointer(&left[0]), unsafe.Pointer(&right[0]), unsafe.Pointer(&result[0]), int32(len(left)))
	if id < 0 {
		return -1, sdkError("tokenizer: the host refused the merges")
	}
	return Merges(id), nil
}

func (m Merges) merge(symbols []int32) ([]int32, error) {
	out := make([]int32, len(symbols))
	n := hostMerge(int32(m), unsafe.Pointer(&symbols[0]), int32(len(symbols)), unsafe.Pointer(&out[0]), int32(len(out)))
	if n < 0 {
		return nil, sdkError("tokenizer: merge failed")
	}
	return out[:n], nil
}

func fail(err error) int64 { return -int64(ulan.Status(err)) }

//go:wasmexport tok_info
func tokInfo() int64 {
	t := current()
	if t == nil {
		return fail(errNoTokenizer)
	}
	var err error
	if gerr := ulan.Guard(func() error { out, err = json.Marshal(info(t)); return err }); gerr != nil {
		return fail(gerr)
	}
	return ulan.Pack(out)
}

//go:wasmexport tok_vocab
func tokVocab(start, count int32) int64 {
	t := current()
	if t == nil {
		return fail(errNoTokenizer)
	}
	if err := ulan.Guard(func() error { out = vocab(t, start, count); return nil }); err != nil {
		return fail(err)
	}
	return ulan.Pack(out)
}

//go:wasmexport tok_encode
func tokEncode(ptr, n uint32, flags int32) int64 {
	t := current()
	if t == nil {
		return fail(errNoTokenizer)
	}
	text := string(ulan.Bytes(ptr, n))
	err := ulan.Guard(func() error {
		ids, err := t.Encode(text, Flags(flags))
		if err != nil {
			return err
		}
		out = out[:0]
		for _, id := range ids {
			out = binary.LittleEndian.AppendUint32(out, uint32(id))
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return ulan.Pack(out)
}

//go:wasmexport tok_decode
func tokDecode(ptr, n uint32, flags int32) int64 {
	t := current()
	if t == nil {
		return fail(errNoTokenizer)
	}
	raw := ulan.Bytes(ptr, 4*n)
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	err := ulan.Guard(func() error {
		text, err := t.Decode(ids, Flags(flags))
		out = append(out[:0], text...)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return ulan.Pack(out)
}

//go:wasmexport tok_chat
func tokChat(ptr, n uint32) int64 {
	t := current()
	if t == nil {
		return fail(errNoTokenizer)
	}
	in := ulan.Bytes(ptr, n)
	err := ulan.Guard(func() error {
		text, err := renderChat(t, in)
		out = append(out[:0], text...)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return ulan.Pack(out)
}
