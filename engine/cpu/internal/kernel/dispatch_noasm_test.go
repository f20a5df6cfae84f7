//go:build !amd64 || noasm

package kernel

const noasmBuild = true

// expectedAsmImpl is never called without assembly.
func expectedAsmImpl() string { return "generic" }

// asmFallbacks is empty without assembly.
func asmFallbacks() []impls { return nil }
