//go:build !unix

package mmap

import (
	"io"
	"os"
)

// Map reads the first size bytes of f into memory, since golang.org/x/sys/unix
// offers no mmap here. It has the same contract as the Unix Map: unmap
// releases nothing but must still be called, and data is nil when size is 0.
func Map(f *os.File, size int64) (data []byte, unmap func() error, err error) {
	if err := checkSize(f, size); err != nil {
		return nil, nil, err
	}
	if size == 0 {
		return nil, noUnmap, nil
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, &os.PathError{Op: "read", Path: f.Name(), Err: err}
	}
	return b, noUnmap, nil
}

// Release does nothing here: the bytes Map read are ordinary memory, which dropping would
// lose.
func Release(data, b []byte) {}

// Prefetch does nothing here: Map read the bytes already.
func Prefetch(data, b []byte) {}
