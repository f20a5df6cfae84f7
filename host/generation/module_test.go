package generation

import (
	"encoding/binary"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/plugin"
)

func TestManifestOf(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/any.wasm")
	require.NoError(t, err)
	with := func(man string) []byte {
		b, err := plugin.EmbedManifest(raw, []byte(man))
		require.NoError(t, err)
		return b
	}
	m, err := manifestOf(with(`{"abi":1,"name":"x","version":"1","kind":"sampler","needs":{"imports":["clock"]}}`))
	require.NoError(t, err)
	require.Equal(t, plugin.KindSampler, m.Kind)
	require.Equal(t, []string{"clock"}, m.Needs.Imports)

	for _, tc := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"empty", nil, "is not a WebAssembly binary"},
		{"text", []byte("hello, world"), "is not a WebAssembly binary"},
		{"no manifest", raw, "has no ulan.manifest section"},
		{"unknown kind", with(`{"abi":1,"name":"x","version":"1","kind":"filter"}`), `manifest: kind "filter" is not tokenizer, sampler or hook`},
		{"not json", append(slices.Clone(raw), custom(plugin.ManifestSection, "{not json")...), "manifest: invalid character"},
		{"truncated", raw[:len(raw)-3], "section runs past the end"},
		{"two manifests", append(with(`{"kind":"hook"}`), with(`{"kind":"hook"}`)[len(raw):]...), "has two ulan.manifest sections"},
	} {
		_, err := manifestOf(tc.wasm)
		require.ErrorContains(t, err, tc.want, tc.name)
	}
}

// custom returns a custom section called name holding payload.
func custom(name, payload string) []byte {
	body := binary.AppendUvarint(nil, uint64(len(name)))
	body = append(append(body, name...), payload...)
	return append(binary.AppendUvarint([]byte{0}, uint64(len(body))), body...)
}

// FuzzManifestOf: a module file is operator input; reading its sections must never
// panic.
func FuzzManifestOf(f *testing.F) {
	raw, err := os.ReadFile("testdata/any.wasm")
	if err != nil {
		f.Fatal(err)
	}
	withMan, err := plugin.EmbedManifest(raw, []byte(`{"abi":1,"name":"x","version":"1","kind":"hook"}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(withMan)
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = manifestOf(b)
	})
}

// TestModelTokenizerInjected: a tokenizer plugin whose config names no
// tokenizer gets the model's bundle; one that names its own keeps it; other
// kinds get nothing.
func TestModelTokenizerInjected(t *testing.T) {
	deps := Deps{ModelTokenizer: []byte("ulantok1…")}
	rc, err := runtimeConfig(config.Plugin{ID: "t"}, plugin.KindTokenizer, deps)
	require.NoError(t, err)
	require.JSONEq(t, `{"bundle":"dWxhbnRvazHigKY="}`, string(rc.PluginConfig))
	rc, err = runtimeConfig(config.Plugin{ID: "t", Config: map[string]any{"tokenizer_json": map[string]any{}}}, plugin.KindTokenizer, deps)
	require.NoError(t, err)
	require.JSONEq(t, `{"tokenizer_json":{}}`, string(rc.PluginConfig))
	rc, err = runtimeConfig(config.Plugin{ID: "h"}, plugin.KindHook, deps)
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(rc.PluginConfig))
}
