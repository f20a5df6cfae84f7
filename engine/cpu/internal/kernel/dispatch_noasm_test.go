//go:build !amd64 || noasm

package kernel

const noasmBuild = true

func haveAVX2Impls() bool { return false }
