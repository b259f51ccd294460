package blob

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Reserve appends a blob of elemCount elements of type dtype as Add does, but rather than
// taking its bytes it returns the record's payload mapped from the file, for the caller to
// fill in place (the kernel then copies nothing), with the offset of its metadata and
// commit, which records the blob once payload is filled. The file keeps the layout Add
// gives it, unused bits of a sub-byte payload's last byte cleared at commit. Until commit
// (which releases payload) no other blob may be added, and Close fails.
//
// The payload's disk blocks are allocated first (fallocate(2)), so a full disk is an error
// here rather than a fault while filling. A Writer that did not create its file, or a file
// system without fallocate or shared mappings, gives ErrNoReserve.
func (w *Writer) Reserve(dtype DataType, elemCount int) (offset uint64, payload []byte, commit func() error, err error) {
	size := dtype.PayloadSize(max(0, elemCount))
	head, padBits, err := w.place("reserve", dtype, size, elemCount)
	if err != nil {
		return 0, nil, nil, err
	}
	if w.file == nil || size == 0 {
		return 0, nil, nil, ErrNoReserve
	}
	fd := int(w.file.Fd())
	offset = w.end + uint64(len(head)) - MetadataSize
	start := int64(offset) + MetadataSize
	if err := unix.Fallocate(fd, 0, int64(w.end), start+int64(size)-int64(w.end)); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			return 0, nil, nil, fmt.Errorf("%w: fallocate: %v", ErrNoReserve, err)
		}
		return 0, nil, nil, fmt.Errorf("blob: reserve %d bytes at %d: %w", size, start, err)
	}
	// Earlier records may still be being written to the page shared with the metadata:
	// a shared mapping and write(2) see the same page cache.
	base := start &^ int64(os.Getpagesize()-1)
	m, err := unix.Mmap(fd, base, int(start-base)+size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: mmap: %v", ErrNoReserve, err)
	}
	// The pages are faulted in as the caller writes them, not populated here
	// (MADV_POPULATE_WRITE): a caller filling the payload on every core then shares the
	// page work, which a populate call would do on one (a Phi-2 export: 3.9–4.6 s with it,
	// 3.5–4.3 s without).
	payload = m[start-base:]
	r := &reservation{offset: offset, unmap: func() error { return unix.Munmap(m) }}
	w.open = r
	commit = func() error {
		if w.open != r {
			return fmt.Errorf("blob: commit of the blob reserved at offset %d: not reserved", offset)
		}
		w.open = nil
		if padBits > 0 {
			payload[size-1] &= byte(1)<<(8-padBits) - 1
		}
		if err := r.unmap(); err != nil {
			w.err = fmt.Errorf("blob: unmap the blob at offset %d: %w", offset, err)
			return w.err
		}
		_, err := w.enqueue(record{meta: head, mapped: int64(size)})
		return err
	}
	return offset, payload, commit, nil
}
