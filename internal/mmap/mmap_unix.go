//go:build unix

package mmap

import (
	"os"

	"golang.org/x/sys/unix"
)

// Map maps the first size bytes of f read-only and returns them with the
// function that releases the mapping. The mapping outlives f, so f may be
// closed at once; data must not be used after unmap. A size of 0 maps nothing
// (mmap(2) rejects a zero length) and returns nil data.
func Map(f *os.File, size int64) (data []byte, unmap func() error, err error) {
	if err := checkSize(f, size); err != nil {
		return nil, nil, err
	}
	if size == 0 {
		return nil, noUnmap, nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, &os.PathError{Op: "mmap", Path: f.Name(), Err: err}
	}
	return b, func() error { return unix.Munmap(b) }, nil
}
