//go:build !unix

package blob

import (
	"io"
	"os"
)

// mapFile reads the first size bytes of f. Systems without mmap in
// golang.org/x/sys/unix (Windows, wasm) get a plain copy.
func mapFile(f *os.File, size int) ([]byte, func() error, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}
