package plugin

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// buildGo builds a Go test plugin from testdata for wasip1 and embeds a
// manifest.
var built sync.Map // dir → built module, so each test plugin is built once

func buildGo(t testing.TB, dir, manifest string) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go plugin")
	}
	key := dir + "\x00" + manifest
	if b, ok := built.Load(key); ok {
		return b.([]byte)
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		gocmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), dir+".wasm")
	cmd := exec.Command(gocmd, "build", "-buildmode=c-shared", "-o", out, "./testdata/"+dir)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	wasm, err := EmbedManifest(raw, []byte(manifest))
	require.NoError(t, err)
	built.Store(key, wasm)
	return wasm
}

// TestGoSDKSampler runs a sampler built with the Go SDK: two sequences in
// one batch, a processor row and a selector row, in one call.
func TestGoSDKSampler(t *testing.T) {
	t.Parallel()
	wasm := buildGo(t, "gosampler", `{"abi":1,"name":"gosampler","version":"0.1.0","kind":"sampler","needs":{"memory_pages":256}}`)
	p, err := loadWithLog(wasm, Config{ID: "gosampler", Kind: KindSampler, PoolSize: 1, MemoryPages: 256}, &syncBuffer{})
	require.NoError(t, err)
	defer p.Close(context.Background())
	ctx := context.Background()
	b, err := p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	proc, err := b.Open(ctx, []byte(`{"divide": 2}`))
	require.NoError(t, err)
	sel, err := b.Open(ctx, []byte(`{"select": true}`))
	require.NoError(t, err)
	out, err := b.Step(ctx, []SamplerRow{
		{Handle: proc, IDs: []int32{7, 9, 11}, Logits: []float32{2, 4, -6}},
		{Handle: sel, U0: 0.7, IDs: []int32{3, 5}, Logits: []float32{1, 1}},
	})
	require.NoError(t, err)
	require.Equal(t, SamplerOutput{Token: -1, Logits: []float32{1, 2, -3}}, out[0])
	require.Equal(t, int32(5), out[1].Token, "0.7 of two equal candidates is the second")

	_, err = b.Open(ctx, []byte(`not json`))
	require.ErrorContains(t, err, "smp_open: status 5")
	require.NoError(t, b.CloseSequence(ctx, proc))
	require.NoError(t, b.CloseSequence(ctx, sel))
	_, err = b.Step(ctx, []SamplerRow{{Handle: proc, IDs: []int32{1}, Logits: []float32{0}}})
	require.ErrorContains(t, err, "unknown sequence handle")
	b.Close(ctx)
	require.Equal(t, 1, p.Stats().Idle)
}

// TestSamplerHostState: the history, token_bytes and top_p_cut imports,
// through a Go SDK sampler: the host records each sequence's tokens, and
// hands out the vocabulary it was given.
func TestSamplerHostState(t *testing.T) {
	t.Parallel()
	wasm := buildGo(t, "gosampler", `{"abi":1,"name":"gosampler","version":"0.1.0","kind":"sampler","needs":{"memory_pages":256}}`)
	p, err := loadWithLog(wasm, Config{ID: "gosampler", Kind: KindSampler, PoolSize: 1, MemoryPages: 256}, &syncBuffer{})
	require.NoError(t, err)
	defer p.Close(context.Background())
	ctx := context.Background()
	b, err := p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	defer b.Close(ctx)

	rep, err := b.Open(ctx, []byte(`{"repeat": true}`))
	require.NoError(t, err)
	pref, err := b.Open(ctx, []byte(`{"prefer": "xy"}`))
	require.NoError(t, err)
	nuc, err := b.Open(ctx, []byte(`{"top_p": 0.6}`))
	require.NoError(t, err)
	require.NoError(t, b.Record(rep, 1, 2, 3))
	require.NoError(t, b.Record(rep, 5))

	// Without a vocabulary, token_bytes fails the step with the SDK's error.
	_, err = b.Step(ctx, []SamplerRow{{Handle: pref, IDs: []int32{0, 1}, Logits: []float32{0, 0}}})
	require.ErrorContains(t, err, "token_bytes")
	b.Close(ctx)

	p.SetVocabulary([][]byte{[]byte("a"), []byte("xy"), []byte("x"), []byte("y"), []byte("z"), []byte("q")})
	b, err = p.OpenSamplerBatch(ctx)
	require.NoError(t, err)
	rep, err = b.Open(ctx, []byte(`{"repeat": true}`))
	require.NoError(t, err)
	pref, err = b.Open(ctx, []byte(`{"prefer": "xy"}`))
	require.NoError(t, err)
	nuc, err = b.Open(ctx, []byte(`{"top_p": 0.6}`))
	require.NoError(t, err)
	require.NoError(t, b.Record(rep, 1, 2, 3))
	require.NoError(t, b.Record(rep, 5))
	out, err := b.Step(ctx, []SamplerRow{
		{Handle: rep, IDs: []int32{3, 5, 4}, Logits: []float32{0, 0, 0}},
		{Handle: pref, IDs: []int32{2, 1, 3}, Logits: []float32{0, 0, 0}},
		// Probabilities 0.5, 0.25, 0.125, 0.125 in the order 9, 7, 8, 6.
		{Handle: nuc, IDs: []int32{6, 7, 8, 9}, Logits: []float32{0, float32(math.Log(2)), 0, float32(math.Log(4))}},
	})
	require.NoError(t, err)
	require.Equal(t, int32(5), out[0].Token, "the last recorded token")
	require.Equal(t, int32(1), out[1].Token, "the candidate whose bytes are xy")
	inf := float32(math.Inf(-1))
	require.Equal(t, []float32{inf, float32(math.Log(2)), inf, float32(math.Log(4))}, out[2].Logits, "0.6 of the mass is the two largest")

	require.NoError(t, b.CloseSequence(ctx, rep))
	_, err = b.Step(ctx, []SamplerRow{{Handle: nuc, IDs: []int32{1}, Logits: []float32{0}}})
	require.NoError(t, err)
	require.ErrorContains(t, b.Record(rep, make([]int32, MaxHistory+1)...), "history of more than")
}
