// Command tensorsums prints a GGUF file's tensors as JSON — name, ggml type,
// dims and the SHA-256 of the data — so that a test can check its own
// quantizer writes the bytes llama.cpp's wrote:
//
//	go run ./engine/arch/deepseekv3/testdata/tensorsums FILE.gguf > FILE.tensors.json
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/ulan-ai/ulan/engine/gguf"
)

type tensor struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Dims   []uint64 `json:"dims"`
	SHA256 string   `json:"sha256"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tensorsums FILE.gguf")
		os.Exit(2)
	}
	f, err := gguf.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	var out []tensor
	for _, ti := range f.Tensors() {
		sum := sha256.Sum256(f.Data(ti))
		out = append(out, tensor{ti.Name, ti.Type.String(), ti.Dims, hex.EncodeToString(sum[:])})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
