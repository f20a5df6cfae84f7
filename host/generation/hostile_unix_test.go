//go:build unix

package generation_test

import (
	"context"
	"encoding/binary"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/generation"
)

// TestReloadBuildRefusesBrokenModules: a reload's build whose module file was replaced
// by a truncated, corrupt or empty file, a FIFO or a directory, or deleted, or whose
// bytes no longer match the configured hash, fails quickly with a problem keyed to the
// plugin, and the serving generation keeps working.
func TestReloadBuildRefusesBrokenModules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, tc := range map[string]struct {
		change func(t *testing.T, path string, wasm []byte)
		pin    bool   // configure the original hash
		key    string // the problem's key
		want   string // a part of its message
	}{
		"truncated": {change: func(t *testing.T, path string, wasm []byte) {
			require.NoError(t, os.WriteFile(path, wasm[:len(wasm)/2], 0o600))
		}, key: "plugins[0].module", want: "runs past the end"},
		"truncated, pinned": {change: func(t *testing.T, path string, wasm []byte) {
			require.NoError(t, os.WriteFile(path, wasm[:len(wasm)/2], 0o600))
		}, pin: true, key: "plugins[0].sha256", want: "not the one configured"},
		"corrupt code": {change: func(t *testing.T, path string, wasm []byte) {
			// The sections' bounds and the manifest intact, their content garbage.
			b := append([]byte(nil), wasm...)
			for i := 8; i < len(b); {
				size, n := binary.Uvarint(b[i+1:])
				if b[i] != 0 {
					for j := range int(size) {
						b[i+1+n+j] = 0xff
					}
				}
				i += 1 + n + int(size)
			}
			require.NoError(t, os.WriteFile(path, b, 0o600))
		}, key: "plugins[0]", want: "did not load"},
		"garbage": {change: func(t *testing.T, path string, wasm []byte) {
			require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\necho not wasm\n"), 0o600))
		}, key: "plugins[0].module", want: "is not a WebAssembly binary"},
		"empty": {change: func(t *testing.T, path string, wasm []byte) {
			require.NoError(t, os.WriteFile(path, nil, 0o600))
		}, key: "plugins[0].module", want: "is not a WebAssembly binary"},
		"deleted": {change: func(t *testing.T, path string, wasm []byte) {
			require.NoError(t, os.Remove(path))
		}, key: "plugins[0].module", want: "no such file or directory"},
		"fifo": {change: func(t *testing.T, path string, wasm []byte) {
			require.NoError(t, os.Remove(path))
			require.NoError(t, syscall.Mkfifo(path, 0o600))
		}, key: "plugins[0].module", want: "is not a regular file"},
		"directory": {change: func(t *testing.T, path string, wasm []byte) {
			require.NoError(t, os.Remove(path))
			require.NoError(t, os.Mkdir(path, 0o700))
		}, key: "plugins[0].module", want: "is not a regular file"},
		"other module, pinned": {change: func(t *testing.T, path string, wasm []byte) {
			b := append([]byte(nil), wasm...)
			b[len(b)-1] ^= 1 // inside the manifest: a valid module with other bytes
			require.NoError(t, os.WriteFile(path, b, 0o600))
		}, pin: true, key: "plugins[0].sha256", want: "not the one configured"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := hookConfig(t, dir, 1)
			path := cfg.Plugins[0].Module
			wasm, err := os.ReadFile(path)
			require.NoError(t, err)
			if tc.pin {
				_, cfg.Plugins[0].SHA256 = module(t, dir, "hook", "hook", "")
			}
			g, err := generation.Build(ctx, cfg, generation.Deps{Logger: quiet})
			require.NoError(t, err)
			defer g.Close(ctx)
			p, _ := g.Plugin("pii")

			tc.change(t, path, wasm)
			done := make(chan error, 1)
			go func() {
				cfg.Plugins[0].Config = map[string]any{"n": 2} // a change, so nothing is carried over
				g2, err := generation.Build(ctx, cfg, generation.Deps{Number: 2, Logger: quiet, Previous: g})
				if err == nil {
					g2.Close(ctx)
				}
				done <- err
			}()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the build blocked")
			}
			ps := problems(t, err)
			require.Len(t, ps, 1, "%v", ps)
			require.Equal(t, tc.key, ps[0].Key)
			require.Contains(t, ps[0].Message, tc.want)
			require.True(t, callable(p), "the serving generation's plugin still answers")
		})
	}
}
