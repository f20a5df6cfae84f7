package config_test

import (
	"testing"

	"github.com/ulan-ai/ulan/host/config"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, and a Config it accepts
// must pass Validate.
func FuzzParse(f *testing.F) {
	// Seeds stay small: the fuzzer minimizes each new input it finds interesting, and with
	// a seed the size of ulan.example.yaml that took its full minute, every time.
	for _, seed := range []string{
		"",
		"server:\n  listen: 127.0.0.1:8080\n  drain_timeout: 30s\n  read_header_timeout: 10s\n  idle_timeout: 2m\n" +
			"  cors: {allowed_origins: [], max_age: 2h}\n  tls: {cert_file: \"\", key_file: \"\"}\n" +
			"limits: {max_request_bytes: 32MiB, max_prompt_bytes: 16MiB, max_tokens: 1048576}\n" +
			"log: {level: info, format: text}\n",
		"server:\n  listen: :8080\n  drain_timeout: 0\n",
		"server:\n  cors:\n    allowed_origins: [\"*\", https://a.example.com]\n    max_age: 1h\n",
		"limits:\n  max_request_bytes: 1048576\n  max_prompt_bytes: 4 MiB\n  max_tokens: 1e3\n",
		"limits:\n  max_request_bytes: -1\n  max_prompt_bytes: 1.5B\n",
		"server.listen: [a, {b: c}]\nlog: {level: ~, format: 7}\n",
		"server:\n  listen:\n    host: x\n? [a, b]\n: c\n",
		"server: &a\n  listen: *a\n",
		"- a\n- b\n",
		"server:\n  listen: [\n",
		"plugins:\n  - id: a\n    module: a.wasm\n    config: {k: [1, {x: .nan}]}\n    grants: {imports: [clock], call_timeout: 2ms}\n" +
			"pipelines:\n  - {name: p, hooks: [a, a], default: true}\n",
		"plugins: [x, {id: [a]}, {grants: 1}, ~]\npipelines: {a: 1}\n",
		"server:\n  auth: {api_keys: [0123456789abcdef, env:ULAN_FUZZ_UNSET], admin_keys: [0123456789abcdef, x]}\n",
		// Shapes the loader checks before koanf sees them: more than one document, deep
		// nesting through aliases, merge keys.
		"log: {level: debug}\n---\nlog: {level: warn}\n...\n---\n",
		"a: &a [[[[[[[[1]]]]]]]]\nplugins:\n  - {id: a, module: a.wasm, config: {x: [*a, [*a, {y: *a}]]}}\n",
		"base: &b {level: debug}\nlog:\n  <<: *b\n  format: json\n",
		"? [a, b]\n: c\n? {d: e}\n: f\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted %q but Validate says:\n%v", b, err)
		}
	})
}
