package deepseekv4

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// golden is what llama.cpp computed on a seeded test model (the same JSON
// as deepseekv3's testdata): the top-10 at every prompt position and along
// a greedy continuation.
type golden struct {
	PromptTokens []int32 `json:"prompt_tokens"`
	Positions    []step  `json:"positions"`
	Greedy       []step  `json:"greedy"`
}

type step struct {
	InputToken int32 `json:"input_token"`
	Argmax     int   `json:"argmax"`
	Top        []struct {
		ID      int     `json:"id"`
		Logit   float64 `json:"logit"`
		Logprob float64 `json:"logprob"`
	} `json:"top"`
}

var (
	modelsDir  string
	modelsOnce sync.Map // file name → *sync.Once
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-deepseekv4-")
	if err != nil {
		panic(err)
	}
	modelsDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// writeModel writes a testmodel preset with seed 1 (the goldens' seed) once
// per test binary and, when testdata/models.sha256 lists it, checks it is
// byte for byte the file the goldens were made from.
func writeModel(t *testing.T, preset string, c testmodel.V4) string {
	t.Helper()
	name := preset + "-" + strings.ToLower(c.Type.String()) + ".gguf"
	path := filepath.Join(modelsDir, name)
	once, _ := modelsOnce.LoadOrStore(name, new(sync.Once))
	var err error
	once.(*sync.Once).Do(func() { err = c.WriteFile(path, 1) })
	require.NoError(t, err)
	if want := listedSHA(t, name); want != "" {
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		sum := sha256.Sum256(raw)
		require.Equal(t, want, hex.EncodeToString(sum[:]),
			"the generator no longer writes the model the goldens were made from")
	}
	return path
}

func listedSHA(t *testing.T, name string) string {
	f, err := os.Open("testdata/models.sha256")
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	require.NoError(t, err)
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[1] == name {
			return fields[0]
		}
	}
	return ""
}

func open(t *testing.T, path string) (*engine.Runner, engine.Model) {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	b := cpu.New(cpu.WithThreads(2))
	m, err := engine.LoadGGUF(f, b)
	require.NoError(t, err)
	r, err := engine.NewRunner(m, b, engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, 2, 1024, 0)})
	require.NoError(t, err)
	return r, m
}

func argmax(row []float32) int {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}

// TestAgainstLlamaCpp runs each golden's prompt (360 tokens: HCA entries
// exist and the indexer selects 4 of up to 90 entries) and greedy
// continuation on the tiny-v4 model and compares with llama.cpp on the
// same file: the top-10 logits of every row within tol and the same argmax
// wherever llama.cpp's own top two are further apart than 2·tol (random
// models have near-ties), except for at most flips rows, which must stay
// within flipTol. A golden file that has not been generated is skipped,
// saying so.
//
// f32: both engines compute the same sums in another order: no exceptions,
// 1e-4 (measured: 3.3e-6 over 392 rows). Q8_0: both quantize activations to
// Q8_0 and the block products are exact integers, but an f32 accumulation
// difference can move an activation across a rounding boundary and,
// through a near-tie, change a routed expert or an indexer selection; the
// tolerance is deepseekv3's (0.05, one row within 0.2). Measured: 0.041
// at worst but one prompt row (position 350) at 0.151, argmax equal
// everywhere.
func TestAgainstLlamaCpp(t *testing.T) {
	for _, tc := range []struct {
		typ          gguf.Type
		tol, flipTol float64
		flips        int
	}{
		{gguf.TypeF32, 1e-4, 0, 0},
		{gguf.TypeQ8_0, 0.05, 0.2, 1},
	} {
		name := "tiny-v4-" + strings.ToLower(tc.typ.String())
		t.Run(name, func(t *testing.T) {
			if raceEnabled && tc.typ != gguf.TypeF32 {
				t.Skip("under -race the Q8_0 run repeats the f32 run's goroutine structure at ten times the cost")
			}
			raw, err := os.ReadFile("testdata/" + name + ".golden.json")
			if errors.Is(err, fs.ErrNotExist) {
				t.Skip("testdata/" + name + ".golden.json is absent: the llama.cpp goldens for deepseek4 have not been generated")
			}
			require.NoError(t, err)
			var g golden
			require.NoError(t, json.Unmarshal(raw, &g))
			require.GreaterOrEqual(t, len(g.PromptTokens), 300)
			require.Len(t, g.Positions, len(g.PromptTokens))
			require.NotEmpty(t, g.Greedy)
			c := testmodel.TinyV4()
			c.Type = tc.typ
			againstGolden(t, name, g, writeModel(t, "tiny-v4", c), tc.tol, tc.flips, tc.flipTol)
		})
	}
}

func againstGolden(t *testing.T, name string, g golden, path string, tol float64, maxFlips int, flipTol float64) {
	r, _ := open(t, path)
	worst, flips := 0.0, 0
	check := func(where string, row []float32, s step) {
		d := 0.0
		for _, top := range s.Top {
			d = max(d, math.Abs(float64(row[top.ID])-top.Logit))
		}
		worst = max(worst, d)
		ok := len(s.Top) < 2 || s.Top[0].Logit-s.Top[1].Logit <= 2*tol || s.Argmax == argmax(row)
		if d <= tol && ok {
			return
		}
		flips++
		require.LessOrEqual(t, flips, maxFlips, "%s: |Δlogit| %.3g (tolerance %g), argmax agrees: %v", where, d, tol, ok)
		require.LessOrEqual(t, d, flipTol, "%s: a row beyond the tolerance must stay within %g", where, flipTol)
	}
	seq := r.NewSequence()
	rows, err := r.Step([]engine.Work{{Seq: seq, Tokens: g.PromptTokens, AllLogits: true}})
	require.NoError(t, err)
	vocab := len(rows[0]) / len(g.PromptTokens)
	for p, s := range g.Positions {
		check("prompt position "+strconv.Itoa(p), rows[0][p*vocab:(p+1)*vocab], s)
	}
	for i, s := range g.Greedy {
		if i > 0 {
			require.Equal(t, int32(g.Greedy[i-1].Argmax), s.InputToken, "llama.cpp's greedy chain")
		}
		rows, err := r.Step([]engine.Work{{Seq: seq, Tokens: []int32{s.InputToken}}})
		require.NoError(t, err)
		check("greedy step "+strconv.Itoa(i), rows[0], s)
	}
	t.Logf("%s: max |Δlogit| over the top-10 of %d rows: %.3g; rows beyond %g: %d", name, len(g.Positions)+len(g.Greedy), worst, tol, flips)
}

// TestTinyV4 loads the generator's tiny-v4 (the golden model) and checks
// that prefilling 300 tokens in chunks of 7 gives the logits of one pass,
// and that two sequences decoded in one step get what each gets alone.
func TestTinyV4(t *testing.T) {
	if raceEnabled {
		t.Skip("writing the 16 MB model takes half a minute under -race; the tiny in-test model covers the same paths there")
	}
	path := writeModel(t, "tiny-v4", testmodel.TinyV4())
	r, m := open(t, path)
	require.Equal(t, "deepseek4", m.Info().Architecture)
	// 150 tokens reach an HCA entry and make the indexer (top 16 of 37)
	// select; the whole 300 when time allows.
	n := 300
	if testing.Short() {
		n = 150
	}
	prompt := make([]int32, n)
	for i := range prompt {
		prompt[i] = int32((i*7919 + 13) % m.Info().Vocab)
	}
	whole := r.NewSequence()
	rows, err := r.Step([]engine.Work{{Seq: whole, Tokens: prompt, AllLogits: true}})
	require.NoError(t, err)
	want := append([]float32(nil), rows[0]...)
	vocab := m.Info().Vocab

	chunked := r.NewSequence()
	for c := 0; c < len(prompt); c += 7 {
		rows, err := r.Step([]engine.Work{{Seq: chunked, Tokens: prompt[c:min(c+7, len(prompt))], AllLogits: true}})
		require.NoError(t, err)
		for k := 0; k < len(rows[0])/vocab; k++ {
			p := c + k
			for i, v := range rows[0][k*vocab : (k+1)*vocab] {
				if d := math.Abs(float64(v - want[p*vocab+i])); d > 1e-5 {
					t.Fatalf("position %d: chunked prefill differs by %.3g", p, d)
				}
			}
		}
	}
	// Both sequences decode the same token: same position, same logits.
	rows, err = r.Step([]engine.Work{{Seq: whole, Tokens: []int32{5}}, {Seq: chunked, Tokens: []int32{5}}})
	require.NoError(t, err)
	for i := range rows[0] {
		require.InDelta(t, rows[0][i], rows[1][i], 1e-5)
	}
}

// TestSelectionsAgainstLlamaCpp compares, over the golden prompt, the
// entries the indexer keeps in each CSA layer (trap 10) and the experts
// each token is routed to (hash-routed layers 0–1, biased top-k 2–3; traps
// 11, 12) with llama.cpp's lid_top_k and ffn_moe_topk, as sets. Where no
// more entries are visible than index_topk llama.cpp pads its set with
// masked ones: ours must then be the visible entries, all in its set.
func TestSelectionsAgainstLlamaCpp(t *testing.T) {
	raw, err := os.ReadFile("testdata/tiny-v4-f32.tensors.json")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("testdata/tiny-v4-f32.tensors.json is absent: the llama.cpp tensor dump for deepseek4 has not been generated")
	}
	require.NoError(t, err)
	var dump struct {
		Phases []struct {
			Phase   string `json:"phase"`
			Tensors []struct {
				Name string  `json:"name"`
				Type string  `json:"type"`
				Ne   []int   `json:"ne"`
				Data []int32 `json:"data"`
			} `json:"tensors"`
		} `json:"phases"`
	}
	require.NoError(t, json.Unmarshal(raw, &dump))
	gRaw, err := os.ReadFile("testdata/tiny-v4-f32.golden.json")
	require.NoError(t, err)
	var g golden
	require.NoError(t, json.Unmarshal(gRaw, &g))

	f, err := gguf.Open(writeModel(t, "tiny-v4", testmodel.TinyV4()))
	require.NoError(t, err)
	defer f.Close()
	b := cpu.New(cpu.WithThreads(2))
	mm, err := Load(f, b)
	require.NoError(t, err)
	m := mm.(*Model)
	ours := map[string][]int32{}
	m.observe = func(layer int, name string, x engine.Tensor) {
		ours[name+"-"+strconv.Itoa(layer)] = append([]int32(nil), x.(interface{ Int32s() []int32 }).Int32s()...)
	}
	h := newHarness(t, m, b, 1, len(g.PromptTokens))
	h.step(t, []part{{0, g.PromptTokens}})

	T, checked := len(g.PromptTokens), 0
	for _, ph := range dump.Phases {
		if ph.Phase != "prompt" {
			continue
		}
		for _, x := range ph.Tensors {
			if x.Type != "i32" || !(strings.HasPrefix(x.Name, "lid_top_k-") || strings.HasPrefix(x.Name, "ffn_moe_topk-")) {
				continue
			}
			got, ok := ours[x.Name]
			require.True(t, ok, "no %s in our run", x.Name)
			k := x.Ne[0]
			require.Len(t, x.Data, k*T, x.Name)
			require.Len(t, got, k*T, x.Name)
			for p := range T {
				want, have := x.Data[p*k:(p+1)*k], got[p*k:(p+1)*k]
				if strings.HasPrefix(x.Name, "lid_top_k-") && (p+1)/4 <= k {
					for w := range (p + 1) / 4 {
						require.Contains(t, want, int32(w), "%s position %d: visible entry %d", x.Name, p, w)
						require.Contains(t, have, int32(w), "%s position %d: visible entry %d", x.Name, p, w)
					}
					continue
				}
				require.ElementsMatch(t, want, have, "%s position %d", x.Name, p)
			}
			checked++
		}
	}
	require.Equal(t, 6, checked, "lid_top_k of layers 1 and 3, ffn_moe_topk of layers 0–3")
}
