// Package sdk is what a plugin author uses: the Go guest SDK, the C header,
// the ABI specification and a conformance test harness for tokenizer, sampler
// and hook plugins.
//
// The ABI is sdk/ABI.md; the Go SDK is sdk/go (ulan, hook, sampler, tokenizer), the C header
// sdk/c/ulan_plugin.h; sdk/examples has a Go and a C plugin of each kind; sdk/README.md
// shows how to write a plugin.
package sdk
