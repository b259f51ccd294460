// Package mmap maps a whole file read-only into memory for the zero-copy
// readers of GGUF, safetensors and MIL weight blobs.
//
// On Unix the bytes come from mmap(2), so pages are read only when touched and
// opening a multi-gigabyte model costs the header alone; elsewhere (Windows,
// wasm) the file is read into an ordinary slice. The package holds no format
// knowledge and no global state.
package mmap

import (
	"fmt"
	"math"
	"os"
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
