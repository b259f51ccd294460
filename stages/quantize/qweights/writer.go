package qweights

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/lilims/lilims/internal/atomicfile"
	"github.com/lilims/lilims/stages/quantize/safetensors"
)

// Writer writes an artifact: first the weights file, whose arrays may be written in any
// order and from any goroutine, then the manifest on Commit. The manifest is written last
// and atomically, so a directory holding one holds all of its weights.
type Writer struct {
	dir string
	st  *safetensors.Writer
}

// Create starts an artifact in dir. The weights file is laid out for the quantized tensors
// among tensors, in their order (FP16 tensors and those stored as their source's blocks
// store nothing there); scheme is recorded in its metadata.
func Create(dir, scheme string, tensors []TensorInfo) (*Writer, error) {
	var entries []safetensors.Entry
	for _, ti := range tensors {
		if ti.Encoding == FP16 || ti.Stored == StoredSource {
			continue
		}
		ps, err := ti.Parts()
		if err != nil {
			return nil, fmt.Errorf("qweights: tensor %q: %w", ti.Name, err)
		}
		for _, p := range ps {
			entries = append(entries, safetensors.Entry{Name: ti.Name + "." + p.Key, DType: p.DType, Shape: p.Shape})
		}
	}
	st, err := safetensors.Create(filepath.Join(dir, WeightsFile), entries, map[string]string{
		"format": "lilims-quantized", "scheme": scheme})
	if err != nil {
		return nil, fmt.Errorf("qweights: %w", err)
	}
	return &Writer{dir: dir, st: st}, nil
}

// WriteTensorAt stores bytes of array "<tensor name>.<part key>" starting off bytes into
// it. Safe for concurrent use.
func (w *Writer) WriteTensorAt(array string, off int64, data []byte) error {
	return w.st.WriteTensorAt(array, off, data)
}

// Abort discards the weights written so far; no manifest is written.
func (w *Writer) Abort() { w.st.Abort() }

// Commit closes the weights file, sets m.BitsPerWeight (the quantized tensors' stored bits
// over their elements) and writes the manifest.
func (w *Writer) Commit(m *Manifest) error {
	if err := w.st.Close(); err != nil {
		return fmt.Errorf("qweights: %w", err)
	}
	var bits, elems float64
	for _, ti := range m.Tensors {
		if ti.Encoding == FP16 {
			continue
		}
		n := 1.0
		for _, d := range ti.Shape {
			n *= float64(d)
		}
		bits += ti.BitsPerWeight * n
		elems += n
	}
	m.BitsPerWeight = 0
	if elems > 0 {
		m.BitsPerWeight = bits / elems
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(w.dir, ManifestFile), append(js, '\n')); err != nil {
		return fmt.Errorf("qweights: %w", err)
	}
	return nil
}
