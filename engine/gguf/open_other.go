//go:build !unix

package gguf

import "os"

// Open reads the file at path into memory and parses it. (On unix systems
// it memory-maps the file instead; this fallback holds the whole file.)
// A malformed file gives a *FormatError, which does not name the path;
// callers add it.
func Open(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}
