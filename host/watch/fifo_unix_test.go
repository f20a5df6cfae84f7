//go:build unix

package watch_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFIFODoesNotBlock: a FIFO put where a followed file was (a module path pointed at a
// pipe by mistake) is reported as a change without being opened, which would block the
// Watcher until a writer came; the Watcher then goes on reporting the other files, and
// the regular file coming back.
func TestFIFODoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	mod := filepath.Join(dir, "plugin.wasm")
	write(t, cfg, "a: 1\n")
	write(t, mod, "wasm")
	w := start(t, cfg, mod)

	if err := os.Remove(mod); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(mod, 0o600); err != nil {
		t.Fatal(err)
	}
	expect(t, w, mod)
	write(t, cfg, "a: 2\n")
	expect(t, w, cfg)
	if err := os.Remove(mod); err != nil {
		t.Fatal(err)
	}
	replace(t, mod, "wasm2")
	expect(t, w, mod)
}
