package qweights

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/lilims/lilims/stages/export/mil/blob"
)

// A lut+blockwise tensor round-trips through the artifact: packCodes writes MIL's
// sub-byte packing (as blob.UnpackBits reads it), Rows cuts rows that start mid-byte, and
// Dequantize gives scale·(code − offset).
func TestLUTBlockwiseArtifact(t *testing.T) {
	const out, in = 3, 12 // 3-bit indices: row 1 starts at bit 36, mid-byte
	codes := codeRange(-4, 8)
	q := make([]int32, out*in)
	for i := range q {
		q[i] = int32(i*5%8) - 4
	}
	data := make([]byte, (out*in*3+7)/8)
	packCodes(data, 0, q, "uint3", codes)
	for i, v := range blob.UnpackBits(3, data, out*in) {
		if codes[v] != q[i] {
			t.Fatalf("element %d: index %d is code %d, want %d", i, v, codes[v], q[i])
		}
	}
	ti := TensorInfo{Name: "w", Encoding: LUTBlockwise, Shape: []int{out, in}, DType: "uint3", BlockSize: 4, Offset: "fp16"}
	scale := halves([]uint16{toF16(0.5), toF16(1), toF16(2), toF16(4), toF16(0.25), toF16(8), toF16(3), toF16(1.5), toF16(-1)})
	off := halves([]uint16{toF16(0), toF16(1), toF16(-1), toF16(0.5), toF16(2), toF16(0), toF16(3), toF16(-2.5), toF16(0.125)})
	dir := t.TempDir()
	w, err := Create(dir, "test", []TensorInfo{ti})
	if err != nil {
		t.Fatal(err)
	}
	for key, b := range map[string][]byte{"data": data, "lut": codeBytes(codes), "scale": scale, "offset": off} {
		if err := w.WriteTensorAt("w."+key, 0, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(&Manifest{Scheme: "test", Tensors: []TensorInfo{ti}}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Clean(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	full, ok := s.Lookup("w")
	if !ok {
		t.Fatal("w not found")
	}
	all := full.Dequantize()
	for i, v := range all {
		j := i / 4
		want := f16ToF32(uint16(scale[2*j])|uint16(scale[2*j+1])<<8) * (float32(q[i]) - f16ToF32(uint16(off[2*j])|uint16(off[2*j+1])<<8))
		if v != want {
			t.Fatalf("element %d = %g, want %g", i, v, want)
		}
	}
	row, err := full.Rows(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := row.Dequantize(); !slices.Equal(got, all[in:]) {
		t.Errorf("rows [1, 3) = %v, want %v", got, all[in:])
	}
}
