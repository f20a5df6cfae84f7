package engine_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv4"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// TestRunnerTileMaxima: a step's tile maxima are, row for row, the
// largest of each LogitTile logits of the rows Step returned; an AllLogits
// row has none; a failed step leaves none of the last step's.
// Tokens outside the vocabulary are refused before the model runs.
func TestRunnerTileMaxima(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, testmodel.TinyV4().WriteFile(path, 1))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	b := cpu.New(cpu.WithThreads(2))
	m, err := engine.LoadGGUF(f, b)
	require.NoError(t, err)
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: 64 << 20})
	require.NoError(t, err)
	seqs := []*engine.Sequence{r.NewSequence(), r.NewSequence(), r.NewSequence()}
	work := []engine.Work{
		{Seq: seqs[0], Tokens: []int32{5, 6, 7}},
		{Seq: seqs[1], Tokens: []int32{9}},
		{Seq: seqs[2], Tokens: []int32{11, 12}, AllLogits: true},
	}
	rows, err := r.Step(work)
	require.NoError(t, err)
	tiles := r.TileMaxima()
	require.Len(t, tiles, 3)
	require.Nil(t, tiles[2], "an AllLogits row has no maxima")
	for i, row := range rows[:2] {
		require.Len(t, tiles[i], (len(row)+engine.LogitTile-1)/engine.LogitTile)
		for j, got := range tiles[i] {
			want := float32(math.Inf(-1))
			for _, v := range row[j*engine.LogitTile : min((j+1)*engine.LogitTile, len(row))] {
				want = max(want, v)
			}
			require.Equal(t, want, got, "row %d tile %d", i, j)
		}
	}
	// A token outside the vocabulary fails the step with an error that
	// names it (it used to reach the model, and V4's Forward panicked).
	_, err = r.Step([]engine.Work{{Seq: seqs[1], Tokens: []int32{-1}}})
	require.ErrorContains(t, err, "id -1 outside the vocabulary")
	require.Empty(t, r.TileMaxima())
	_, err = r.Step([]engine.Work{{Seq: seqs[1], Tokens: []int32{int32(m.Info().Vocab)}}})
	require.ErrorContains(t, err, "outside the vocabulary")
}
