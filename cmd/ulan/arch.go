package main

// The architectures the binary can load register themselves here.
import (
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv3"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv4"
)
