// Package sdk is what a plugin author uses: the Go guest SDK, the C header,
// the ABI specification and a conformance test harness for tokenizer, sampler
// and hook plugins.
//
// Its code arrives with the plugin runtime issue.
package sdk
