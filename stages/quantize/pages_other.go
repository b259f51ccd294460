//go:build !linux

package quantize

// ReleaseMapped tells the kernel that this process is done with b for now, when b lies in a
// read-only mapping of a file. Only Linux is asked (through madvise, after checking the
// mapping in /proc/self/maps); elsewhere it does nothing and pages stay resident until the
// mapping is closed.
func ReleaseMapped(b []byte) {}

type region struct{}

func mappedRegion(b []byte) (region, bool) { return region{}, false }

func (region) release(b []byte) {}

func (region) releaseRange(lo, hi uintptr) {}
