//go:build !noasm

package kernel

// noasmBuild and haveAVX2Impls tell TestImpl which set to expect.

const noasmBuild = false

func haveAVX2Impls() bool { return haveAVX2() }
