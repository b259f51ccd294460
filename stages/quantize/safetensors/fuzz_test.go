package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeed writes a small file through Create, so the seed is what the quantize stage
// writes: a padded JSON header, then tensors back to back.
func fuzzSeed(f *testing.F) []byte {
	path := filepath.Join(f.TempDir(), "seed.safetensors")
	w, err := Create(path, []Entry{
		{Name: "w.data", DType: "U8", Shape: []int{8}},
		{Name: "w.scale", DType: "F16", Shape: []int{2, 2}},
		{Name: "e", DType: "I8", Shape: []int{0}},
	}, map[string]string{"scheme": "block"})
	if err != nil {
		f.Fatal(err)
	}
	w.WriteTensor("w.data", make([]byte, 8))
	w.WriteTensor("w.scale", make([]byte, 8))
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

// FuzzParse feeds arbitrary bytes to the safetensors reader: it returns a File whose
// entries lie inside the data section, do not overlap and have the size their dtype and
// shape imply — or an error; never a panic, and never an allocation the input cannot back.
func FuzzParse(f *testing.F) {
	f.Add(fuzzSeed(f))
	hdr := func(json string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(json)))
		return append(append(b, json...), make([]byte, 16)...)
	}
	f.Add(hdr(`{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}`))
	f.Add(hdr(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}`))
	f.Add(hdr(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}`))
	f.Add(hdr(`{"__metadata__":{"k":1},"a":{"dtype":"Q4","shape":[],"data_offsets":[-8,0]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.safetensors", data)
		if err != nil {
			return
		}
		end := int64(-1)
		for _, e := range file.Entries {
			size, err := e.Size()
			if err != nil || size != e.End-e.Begin || e.Begin < end {
				t.Fatalf("entry %+v: size %d (%v), previous end %d", e, size, err, end)
			}
			end = e.End
			b, ok := file.Data(e.Name)
			if !ok || int64(len(b)) != size {
				t.Fatalf("Data(%q): %d bytes, ok %v, want %d", e.Name, len(b), ok, size)
			}
		}
	})
}
