// Package gguf reads GGUF model files (versions 2 and 3): the header, typed metadata, the
// tensor index, and tensor data through a read-only memory map.
//
// Opening a file parses and validates the header and tensor index only; tensor bytes are
// touched when a caller asks for them. Every count and length read from the file is checked
// against the bytes that remain before anything is allocated, so a hostile file yields a
// *FormatError naming the byte offset, never a panic or a huge allocation. The block formats
// of the tensors live in package ggml.
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"sort"

	"github.com/lilims/lilims/internal/mmap"
	"github.com/lilims/lilims/stages/loader/ggml"
)

// Magic is "GGUF" read as a little-endian u32.
const Magic = 0x46554747

// DefaultAlignment applies when general.alignment is absent.
const DefaultAlignment = 32

// MaxDims is GGML_MAX_DIMS.
const MaxDims = 4

// ErrTruncated is wrapped by errors caused by a file that ends too early.
var ErrTruncated = errors.New("unexpected end of file")

// FormatError describes a malformed GGUF file: where and what.
type FormatError struct {
	Path   string
	Offset int64  // byte offset of the problem, -1 when not tied to one
	Key    string // metadata key or tensor name involved, if any
	Msg    string
	Err    error // wrapped cause (ErrTruncated), if any
}

func (e *FormatError) Error() string {
	s := "gguf: " + e.Path + ": "
	if e.Offset >= 0 {
		s += fmt.Sprintf("offset %d: ", e.Offset)
	}
	if e.Key != "" {
		s += fmt.Sprintf("%q: ", e.Key)
	}
	return s + e.Msg
}

func (e *FormatError) Unwrap() error { return e.Err }

// KV is one metadata key/value pair.
type KV struct {
	Key   string
	Value Value
}

// Tensor is one entry of the tensor index.
type Tensor struct {
	Name   string
	Shape  []int64 // GGUF (ne) order: Shape[0] is the contiguous row length
	Type   ggml.Type
	Offset uint64 // relative to the data section
	Size   int64  // bytes
}

// Elements is the product of the shape.
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Rows is the number of rows of Shape[0] elements (the product of Shape[1:]).
func (t *Tensor) Rows() int64 {
	if len(t.Shape) == 0 {
		return 1
	}
	// A zero-length row holds nothing: count no rows, as tensorInfo does when sizing the
	// tensor (found by FuzzTensorIndex: dividing by Shape[0] = 0 panicked).
	if t.Shape[0] == 0 {
		return 0
	}
	return t.Elements() / t.Shape[0]
}

// File is an open GGUF file.
type File struct {
	Path       string
	Version    uint32
	Alignment  uint64
	DataOffset int64 // file offset of the tensor data section
	KVs        []KV
	Tensors    []*Tensor

	data    []byte // the mapped file
	mapped  bool   // data is a file mapping (Open), not memory (Parse)
	unmap   func() error
	kvIndex map[string]int
	tIndex  map[string]int
}

// Open maps path and parses its header and tensor index.
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
	if st.IsDir() {
		return nil, fmt.Errorf("gguf: %s: is a directory", path)
	}
	data, unmap, err := mmap.Map(osf, st.Size())
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: map: %w", path, err)
	}
	f, err := parse(path, data)
	if err != nil {
		unmap()
		return nil, err
	}
	f.unmap, f.mapped = unmap, true
	return f, nil
}

// Release hands the pages under b, a slice of the file's data (Data), back to the kernel
// once a streaming reader is done with them (see mmap.Release); they are read again from
// the page cache if needed. A file held in memory (Parse) is left alone.
func (f *File) Release(b []byte) {
	if f.mapped {
		mmap.Release(f.data, b)
	}
}

// Prefetch maps the pages under b, a slice of f's tensor data, before it is read whole
// and in order (see mmap.Prefetch); anything else is left alone.
func (f *File) Prefetch(b []byte) {
	if f.mapped {
		mmap.Prefetch(f.data, b)
	}
}

// Parse reads a GGUF file held in memory (used by tests and fuzzing; Open is the normal way).
func Parse(name string, data []byte) (*File, error) {
	f, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	f.unmap = func() error { return nil }
	return f, nil
}

// Close releases the mapping. Slices returned by Data are invalid afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap, f.data, f.mapped = nil, nil, false
	return err
}

// FileSize is the size of the file in bytes.
func (f *File) FileSize() int64 { return int64(len(f.data)) }

// decoder walks the mapped bytes; every read is bounds-checked.
type decoder struct {
	path string
	b    []byte
	off  int64
	v1   bool
}

func (d *decoder) fail(off int64, key, format string, args ...any) error {
	return &FormatError{Path: d.path, Offset: off, Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) remaining() int64 { return int64(len(d.b)) - d.off }

func (d *decoder) need(n int64, what string) error {
	if n < 0 || n > d.remaining() {
		return &FormatError{Path: d.path, Offset: d.off, Err: ErrTruncated,
			Msg: fmt.Sprintf("truncated: %s needs %d bytes, %d left", what, n, d.remaining())}
	}
	return nil
}

func (d *decoder) u8(what string) (uint8, error) {
	if err := d.need(1, what); err != nil {
		return 0, err
	}
	v := d.b[d.off]
	d.off++
	return v, nil
}

func (d *decoder) u16(what string) (uint16, error) {
	if err := d.need(2, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v, nil
}

// count reads a length or element count (u32 in v1, u64 since v2).
func (d *decoder) count(what string) (uint64, error) {
	if d.v1 {
		v, err := d.u32(what)
		return uint64(v), err
	}
	return d.u64(what)
}

func (d *decoder) str(what string) (string, error) {
	at := d.off
	n, err := d.count(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(d.remaining()) {
		return "", &FormatError{Path: d.path, Offset: at, Err: ErrTruncated,
			Msg: fmt.Sprintf("%s length %d exceeds the %d bytes left in the file", what, n, d.remaining())}
	}
	s := string(d.b[d.off : d.off+int64(n)])
	d.off += int64(n)
	return s, nil
}

func parse(path string, data []byte) (*File, error) {
	d := &decoder{path: path, b: data}
	magic, err := d.u32("magic")
	if err != nil {
		return nil, err
	}
	if magic != Magic {
		return nil, d.fail(0, "", "not a GGUF file (magic %q)", printable(data[:4]))
	}
	version, err := d.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case version == 1:
		return nil, d.fail(4, "", "unsupported GGUF v1, re-convert with a current llama.cpp")
	case version&0xFFFF == 0 && version != 0:
		return nil, d.fail(4, "", "version field 0x%08x looks byte-swapped: big-endian GGUF files are not supported", version)
	case version != 2 && version != 3:
		return nil, d.fail(4, "", "unsupported GGUF version %d (supported: 2, 3)", version)
	}
	nTensors, err := d.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := d.u64("metadata count")
	if err != nil {
		return nil, err
	}
	// A KV takes at least 13 bytes (key length, type, one byte of value), a tensor info 24
	// (name length, n_dims, type, offset): refuse counts the file cannot hold before
	// allocating for them.
	if nKV > uint64(d.remaining())/13 {
		return nil, d.fail(16, "", "metadata count %d cannot fit in the %d bytes left (truncated or corrupt file)", nKV, d.remaining())
	}
	f := &File{Path: path, Version: version, data: data,
		KVs: make([]KV, 0, nKV), kvIndex: make(map[string]int, nKV)}
	for i := uint64(0); i < nKV; i++ {
		at := d.off
		key, err := d.str("metadata key")
		if err != nil {
			return nil, err
		}
		if key == "" {
			return nil, d.fail(at, "", "empty metadata key")
		}
		if _, dup := f.kvIndex[key]; dup {
			return nil, d.fail(at, key, "duplicate metadata key")
		}
		vt, err := d.u32("value type")
		if err != nil {
			return nil, err
		}
		v, err := d.value(ValueType(vt), key)
		if err != nil {
			return nil, err
		}
		f.kvIndex[key] = len(f.KVs)
		f.KVs = append(f.KVs, KV{key, v})
	}
	if err := f.checkKnownKeys(); err != nil {
		return nil, err
	}
	f.Alignment = DefaultAlignment
	if v, ok := f.Get("general.alignment"); ok {
		a, isU32 := v.V.(uint32)
		if !isU32 || a == 0 || a&(a-1) != 0 {
			return nil, &FormatError{Path: path, Offset: -1, Key: "general.alignment",
				Msg: fmt.Sprintf("must be a non-zero power of two of type uint32, got %v (%s)", v.V, v.TypeName())}
		}
		f.Alignment = uint64(a)
	}

	if nTensors > uint64(d.remaining())/24 {
		return nil, d.fail(8, "", "tensor count %d cannot fit in the %d bytes left (truncated or corrupt file)", nTensors, d.remaining())
	}
	f.Tensors = make([]*Tensor, 0, nTensors)
	f.tIndex = make(map[string]int, nTensors)
	infoAt := make([]int64, 0, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		at := d.off
		t, err := d.tensorInfo()
		if err != nil {
			return nil, err
		}
		if _, dup := f.tIndex[t.Name]; dup {
			return nil, d.fail(at, t.Name, "duplicate tensor name")
		}
		f.tIndex[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
		infoAt = append(infoAt, at)
	}
	dataStart := alignUp(uint64(d.off), f.Alignment)
	if nTensors > 0 && dataStart > uint64(len(data)) {
		return nil, d.fail(d.off, "", "truncated: data section would start at %d, past the end of the %d-byte file", dataStart, len(data))
	}
	f.DataOffset = int64(dataStart)
	return f, f.checkTensorPlacement(infoAt)
}

func (d *decoder) tensorInfo() (*Tensor, error) {
	name, err := d.str("tensor name")
	if err != nil {
		return nil, err
	}
	at := d.off
	nd, err := d.u32("tensor n_dims")
	if err != nil {
		return nil, err
	}
	if nd > MaxDims {
		return nil, d.fail(at, name, "tensor has %d dimensions (at most %d)", nd, MaxDims)
	}
	t := &Tensor{Name: name, Shape: make([]int64, nd)}
	elems := uint64(1)
	for j := range t.Shape {
		at := d.off
		dim, err := d.count("tensor dimension")
		if err != nil {
			return nil, err
		}
		if dim > math.MaxInt64 {
			return nil, d.fail(at, name, "dimension %d is %d (negative as int64)", j, dim)
		}
		hi, lo := bits.Mul64(elems, dim)
		if hi != 0 || lo > math.MaxInt64 {
			return nil, d.fail(at, name, "shape overflows: element count exceeds 2^63")
		}
		elems = lo
		t.Shape[j] = int64(dim)
	}
	at = d.off
	typ, err := d.u32("tensor type")
	if err != nil {
		return nil, err
	}
	t.Type = ggml.Type(typ)
	if !t.Type.Valid() {
		return nil, d.fail(at, name, "unknown ggml type id %d", typ)
	}
	row := int64(1)
	if nd > 0 {
		row = t.Shape[0]
	}
	rowBytes, err := t.Type.RowBytes(row)
	if err != nil {
		return nil, d.fail(at, name, "%v", err)
	}
	rows := int64(0)
	if row > 0 {
		rows = int64(elems) / row
	}
	hi, size := bits.Mul64(uint64(rowBytes), uint64(rows))
	if hi != 0 || size > math.MaxInt64 {
		return nil, d.fail(at, name, "tensor byte size overflows")
	}
	t.Size = int64(size)
	if t.Offset, err = d.u64("tensor offset"); err != nil {
		return nil, err
	}
	return t, nil
}

// checkTensorPlacement verifies alignment, bounds and that no two tensors overlap.
func (f *File) checkTensorPlacement(infoAt []int64) error {
	fileSize := uint64(len(f.data))
	dataLen := fileSize - uint64(f.DataOffset)
	for i, t := range f.Tensors {
		if t.Offset%f.Alignment != 0 {
			return &FormatError{Path: f.Path, Offset: infoAt[i], Key: t.Name,
				Msg: fmt.Sprintf("tensor data offset %d is not a multiple of the alignment %d", t.Offset, f.Alignment)}
		}
		if t.Offset > dataLen || uint64(t.Size) > dataLen-t.Offset {
			return &FormatError{Path: f.Path, Offset: infoAt[i], Key: t.Name, Err: ErrTruncated,
				Msg: fmt.Sprintf("tensor data [%d, +%d) lies past the end of the file (data section holds %d bytes)",
					uint64(f.DataOffset)+t.Offset, t.Size, dataLen)}
		}
	}
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return f.Tensors[order[a]].Offset < f.Tensors[order[b]].Offset })
	for k := 1; k < len(order); k++ {
		prev, cur := f.Tensors[order[k-1]], f.Tensors[order[k]]
		if prev.Size > 0 && prev.Offset+uint64(prev.Size) > cur.Offset {
			return &FormatError{Path: f.Path, Offset: infoAt[order[k]], Key: cur.Name,
				Msg: fmt.Sprintf("tensor data overlaps %q", prev.Name)}
		}
	}
	return nil
}

func alignUp(x, a uint64) uint64 { return x + (a-x%a)%a }

func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}

// Data returns the bytes of t inside the mapping (read-only; valid until Close).
func (f *File) Data(t *Tensor) []byte {
	start := f.DataOffset + int64(t.Offset)
	return f.data[start : start+t.Size : start+t.Size]
}

// Tensor looks a tensor up by name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	i, ok := f.tIndex[name]
	if !ok {
		return nil, false
	}
	return f.Tensors[i], true
}

// DequantizeRows decodes rows [row, row+n) of t into dst (n·Shape[0] floats).
func (f *File) DequantizeRows(t *Tensor, row, n int64, dst []float32) error {
	if row < 0 || n < 0 || row+n > t.Rows() {
		return fmt.Errorf("gguf: %s: tensor %q: rows [%d, %d) out of range (%d rows)", f.Path, t.Name, row, row+n, t.Rows())
	}
	ne0 := int64(1)
	if len(t.Shape) > 0 {
		ne0 = t.Shape[0]
	}
	if int64(len(dst)) != n*ne0 {
		return fmt.Errorf("gguf: %s: tensor %q: destination holds %d floats, want %d", f.Path, t.Name, len(dst), n*ne0)
	}
	rowBytes, err := t.Type.RowBytes(ne0)
	if err != nil {
		return fmt.Errorf("gguf: %s: tensor %q: %w", f.Path, t.Name, err)
	}
	src := f.Data(t)[row*rowBytes : (row+n)*rowBytes]
	if err := ggml.DequantizeRow(t.Type, src, dst); err != nil {
		return fmt.Errorf("gguf: %s: tensor %q: %w", f.Path, t.Name, err)
	}
	// A NaN or Inf weight — in practice a corrupt block scale d, which spreads to its whole
	// block — would flow silently into the exported package and make logits garbage. Refuse
	// it here, naming the tensor, as llama.cpp's ggml_validate_row_data refuses non-finite
	// f16/f32 values and block scales when it checks tensors.
	if i := firstNonFinite(dst); i >= 0 {
		r := row + int64(i)/max(ne0, 1)
		return &FormatError{Path: f.Path, Offset: f.DataOffset + int64(t.Offset) + r*rowBytes, Key: t.Name,
			Msg: fmt.Sprintf("%s tensor has a non-finite value (%v) in row %d, element %d: corrupt data or block scale", t.Type, dst[i], r, int64(i)%max(ne0, 1))}
	}
	return nil
}

// firstNonFinite returns the index of the first NaN or ±Inf in v, or −1: a float32 is
// non-finite exactly when its exponent bits are all ones, one mask and compare per element
// (a tenth of the cost of widening each value to float64 for math.IsNaN and math.IsInf).
func firstNonFinite(v []float32) int {
	for i, x := range v {
		if math.Float32bits(x)&0x7f800000 == 0x7f800000 {
			return i
		}
	}
	return -1
}

// Float32s dequantizes the whole tensor.
func (f *File) Float32s(t *Tensor) ([]float32, error) {
	out := make([]float32, t.Elements())
	return out, f.DequantizeRows(t, 0, t.Rows(), out)
}
