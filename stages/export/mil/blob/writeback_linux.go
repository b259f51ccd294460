package blob

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing bytes [off, off+n) of f to disk
// without waiting (sync_file_range(2), SYNC_FILE_RANGE_WRITE), so that Close's fsync
// finds little left to write: the package's weights reach the disk while later
// weights are prepared rather than all at the end. A failure only loses the head start.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
