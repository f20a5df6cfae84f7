//go:build unix

package plugin

import (
	"fmt"
	"os"
	"syscall"
)

// checkOwner refuses a directory the server's user does not own.
func checkOwner(fi os.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("owned by uid %d, not the server's uid %d", st.Uid, os.Getuid())
	}
	return nil
}
