package deepseekv4

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// hfPrompt is a prompt long enough that the tiny model's HCA layer has two
// entries (≥ 256 tokens) and its indexer selects (16 of up to 65).
func hfPrompt(n, vocab int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32((i*7919 + 13) % vocab)
	}
	return p
}

// hfRun prefills prompt in chunks of the given sizes (cycled), keeping
// each chunk's last logits row, then decodes steps greedy tokens: every
// row it saw, and the greedy tokens.
func hfRun(t *testing.T, m engine.Model, b engine.Backend, prompt []int32, chunks []int, steps int) ([][]float32, []int32) {
	t.Helper()
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, 1, 1024, 0)})
	require.NoError(t, err)
	seq := r.NewSequence()
	var rows [][]float32
	for at, k := 0, 0; at < len(prompt); k++ {
		n := min(chunks[k%len(chunks)], len(prompt)-at)
		out, err := r.Step([]engine.Work{{Seq: seq, Tokens: prompt[at : at+n]}})
		require.NoError(t, err)
		rows = append(rows, append([]float32(nil), out[0]...))
		at += n
	}
	var greedy []int32
	for range steps {
		tok := int32(argmax(rows[len(rows)-1]))
		greedy = append(greedy, tok)
		out, err := r.Step([]engine.Work{{Seq: seq, Tokens: []int32{tok}}})
		require.NoError(t, err)
		rows = append(rows, append([]float32(nil), out[0]...))
	}
	return rows, greedy
}

func hfLoadDir(t *testing.T, dir string) (*Model, engine.Backend) {
	t.Helper()
	sm, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	t.Cleanup(func() { sm.Close() })
	b := cpu.New(cpu.WithThreads(2))
	m, err := engine.LoadDir(sm, b)
	require.NoError(t, err)
	return m.(*Model), b
}

func hfLoadGGUF(t *testing.T, path string) (*Model, engine.Backend) {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	b := cpu.New(cpu.WithThreads(2))
	m, err := engine.LoadGGUF(f, b)
	require.NoError(t, err)
	return m.(*Model), b
}

// TestHFDirAgainstGGUF is issue #9's check of the FP8/FP4 path: a V4
// release-format directory (FP8 E4M3 projections with E8M0 block scales,
// FP4 E2M1 routed experts, BF16 norms and tables) against an F32 GGUF
// holding exactly the values the directory decodes to. A 260-token prompt
// in uneven chunks (two HCA entries, the indexer keeping 16 of 65 CSA
// entries) and 6 greedy steps must give the same tokens and logits within
// 1e-5 (the FP8 kernel scales each block's sum instead of each weight, so
// rows agree to float32 rounding, not bit for bit). Cases: 128×128 blocks
// (the release's; every tiny matrix is one partial block) with an MTP
// block and I32 tables; 32×32 blocks (several whole and partial blocks per
// matrix) with I64 tables; and 32×32 blocks that the config does not
// declare, found from the scales' shapes.
func TestHFDirAgainstGGUF(t *testing.T) {
	if raceEnabled {
		t.Skip("writing the two 40 MB models takes minutes under -race; TestHFDirErrors loads a directory there")
	}
	cases := []struct {
		name string
		opts []testmodel.HFOption
		mtp  int
	}{
		{"fp8-128-mtp", []testmodel.HFOption{testmodel.WithMTP()}, 1},
		{"fp8-32-i64", []testmodel.HFOption{testmodel.WithFP8Block(32), testmodel.WithI64Tables(), testmodel.WithShards(3)}, 0},
		{"fp8-32-derived", []testmodel.HFOption{testmodel.WithFP8Block(32), testmodel.WithoutBlockSize()}, 0},
	}
	if testing.Short() {
		cases = cases[:2]
	}
	c := testmodel.TinyV4HF()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "hf")
			require.NoError(t, c.WriteHFDir(dir, 5, tc.opts...))
			path := filepath.Join(root, "ref.gguf")
			require.NoError(t, c.WriteFile(path, 5, testmodel.WithV4HFReference(tc.opts...)))

			hm, hb := hfLoadDir(t, dir)
			gm, gb := hfLoadGGUF(t, path)
			require.Equal(t, tc.mtp, hm.MTPBlocks())
			hp, gp := hm.Params(), gm.Params()
			require.Equal(t, tc.mtp, hp.NextN)
			hp.NextN = 0
			require.Equal(t, gp, hp)
			require.Equal(t, "deepseek4", hm.Info().Architecture)
			require.Equal(t, gm.Info().TotalParams+mtpParams(hp, tc.mtp), hm.Info().TotalParams)

			prompt := hfPrompt(260, hp.Vocab)
			chunks := []int{97, 1, 60, 7, 95}
			got, gotTokens := hfRun(t, hm, hb, prompt, chunks, 6)
			want, wantTokens := hfRun(t, gm, gb, prompt, chunks, 6)
			require.Equal(t, wantTokens, gotTokens, "greedy tokens")
			worst := 0.0
			for i := range want {
				for j := range want[i] {
					worst = max(worst, math.Abs(float64(got[i][j]-want[i][j])))
				}
			}
			t.Logf("%s: max |Δlogit| over %d rows × %d: %.3g", tc.name, len(want), len(want[0]), worst)
			require.LessOrEqual(t, worst, 1e-5)
		})
	}
}

// mtpParams counts the parameters of k MTP blocks of the tiny model (a
// window-only block with biased routing, eh_proj, three norms and its
// hc_head), which a directory has and the GGUF converter drops.
func mtpParams(p Params, k int) uint64 {
	if k == 0 {
		return 0
	}
	D, H, hd, hc, Lq := p.Hidden, p.Heads, p.HeadDim, p.HCMult, p.QLoRA
	mix := (2 + hc) * hc
	n := 2*(mix*hc*D+3+mix) + // mHC
		D + Lq*D + Lq + H*hd*Lq + hd*D + hd + H + // attention in
		p.OGroups*p.OLoRA*H*hd/p.OGroups + D*p.OGroups*p.OLoRA + // output
		D + p.Experts*D + p.Experts + 3*p.Experts*p.ExpertFFN*D + 3*p.ExpertFFN*D + // FFN
		D*2*D + 3*D + hc*hc*D + 1 + hc // eh_proj, norms, hc_head
	return uint64(k * n)
}
