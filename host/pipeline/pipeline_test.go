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
