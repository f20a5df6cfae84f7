package pipeline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv3"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/tokenizer"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

func TestModelReportsTheLoadedModel(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-pipeline-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "m.gguf")
	require.NoError(t, testmodel.TinyV3().WriteFile(path, 1))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	b := cpu.New(cpu.WithThreads(1))
	m, err := engine.LoadGGUF(f, b)
	require.NoError(t, err)
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: 1 << 20})
	require.NoError(t, err)
	p := pipeline.New(pipeline.Model{Name: "tiny", Format: "gguf", DTypes: []string{"f32"}, Backend: "cpu", Runner: r})

	res, err := p.Model(context.Background(), []uint64{1024, 65536, 1 << 20})
	require.NoError(t, err)
	require.Equal(t, "deepseek2", res.Architecture)
	require.Equal(t, m.Info().TotalParams, res.TotalParameters)
	require.Equal(t, uint32(129280), res.VocabSize)
	// TinyV3 caches 32 + 8 values per token in each of 3 layers, in f32.
	perToken := uint64(3 * 40 * 4)
	require.Equal(t, []*ulanv1.KVCacheSize{
		{ContextLength: 1024, Bytes: 1024 * perToken},
		{ContextLength: 65536, Bytes: 65536 * perToken},
		{ContextLength: 1 << 20, Bytes: (1 << 20) * perToken},
	}, res.KvCache)

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
	require.ErrorIs(t, err, api.ErrNotImplemented)
}
