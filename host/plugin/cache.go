package plugin

import (
	"fmt"
	"os"

	"github.com/tetratelabs/wazero"
)

// OpenCache opens (creating it if needed, mode 0700) the on-disk compilation
// cache. The cache holds native code that the server will run, so a
// directory that someone else owns or that the group or others may write is
// refused: writing to it would bypass the sandbox.
func OpenCache(dir string) (wazero.CompilationCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("plugin cache %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin cache %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("plugin cache %s: not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("plugin cache %s: mode %#o lets others write native code the server runs; use 0700", dir, perm)
	}
	if err := checkOwner(fi); err != nil {
		return nil, fmt.Errorf("plugin cache %s: %w", dir, err)
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin cache %s: %w", dir, err)
	}
	return c, nil
}
