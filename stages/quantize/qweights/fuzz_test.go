package qweights

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/lilims/lilims/stages/quantize/safetensors"
)

// fuzzArtifact writes a small quantized artifact by hand — one tensor per encoding, int4
// blockwise with a uint4… offset, int8 with fp16 offsets, a LUT, 3-bit lut+blockwise — and
// returns its two files.
func fuzzArtifact(f *testing.F) (manifest, weights []byte) {
	dir := f.TempDir()
	m := Manifest{Scheme: "fuzz", Tensors: []TensorInfo{
		{Name: "a", Encoding: Blockwise, Shape: []int{4, 64}, DType: "uint4", BlockSize: 32, Offset: "uint4"},
		{Name: "b", Encoding: Blockwise, Shape: []int{2, 32}, DType: "int8", BlockSize: 16, Offset: "fp16"},
		{Name: "c", Encoding: LUT, Shape: []int{4, 16}, DType: "uint4", GroupSize: 2},
		{Name: "e", Encoding: LUTBlockwise, Shape: []int{3, 12}, DType: "uint3", BlockSize: 4, Offset: "fp16"},
		{Name: "d", Encoding: FP16, Shape: []int{8}},
	}}
	var entries []safetensors.Entry
	for _, ti := range m.Tensors {
		if ti.Encoding == FP16 {
			continue
		}
		ps, err := ti.Parts()
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range ps {
			entries = append(entries, safetensors.Entry{Name: ti.Name + "." + p.Key, DType: p.DType, Shape: p.Shape})
		}
	}
	w, err := safetensors.Create(filepath.Join(dir, WeightsFile), entries, nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		size, _ := e.Size()
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i*37 + 11) // fp16 scales of all magnitudes, NaN and Inf included
		}
		if err := w.WriteTensor(e.Name, b); err != nil {
			f.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	manifest, _ = json.Marshal(m)
	weights, _ = os.ReadFile(filepath.Join(dir, WeightsFile))
	return manifest, weights
}

// FuzzOpen writes a fuzzed manifest.json and weights.safetensors into a directory and opens
// it: Open must refuse it with an error or return tensors whose arrays are as large as
// their encoding needs, so that Rows and Dequantize of any tensor do not panic.
func FuzzOpen(f *testing.F) {
	manifest, weights := fuzzArtifact(f)
	f.Add(manifest, weights)
	f.Add([]byte(`{"tensors":[{"name":"a","encoding":"blockwise","shape":[4294967296,4294967296],"dtype":"uint4","block_size":4294967296}]}`), weights)
	f.Add([]byte(`{"tensors":[{"name":"c","encoding":"lut","shape":[4,16],"dtype":"uint4","group_size":-2}]}`), weights)
	dir := f.TempDir() // rewritten for every input; fuzz inputs run one at a time per process
	f.Fuzz(func(t *testing.T, manifest, weights []byte) {
		if err := os.WriteFile(filepath.Join(dir, ManifestFile), manifest, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, WeightsFile), weights, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir)
		if err != nil {
			return
		}
		defer s.Close()
		for _, ti := range s.Manifest().Tensors {
			qt, ok := s.Lookup(ti.Name)
			if !ok {
				continue
			}
			out, in := qt.Info.Shape[0], qt.Info.Shape[1]
			if out*in > 1<<16 {
				continue // bounded work per input; the arrays were checked whatever the size
			}
			qt.Dequantize()
			g := max(qt.Info.GroupSize, 1)
			if part, err := qt.Rows(g, out); err == nil {
				part.Dequantize()
			}
		}
	})
}
