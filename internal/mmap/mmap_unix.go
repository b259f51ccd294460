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

// Release tells the kernel that this process is done, for now, with the pages under b,
// which must lie within data, a mapping Map returned (anything else is left alone): they
// leave the resident set but stay in the page cache, and a later read maps them again
// from there. Streaming a model through a mapping would otherwise keep every page read
// resident until unmap — the whole model. The span is rounded out to releaseUnit and
// clipped to data: Linux may hold a file's page cache in folios of up to 2 MiB and map a
// whole folio on one fault, so a small tensor's read keeps up to 2 MiB around it mapped,
// which a release rounded to pages would leave. Releasing more than b is always safe for a
// read-only file mapping: a reader of the rest merely maps it again.
func Release(data, b []byte) {
	lo, hi, ok := pageSpan(data, b, releaseUnit)
	if !ok {
		return
	}
	// An error (an unusual kernel) only means the pages stay resident.
	_ = unix.Madvise(data[lo:hi], unix.MADV_DONTNEED)
}

// Prefetch maps the pages under b, which must lie within data, a mapping Map returned
// (anything else is left alone), before a sequential read of all of b: one call instead
// of a page fault per few pages, and the pages not yet cached are read ahead. It changes
// nothing a reader sees.
func Prefetch(data, b []byte) {
	lo, hi, ok := pageSpan(data, b, os.Getpagesize())
	if !ok {
		return
	}
	// An error (a kernel without populate) only means the pages fault in as they are read.
	if unix.Madvise(data[lo:hi], populateRead) != nil {
		_ = unix.Madvise(data[lo:hi], unix.MADV_WILLNEED)
	}
}
