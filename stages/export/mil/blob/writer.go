package blob

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Writer appends blobs to a MILBlob v2 file. The header's blob count is
// rewritten after every Add, as Core ML's own writer does, so the file is
// well-formed between calls.
type Writer struct {
	w     io.WriteSeeker
	file  *os.File // set when the Writer created the file and must close it
	count uint32
	end   uint64 // end of the last payload; the file has no trailing padding
	err   error  // sticky: after a failed write the file state is unknown
}

// NewWriter writes an empty storage header to w, which must be positioned at
// the start of an empty stream, and returns a Writer appending to it.
func NewWriter(w io.WriteSeeker) (*Writer, error) {
	bw := &Writer{w: w, end: HeaderSize}
	if err := bw.writeAt(0, bw.header()); err != nil {
		return nil, err
	}
	return bw, nil
}

// Create creates (or truncates) the file at path and returns a Writer for
// it. Close closes the file.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	w, err := NewWriter(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: %s: %w", path, err)
	}
	w.file = f
	return w, nil
}

// header encodes the 64-byte storage header: u32 count, u32 version, then
// seven reserved u64 zeros.
func (w *Writer) header() []byte {
	h := make([]byte, HeaderSize)
	binary.LittleEndian.PutUint32(h[0:], w.count)
	binary.LittleEndian.PutUint32(h[4:], Version)
	return h
}

// Add appends one blob of elemCount elements of type dtype whose packed
// little-endian bytes are data, and returns the offset of its metadata
// block: the value a BlobFileValue.offset must hold. For sub-byte types data
// holds the packed stream (see PackBits); unused bits of its last byte are
// written as zero and recorded as padding.
func (w *Writer) Add(dtype DataType, data []byte, elemCount int) (offset uint64, err error) {
	if w.err != nil {
		return 0, w.err
	}
	bits := dtype.Bits()
	if bits == 0 {
		return 0, fmt.Errorf("blob: add: unknown data type %v", dtype)
	}
	if elemCount < 0 {
		return 0, fmt.Errorf("blob: add %v: negative element count %d", dtype, elemCount)
	}
	if want := dtype.PayloadSize(elemCount); len(data) != want {
		return 0, fmt.Errorf("blob: add %v: %d elements need %d bytes, got %d", dtype, elemCount, want, len(data))
	}
	if w.count == ^uint32(0) {
		return 0, fmt.Errorf("blob: add: file already holds %d blobs", w.count)
	}

	// Metadata starts at the next 64-byte boundary after the previous
	// payload; the payload follows it directly and is thus aligned too.
	meta := alignUp(w.end)
	padBits := uint64(len(data)*8 - elemCount*bits) // < 8 by the size check

	rec := make([]byte, meta-w.end+MetadataSize)
	hdr := rec[meta-w.end:] // gap bytes before it are zeros
	binary.LittleEndian.PutUint32(hdr[0:], Sentinel)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(dtype))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(len(data)))
	binary.LittleEndian.PutUint64(hdr[16:], meta+MetadataSize)
	binary.LittleEndian.PutUint64(hdr[24:], padBits)
	// hdr[32:64] are the four reserved u64s, zero.
	// Gap bytes between records are zeros, written explicitly: seeking past the end
	// zero-fills files but not every io.WriteSeeker. The payload is written from the
	// caller's slice, not copied: a weight may be hundreds of megabytes.
	if err := w.writeAt(int64(w.end), rec); err != nil {
		return 0, err
	}
	payload := data
	if padBits > 0 {
		// Clear the unused high bits of the last byte so the file does not
		// depend on whatever the caller left there.
		payload = data[:len(data)-1]
	}
	if err := w.writeAt(int64(meta+MetadataSize), payload); err != nil {
		return 0, err
	}
	if padBits > 0 {
		last := []byte{data[len(data)-1] & (byte(1)<<(8-padBits) - 1)}
		if err := w.writeAt(int64(meta+MetadataSize)+int64(len(payload)), last); err != nil {
			return 0, err
		}
	}
	w.count++
	w.end = meta + MetadataSize + uint64(len(data))
	if err := w.writeAt(0, w.header()[:4]); err != nil {
		return 0, err
	}
	return meta, nil
}

// Count returns the number of blobs written so far.
func (w *Writer) Count() int { return int(w.count) }

// Close finishes the file. For a Writer made by Create it syncs and closes
// the file; for one made by NewWriter it only reports any earlier error.
func (w *Writer) Close() error {
	err := w.err
	if w.file != nil {
		if err == nil {
			err = w.file.Sync()
		}
		if cerr := w.file.Close(); err == nil {
			err = cerr
		}
		w.file = nil
	}
	if w.err == nil {
		w.err = fmt.Errorf("blob: writer is closed")
	}
	return err
}

func (w *Writer) writeAt(off int64, p []byte) error {
	if _, err := w.w.Seek(off, io.SeekStart); err != nil {
		w.err = fmt.Errorf("blob: seek to %d: %w", off, err)
		return w.err
	}
	if _, err := w.w.Write(p); err != nil {
		w.err = fmt.Errorf("blob: write at %d: %w", off, err)
		return w.err
	}
	return nil
}
