package safetensors_test

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/ulan-ai/ulan/engine/safetensors"
)

func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	// A two-shard directory: an FP8 weight with its block scales in one
	// shard, a BF16 norm in the other.
	weight := "model.layers.0.self_attn.o_proj.weight"
	shards := [][]safetensors.Tensor{
		{
			{Name: weight, DType: safetensors.F8_E4M3, Shape: []int{4, 200}, Data: make([]byte, 800)},
			{Name: safetensors.ScaleName(weight), DType: safetensors.F32, Shape: safetensors.ScaleShape(4, 200, 128, 128), Data: make([]byte, 8)},
		},
		{{Name: safetensors.FinalNorm, DType: safetensors.BF16, Shape: []int{4}, Data: make([]byte, 8)}},
	}
	if err := safetensors.WriteDir(dir, shards, json.RawMessage(`{"model_type":"deepseek_v3"}`)); err != nil {
		fmt.Println(err)
		return
	}

	m, err := safetensors.OpenDir(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	for _, name := range m.Names() {
		t, _ := m.Tensor(name)
		fmt.Println(name, t.DType, t.Shape, len(t.Data))
	}
	// Output:
	// model.layers.0.self_attn.o_proj.weight F8_E4M3 [4 200] 800
	// model.layers.0.self_attn.o_proj.weight_scale_inv F32 [1 2] 8
	// model.norm.weight BF16 [4] 8
}
