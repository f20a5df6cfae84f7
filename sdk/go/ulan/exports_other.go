//go:build !wasip1

package ulan

import (
	"fmt"
	"os"
)

// Log writes a message to stderr when the plugin runs natively (tests).
func Log(level Level, msg string) { fmt.Fprintf(os.Stderr, "plugin log %d: %s\n", level, msg) }

// SetError is a no-op natively: tests see the error itself.
func SetError(string) {}
