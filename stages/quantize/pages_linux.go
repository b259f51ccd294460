package quantize

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReleaseMapped tells the kernel that this process is done with b for now, when b lies in a
// read-only mapping of a file (how gguf.Open and Open map their inputs): its pages leave the
// process's resident set but stay in the page cache, and a later read maps them again from
// there. Streaming a model through a mapping would otherwise leave every page read resident
// until Close — the whole model. b in ordinary or writable memory is left alone, since
// dropping those pages would lose data. Pages that b only partly covers are released too:
// for a read-only file mapping that is always safe, a reader of their other part merely
// faults them in again.
func ReleaseMapped(b []byte) {
	if r, ok := mappedRegion(b); ok {
		r.release(b)
	}
}

// region is an address range [lo, hi) of one read-only file mapping.
type region struct{ lo, hi uintptr }

// mappedRegion finds, in /proc/self/maps, the mapping holding b's first byte and reports
// whether it is a read-only mapping of a file (inode ≠ 0, no write permission) covering b.
func mappedRegion(b []byte) (region, bool) {
	if len(b) == 0 {
		return region{}, false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	end := start + uintptr(len(b))
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return region{}, false
	}
	// Each line: "lo-hi perms offset dev inode [path]", addresses in hex.
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 5 {
			continue
		}
		lohi := bytes.SplitN(f[0], []byte("-"), 2)
		if len(lohi) != 2 {
			continue
		}
		lo, err1 := strconv.ParseUint(string(lohi[0]), 16, 64)
		hi, err2 := strconv.ParseUint(string(lohi[1]), 16, 64)
		if err1 != nil || err2 != nil || start < uintptr(lo) || start >= uintptr(hi) {
			continue
		}
		perms := f[1]
		if end > uintptr(hi) || len(perms) < 2 || perms[0] != 'r' || perms[1] != '-' || string(f[4]) == "0" {
			return region{}, false
		}
		return region{uintptr(lo), uintptr(hi)}, true
	}
	return region{}, false
}

// release drops the pages under b (which must lie in r), rounded out to whole pages and
// clipped to r.
func (r region) release(b []byte) {
	if len(b) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	r.releaseRange(start, start+uintptr(len(b)))
}

// releaseRange drops the pages of addresses [lo, hi), rounded out to whole pages and
// clipped to r.
func (r region) releaseRange(lo, hi uintptr) {
	page := uintptr(os.Getpagesize())
	lo = max(lo&^(page-1), r.lo)
	hi = min((hi+page-1)&^(page-1), r.hi)
	if lo >= hi {
		return
	}
	// The range is a read-only file mapping found in /proc/self/maps, so dropping it loses
	// nothing; an error (an unusual kernel) only means the pages stay resident. The raw
	// call takes addresses, since lo and hi may lie outside any one slice.
	unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_DONTNEED)
}
