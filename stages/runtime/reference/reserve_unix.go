//go:build unix

package reference

import (
	"syscall"
	"unsafe"
)

// reserveFloats returns n zero floats of address space outside the Go heap: pages become
// resident only when written, and the garbage collector neither counts nor paces on them.
// Attention buffers spanning all C keys of a long context take it (keys.go), as the calls
// write only the keys they cover. free unmaps it.
func reserveFloats(n int) (v []float32, free func() error, err error) {
	b, err := syscall.Mmap(-1, 0, n*4, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, nil, err
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n), func() error { return syscall.Munmap(b) }, nil
}
