package mmap

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// mappedKB returns the resident kilobytes of the mapping that starts at data (smaps' Rss).
func mappedKB(t *testing.T, data []byte) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(unsafe.SliceData(data))))
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 && !strings.HasSuffix(f[0], ":") { // a mapping's header
			in = strings.HasPrefix(line, start)
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return kb
		}
	}
	t.Fatalf("no mapping at %s in smaps", start)
	return 0
}

// TestReleaseUnit: releasing a few bytes drops the whole 2 MiB unit around them from the
// resident set — what a fault mapping a large folio whole may have mapped — and no more.
func TestReleaseUnit(t *testing.T) {
	const size = 4 * releaseUnit
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	data, unmap, err := Map(f, size)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	var sum byte
	for i := 0; i < size; i += 4096 {
		sum += data[i]
	}
	if sum != 0 {
		t.Fatal("the file reads back non-zero")
	}
	before := mappedKB(t, data)
	if before < size/1024 {
		t.Skipf("only %d KB of %d mapped after reading every page", before, size/1024)
	}
	Release(data, data[releaseUnit+100:releaseUnit+200])
	if got, want := mappedKB(t, data), before-releaseUnit/1024; got != want {
		t.Errorf("after releasing 100 bytes: %d KB resident, want %d (one 2 MiB unit less)", got, want)
	}
}
