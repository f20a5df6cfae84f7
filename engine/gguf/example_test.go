package gguf_test

import (
	"bytes"
	"fmt"

	"github.com/ulan-ai/ulan/engine/gguf"
)

func Example() {
	// Write a tiny model: keys take their GGUF type from the Go type.
	var w gguf.Writer
	w.Add("general.architecture", "deepseek2")
	w.Add("deepseek2.block_count", uint32(1))
	w.Add("tokenizer.ggml.tokens", []string{"<｜begin▁of▁sentence｜>", "hi"})
	w.AddTensor("output_norm.weight", gguf.TypeF32, []uint64{4}, make([]byte, 16))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		fmt.Println(err)
		return
	}

	// Read it back (gguf.Open would memory-map a file instead).
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		fmt.Println(err)
		return
	}
	arch, _ := f.Arch()
	blocks, _ := f.Uint32(arch + ".block_count")
	fmt.Println(arch, blocks)

	_, err = f.Int32(arch + ".block_count")
	fmt.Println(err)

	norm, err := f.Expect("output_norm.weight", gguf.TypeF32, 4)
	fmt.Println(norm.Name, norm.Size, len(f.Data(norm)), err)

	_, err = f.Expect("output_norm.weight", gguf.TypeF32, 8)
	fmt.Println(err)
	// Output:
	// deepseek2 1
	// gguf: key "deepseek2.block_count" is uint32, want int32
	// output_norm.weight 16 16 <nil>
	// gguf: tensor "output_norm.weight": shape {4}, want {8}
}
