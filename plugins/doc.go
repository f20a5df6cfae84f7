// Package plugins holds ulan's first-party WebAssembly plugins, each in its
// own directory with its sources and manifest, and the built modules that
// the binary embeds (Tokenizer, Standard, Mirostat, Redact, MaxLength). A
// configuration loads one as "builtin:NAME" (Builtins), or from its file
// like any other plugin. Plugins import only sdk. CI rebuilds each module
// with `ulan plugin build` and fails if the committed one differs.
package plugins

import _ "embed"

// Tokenizer is the tokenizer plugin (plugins/tokenizer): a Hugging Face
// tokenizer.json run with the host's regex and BPE primitives.
//
//go:embed tokenizer/tokenizer.wasm
var Tokenizer []byte

// Standard is the standard sampler plugin (plugins/standard): llama.cpp's
// chain of top_k, typical_p, top_p, min_p and temperature, in C, giving the
// same bits as the host's native fallback (sdk/go/sampler/standard).
//
//go:embed standard/standard.wasm
var Standard []byte

// Mirostat is the Mirostat 2.0 sampler plugin (plugins/mirostat).
//
//go:embed mirostat/mirostat.wasm
var Mirostat []byte

// Redact is the redaction hook (plugins/redact): configured regular
// expressions and presets (e-mail, phone, API keys) replaced with a mask.
//
//go:embed redact/redact.wasm
var Redact []byte

// MaxLength is the hook that ends a choice at a number of characters or
// words (plugins/maxlength).
//
//go:embed maxlength/maxlength.wasm
var MaxLength []byte

// Builtins maps the names a configuration writes as "builtin:NAME" to the
// modules.
func Builtins() map[string][]byte {
	return map[string][]byte{
		"tokenizer": Tokenizer,
		"standard":  Standard,
		"mirostat":  Mirostat,
		"redact":    Redact,
		"maxlength": MaxLength,
	}
}
