package main

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/plugin"
)

func TestPluginInspect(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../host/plugin/testdata/hook.wasm")
	require.NoError(t, err)
	withMan, err := plugin.EmbedManifest(raw, []byte(`{"abi":1,"name":"demo","version":"0.2.0","kind":"hook","needs":{"memory_pages":16,"imports":["log"]}}`))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "demo.wasm")
	require.NoError(t, os.WriteFile(path, withMan, 0o600))

	code, out, errOut := ulan(t, "", "plugin", "inspect", path)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "plugin    demo 0.2.0 (hook)")
	require.Contains(t, out, "hook_delta(i64, i32, i32, i32, i32, i32) → (i64)")

	code, out, _ = ulan(t, "", "plugin", "inspect", "--json", path)
	require.Equal(t, 0, code)
	var v struct {
		ABI      int `json:"abi"`
		Manifest struct{ Kind string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, 1, v.ABI)
	require.Equal(t, "hook", v.Manifest.Kind)

	code, _, errOut = ulan(t, "", "plugin", "inspect", "../../README.md")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not a valid WebAssembly module")
}

func TestPluginBuildGoAndC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	t.Parallel()
	dir := t.TempDir()
	man := filepath.Join(dir, "m.json")
	require.NoError(t, os.WriteFile(man, []byte(`{"abi":1,"name":"gohook","version":"0.1.0","kind":"hook"}`), 0o600))
	out := filepath.Join(dir, "gohook.wasm")
	code, stdout, errOut := ulan(t, "", "plugin", "build", "../../host/plugin/testdata/gohook", "--manifest", man, "-o", out)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, stdout, "built "+out)
	code, stdout, _ = ulan(t, "", "plugin", "inspect", out)
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "plugin    gohook 0.1.0 (hook)")

	if _, err := exec.LookPath("clang"); err == nil {
		cdir := filepath.Join(dir, "c")
		require.NoError(t, os.Mkdir(cdir, 0o700))
		src, err := os.ReadFile("../../host/plugin/testdata/chook.c")
		require.NoError(t, err)
		abs, err := filepath.Abs("../../sdk/c/ulan_plugin.h")
		require.NoError(t, err)
		src = []byte(strings.Replace(string(src), `"../../../sdk/c/ulan_plugin.h"`, `"`+abs+`"`, 1))
		require.NoError(t, os.WriteFile(filepath.Join(cdir, "chook.c"), src, 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(cdir, "manifest.json"), []byte(`{"abi":1,"name":"chook","version":"0.1.0","kind":"hook"}`), 0o600))
		code, stdout, errOut = ulan(t, "", "plugin", "build", cdir)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, stdout, filepath.Join(cdir, "c.wasm"))
	}
	code, _, errOut = ulan(t, "", "plugin", "build", dir, "--manifest", man)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no .go or .c files")
}

// TestPluginNew scaffolds a plugin of each kind outside the repository,
// runs its own (native) test, builds it, and runs the conformance suite on
// it, which loads it with the runtime and drives its kind's contract.
func TestPluginNew(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	dir := t.TempDir()
	for _, kind := range []string{"hook", "sampler", "tokenizer"} {
		target := filepath.Join(dir, "my-"+kind)
		code, out, errOut := ulan(t, "", "plugin", "new", "--kind", kind, "--ulan-src", root, target)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, "created "+target)
		test := exec.Command("go", "test", "./...")
		test.Dir = target
		b, err := test.CombinedOutput()
		require.NoError(t, err, "%s", b)
		code, _, errOut = ulan(t, "", "plugin", "build", target)
		require.Equal(t, 0, code, errOut)
		if raceEnabled && kind != "hook" {
			continue // host/plugin's TestConform covers the other kinds
		}
		if kind == "sampler" {
			checkScaffoldSampler(t, filepath.Join(target, "my-sampler.wasm"))
		}
		code, out, errOut = ulan(t, "", "plugin", "test", filepath.Join(target, "my-"+kind+".wasm"))
		require.Equal(t, 0, code, "%s%s", out, errOut)
		require.Contains(t, out, "PASS")
	}
	code, out, _ := ulan(t, "", "plugin", "test", "../../host/plugin/testdata/hostile.wasm")
	require.Equal(t, 1, code)
	require.Contains(t, out, "FAIL  carries a valid manifest")
	if haveClang() {
		// The C scaffolds, each built and tested as an author would; quick
		// to build and to load, so under -race too.
		for _, kind := range []string{"hook", "sampler", "tokenizer"} {
			target := filepath.Join(dir, "c-"+kind)
			code, out, errOut := ulan(t, "", "plugin", "new", "--lang", "c", "--kind", kind, target)
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "created "+target+" (c "+kind+" plugin)")
			require.FileExists(t, filepath.Join(target, "ulan_plugin.h"))
			code, _, errOut = ulan(t, "", "plugin", "build", target)
			require.Equal(t, 0, code, errOut)
			file := filepath.Join(target, "c-"+kind+".wasm")
			code, out, errOut = ulan(t, "", "plugin", "test", file)
			require.Equal(t, 0, code, "%s%s", out, errOut)
			require.Contains(t, out, "PASS")
			switch kind {
			case "hook":
				checkScaffoldHook(t, file)
			case "sampler":
				checkScaffoldSampler(t, file)
			case "tokenizer":
				checkScaffoldTokenizer(t, file)
			}
		}
	}
	code, _, errOut := ulan(t, "", "plugin", "new", "--lang", "rust", filepath.Join(dir, "x"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "use go or c")
	require.NoDirExists(t, filepath.Join(dir, "x"))
	code, _, errOut = ulan(t, "", "plugin", "new", "Bad_Name")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "plugin name")
}

// checkScaffoldHook: each hook_open of the C hook scaffold gives a new
// handle (sdk/ABI.md §5), though the host pins a hook session to an
// instance of its own.
func checkScaffoldHook(t *testing.T, file string) {
	wasm, err := os.ReadFile(file)
	require.NoError(t, err)
	p, err := plugin.Load(t.Context(), wasm, plugin.Config{ID: "c-hook", PoolSize: 1, MemoryPages: 64})
	require.NoError(t, err)
	defer p.Close(t.Context())
	a, err := p.Call(t.Context(), "hook_open", 0, 0)
	require.NoError(t, err)
	b, err := p.Call(t.Context(), "hook_open", 0, 0)
	require.NoError(t, err)
	require.NotEqual(t, a[0], b[0], "hook_open's handles")
}

// checkScaffoldSampler: the sampler scaffold (Go or C), a policy that keeps
// every token, answers KeepAll, not a widened row of the whole vocabulary
// (sdk/ABI.md §6.2); temperature 0 keeps the first candidate only; and
// parameters it cannot read are an error, not a lost instance.
func checkScaffoldSampler(t *testing.T, file string) {
	ctx := t.Context()
	wasm, err := os.ReadFile(file)
	require.NoError(t, err)
	p, err := plugin.Load(ctx, wasm, plugin.Config{ID: "my-sampler", Kind: plugin.KindSampler, PoolSize: 1})
	require.NoError(t, err)
	defer p.Close(ctx)
	b, err := p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	defer b.Close(ctx)
	_, err = b.Open(ctx, []byte(`{"sampling": {"temperature": "hot"}}`))
	require.ErrorContains(t, err, "temperature")
	h, err := b.Open(ctx, []byte(`{"sampling": {"temperature": 0.5}, "vocab_size": 1000}`))
	require.NoError(t, err)
	greedy, err := b.Open(ctx, []byte(`{"sampling": {"temperature": 0}, "vocab_size": 1000}`))
	require.NoError(t, err)
	require.NotEqual(t, h, greedy, "smp_open's handles")
	outs, err := b.Step(ctx, []plugin.SamplerRow{
		{Handle: h, IDs: []int32{3, 1}, Logits: []float32{2, 1}, LSE: 3},
		{Handle: greedy, IDs: []int32{3, 1}, Logits: []float32{2, 1}, LSE: 3},
	})
	require.NoError(t, err)
	require.True(t, outs[0].KeepAll, "%+v", outs[0])
	require.Equal(t, float32(0.5), outs[0].Temperature)
	require.Equal(t, []float32{2, float32(math.Inf(-1))}, outs[1].Logits)
	require.Zero(t, p.Stats().Replacements)
}

// checkScaffoldTokenizer: the C tokenizer scaffold refuses ids outside its
// vocabulary with an error, not a lost instance, and decodes a character
// cut between tokens as U+FFFD, since its text must be UTF-8.
func checkScaffoldTokenizer(t *testing.T, file string) {
	ctx := t.Context()
	wasm, err := os.ReadFile(file)
	require.NoError(t, err)
	p, err := plugin.Load(ctx, wasm, plugin.Config{ID: "c-tokenizer", Kind: plugin.KindTokenizer, PoolSize: 1})
	require.NoError(t, err)
	defer p.Close(ctx)
	_, err = p.Decode(ctx, []int32{'a', 257}, 0)
	require.ErrorContains(t, err, "outside the vocabulary")
	text, err := p.Decode(ctx, []int32{256, 'a', 0xE2, 0x82, 'b', 0xF0, 0x9F, 0x8C, 0x8D}, 0)
	require.NoError(t, err)
	require.Equal(t, "</s>a\uFFFDb🌍", text)
	text, err = p.Decode(ctx, []int32{256, 'a', 256}, 4) // skip special tokens
	require.NoError(t, err)
	require.Equal(t, "a", text)
	ids, err := p.Encode(ctx, "hé", 1, 257) // with the beginning of sequence
	require.NoError(t, err)
	require.Equal(t, []int32{256, 'h', 0xC3, 0xA9}, ids)
	require.Zero(t, p.Stats().Replacements)
}

// mistakes are plugins with the mistakes plugin authors make most, in C
// (quick to build), each with what `ulan plugin test` must say about it:
// the failing check and words that tell the author what to fix.
var mistakes = []struct {
	name, kind, src string
	check, says     string
}{
	{"constant-handle", "sampler", `
ULAN_EXPORT(smp_open) int64_t smp_open(const char *json, uint32_t len) { return 7; }
ULAN_EXPORT(smp_close) void smp_close(int64_t h) {}
ULAN_EXPORT(smp_step) int32_t smp_step(void *arena, uint32_t len) { return ULAN_OK; }`,
		"FAIL  smp_open 1", "returned handle 7, which an open sequence already has"},
	{"nan-logit", "sampler", `
static int64_t next;
ULAN_EXPORT(smp_open) int64_t smp_open(const char *json, uint32_t len) { return next++; }
ULAN_EXPORT(smp_close) void smp_close(int64_t h) {}
ULAN_EXPORT(smp_step) int32_t smp_step(void *arena, uint32_t len) {
  ulan_step s;
  if (ulan_step_view(arena, len, &s) != ULAN_OK) return ULAN_INVALID_ARGUMENT;
  for (int32_t i = 0; i < s.rows; i++) ulan_step_out(&s, i)[0] = __builtin_nanf("");
  return ULAN_OK;
}`,
		"FAIL  smp_step at position 0", "NaN logit"},
	{"holds-back", "hook", `
static uint8_t record[64];
static int64_t next;
ULAN_EXPORT(hook_open) int64_t hook_open(const char *meta, uint32_t len) { return next++; }
ULAN_EXPORT(hook_delta) int64_t hook_delta(int64_t h, const char *text, uint32_t len, const int32_t *ids, uint32_t n, int32_t flags) {
  return ulan_hook_result(record, (flags & 3) == ULAN_CHANNEL_CONTENT ? ULAN_HOOK_REPLACE : ULAN_HOOK_PASS, 0, 0, 0);
}
ULAN_EXPORT(hook_end) int64_t hook_end(int64_t h, int32_t finish) { return ulan_hook_result(record, ULAN_HOOK_PASS, 0, 0, 0); }
ULAN_EXPORT(hook_close) void hook_close(int64_t h) {}`,
		"FAIL  hook_end releases held-back content", "must be released by a later delta or by hook_end's result"},
	{"leaks", "hook", `
static uint8_t record[64];
static int64_t next;
static char *volatile kept;
ULAN_EXPORT(hook_open) int64_t hook_open(const char *meta, uint32_t len) { return next++; }
ULAN_EXPORT(hook_delta) int64_t hook_delta(int64_t h, const char *text, uint32_t len, const int32_t *ids, uint32_t n, int32_t flags) {
  char *copy = malloc(len + 1); /* never freed */
  if (!copy) return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
  memcpy(copy, text, len);
  kept = copy;
  return ulan_hook_result(record, ULAN_HOOK_PASS, 0, 0, 0);
}
ULAN_EXPORT(hook_end) int64_t hook_end(int64_t h, int32_t finish) { return ulan_hook_result(record, ULAN_HOOK_PASS, 0, 0, 0); }
ULAN_EXPORT(hook_close) void hook_close(int64_t h) {}`,
		"FAIL  frees its memory", "free what each call allocates"},
}

// TestPluginTestCatchesMistakes builds each of mistakes and requires
// `ulan plugin test` to fail it with a message that says what to fix.
func TestPluginTestCatchesMistakes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	if !haveClang() {
		t.Skip("clang or wasm-ld is not installed (apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)")
	}
	t.Parallel()
	header, err := filepath.Abs("../../sdk/c/ulan_plugin.h")
	require.NoError(t, err)
	for _, m := range mistakes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), m.name)
			require.NoError(t, os.Mkdir(dir, 0o700))
			src := "#define ULAN_PLUGIN_MAIN\n#include \"" + header + "\"\n" +
				"int32_t ulan_plugin_init(const char *config, uint32_t len) { return ULAN_OK; }\n" + m.src
			require.NoError(t, os.WriteFile(filepath.Join(dir, "plugin.c"), []byte(src), 0o600))
			man := `{"abi": 1, "name": "` + m.name + `", "version": "0.1.0", "kind": "` + m.kind + `", "needs": {"memory_pages": 32}}`
			require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(man), 0o600))
			code, _, errOut := ulan(t, "", "plugin", "build", dir)
			require.Equal(t, 0, code, errOut)
			code, out, errOut := ulan(t, "", "plugin", "test", filepath.Join(dir, m.name+".wasm"))
			require.Equal(t, 1, code, "%s%s", out, errOut)
			var line string
			for l := range strings.Lines(out) {
				if strings.HasPrefix(l, m.check) {
					line = l
					break
				}
			}
			require.NotEmpty(t, line, "no %q in\n%s", m.check, out)
			require.Contains(t, line, m.says)
			for l := range strings.Lines(out) {
				if strings.Contains(l, m.says) && !strings.Contains(m.says, "free") {
					require.NotContains(t, l, "raise needs", "a refused answer is not the limits' doing")
				}
			}
		})
	}
}

// TestPluginBuildCWithoutClang: on a machine without the C toolchain,
// `ulan plugin build` says what to install.
func TestPluginBuildCWithoutClang(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.c"), []byte("int x;\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"abi":1,"name":"p","version":"0.1.0","kind":"hook"}`), 0o600))
	t.Setenv("PATH", t.TempDir())
	code, _, errOut := ulan(t, "", "plugin", "build", dir)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "clang is not installed")
	require.Contains(t, errOut, "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32")
}

// TestPluginTestLog: the log `ulan plugin test` shows has what a plugin
// says — its log import's messages, its stdout and stderr — but not the
// runtime's notes about a call that failed (an instance replaced after a
// trap), which its FAIL lines report already.
func TestPluginTestLog(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var buf lockedBuffer
	logger := pluginSays(&buf)
	for _, name := range []string{"ok", "hostile"} {
		wasm, err := os.ReadFile("../../host/plugin/testdata/" + name + ".wasm")
		require.NoError(t, err)
		p, err := plugin.Load(ctx, wasm, plugin.Config{ID: name, PoolSize: 1, MemoryPages: 16, Logger: logger})
		require.NoError(t, err)
		if name == "ok" {
			_, err = p.Call(ctx, "hello") // logs "hello from ok"
			require.NoError(t, err)
		} else {
			_, err = p.Call(ctx, "spam", 2) // two lines on stdout
			require.NoError(t, err)
			_, err = p.Call(ctx, "boom") // traps: the runtime replaces the instance
			require.Error(t, err)
		}
		require.NoError(t, p.Close(ctx))
	}
	out := buf.String()
	require.Contains(t, out, `level=INFO msg="hello from ok" plugin=ok source=plugin`)
	require.NotContains(t, out, "time=")
	require.Equal(t, 2, strings.Count(out, `msg="plugin output" plugin=hostile source=plugin line="spam spam`), out)
	require.NotContains(t, out, "replaced", "the runtime's note of the trap")
}

// lockedBuffer is a strings.Builder for writers on several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
