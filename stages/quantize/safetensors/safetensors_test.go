package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.safetensors")
	entries := []Entry{
		{Name: "a", DType: "F16", Shape: []int{2, 3}},
		{Name: "b", DType: "U8", Shape: []int{5}},
		{Name: "c", DType: "I8", Shape: []int{0}},
	}
	w, err := Create(path, entries, map[string]string{"format": "test"})
	if err != nil {
		t.Fatal(err)
	}
	a := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	b := []byte{20, 21, 22, 23, 24}
	// Written out of order: the layout is fixed by the header.
	if err := w.WriteTensor("b", b); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", a); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", a[:4]); err == nil {
		t.Error("short write accepted")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// 8-byte length + header padded to a multiple of 8, then 12 + 5 bytes of data.
	n := binary.LittleEndian.Uint64(raw)
	if (8+n)%8 != 0 || uint64(len(raw)) != 8+n+17 {
		t.Errorf("layout: header %d bytes, file %d bytes", n, len(raw))
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["format"] != "test" {
		t.Errorf("metadata %v", f.Metadata)
	}
	for name, want := range map[string][]byte{"a": a, "b": b, "c": {}} {
		got, ok := f.Data(name)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if e, _ := f.Entry("a"); e.DType != "F16" || len(e.Shape) != 2 || e.Shape[1] != 3 {
		t.Errorf("entry a = %+v", e)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestCorrupt(t *testing.T) {
	file := func(hdr string, data int) []byte {
		b := make([]byte, 8, 8+len(hdr)+data)
		binary.LittleEndian.PutUint64(b, uint64(len(hdr)))
		b = append(b, hdr...)
		return append(b, make([]byte, data)...)
	}
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<62)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no header length"},
		{"huge header", huge, "exceeds"},
		{"short header", file(`{"a":`, 0)[:10], "only 2 bytes follow"},
		{"not json", file(`[1,2]`, 0), "not a JSON object"},
		{"bad dtype", file(`{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}}`, 2), `unknown dtype "Q4"`},
		{"past end", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 2), "outside the 2-byte data section"},
		{"size mismatch", file(`{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,4]}}`, 8), "needs 8"},
		{"negative", file(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, 0), "negative dimension"},
		{"overlap", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, 6), "overlaps"},
		{"bad metadata", file(`{"__metadata__":{"k":1}}`, 0), "__metadata__"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.safetensors", tc.data)
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a FormatError containing %q", err, tc.want)
			}
		})
	}
}
