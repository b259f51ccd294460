package mlpackage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// A chunked export is a directory of packages, one per run of layers, and an index naming
// them in run order:
//
//	model.chunks/
//	  chunks.json
//	  chunk_0.mlpackage
//	  chunk_1.mlpackage
//	  …
//
// with chunks.json
//
//	{"format": "lilims.chunks", "version": 1, "layers": L,
//	 "chunks": [{"path": "chunk_0.mlpackage", "first": 0, "end": 3}, …]}
//
// This is lilims' own format, not Core ML's: each package is an ordinary ML Program, and
// the index only says how they chain.
const (
	// ChunkIndexFile names the index inside the directory of a chunked export.
	ChunkIndexFile = "chunks.json"
	// ChunkFormat is the Format of a ChunkIndex.
	ChunkFormat = "lilims.chunks"
	// ChunkVersion is the Version of a ChunkIndex written, and the only one read.
	ChunkVersion = 1
)

// Bounds checked before an index is trusted: maxChunks bounds the chunk count before any
// package is opened, maxChunkIndexBytes the index file itself (a thousand entries take
// ~70 KB).
const (
	maxChunks          = 1024
	maxChunkIndexBytes = 1 << 20
)

// ChunkIndex is the content of ChunkIndexFile. The packages run in order: the first takes
// the contract's inputs with input_ids, every later one the same inputs with hidden_states
// (fp16, the previous package's output hidden_states_out) in place of input_ids; the last
// outputs logits. Each package holds the KV states of its own layers, and the layer ranges
// of the chunks cover [0, Layers) without gaps.
type ChunkIndex struct {
	Format  string  `json:"format"`  // ChunkFormat
	Version int     `json:"version"` // ChunkVersion
	Layers  int     `json:"layers"`  // n_layer of the model
	Chunks  []Chunk `json:"chunks"`
}

// Chunk is one package of a chunked export.
type Chunk struct {
	Path  string `json:"path"`  // relative to the index's directory
	First int    `json:"first"` // layers [First, End)
	End   int    `json:"end"`
}

// IsChunked reports whether path is the directory of a chunked export: one holding a
// regular ChunkIndexFile.
func IsChunked(path string) bool {
	fi, err := os.Stat(filepath.Join(path, ChunkIndexFile))
	return err == nil && fi.Mode().IsRegular()
}

// ReadChunkIndex reads the index of the chunked export at dir and checks that it is
// well-formed: format and version, 1 to 1024 chunks, paths inside dir, layer ranges that
// continue one another and cover the model's layers. Errors name the index's path; a
// missing index is reported as fs.ErrNotExist.
func ReadChunkIndex(dir string) (*ChunkIndex, error) {
	where := filepath.Join(dir, ChunkIndexFile)
	fi, err := os.Stat(where)
	if err != nil {
		return nil, fmt.Errorf("mlpackage: %w", err)
	}
	if fi.Size() > maxChunkIndexBytes {
		return nil, fmt.Errorf("mlpackage: %s: %d bytes, an index holds at most %d", where, fi.Size(), maxChunkIndexBytes)
	}
	raw, err := os.ReadFile(where)
	if err != nil {
		return nil, fmt.Errorf("mlpackage: %w", err)
	}
	var idx ChunkIndex
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("mlpackage: %s: %w", where, err)
	}
	if err := idx.check(); err != nil {
		return nil, fmt.Errorf("mlpackage: %s: %w", where, err)
	}
	return &idx, nil
}

func (idx *ChunkIndex) check() error {
	if idx.Format != ChunkFormat || idx.Version != ChunkVersion {
		return fmt.Errorf("format %q version %d, want %s version %d", idx.Format, idx.Version, ChunkFormat, ChunkVersion)
	}
	if len(idx.Chunks) < 1 || len(idx.Chunks) > maxChunks {
		return fmt.Errorf("%d chunks (1 to %d)", len(idx.Chunks), maxChunks)
	}
	next := 0
	for i, c := range idx.Chunks {
		if !filepath.IsLocal(c.Path) {
			return fmt.Errorf("chunk %d: path %q leaves the directory", i, c.Path)
		}
		if c.First != next || c.End <= c.First {
			return fmt.Errorf("chunk %d: layers [%d, %d) do not continue from %d", i, c.First, c.End, next)
		}
		next = c.End
	}
	if next != idx.Layers {
		return fmt.Errorf("chunks cover %d of %d layers", next, idx.Layers)
	}
	return nil
}

// Packages returns the paths of the index's packages in run order, for the index read
// from dir.
func (idx *ChunkIndex) Packages(dir string) []string {
	pkgs := make([]string, len(idx.Chunks))
	for i, c := range idx.Chunks {
		pkgs[i] = filepath.Join(dir, c.Path)
	}
	return pkgs
}

// PackagesAt lists the packages at path in run order: the chunks its index names if path
// is a chunked export, else path itself.
func PackagesAt(path string) ([]string, error) {
	idx, err := ReadChunkIndex(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{path}, nil
	}
	if err != nil {
		return nil, err
	}
	return idx.Packages(path), nil
}

// WriteChunkIndex checks idx and writes it as dir's ChunkIndexFile, indented for people
// to read.
func WriteChunkIndex(dir string, idx *ChunkIndex) error {
	where := filepath.Join(dir, ChunkIndexFile)
	if err := idx.check(); err != nil {
		return fmt.Errorf("mlpackage: %s: %w", where, err)
	}
	raw, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("mlpackage: %w", err)
	}
	if err := os.WriteFile(where, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("mlpackage: %w", err)
	}
	return nil
}
