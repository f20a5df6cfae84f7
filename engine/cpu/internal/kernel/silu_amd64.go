//go:build !noasm

package kernel

// swigluAVX2 is [SwiGLUF32] with swiglu8AVX2 over whole groups of eight:
// where the kernel stops at a group it cannot round for sure, that group
// goes through swigluGeneric and the kernel resumes after it; the last
// len(g) mod 8 values do too.
func swigluAVX2(g, u []float32, clamp float32) {
	n := len(g) &^ 7
	for i := 0; i < n; {
		i += swiglu8AVX2(g[i:n], u[i:n], clamp)
		if i < n {
			swigluGeneric(g[i:i+8], u[i:i+8], clamp)
			i += 8
		}
	}
	swigluGeneric(g[n:], u[n:len(g)], clamp)
}

// exp32s8 runs exp32x8AVX2 over whole groups of eight of x (len(x) a
// multiple of 8) and returns how many values it did, none with the
// generic set active.
func exp32s8(dst, x []float32) int {
	if len(x) == 0 || active.name == generic.name {
		return 0
	}
	return exp32x8AVX2(dst, x)
}
