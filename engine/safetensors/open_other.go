//go:build !unix

package safetensors

import (
	"fmt"
	"os"
)

// mapFile reads the file at path into memory. (On unix systems it
// memory-maps the file instead; this fallback holds the whole file.)
func mapFile(path string) ([]byte, func() error, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return data, nil, nil
}
