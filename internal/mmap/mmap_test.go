package mmap

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestMap(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
		size    int64
		want    []byte
	}{
		{"whole file", []byte("GGUF\x03\x00\x00\x00"), 8, []byte("GGUF\x03\x00\x00\x00")},
		{"prefix", []byte("0123456789"), 4, []byte("0123")},
		{"empty", nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			data, unmap, err := Map(f, tt.size)
			// The mapping must survive closing the file: readers close it right away.
			f.Close()
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if !bytes.Equal(data, tt.want) {
				t.Errorf("data = %q, want %q", data, tt.want)
			}
			if err := unmap(); err != nil {
				t.Errorf("unmap: %v", err)
			}
		})
	}
}

func TestMapBadSize(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := Map(f, -1); err == nil {
		t.Error("Map(size -1) succeeded; want an error")
	}
}

func TestPageSpan(t *testing.T) {
	data := make([]byte, 10000)
	other := make([]byte, 10)
	tests := []struct {
		name       string
		b          []byte
		lo, hi     int
		wantNoSpan bool
	}{
		{"inside one page", data[10:20], 0, 4096, false},
		{"across pages", data[4000:4200], 0, 8192, false},
		{"clipped to the end", data[9000:], 8192, 10000, false},
		{"whole", data, 0, 10000, false},
		{"empty", data[5:5], 0, 0, true},
		{"another slice", other, 0, 0, true},
	}
	for _, tt := range tests {
		lo, hi, ok := pageSpan(data, tt.b, 4096)
		if ok == tt.wantNoSpan || lo != tt.lo || hi != tt.hi {
			t.Errorf("%s: [%d, %d) ok %v, want [%d, %d) ok %v", tt.name, lo, hi, ok, tt.lo, tt.hi, !tt.wantNoSpan)
		}
	}
}

// TestRelease: released pages of a file mapping read back the file's bytes; a slice that is
// not in the mapping (ordinary memory, whose pages dropping would zero) is left alone.
func TestRelease(t *testing.T) {
	content := make([]byte, 5*os.Getpagesize()+123)
	for i := range content {
		content[i] = byte(i*7 + 3)
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	data, unmap, err := Map(f, int64(len(content)))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	heap := bytes.Clone(content)
	Release(data, data[100:3*os.Getpagesize()])
	Release(data, heap)
	if !bytes.Equal(data, content) || !bytes.Equal(heap, content) {
		t.Error("released pages do not read back the file's bytes")
	}
}
