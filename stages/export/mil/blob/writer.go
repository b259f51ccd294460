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
	// OnWritten, when set before the first Add, is called with each added record's
	// data once it is in the file (not for reserved ones: see Reserve).
	OnWritten func(data []byte)
	// MaxPending bounds the bytes queued and not yet written (default
	// DefaultMaxPending); one record larger than it may still be queued.
	MaxPending int64

	w     io.WriteSeeker
	file  *os.File // set when the Writer created the file and must close it
	count uint32
	end   uint64       // end of the last payload; the file has no trailing padding
	err   error        // sticky: after a failed write the file state is unknown
	open  *reservation // the blob Reserve handed out and not yet committed

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
// then data, then the header's new count. A reserved blob's payload, mapped bytes
// after the metadata, is already in the file: data is then nil.
type record struct {
	off     int64
	meta    []byte
	data    []byte
	padBits uint64
	mapped  int64
	count   uint32
}

// reservation is a blob whose payload Reserve mapped for its caller to fill.
type reservation struct {
	offset uint64       // of its metadata
	unmap  func() error // releases the mapping
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
	head, padBits, err := w.place("add", dtype, len(data), elemCount)
	if err != nil {
		return 0, err
	}
	return w.enqueue(record{meta: head, data: data, padBits: padBits})
}

// place checks a blob of elemCount elements of type dtype whose payload has size bytes
// and lays its record out after the last one: it returns the record's bytes before the
// payload (the zero gap to the 64-byte boundary, then the metadata block) and the padding
// bits of the payload's last byte.
func (w *Writer) place(op string, dtype DataType, size, elemCount int) (head []byte, padBits uint64, err error) {
	if w.err != nil {
		return nil, 0, w.err
	}
	if w.open != nil {
		return nil, 0, fmt.Errorf("blob: %s: the blob reserved at offset %d is not committed", op, w.open.offset)
	}
	bits := dtype.Bits()
	if bits == 0 {
		return nil, 0, fmt.Errorf("blob: %s: unknown data type %v", op, dtype)
	}
	if elemCount < 0 {
		return nil, 0, fmt.Errorf("blob: %s %v: negative element count %d", op, dtype, elemCount)
	}
	if want := dtype.PayloadSize(elemCount); size != want {
		return nil, 0, fmt.Errorf("blob: %s %v: %d elements need %d bytes, got %d", op, dtype, elemCount, want, size)
	}
	if w.count == ^uint32(0) {
		return nil, 0, fmt.Errorf("blob: %s: file already holds %d blobs", op, w.count)
	}

	// Metadata starts at the next 64-byte boundary after the previous
	// payload; the payload follows it directly and is thus aligned too.
	meta := alignUp(w.end)
	padBits = uint64(size*8 - elemCount*bits) // < 8 by the size check

	head = make([]byte, meta-w.end+MetadataSize)
	hdr := head[meta-w.end:] // gap bytes before it are zeros
	binary.LittleEndian.PutUint32(hdr[0:], Sentinel)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(dtype))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(size))
	binary.LittleEndian.PutUint64(hdr[16:], meta+MetadataSize)
	binary.LittleEndian.PutUint64(hdr[24:], padBits)
	// hdr[32:64] are the four reserved u64s, zero.
	return head, padBits, nil
}

// enqueue queues r (its meta, data, padBits and mapped set) as the next record, waiting
// while more than MaxPending bytes are queued, and returns the offset of its metadata.
func (w *Writer) enqueue(r record) (offset uint64, err error) {
	if err := w.start(); err != nil {
		return 0, err
	}
	w.mu.Lock()
	for w.pending > w.MaxPending && w.werr == nil {
		w.drained.Wait()
	}
	w.pending += int64(len(r.data))
	err = w.werr
	w.mu.Unlock()
	if err != nil {
		w.err = err
		return 0, err
	}
	w.count++
	r.off, r.count = int64(w.end), w.count
	offset = w.end + uint64(len(r.meta)) - MetadataSize
	w.end = offset + MetadataSize + uint64(len(r.data)) + uint64(r.mapped)
	w.queue <- r
	return offset, nil
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
				if failed == nil && w.OnWritten != nil && r.data != nil {
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
	if r.data == nil { // reserved: the payload is in place
		return w.finish(r)
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
	return w.finish(r)
}

// finish writes the header's new count once r is in the file and starts sending a large
// record to the disk.
func (w *Writer) finish(r record) error {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], r.count)
	if err := w.writeAt(0, n[:]); err != nil {
		return err
	}
	if n := int64(len(r.data)) + r.mapped; w.file != nil && n >= writebackMin {
		startWriteback(w.file, r.off, int64(len(r.meta))+n)
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
	if r := w.open; r != nil {
		r.unmap()
		w.open = nil
		if w.err == nil {
			w.err = fmt.Errorf("blob: the blob reserved at offset %d was never committed", r.offset)
		}
	}
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
