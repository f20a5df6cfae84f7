package plugin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConform runs the conformance suite on a Go plugin of each kind.
func TestConform(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		wasm   []byte
		config string
	}{
		{"gohook", buildGoHook(t), `{"greeting":"x"}`},
		{"gosampler", buildGo(t, "gosampler", `{"abi":1,"name":"gosampler","version":"0.1.0","kind":"sampler","needs":{"memory_pages":256}}`), ""},
		{"gotok", buildGo(t, "gotok", `{"abi":1,"name":"gotok","version":"0.1.0","kind":"tokenizer","needs":{"memory_pages":256}}`), ""},
	} {
		for _, c := range Conform(context.Background(), tc.wasm, []byte(tc.config), 0) {
			require.NoError(t, c.Err, "%s: %s", tc.name, c.Name)
		}
	}
	checks := Conform(context.Background(), wasm(t, "hostile"), nil, 0)
	require.ErrorContains(t, checks[len(checks)-1].Err, "no ulan.manifest")

	// A Go plugin cannot start in the 16 pages (1 MiB) this manifest
	// declares: the contract passes (the suite grants at least 256 pages),
	// the limits check does not.
	small := buildGo(t, "gotok", `{"abi":1,"name":"gotok","version":"0.1.0","kind":"tokenizer","needs":{"memory_pages":16}}`)
	checks = Conform(context.Background(), small, nil, 0)
	last := checks[len(checks)-1]
	require.Contains(t, last.Name, "within its declared limits (16 pages")
	require.ErrorContains(t, last.Err, "memory")
	for _, c := range checks[:len(checks)-1] {
		require.NoError(t, c.Err, c.Name)
	}
}
