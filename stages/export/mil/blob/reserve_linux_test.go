package blob_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/export/mil/blob"
)

// blobSpec is one blob of a test file: its type, element count and packed bytes (the last
// byte of a sub-byte payload with its unused bits set, which the file must not keep).
type blobSpec struct {
	dtype blob.DataType
	n     int
	data  []byte
}

func testBlobs() []blobSpec {
	big := make([]byte, 3<<20+5) // spans pages and reaches writebackMin
	for i := range big {
		big[i] = byte(i * 7)
	}
	return []blobSpec{
		{blob.Float16, 10, bytes.Repeat([]byte{1, 2}, 10)},
		{blob.UInt4, 11, append(bytes.Repeat([]byte{0x5a}, 5), 0xf3)}, // 4 padding bits
		{blob.UInt8, len(big), big},
		{blob.UInt3, 13, []byte{0xff, 0xff, 0xff, 0xff, 0xff}}, // 1 padding bit
		{blob.Float32, 17, bytes.Repeat([]byte{9, 8, 7, 6}, 17)},
		{blob.Int4, 4099 * 2, bytes.Repeat([]byte{0x3c}, 4099)},
	}
}

// writeBlobs writes specs with Add, or with Reserve for those whose index reserve selects,
// and returns the file and the offsets.
func writeBlobs(t *testing.T, path string, specs []blobSpec, reserve func(i int) bool) ([]byte, []uint64) {
	t.Helper()
	w, err := blob.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w.MaxPending = 1 << 20 // earlier records are still queued while a payload is filled
	var offs []uint64
	for i, b := range specs {
		var off uint64
		if reserve(i) {
			var payload []byte
			var commit func() error
			off, payload, commit, err = w.Reserve(b.dtype, b.n)
			if err != nil {
				t.Fatalf("blob %d: Reserve: %v", i, err)
			}
			if len(payload) != len(b.data) {
				t.Fatalf("blob %d: payload of %d bytes, want %d", i, len(payload), len(b.data))
			}
			copy(payload, b.data)
			err = commit()
		} else {
			off, err = w.Add(b.dtype, b.data, b.n)
		}
		if err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
		offs = append(offs, off)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw, offs
}

// TestReserve checks that blobs written in place through Reserve, alone or interleaved
// with Add's, give the file Add alone gives, and that it reads back.
func TestReserve(t *testing.T) {
	dir := t.TempDir()
	specs := testBlobs()
	want, wantOffs := writeBlobs(t, filepath.Join(dir, "add.bin"), specs, func(int) bool { return false })
	for name, pick := range map[string]func(int) bool{
		"all":  func(int) bool { return true },
		"odd":  func(i int) bool { return i%2 == 1 },
		"even": func(i int) bool { return i%2 == 0 },
	} {
		got, offs := writeBlobs(t, filepath.Join(dir, name+".bin"), specs, pick)
		if !bytes.Equal(got, want) {
			t.Errorf("%s reserved: file differs from Add's (%d bytes, want %d)", name, len(got), len(want))
		}
		if !slices.Equal(offs, wantOffs) {
			t.Errorf("%s reserved: offsets %v, want %v", name, offs, wantOffs)
		}
	}
	r, err := blob.NewReader(want)
	if err != nil {
		t.Fatal(err)
	}
	if r.Count() != len(specs) {
		t.Fatalf("count %d, want %d", r.Count(), len(specs))
	}
	for i, b := range specs {
		dt, data, n, err := r.Blob(wantOffs[i])
		if err != nil || dt != b.dtype || n != b.n {
			t.Fatalf("blob %d: %v %d %v, want %v %d", i, dt, n, err, b.dtype, b.n)
		}
		last := len(data) - 1
		if !bytes.Equal(data[:last], b.data[:last]) {
			t.Errorf("blob %d: payload differs", i)
		}
		if bits := len(data)*8 - b.n*b.dtype.Bits(); data[last] != b.data[last]&(byte(1)<<(8-bits)-1) {
			t.Errorf("blob %d: last byte %#x, want %#x with %d padding bits cleared", i, data[last], b.data[last], bits)
		}
	}
}

// TestReserveUncommitted checks that a reservation blocks other blobs until committed,
// that Close fails on one never committed, and that a late commit fails too.
func TestReserveUncommitted(t *testing.T) {
	w, err := blob.Create(filepath.Join(t.TempDir(), "weight.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add(blob.Float16, make([]byte, 20), 10); err != nil {
		t.Fatal(err)
	}
	off, _, commit, err := w.Reserve(blob.Float16, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add(blob.Float16, make([]byte, 20), 10); err == nil || !strings.Contains(err.Error(), "not committed") {
		t.Errorf("Add during a reservation: %v, want an error", err)
	}
	if _, _, _, err := w.Reserve(blob.Float16, 10); err == nil {
		t.Errorf("a second Reserve during a reservation succeeded")
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "never committed") {
		t.Errorf("Close with a reservation at %d uncommitted: %v, want an error", off, err)
	}
	if err := commit(); err == nil {
		t.Errorf("commit after Close succeeded")
	}
}

// TestReserveUnavailable checks ErrNoReserve for a Writer on a stream it did not create.
func TestReserveUnavailable(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "weight.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := blob.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := w.Reserve(blob.Float16, 10); !errors.Is(err, blob.ErrNoReserve) {
		t.Errorf("Reserve on NewWriter's stream: %v, want ErrNoReserve", err)
	}
	if _, err := w.Add(blob.Float16, make([]byte, 20), 10); err != nil {
		t.Errorf("Add after an unavailable Reserve: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
