package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

// TestServeRefusesFailingPlugins: a plugin that does not load stops start-up, with
// every problem listed by key, before anything listens.
func TestServeRefusesFailingPlugins(t *testing.T) {
	// Not parallel: the plugin compilation cache goes under XDG_CACHE_HOME.
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	dir := t.TempDir()
	file := filepath.Join(dir, "ulan.yaml")
	wasm, err := filepath.Abs("../../host/generation/testdata/any.wasm")
	require.NoError(t, err)
	yaml := "server:\n  listen: 127.0.0.1:0\nplugins:\n" +
		"  - {id: gone, module: " + filepath.Join(dir, "gone.wasm") + "}\n" +
		"  - {id: changed, module: " + wasm + ", sha256: " + strings.Repeat("ab", 32) + "}\n"
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o600))

	// The model loads (and logs) before the plugins; the tiny one saves
	// writing the demo model.
	code, _, errOut := ulan(t, "", "serve", "--config", file, "--model", tinyModel(t))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "\nulan: plugins:\n")
	require.Contains(t, errOut, "\nplugins[0].module: cannot read "+filepath.Join(dir, "gone.wasm")+": no such file or directory\n")
	require.Contains(t, errOut, "\nplugins[1].sha256: "+wasm+" has SHA-256 ")
	require.NotContains(t, errOut, "serving")

	fi, err := os.Stat(filepath.Join(cache, "ulan", "wasm"))
	require.NoError(t, err, "the compilation cache is opened when plugins are configured")
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

// TestFollowedFilesAfterAFailedReload: after a reload that failed, the watcher follows
// the module files of the configuration it tried as well as the running one's, so that
// writing a module the new configuration waits for reloads it; a module in a directory
// that does not exist is left out rather than making the watcher refuse every file.
func TestFollowedFilesAfterAFailedReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "ulan.yaml")
	a, b := filepath.Join(dir, "a.wasm"), filepath.Join(dir, "b.wasm")
	gone := filepath.Join(dir, "nodir", "c.wasm")
	running := config.Default()
	running.Plugins = []config.Plugin{{ID: "a", Module: a}, {ID: "t", Module: "builtin:tokenizer"}}
	require.Equal(t, []string{file, a}, followedFiles(file, running, nil))
	tried := running
	tried.Plugins = []config.Plugin{{ID: "a", Module: a}, {ID: "b", Module: b}, {ID: "c", Module: gone}}
	require.Equal(t, []string{file, a, b}, followedFiles(file, running, &tried))
}

// TestServeInterruptedDuringStartUp: a signal that arrives while the model
// loads (ctx ended before serve listens for signals itself) stops serve
// before it serves, rather than being lost.
func TestServeInterruptedDuringStartUp(t *testing.T) {
	// Not parallel: the plugin compilation cache goes under XDG_CACHE_HOME.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	model := tinyModel(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	var code int
	var errOut string
	go func() {
		defer close(done)
		code, _, errOut = ulanCtx(ctx, "", "serve", "--listen", "127.0.0.1:0", "--model", model)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop")
	}
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "signal received during start-up; stopping without serving")
	require.NotContains(t, errOut, "msg=serving")
}
