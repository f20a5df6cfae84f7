package plugin

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
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
		for _, c := range Conform(context.Background(), tc.wasm, []byte(tc.config), 0, nil) {
			require.NoError(t, c.Err, "%s: %s", tc.name, c.Name)
		}
	}
	checks := Conform(context.Background(), wasm(t, "hostile"), nil, 0, nil)
	require.ErrorContains(t, checks[len(checks)-1].Err, "no ulan.manifest")

	// A Go plugin cannot start in the 16 pages (1 MiB) this manifest
	// declares: the contract passes (the suite grants at least 256 pages),
	// the limits check does not.
	small := buildGo(t, "gotok", `{"abi":1,"name":"gotok","version":"0.1.0","kind":"tokenizer","needs":{"memory_pages":16}}`)
	checks = Conform(context.Background(), small, nil, 0, nil)
	last := checks[len(checks)-1]
	require.Contains(t, last.Name, "within its declared limits (16 pages")
	require.ErrorContains(t, last.Err, "memory")
	for _, c := range checks[:len(checks)-1] {
		require.NoError(t, c.Err, c.Name)
	}
}

// TestConformSynthRows: the sampler checks' rows are what the host hands a
// plugin (sdk/ABI.md §6.2): candidates sorted by logit, largest first, ties
// to the lower id (and the bfloat16 rows do tie), only finite ones until
// the set is the whole vocabulary, and the whole row's log-sum-exp.
func TestConformSynthRows(t *testing.T) {
	t.Parallel()
	for _, flat := range []bool{false, true} {
		r := newSynthRow(7, flat)
		ids, logits := r.candidates(confVocab)
		require.Len(t, ids, confVocab)
		ties := 0
		for i := 1; i < len(ids); i++ {
			require.GreaterOrEqual(t, logits[i-1], logits[i], "largest first")
			if logits[i-1] == logits[i] && !math.IsInf(float64(logits[i]), -1) {
				ties++
				require.Less(t, ids[i-1], ids[i], "ties to the lower id")
			}
		}
		require.Greater(t, ties, 100)
		require.Less(t, r.finite, confVocab, "some tokens are banned")
		require.True(t, math.IsInf(float64(logits[confVocab-1]), -1), "the whole vocabulary includes them")

		ids, logits = r.candidates(confVocab - 1)
		require.Len(t, ids, r.finite, "a partial set holds finite candidates only")
		require.False(t, math.IsInf(float64(logits[len(logits)-1]), -1))

		var sum float64
		for _, l := range r.logits {
			sum += math.Exp(float64(l))
		}
		require.InDelta(t, math.Log(sum), float64(r.lse), 1e-4)
		require.GreaterOrEqual(t, r.lse, logits[0])
		require.Equal(t, flat, logits[0] < 12, "a peaked row has likely tokens, a flat one none")
	}
}

// TestConformSamplerWidens: a plugin that answers out_token −2 gets its row
// again with 16 times the candidates (widen.wat widens rows of fewer than
// 4, as the greedy row's 1 is), and passes.
func TestConformSamplerWidens(t *testing.T) {
	t.Parallel()
	w, err := EmbedManifest(wasm(t, "widen"), []byte(`{"abi":1,"name":"widen","version":"0.1.0","kind":"sampler","needs":{"memory_pages":64}}`))
	require.NoError(t, err)
	widened := 0
	for _, c := range Conform(context.Background(), w, nil, 0, nil) {
		require.NoError(t, c.Err, c.Name)
		if strings.HasPrefix(c.Name, "smp_step") {
			require.Contains(t, c.Name, "(1 widened on request)")
			widened++
		}
	}
	require.Equal(t, 2, widened, "two steps")
}

// TestConformFirstPartySamplers runs the suite on the committed
// plugins/standard and plugins/mirostat, which need true log-sum-exps,
// sorted candidates and widening.
func TestConformFirstPartySamplers(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles two Go plugins")
	}
	t.Parallel()
	for _, name := range []string{"standard", "mirostat"} {
		w, err := os.ReadFile(filepath.Join("..", "..", "plugins", name, name+".wasm"))
		require.NoError(t, err)
		for _, c := range Conform(context.Background(), w, []byte(`{}`), 0, nil) {
			require.NoError(t, c.Err, "%s: %s", name, c.Name)
		}
	}
}
