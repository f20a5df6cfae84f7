//go:build unix

package config_test

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

// TestLoadRefusesNonRegularFiles: a configuration file that is a directory, a FIFO or a
// device is refused with a problem, at once: reading a FIFO would wait for a writer
// (every later reload behind it), and /dev/zero would be read until memory ran out.
func TestLoadRefusesNonRegularFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for _, path := range []string{dir, fifo, "/dev/zero"} {
		done := make(chan error, 1)
		go func() {
			_, err := config.Load(config.Sources{File: path})
			done <- err
		}()
		select {
		case err := <-done:
			require.Equal(t, config.Problems{{"", "config file " + path + " is not a regular file"}}, problems(t, err))
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%s) blocked", path)
		}
	}
}
