// Package plugins holds ulan's first-party WebAssembly plugins (tokenizer,
// samplers, hooks): their sources and the built .wasm modules that the binary
// embeds. Plugins import only sdk.
//
// Its code arrives with the plugin runtime issue.
package plugins
