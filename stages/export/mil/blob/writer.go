package blob

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
)

// Writer appends blobs to a MILBlob v2 file. The header's blob count is
// rewritten after every record, as Core ML's own writer does, so the file is
// well-formed between records.
//
// Records are written in the background, in order: Add queues one and returns
// (waiting only while more than MaxPending bytes are queued), so that the caller
// prepares the next blobs (a transcoding, a dequantization) while the kernel
// copies the queued ones. The data given to Add must stay unchanged until it is
// written: OnWritten is then called with it (from the writing goroutine), and
// Close returns once every record is written. A failed write is reported by a
// later Add or by Close.
type Writer struct {
	// OnWritten, when set before the first Add, is called with each record's data
	// once it is in the file.
	OnWritten func(data []byte)
	// MaxPending bounds the bytes queued and not yet written (default
	// DefaultMaxPending); one record larger than it may still be queued.
	MaxPending int64

	w     io.WriteSeeker
	file  *os.File // set when the Writer created the file and must close it
	count uint32
	end   uint64 // end of the last payload; the file has no trailing padding
	err   error  // sticky: after a failed write the file state is unknown

	queue   chan record
	done    chan struct{} // closed when the writing goroutine has finished
	mu      sync.Mutex
	drained *sync.Cond // signalled as records are written
	pending int64      // bytes queued and not yet written
	werr    error      // the writing goroutine's first error
}

// DefaultMaxPending is Writer.MaxPending's default: a large weight or two.
const DefaultMaxPending = 64 << 20

// record is one queued blob: its metadata (with the zero gap before it) at off,
// then data, then the header's new count.
type record struct {
	off     int64
	meta    []byte
	data    []byte
	padBits uint64
	count   uint32
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
// written as zero and recorded as padding. data is written after Add returns:
// it must stay unchanged until OnWritten is called with it or Close returns.
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
	if err := w.start(); err != nil {
		return 0, err
	}
	w.mu.Lock()
	for w.pending > w.MaxPending && w.werr == nil {
		w.drained.Wait()
	}
	w.pending += int64(len(data))
	err = w.werr
	w.mu.Unlock()
	if err != nil {
		w.err = err
		return 0, err
	}
	w.count++
	w.queue <- record{int64(w.end), rec, data, padBits, w.count}
	w.end = meta + MetadataSize + uint64(len(data))
	return meta, nil
}

// start starts the writing goroutine at the first Add.
func (w *Writer) start() error {
	if w.queue != nil {
		return nil
	}
	if w.MaxPending <= 0 {
		w.MaxPending = DefaultMaxPending
	}
	w.queue, w.done = make(chan record, 1024), make(chan struct{})
	w.drained = sync.NewCond(&w.mu)
	go func() {
		defer close(w.done)
		var failed error
		for r := range w.queue {
			if failed == nil {
				failed = w.write(r)
				if failed == nil && w.OnWritten != nil {
					w.OnWritten(r.data)
				}
			}
			w.mu.Lock()
			w.pending -= int64(len(r.data))
			if failed != nil && w.werr == nil {
				w.werr = failed
			}
			w.drained.Broadcast()
			w.mu.Unlock()
		}
	}()
	return nil
}

// write puts one record in the file. Gap bytes between records are zeros,
// written explicitly: seeking past the end zero-fills files but not every
// io.WriteSeeker. The payload is written from the caller's slice, not copied: a
// weight may be hundreds of megabytes.
func (w *Writer) write(r record) error {
	if err := w.writeAt(r.off, r.meta); err != nil {
		return err
	}
	payload := r.data
	if r.padBits > 0 {
		// Clear the unused high bits of the last byte so the file does not
		// depend on whatever the caller left there.
		payload = r.data[:len(r.data)-1]
	}
	at := r.off + int64(len(r.meta))
	if err := w.writeAt(at, payload); err != nil {
		return err
	}
	if r.padBits > 0 {
		last := []byte{r.data[len(r.data)-1] & (byte(1)<<(8-r.padBits) - 1)}
		if err := w.writeAt(at+int64(len(payload)), last); err != nil {
			return err
		}
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], r.count)
	if err := w.writeAt(0, n[:]); err != nil {
		return err
	}
	if w.file != nil && len(r.data) >= writebackMin {
		startWriteback(w.file, r.off, int64(len(r.meta)+len(r.data)))
	}
	return nil
}

// writebackMin: records from this size on are sent to the disk as soon as they are
// written (startWriteback); smaller ones go with the next large one or with Close.
const writebackMin = 1 << 20

// wait waits until every queued record is written and returns the sticky error.
func (w *Writer) wait() error {
	if w.queue != nil {
		close(w.queue)
		<-w.done
		w.queue = nil
		if w.werr != nil && w.err == nil {
			w.err = w.werr
		}
	}
	return w.err
}

// Count returns the number of blobs written so far.
func (w *Writer) Count() int { return int(w.count) }

// Close finishes the file. For a Writer made by Create it syncs and closes
// the file; for one made by NewWriter it only reports any earlier error.
func (w *Writer) Close() error {
	err := w.wait()
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
		return fmt.Errorf("blob: seek to %d: %w", off, err)
	}
	if _, err := w.w.Write(p); err != nil {
		return fmt.Errorf("blob: write at %d: %w", off, err)
	}
	return nil
}
