//go:build !noasm

package kernel

const noasmBuild = false

func haveAVX2Impls() bool { return haveAVX2() }
