//go:build !amd64 || noasm

package kernel

// bestImpls returns the generic set: this build has no assembly, either
// because the target is not amd64 or because the noasm tag was given
// (CI runs the tests both ways).
func bestImpls() impls { return generic }
