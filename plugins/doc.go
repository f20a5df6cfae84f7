// Package plugins holds ulan's first-party WebAssembly plugins, each in its
// own directory with its sources and manifest, and the built modules that
// the binary embeds (Tokenizer). Plugins import only sdk. CI rebuilds each
// module with `ulan plugin build` and fails if the committed one differs.
package plugins

import _ "embed"

// Tokenizer is the tokenizer plugin (plugins/tokenizer): a Hugging Face
// tokenizer.json run with the host's regex and BPE primitives.
//
//go:embed tokenizer/tokenizer.wasm
var Tokenizer []byte
