package plugin

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// buildCHook compiles testdata/chook.c with the C SDK header. It needs
// Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32, which .ci/run
// installs; without clang the test is skipped.
func buildCHook(t *testing.T) []byte {
	t.Helper()
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang is not installed (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
	}
	out := filepath.Join(t.TempDir(), "chook.wasm")
	cmd := exec.Command(clang, "--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Werror", "-Wno-unused-parameter", "-o", out, "testdata/chook.c")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	wasm, err := EmbedManifest(raw, []byte(`{"abi":1,"name":"chook","version":"0.1.0","kind":"hook","needs":{"memory_pages":8,"imports":["log"]}}`))
	require.NoError(t, err)
	return wasm
}

// TestCSDKHook runs a hook built with the C SDK through a session.
func TestCSDKHook(t *testing.T) {
	t.Parallel()
	wasm := buildCHook(t)
	logs := &syncBuffer{}
	p, err := loadWithLog(wasm, Config{ID: "chook", Kind: KindHook, PoolSize: 1, MemoryPages: 16}, logs)
	require.NoError(t, err)
	defer p.Close(context.Background())
	require.Contains(t, logs.String(), "chook ready")

	ctx := context.Background()
	s, err := p.OpenHook(ctx, []byte(`{}`))
	require.NoError(t, err)
	r, err := s.Delta(ctx, "my secret plan", []int32{5, 6}, ChannelContent)
	require.NoError(t, err)
	require.Equal(t, HookResult{Action: HookRedact, Emit: "my ****** plan"}, r)
	r, err = s.Delta(ctx, "secret thoughts", nil, ChannelReasoning)
	require.NoError(t, err)
	require.Equal(t, HookPass, r.Action)
	_, err = s.End(ctx, 1)
	require.NoError(t, err)
	s.Close(ctx)

	_, err = loadWithLog(wasm, Config{ID: "chook", Kind: KindHook, PluginConfig: []byte(`{"refuse":true}`), MemoryPages: 16}, io.Discard)
	require.ErrorContains(t, err, "ulan_init refused the config: status 1: refused by config")
}
