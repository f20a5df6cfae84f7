package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	"github.com/ulan-ai/ulan/engine"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv3"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/host/tokenizer"
	"github.com/ulan-ai/ulan/plugins"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

func TestModelReportsTheLoadedModel(t *testing.T) {
	t.Parallel()
	r, _ := tinyV3(t, 1<<20)
	m := r.Model()
	p := pipeline.New(pipeline.Model{Name: "tiny", Format: "gguf", DTypes: []string{"f32"}, Backend: "cpu", Runner: r})

	res, err := p.Model(context.Background(), []uint64{1024, 65536, 1 << 20})
	require.NoError(t, err)
	require.Equal(t, "deepseek2", res.Architecture)
	require.Equal(t, m.Info().TotalParams, res.TotalParameters)
	require.Equal(t, uint32(129280), res.VocabSize)
	// TinyV3 caches 32 + 8 values per token in each of 3 layers, in f32.
	perToken := uint64(3 * 40 * 4)
	want := []*ulanv1.KVCacheSize{
		{ContextLength: 1024, Bytes: 1024 * perToken, BytesPerToken: float64(perToken)},
		{ContextLength: 65536, Bytes: 65536 * perToken, BytesPerToken: float64(perToken)},
		{ContextLength: 1 << 20, Bytes: (1 << 20) * perToken, BytesPerToken: float64(perToken)},
	}
	require.Equal(t, want, res.KvCache)
	// No lengths asked for: the same three.
	res, err = p.Model(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, want, res.KvCache)
	// A length that is not whole blocks is charged whole blocks.
	res, err = p.Model(context.Background(), []uint64{17})
	require.NoError(t, err)
	require.Equal(t, 32*perToken, res.KvCache[0].Bytes)

	_, err = p.Tokenize(context.Background(), &ulanv1.TokenizeRequest{Text: "x"})
	require.True(t, errors.Is(err, api.ErrNotImplemented))
}

func TestTokenizeAndDetokenize(t *testing.T) {
	t.Parallel()
	tj, err := testmodel.TokenizerJSON()
	require.NoError(t, err)
	tok, err := tokenizer.Native(tj, testmodel.TokenizerConfigJSON())
	require.NoError(t, err)
	p := pipeline.New(pipeline.Model{Name: "tok-only", Tokenizer: tok})
	ctx := context.Background()

	res, err := p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "Hello, world!"})
	require.NoError(t, err)
	require.Equal(t, []uint32{19923, 14, 2058, 3}, res.TokenIds, "as transformers.js (hf corpus prose/0)")
	require.Equal(t, []string{"Hello", ",", "Ġworld", "!"}, res.Pieces)
	var offsets [][2]uint32
	for _, o := range res.Offsets {
		offsets = append(offsets, [2]uint32{o.Start, o.End})
	}
	require.Equal(t, [][2]uint32{{0, 5}, {5, 6}, {6, 12}, {12, 13}}, offsets)

	res, err = p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "<｜User｜>hi", AddSpecialTokens: true, ParseSpecialTokens: true})
	require.NoError(t, err)
	require.Equal(t, uint32(0), res.TokenIds[0], "BOS")
	require.Equal(t, "<｜User｜>", res.Pieces[1])
	plain, err := p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "<｜begin▁of▁sentence｜>hi"})
	require.NoError(t, err)
	require.Greater(t, len(plain.TokenIds), 3, "special-token text as text without parse_special_tokens")
	parsed, err := p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "<｜begin▁of▁sentence｜>hi", ParseSpecialTokens: true})
	require.NoError(t, err)
	require.Len(t, parsed.TokenIds, 2)

	back, err := p.Detokenize(ctx, &ulanv1.DetokenizeRequest{TokenIds: res.TokenIds, SkipSpecialTokens: true})
	require.NoError(t, err)
	require.Equal(t, "<｜User｜>hi", back.Text, "BOS is special, <｜User｜> an added token that is not")
	back, err = p.Detokenize(ctx, &ulanv1.DetokenizeRequest{TokenIds: res.TokenIds})
	require.NoError(t, err)
	require.Equal(t, "<｜begin▁of▁sentence｜><｜User｜>hi", back.Text)

	_, err = p.Detokenize(ctx, &ulanv1.DetokenizeRequest{TokenIds: []uint32{5, 1 << 30}})
	var fe *api.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "token_ids[1]", fe.Field)
	_, err = p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "x", Pipeline: "custom"})
	require.ErrorAs(t, err, &fe, "no generation, no pipelines")
	require.Equal(t, "pipeline", fe.Field)
	require.Contains(t, fe.Reason, `no pipeline named "custom"; none is configured`)
}

// TestTokenizeThroughPipelines: a pipeline's tokenizer plugin serves
// Tokenize and Detokenize (the built-in tokenizer, handed the model's
// bundle, gives the native ids and offsets); a tokenizer plugin that fails
// falls back to the model's tokenizer under fallback and fails the request
// under fail_closed.
func TestTokenizeThroughPipelines(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the tokenizer plugin")
	}
	t.Parallel()
	tok, bundle := deepseekTokenizer(t)
	bad := badTokenizer(t)
	ctx := context.Background()
	gen, err := generation.Build(ctx, config.Config{
		Plugins: []config.Plugin{
			{ID: "tok", Module: "builtin:tokenizer", Grants: config.Grants{MemoryPages: 8192, CallTimeout: 10 * time.Second}, PoolSize: 1},
			// badtok's configs name a tokenizer of their own (which badtok
			// ignores), so the model's bundle is not handed to it.
			{ID: "bad-fallback", Module: "builtin:badtok", FailurePolicy: "fallback", PoolSize: 1, Config: map[string]any{"tokenizer_json": map[string]any{}}},
			{ID: "bad-closed", Module: "builtin:badtok", PoolSize: 1, Config: map[string]any{"tokenizer_json": map[string]any{}}},
		},
		Pipelines: []config.Pipeline{
			{Name: "default", Tokenizer: "tok"},
			{Name: "fb", Tokenizer: "bad-fallback"},
			{Name: "closed", Tokenizer: "bad-closed"},
		},
	}, generation.Deps{Builtins: map[string][]byte{"tokenizer": plugins.Tokenizer, "badtok": bad}, ModelTokenizer: bundle,
		// The plugin reads the whole vocabulary in ulan_init: seconds, more
		// under -race on a busy CI machine than the 10 s default allows.
		InitTimeout: time.Minute,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	defer gen.Close(ctx)
	p := pipeline.New(pipeline.Model{Name: "m", Tokenizer: tok, Generation: gen})

	want, err := pipeline.New(pipeline.Model{Name: "m", Tokenizer: tok}).Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "Hello, 世界 <think>"})
	require.NoError(t, err)
	for _, name := range []string{"", "default"} { // the default pipeline serves requests that name none
		got, err := p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "Hello, 世界 <think>", Pipeline: name})
		require.NoError(t, err)
		require.Equal(t, want.TokenIds, got.TokenIds)
		require.Equal(t, want.Pieces, got.Pieces)
		require.Equal(t, len(want.Offsets), len(got.Offsets))
		for i := range want.Offsets {
			require.Equal(t, want.Offsets[i].Start, got.Offsets[i].Start)
			require.Equal(t, want.Offsets[i].End, got.Offsets[i].End)
		}
	}
	back, err := p.Detokenize(ctx, &ulanv1.DetokenizeRequest{TokenIds: want.TokenIds, Pipeline: "default"})
	require.NoError(t, err)
	require.Equal(t, "Hello, 世界 <think>", back.Text)

	// badtok answers "n…" with id −1, which the host refuses.
	got, err := p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "nx", Pipeline: "fb"})
	require.NoError(t, err, "fallback: the model's tokenizer")
	native, err := tok.Encode("nx", 0)
	require.NoError(t, err)
	require.Len(t, got.TokenIds, len(native))
	_, err = p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "nx", Pipeline: "closed"})
	require.ErrorContains(t, err, "tokenizer plugin bad-closed failed (fail_closed)")
	_, err = p.Tokenize(ctx, &ulanv1.TokenizeRequest{Text: "x", Pipeline: "nope"})
	var fe *api.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "pipeline", fe.Field)
	require.Contains(t, fe.Reason, `no pipeline named "nope"; configured: `)
	_, err = p.Detokenize(ctx, &ulanv1.DetokenizeRequest{TokenIds: []uint32{5}, Pipeline: "nope"})
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "pipeline", fe.Field)
}

// TestTokenizerPluginMustShareTheModelsVocabulary: a tokenizer plugin whose
// vocabulary is not the model's tokenizer's is a problem naming it, since
// its ids would not be the model's.
func TestTokenizerPluginMustShareTheModelsVocabulary(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the tokenizer plugin")
	}
	t.Parallel()
	tok, bundle := deepseekTokenizer(t)
	ctx := context.Background()
	cfg := config.Config{Plugins: []config.Plugin{{ID: "tok", Module: "builtin:tokenizer", PoolSize: 1,
		Grants: config.Grants{MemoryPages: 8192, CallTimeout: 10 * time.Second}}}}
	deps := generation.Deps{Builtins: map[string][]byte{"tokenizer": plugins.Tokenizer}, ModelTokenizer: bundle,
		InitTimeout: time.Minute, Cache: wazero.NewCompilationCache(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	deps.ModelVocab = tok.VocabSize()
	gen, err := generation.Build(ctx, cfg, deps)
	require.NoError(t, err, "the model's own tokenizer, as a plugin")
	gen.Close(ctx)
	deps.ModelVocab = tok.VocabSize() + 1
	_, err = generation.Build(ctx, cfg, deps)
	var ps config.Problems
	require.ErrorAs(t, err, &ps)
	require.Len(t, ps, 1)
	require.Equal(t, "plugins[0]", ps[0].Key)
	require.Contains(t, ps[0].Message, fmt.Sprintf("has a vocabulary of %d tokens, the model's tokenizer one of %d", tok.VocabSize(), tok.VocabSize()+1))
}

// tinyV3 writes TinyV3 (seed 1) and loads it on one thread with a KV cache
// of cacheBytes; its GGUF file stays open until the test ends.
func tinyV3(t *testing.T, cacheBytes int64) (*engine.Runner, *gguf.File) {
	t.Helper()
	dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-pipeline-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "m.gguf")
	require.NoError(t, testmodel.TinyV3().WriteFile(path, 1))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	b := cpu.New(cpu.WithThreads(1))
	m, err := engine.LoadGGUF(f, b)
	require.NoError(t, err)
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: cacheBytes})
	require.NoError(t, err)
	return r, f
}

// deepseekTokenizer is DeepSeek-V3's tokenizer, native, with its bundle
// (what the tokenizer plugin is handed).
func deepseekTokenizer(t *testing.T) (*hf.Tokenizer, []byte) {
	t.Helper()
	tj, err := testmodel.TokenizerJSON()
	require.NoError(t, err)
	tok, err := tokenizer.Native(tj, testmodel.TokenizerConfigJSON())
	require.NoError(t, err)
	bundle, err := tok.Bundle()
	require.NoError(t, err)
	return tok, bundle
}

// badTokenizer is host/plugin's badtok test module with a manifest: it
// answers text starting with "n" with id −1, which the host refuses.
func badTokenizer(t *testing.T) []byte {
	t.Helper()
	bad, err := os.ReadFile("../plugin/testdata/badtok.wasm")
	require.NoError(t, err)
	bad, err = plugin.EmbedManifest(bad, []byte(`{"abi":1,"name":"badtok","version":"0.1.0","kind":"tokenizer"}`))
	require.NoError(t, err)
	return bad
}
