package plugin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
)

const hookManifest = `{
  "abi": 1, "name": "test-hook", "version": "0.1.0", "kind": "hook",
  "config_schema": {"type": "object", "properties": {"patterns": {"type": "array", "items": {"type": "string"}}}, "additionalProperties": false},
  "needs": {"memory_pages": 64, "call_timeout_ms": 5, "imports": ["log"], "trust": "sandboxed"}
}`

func withManifest(t testing.TB, name, manifest string) []byte {
	t.Helper()
	b, err := EmbedManifest(wasm(t, name), []byte(manifest))
	require.NoError(t, err)
	return b
}

func loadKind(module []byte, kind Kind, config string, mod func(*Config)) (*Plugin, error) {
	cfg := Config{ID: "k", Kind: kind, PluginConfig: json.RawMessage(config), PoolSize: 1, MemoryPages: 128,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	return Load(context.Background(), module, cfg)
}

func TestManifestLoad(t *testing.T) {
	t.Parallel()
	p, err := loadKind(withManifest(t, "hook", hookManifest), KindHook, `{"patterns": ["\\d+"]}`, nil)
	require.NoError(t, err)
	defer p.Close(context.Background())
	require.Equal(t, "test-hook", p.Manifest().Name)
	res, err := p.Call(context.Background(), "hook_open", 0, 0)
	require.NoError(t, err)
	require.Equal(t, uint64(7), res[0])
}

func TestManifestChecks(t *testing.T) {
	t.Parallel()
	hook := withManifest(t, "hook", hookManifest)
	for _, tc := range []struct {
		name   string
		module []byte
		kind   Kind
		config string
		mod    func(*Config)
		want   string
	}{
		{"no manifest", wasm(t, "hook"), KindHook, "{}", nil, "no ulan.manifest custom section"},
		{"wrong kind", hook, KindSampler, "{}", nil, "is a hook plugin, configured as a sampler"},
		{"bad signature", withManifest(t, "hook_badsig", hookManifest), KindHook, "{}", nil, "export hook_end has signature (i32) → (i64), want (i64, i32) → (i64)"},
		{"missing exports", withManifest(t, "ok", `{"abi":1,"name":"x","version":"1","kind":"sampler"}`), KindSampler, "{}", nil, "a sampler must export smp_step"},
		{"wrong abi", withManifest(t, "hook", `{"abi":2,"name":"x","version":"1","kind":"hook"}`), KindHook, "{}", nil, "abi 2, but this host speaks ABI 1"},
		{"unknown manifest field", withManifest(t, "hook", `{"abi":1,"name":"x","version":"1","kind":"hook","colour":"red"}`), KindHook, "{}", nil, `unknown field "colour"`},
		{"config off schema", hook, KindHook, `{"patterns": [1]}`, nil, "config: at /patterns/0"},
		{"config extra field", hook, KindHook, `{"pattern": []}`, nil, "config: at /"},
		{"memory grant", hook, KindHook, "{}", func(c *Config) { c.MemoryPages = 32 }, "needs 64 memory pages, the operator grants 32"},
		{"import grant", withManifest(t, "hook", `{"abi":1,"name":"x","version":"1","kind":"hook","needs":{"imports":["clock"]}}`), KindHook, "{}", nil, `needs the "clock" grant`},
		{"trust grant", withManifest(t, "hook", `{"abi":1,"name":"x","version":"1","kind":"hook","needs":{"trust":"trusted"}}`), KindHook, "{}", nil, "asks for the trusted tier"},
		{"init refuses", withManifest(t, "hook", `{"abi":1,"name":"x","version":"1","kind":"hook"}`), KindHook, `{"refuse": true}`, nil, "ulan_init refused the config: status 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadKind(tc.module, tc.kind, tc.config, tc.mod)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestEmbedManifest(t *testing.T) {
	t.Parallel()
	_, err := EmbedManifest([]byte("nope"), []byte(hookManifest))
	require.ErrorContains(t, err, "not a WebAssembly binary")
	once := withManifest(t, "hook", hookManifest)
	_, err = EmbedManifest(once, []byte(hookManifest))
	require.ErrorContains(t, err, "already has")
	_, err = EmbedManifest(wasm(t, "hook"), []byte("{"))
	require.ErrorContains(t, err, "manifest")
}

func TestOptionalExportSignatureChecked(t *testing.T) {
	t.Parallel()
	rt := wazero.NewRuntime(context.Background())
	defer rt.Close(context.Background())
	// tok_chat with a hook_open-like signature, (i32) → i32, is refused.
	module := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x06\x01\x60\x01\x7f\x01\x7f" + // type 0: (i32) → i32
		"\x03\x02\x01\x00" + // one function of type 0
		"\x07\x0c\x01\x08tok_chat\x00\x00" + // export it as tok_chat
		"\x0a\x06\x01\x04\x00\x20\x00\x0b") // body: local.get 0
	m, err := rt.CompileModule(context.Background(), module)
	require.NoError(t, err)
	err = checkExports(m, KindTokenizer)
	require.ErrorContains(t, err, "export tok_chat has signature (i32) → (i32), want (i32, i32) → (i64)")
}

func TestHookSection(t *testing.T) {
	t.Parallel()
	ok := withManifest(t, "hook", `{"abi":1,"name":"h","version":"1","kind":"hook","hook":{"channels":["content","tool_arguments"],"max_holdback_bytes":256,"class":"safety"}}`)
	p, err := loadKind(ok, KindHook, "", nil)
	require.NoError(t, err)
	defer p.Close(context.Background())
	h := p.Manifest().Hook
	require.True(t, h.Safety())
	require.True(t, h.Sees(ChannelContent))
	require.False(t, h.Sees(ChannelReasoning))
	require.True(t, h.Sees(ChannelToolArguments))
	var none *HookSpec
	require.True(t, none.Sees(ChannelReasoning), "no section: every channel")
	require.False(t, none.Safety())

	for manifest, want := range map[string]string{
		`{"abi":1,"name":"h","version":"1","kind":"hook","hook":{"channels":["audio"]}}`:    `hook.channels[0] "audio"`,
		`{"abi":1,"name":"h","version":"1","kind":"hook","hook":{"class":"fun"}}`:           `hook.class "fun"`,
		`{"abi":1,"name":"h","version":"1","kind":"hook","hook":{"max_holdback_bytes":-1}}`: "hook.max_holdback_bytes -1",
		`{"abi":1,"name":"h","version":"1","kind":"tokenizer","hook":{"class":"safety"}}`:   "a hook section in a tokenizer",
	} {
		_, err := parseManifest([]byte(manifest))
		require.ErrorContains(t, err, want, manifest)
	}
}

func TestSamplerSection(t *testing.T) {
	t.Parallel()
	for manifest, onDemand := range map[string]bool{
		`{"abi":1,"name":"s","version":"1","kind":"sampler"}`:                               false,
		`{"abi":1,"name":"s","version":"1","kind":"sampler","sampler":{}}`:                  false,
		`{"abi":1,"name":"s","version":"1","kind":"sampler","sampler":{"lse":"eager"}}`:     false,
		`{"abi":1,"name":"s","version":"1","kind":"sampler","sampler":{"lse":"on_demand"}}`: true,
	} {
		m, err := parseManifest([]byte(manifest))
		require.NoError(t, err, manifest)
		require.Equal(t, onDemand, (&Plugin{manifest: m}).LSEOnDemand(), manifest)
	}
	for manifest, want := range map[string]string{
		`{"abi":1,"name":"s","version":"1","kind":"sampler","sampler":{"lse":"lazy"}}`:   `sampler.lse "lazy" is not eager or on_demand`,
		`{"abi":1,"name":"h","version":"1","kind":"hook","sampler":{"lse":"on_demand"}}`: "a sampler section in a hook",
		`{"abi":1,"name":"s","version":"1","kind":"sampler","sampler":{"lse2":1}}`:       "unknown field",
	} {
		_, err := parseManifest([]byte(manifest))
		require.ErrorContains(t, err, want, manifest)
	}
}

// TestRowLSE: row_lse answers the step in flight — the row's LSE as the
// caller gave it, or what LoadLSE gives (once) when it is NaN — and NaN
// outside a step, for a row the step does not have, or when nothing can
// give it.
func TestRowLSE(t *testing.T) {
	t.Parallel()
	st := &smpState{}
	isNaN := func(v float32) bool { return v != v }
	require.True(t, isNaN(st.rowLSE(0)), "outside smp_step")
	loads := 0
	nan := float32(math.NaN())
	st.setStep([]SamplerRow{{LSE: 1.5}, {LSE: nan, LoadLSE: func() float32 { loads++; return 2.5 }}, {LSE: nan}})
	require.Equal(t, float32(1.5), st.rowLSE(0))
	require.Equal(t, float32(2.5), st.rowLSE(1))
	require.Equal(t, float32(2.5), st.rowLSE(1))
	require.Equal(t, 1, loads, "computed once per row and call")
	require.True(t, isNaN(st.rowLSE(2)), "no LoadLSE")
	require.True(t, isNaN(st.rowLSE(3)), "no such row")
	require.True(t, isNaN(st.rowLSE(0xffffffff)), "no such row")
	st.setStep(nil)
	require.True(t, isNaN(st.rowLSE(0)), "after smp_step")
}
