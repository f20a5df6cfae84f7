package generation

import (
	"os"
	"syscall"
)

// changeTime returns the inode's change time (ctime) in nanoseconds, which no one can
// set back as they can the modification time, or 0.
func changeTime(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano()
	}
	return 0
}
