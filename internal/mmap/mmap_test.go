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
