// Package mmap maps a whole file read-only into memory for the zero-copy
// readers of GGUF, safetensors and MIL weight blobs.
//
// On Unix the bytes come from mmap(2), so pages are read only when touched and
// opening a multi-gigabyte model costs the header alone; elsewhere (Windows,
// wasm) the file is read into an ordinary slice. The package holds no format
// knowledge and no global state. Release hands pages of a mapping back to the kernel
// once a streaming reader is done with them.
package mmap

import (
	"fmt"
	"math"
	"os"
	"unsafe"
)

// checkSize rejects sizes that cannot index a Go slice before anything is
// mapped or allocated.
func checkSize(f *os.File, size int64) error {
	if size < 0 || uint64(size) > math.MaxInt {
		return fmt.Errorf("mmap %s: size %d does not fit in memory", f.Name(), size)
	}
	return nil
}

func noUnmap() error { return nil }

// releaseUnit is the granularity of Release (see there): the largest folio Linux maps a
// file's page cache with, 2 MiB, a multiple of every page size.
const releaseUnit = 2 << 20

// pageSpan returns the byte range [lo, hi) of data that covers b rounded out to multiples
// of page from data's start (a mapping starts on a page) and clipped to data; ok is false when b
// is empty or does not lie within data.
func pageSpan(data, b []byte, page int) (lo, hi int, ok bool) {
	if len(b) == 0 || len(data) == 0 {
		return 0, 0, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if start < base || start-base+uintptr(len(b)) > uintptr(len(data)) {
		return 0, 0, false
	}
	off := int(start - base)
	lo = off / page * page
	hi = min((off+len(b)+page-1)/page*page, len(data))
	return lo, hi, true
}
