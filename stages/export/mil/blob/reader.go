package blob

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/lilims/lilims/internal/mmap"
	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// Reader gives access to the blobs of a MILBlob v2 file. A Reader from Open
// maps the file into memory where the OS allows it; the slices it returns
// alias that mapping, must not be modified and are valid until Close.
type Reader struct {
	path    string
	data    []byte
	count   uint32
	release func() error // unmaps or drops data; nil for NewReader
}

// Open opens the storage file at path and checks its header.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	size := fi.Size()
	if size < HeaderSize {
		return nil, &FormatError{Path: path, Msg: fmt.Sprintf("file is %d bytes, shorter than the %d-byte header", size, HeaderSize), Err: ErrTruncated}
	}
	if uint64(size) > math.MaxInt {
		return nil, &FormatError{Path: path, Msg: fmt.Sprintf("file of %d bytes does not fit in memory", size)}
	}
	data, release, err := mmap.Map(f, size)
	if err != nil {
		return nil, fmt.Errorf("blob: %s: %w", path, err)
	}
	r, err := newReader(path, data)
	if err != nil {
		release()
		return nil, err
	}
	r.release = release
	return r, nil
}

// NewReader returns a Reader over an in-memory storage file. The Reader
// keeps data; the caller must not modify it.
func NewReader(data []byte) (*Reader, error) {
	return newReader("", data)
}

func newReader(path string, data []byte) (*Reader, error) {
	if len(data) < HeaderSize {
		return nil, &FormatError{Path: path, Msg: fmt.Sprintf("%d bytes, shorter than the %d-byte header", len(data), HeaderSize), Err: ErrTruncated}
	}
	if v := binary.LittleEndian.Uint32(data[4:]); v != Version {
		return nil, &FormatError{Path: path, Msg: fmt.Sprintf("storage version %d, want %d", v, Version)}
	}
	count := binary.LittleEndian.Uint32(data[0:])
	// Every blob takes at least one metadata block after the header.
	if max := uint64(len(data)-HeaderSize) / MetadataSize; uint64(count) > max {
		return nil, &FormatError{Path: path, Msg: fmt.Sprintf("header claims %d blobs, but %d bytes hold at most %d", count, len(data), max), Err: ErrTruncated}
	}
	return &Reader{path: path, data: data, count: count}, nil
}

// Count returns the number of blobs the header declares.
func (r *Reader) Count() int { return int(r.count) }

// Size returns the size of the storage file in bytes.
func (r *Reader) Size() int { return len(r.data) }

// Close releases the file mapping. Blob fails after Close.
func (r *Reader) Close() error {
	r.data = nil
	if r.release == nil {
		return nil
	}
	release := r.release
	r.release = nil
	return release()
}

// Blob returns the blob whose metadata block starts at offset (the value of
// a BlobFileValue.offset): its data type, its payload and its element count.
// It checks the sentinel, the data type, that the payload lies inside the
// file and that size and padding agree with the element width.
func (r *Reader) Blob(offset uint64) (dtype DataType, data []byte, elemCount int, err error) {
	fail := func(err error, format string, args ...any) (DataType, []byte, int, error) {
		return 0, nil, 0, &FormatError{Path: r.path, Offset: offset, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	if r.data == nil {
		return fail(nil, "reader is closed")
	}
	size := uint64(len(r.data))
	if offset < HeaderSize || offset%Alignment != 0 {
		return fail(nil, "blob offset is not a 64-byte aligned position after the header")
	}
	if offset > size || size-offset < MetadataSize {
		return fail(ErrTruncated, "metadata block runs past the end of the %d-byte file", size)
	}
	m := r.data[offset : offset+MetadataSize]
	if s := binary.LittleEndian.Uint32(m[0:]); s != Sentinel {
		return fail(nil, "sentinel %#x, want %#x", s, uint32(Sentinel))
	}
	dtype = DataType(binary.LittleEndian.Uint32(m[4:]))
	nbytes := binary.LittleEndian.Uint64(m[8:])
	payload := binary.LittleEndian.Uint64(m[16:])
	padBits := binary.LittleEndian.Uint64(m[24:])

	bits := uint64(dtype.Bits())
	if bits == 0 {
		return fail(nil, "unknown blob data type %d", uint32(dtype))
	}
	if payload < offset+MetadataSize {
		return fail(nil, "payload offset %d lies before the end of its metadata", payload)
	}
	if payload > size || nbytes > size-payload {
		return fail(ErrTruncated, "payload [%d, +%d) runs past the end of the %d-byte file", payload, nbytes, size)
	}
	// Byte-sized types have no padding and a whole number of elements.
	// Sub-byte types leave fewer than 8 unused bits, and for 1/2/4-bit
	// types the padding is a whole number of elements' width.
	if bits >= 8 {
		if padBits != 0 {
			return fail(nil, "%v blob has %d padding bits, want 0", dtype, padBits)
		}
	} else if padBits >= 8 || padBits > nbytes*8 || (8%bits == 0 && padBits%bits != 0) {
		return fail(nil, "%v blob has %d padding bits", dtype, padBits)
	}
	used := nbytes*8 - padBits
	if used%bits != 0 {
		return fail(nil, "%v blob of %d bytes minus %d padding bits is not a whole number of elements", dtype, nbytes, padBits)
	}
	return dtype, r.data[payload : payload+nbytes : payload+nbytes], int(used / bits), nil
}

// Tensor returns the payload of the blob at offset after checking that it
// stores elemCount elements of MIL type want: Core ML rejects a blob whose
// type or element count disagrees with the tensor type that refers to it.
func (r *Reader) Tensor(offset uint64, want milpb.DataType, elemCount int) ([]byte, error) {
	dtype, data, n, err := r.Blob(offset)
	if err != nil {
		return nil, err
	}
	if dtype.MIL() != want {
		return nil, &FormatError{Path: r.path, Offset: offset, Msg: fmt.Sprintf("blob holds %v, the program declares %v", dtype, want)}
	}
	if n != elemCount {
		return nil, &FormatError{Path: r.path, Offset: offset, Msg: fmt.Sprintf("blob holds %d elements, the program declares %d", n, elemCount)}
	}
	return data, nil
}

// Offsets walks the file as Core ML does, from the first metadata block at
// 64 through Count records, each following the previous payload rounded up
// to 64 bytes, and returns the metadata offsets. It fails on the first
// malformed record.
func (r *Reader) Offsets() ([]uint64, error) {
	offsets := make([]uint64, 0, r.count)
	off := uint64(HeaderSize)
	for range r.count {
		_, data, _, err := r.Blob(off)
		if err != nil {
			return offsets, err
		}
		offsets = append(offsets, off)
		payload := binary.LittleEndian.Uint64(r.data[off+16:])
		off = alignUp(payload + uint64(len(data)))
	}
	return offsets, nil
}
