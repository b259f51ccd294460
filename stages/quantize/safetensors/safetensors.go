// Package safetensors reads and writes the safetensors container: an 8-byte little-endian
// header length N, N bytes of JSON mapping each tensor name to {dtype, shape, data_offsets}
// (offsets relative to the end of the header) plus an optional "__metadata__" map of strings,
// then the tensor bytes.
//
// The package knows nothing of quantization; it stores named byte ranges with a dtype and a
// shape. Writing goes to a temporary file renamed into place on Close, so a reader never sees
// a half-written file. Reading maps the file and validates every entry (dtype, shape, offsets
// inside the file, no overlap) before any tensor is returned.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/lilims/lilims/internal/mmap"
)

// MaxHeaderBytes bounds the JSON header a reader accepts (the reference implementation
// uses 100 MB); anything larger is a corrupt or hostile file.
const MaxHeaderBytes = 100 << 20

// ErrTruncated is wrapped by errors about a file that ends too early.
var ErrTruncated = errors.New("unexpected end of file")

// FormatError describes a malformed safetensors file.
type FormatError struct {
	Path   string
	Offset int64  // byte offset of the problem, -1 when not tied to one
	Tensor string // tensor involved, if any
	Msg    string
	Err    error
}

func (e *FormatError) Error() string {
	s := "safetensors: " + e.Path
	if e.Offset >= 0 {
		s += fmt.Sprintf(": offset %d", e.Offset)
	}
	if e.Tensor != "" {
		s += fmt.Sprintf(": tensor %q", e.Tensor)
	}
	return s + ": " + e.Msg
}

func (e *FormatError) Unwrap() error { return e.Err }

// dtypeSizes gives the element size in bytes of each dtype the format names.
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	"U16": 2, "I16": 2, "F16": 2, "BF16": 2,
	"U32": 4, "I32": 4, "F32": 4,
	"U64": 8, "I64": 8, "F64": 8,
}

// DTypeSize returns the element size of dtype, or 0 when the format does not define it.
func DTypeSize(dtype string) int { return dtypeSizes[dtype] }

// Entry describes one tensor.
type Entry struct {
	Name  string
	DType string // "U8", "I8", "F16", "F32", …
	Shape []int
	Begin int64 // byte range within the data section (after the header)
	End   int64
}

// Size is the byte size the dtype and shape imply.
func (e *Entry) Size() (int64, error) {
	es := dtypeSizes[e.DType]
	if es == 0 {
		return 0, fmt.Errorf("unknown dtype %q", e.DType)
	}
	n := int64(es)
	for _, d := range e.Shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d", d)
		}
		if d != 0 && n > math.MaxInt64/int64(d) {
			return 0, fmt.Errorf("shape %v overflows", e.Shape)
		}
		n *= int64(d)
	}
	return n, nil
}

type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Writer writes a safetensors file whose layout is fixed up front: the header lists every
// tensor, so tensors can then be written in any order, from any goroutine.
type Writer struct {
	path    string
	f       *os.File
	dataAt  int64
	entries map[string]*Entry
}

// Create starts a file at path holding the given tensors, laid out in the order given.
// The Begin/End fields of entries are ignored and computed here.
func Create(path string, entries []Entry, metadata map[string]string) (*Writer, error) {
	w := &Writer{path: path, entries: map[string]*Entry{}}
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for i := range entries {
		e := entries[i]
		if e.Name == "" || e.Name == "__metadata__" {
			return nil, fmt.Errorf("safetensors: %s: invalid tensor name %q", path, e.Name)
		}
		if _, dup := w.entries[e.Name]; dup {
			return nil, fmt.Errorf("safetensors: %s: duplicate tensor %q", path, e.Name)
		}
		n, err := e.Size()
		if err != nil {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", path, e.Name, err)
		}
		e.Begin, e.End = off, off+n
		off += n
		w.entries[e.Name] = &e
		hdr[e.Name] = headerEntry{e.DType, append([]int{}, e.Shape...), [2]int64{e.Begin, e.End}}
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	// Pad the header with spaces so the data section starts 8-byte aligned, as the
	// reference writer does; readers must accept trailing whitespace in the JSON.
	for (8+len(js))%8 != 0 {
		js = append(js, ' ')
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return nil, err
	}
	w.f = f
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	if _, err := f.Write(append(lenBuf[:], js...)); err != nil {
		w.Abort()
		return nil, err
	}
	w.dataAt = int64(8 + len(js))
	// Size the file now so that a tensor left unwritten reads as zeros, not a short file.
	if err := f.Truncate(w.dataAt + off); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// WriteTensor stores the bytes of one tensor. It is safe to call concurrently for
// different tensors.
func (w *Writer) WriteTensor(name string, data []byte) error {
	e, ok := w.entries[name]
	if !ok {
		return fmt.Errorf("safetensors: %s: no tensor %q in the header", w.path, name)
	}
	if int64(len(data)) != e.End-e.Begin {
		return fmt.Errorf("safetensors: %s: tensor %q: have %d bytes, header says %d", w.path, name, len(data), e.End-e.Begin)
	}
	_, err := w.f.WriteAt(data, w.dataAt+e.Begin)
	return err
}

// WriteTensorAt stores part of a tensor's bytes, starting off bytes into it, so a large
// tensor can be written in pieces as it is produced. Safe for concurrent use.
func (w *Writer) WriteTensorAt(name string, off int64, data []byte) error {
	e, ok := w.entries[name]
	if !ok {
		return fmt.Errorf("safetensors: %s: no tensor %q in the header", w.path, name)
	}
	if off < 0 || off+int64(len(data)) > e.End-e.Begin {
		return fmt.Errorf("safetensors: %s: tensor %q: bytes [%d, %d) outside its %d bytes", w.path, name, off, off+int64(len(data)), e.End-e.Begin)
	}
	_, err := w.f.WriteAt(data, w.dataAt+e.Begin+off)
	return err
}

// Close renames the file into place. The rename is what makes the file visible, so a reader
// never sees a partial one; it does not fsync (the pipeline runner's directory rename is the
// commit point of an artifact, and syncing a multi-gigabyte file would dominate the run).
func (w *Writer) Close() error {
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	if err := os.Rename(w.f.Name(), w.path); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return nil
}

// Abort discards the file.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// File is an open safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	Entries  []Entry // sorted by Begin

	index  map[string]int
	data   []byte // the whole mapped file
	dataAt int64
	unmap  func() error
}

// Open maps path and validates its header.
func Open(path string) (*File, error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer osf.Close()
	st, err := osf.Stat()
	if err != nil {
		return nil, err
	}
	data, unmap, err := mmap.Map(osf, st.Size())
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: map: %w", path, err)
	}
	f, err := parse(path, data)
	if err != nil {
		unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse reads a file held in memory.
func Parse(name string, data []byte) (*File, error) {
	f, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	f.unmap = func() error { return nil }
	return f, nil
}

func parse(path string, data []byte) (*File, error) {
	fail := func(off int64, tensor string, err error, format string, args ...any) error {
		return &FormatError{Path: path, Offset: off, Tensor: tensor, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	if len(data) < 8 {
		return nil, fail(0, "", ErrTruncated, "file of %d bytes has no header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderBytes {
		return nil, fail(0, "", nil, "header length %d exceeds the %d-byte limit", n, MaxHeaderBytes)
	}
	if n > uint64(len(data)-8) {
		return nil, fail(0, "", ErrTruncated, "header length %d but only %d bytes follow", n, len(data)-8)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &raw); err != nil {
		return nil, fail(8, "", err, "header is not a JSON object: %v", err)
	}
	f := &File{Path: path, data: data, dataAt: int64(8 + n), index: map[string]int{}}
	dataLen := int64(len(data)) - f.dataAt
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == "__metadata__" {
			if err := json.Unmarshal(raw[name], &f.Metadata); err != nil {
				return nil, fail(8, name, err, "__metadata__ is not a map of strings: %v", err)
			}
			continue
		}
		var he headerEntry
		if err := json.Unmarshal(raw[name], &he); err != nil {
			return nil, fail(8, name, err, "bad entry: %v", err)
		}
		e := Entry{Name: name, DType: he.DType, Shape: he.Shape, Begin: he.DataOffsets[0], End: he.DataOffsets[1]}
		size, err := e.Size()
		if err != nil {
			return nil, fail(8, name, err, "%v", err)
		}
		if e.Begin < 0 || e.End < e.Begin || e.End > dataLen {
			return nil, fail(f.dataAt+e.Begin, name, ErrTruncated, "data_offsets [%d, %d] outside the %d-byte data section", e.Begin, e.End, dataLen)
		}
		if e.End-e.Begin != size {
			return nil, fail(f.dataAt+e.Begin, name, nil, "data_offsets span %d bytes, %s%v needs %d", e.End-e.Begin, e.DType, e.Shape, size)
		}
		f.Entries = append(f.Entries, e)
	}
	sort.Slice(f.Entries, func(i, j int) bool { return f.Entries[i].Begin < f.Entries[j].Begin })
	for i := range f.Entries {
		e := &f.Entries[i]
		if i > 0 && e.Begin < f.Entries[i-1].End {
			return nil, fail(f.dataAt+e.Begin, e.Name, nil, "overlaps tensor %q", f.Entries[i-1].Name)
		}
		f.index[e.Name] = i
	}
	return f, nil
}

// Entry looks a tensor up.
func (f *File) Entry(name string) (*Entry, bool) {
	i, ok := f.index[name]
	if !ok {
		return nil, false
	}
	return &f.Entries[i], true
}

// Data returns a tensor's bytes inside the mapping (read-only; valid until Close).
func (f *File) Data(name string) ([]byte, bool) {
	e, ok := f.Entry(name)
	if !ok {
		return nil, false
	}
	b, c := f.dataAt+e.Begin, f.dataAt+e.End
	return f.data[b:c:c], true
}

// Release hands the pages under b, a slice of the file's data, back to the kernel once a
// streaming reader is done with them (see mmap.Release).
func (f *File) Release(b []byte) { mmap.Release(f.data, b) }

// Close releases the mapping.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap, f.data = nil, nil
	return err
}
