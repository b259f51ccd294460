package gguf

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/lilims/lilims/stages/loader/ggml"
)

// indexSeed builds a file with one tensor of each common block type and returns its tensor
// index (the bytes between the fixed 24-byte header, which has no metadata, and the data
// section) and its data section.
func indexSeed(t testing.TB) (info, data []byte, n uint64) {
	b := NewBuilder()
	for _, tc := range []struct {
		name  string
		typ   ggml.Type
		shape []int64
	}{
		{"f32", ggml.F32, []int64{8, 2}},
		{"f16", ggml.F16, []int64{4}},
		{"q4_0", ggml.Q4_0, []int64{32, 2}},
		{"q8_0", ggml.Q8_0, []int64{32}},
		{"q4_k", ggml.Q4_K, []int64{256}},
		{"q6_k", ggml.Q6_K, []int64{256}},
	} {
		rb, err := tc.typ.RowBytes(tc.shape[0])
		if err != nil {
			t.Fatal(err)
		}
		rows := int64(1)
		for _, d := range tc.shape[1:] {
			rows *= d
		}
		raw := make([]byte, rb*rows)
		for i := range raw {
			raw[i] = byte(i*7 + 1) // not all zero: scales and quants vary
		}
		b.AddTensorBytes(tc.name, tc.typ, tc.shape, raw)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Parse("seed.gguf", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	all := buf.Bytes()
	return all[24:f.DataOffset], all[f.DataOffset:], uint64(len(f.Tensors))
}

// FuzzTensorIndex fuzzes the tensor index and the data section behind a valid fixed header:
// whatever the names, shapes, type ids and offsets, Parse must refuse the index or return
// tensors whose Data lies inside the file, and dequantizing them (any block type, any bytes —
// NaN and Inf scales included) must not panic.
func FuzzTensorIndex(f *testing.F) {
	info, data, n := indexSeed(f)
	f.Add(info, data, n)
	f.Add(info[:len(info)/2], data, n)
	f.Add(info, data[:len(data)/3], n)
	f.Fuzz(func(t *testing.T, info, data []byte, n uint64) {
		var hdr [24]byte
		le := binary.LittleEndian
		le.PutUint32(hdr[0:], Magic)
		le.PutUint32(hdr[4:], 3)
		le.PutUint64(hdr[8:], n)
		file := append(append(hdr[:], info...), data...)
		gf, err := Parse("fuzz.gguf", file)
		if err != nil {
			return
		}
		for _, tn := range gf.Tensors {
			b := gf.Data(tn)
			if int64(len(b)) != tn.Size {
				t.Fatalf("%s: Data has %d bytes, Size %d", tn.Name, len(b), tn.Size)
			}
			// Dequantize small tensors whole: the size bound keeps one input from
			// allocating beyond a few MiB.
			if tn.Elements() <= 1<<16 {
				if _, err := gf.Float32s(tn); err != nil && tn.Size > 0 {
					t.Logf("%s: %v", tn.Name, err)
				}
			}
		}
		gf.ParameterCount()
	})
}
