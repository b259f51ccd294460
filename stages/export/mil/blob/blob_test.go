package blob_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/x448/float16"
	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// oracleDir holds .mlpackage files written by coremltools 9.1 with the
// weights they were built from as .npy files (see its README.txt).
const oracleDir = "../../../../testdata/oracle/coreml"

// blobRefs returns the blob-backed values of a package's program, keyed
// "function/const-output-name" for const ops and "function/op-type.input"
// for constexpr value bindings.
func blobRefs(t *testing.T, pkg string) map[string]*milpb.Value {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(oracleDir, pkg+".mlpackage", "Data", "com.apple.CoreML", "model.mlmodel"))
	if err != nil {
		t.Fatal(err)
	}
	m := new(milpb.Model)
	if err := proto.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
	refs := map[string]*milpb.Value{}
	for fname, fn := range m.GetMlProgram().GetFunctions() {
		for _, block := range fn.GetBlockSpecializations() {
			for _, op := range block.GetOperations() {
				if v := op.GetAttributes()["val"]; v.GetBlobFileValue() != nil {
					refs[fname+"/"+op.GetOutputs()[0].GetName()] = v
				}
				for in, arg := range op.GetInputs() {
					for _, b := range arg.GetArguments() {
						if v := b.GetValue(); v.GetBlobFileValue() != nil {
							refs[fname+"/"+op.GetType()+"."+in] = v
						}
					}
				}
			}
		}
	}
	return refs
}

func elemCount(v *milpb.Value) int {
	n := 1
	for _, d := range v.GetType().GetTensorType().GetDimensions() {
		n *= int(d.GetConstant().GetSize())
	}
	return n
}

func openOracle(t *testing.T, pkg string) *blob.Reader {
	t.Helper()
	r, err := blob.Open(filepath.Join(oracleDir, pkg+".mlpackage", "Data", "com.apple.CoreML", "weights", "weight.bin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestOracleWeights reads every blob the oracle programs refer to and
// compares it with the tensor coremltools stored it from.
func TestOracleWeights(t *testing.T) {
	tests := []struct {
		pkg, ref, npy string
		dtype         blob.DataType
	}{
		{"linear_fp16", "main/y_weight_0", "extra_weight_fp16.npy", blob.Float16},
		{"linear_fp16", "main/y_bias_0", "extra_bias_fp16.npy", blob.Float16},
		{"linear_int4_blockwise", "main/constexpr_blockwise_shift_scale.data", "extra_data_int4_values_as_int8.npy", blob.Int4},
		{"linear_int4_blockwise", "main/constexpr_blockwise_shift_scale.scale", "extra_scale_fp16.npy", blob.Float16},
		{"linear_int4_blockwise", "main/constexpr_blockwise_shift_scale.offset", "extra_offset_int4_values_as_int8.npy", blob.Int4},
		{"linear_int4_blockwise", "main/y_bias_1", "extra_bias_fp16.npy", blob.Float16},
		{"linear_uint4_blockwise", "main/constexpr_blockwise_shift_scale.data", "extra_data_uint4_values_as_int8.npy", blob.UInt4},
		{"linear_uint4_blockwise", "main/constexpr_blockwise_shift_scale.scale", "extra_scale_fp16.npy", blob.Float16},
		{"linear_uint4_blockwise", "main/constexpr_blockwise_shift_scale.offset", "extra_offset_uint4_values_as_int8.npy", blob.UInt4},
		{"linear_lut4", "main/constexpr_lut_to_dense.indices", "extra_indices_uint4_values_as_uint8.npy", blob.UInt4},
		{"linear_lut4", "main/constexpr_lut_to_dense.lut", "extra_lut_fp16.npy", blob.Float16},
		{"linear_lut4", "main/y_bias_1", "extra_bias_fp16.npy", blob.Float16},
		{"multifunction_prefill_decode", "prefill/h_weight_0", "extra_weight_fp16.npy", blob.Float16},
		{"multifunction_prefill_decode", "decode/h_weight_0", "extra_weight_fp16.npy", blob.Float16},
		{"multifunction_prefill_decode", "decode/h_bias_0", "extra_bias_fp16.npy", blob.Float16},
	}
	for _, tc := range tests {
		t.Run(tc.pkg+"/"+tc.ref, func(t *testing.T) {
			v := blobRefs(t, tc.pkg)[tc.ref]
			if v == nil {
				t.Fatalf("program has no blob value %s", tc.ref)
			}
			r := openOracle(t, tc.pkg)
			want, err := readNpy(filepath.Join(oracleDir, tc.pkg+".ref", tc.npy))
			if err != nil {
				t.Fatal(err)
			}
			off := v.GetBlobFileValue().GetOffset()
			dtype, data, n, err := r.Blob(off)
			if err != nil {
				t.Fatal(err)
			}
			if dtype != tc.dtype || n != want.count() {
				t.Fatalf("blob at %d: %v × %d, want %v × %d", off, dtype, n, tc.dtype, want.count())
			}
			// The program's declared type must agree with the blob.
			if _, err := r.Tensor(off, v.GetType().GetTensorType().GetDataType(), elemCount(v)); err != nil {
				t.Error(err)
			}
			if dtype.Bits() >= 8 {
				// fp16 payloads are the numpy array's bytes, bit for bit.
				if !bytes.Equal(data, want.data) {
					t.Errorf("payload differs from %s", tc.npy)
				}
				return
			}
			// 4-bit payloads unpack (low nibble first) to the stored values;
			// Int4 nibbles are two's complement.
			got := blob.UnpackBits(4, data, n)
			for i, u := range got {
				g := int(u)
				if dtype == blob.Int4 {
					g = int(int8(u<<4) >> 4)
				}
				w := int(want.data[i])
				if want.descr == "|i1" {
					w = int(int8(want.data[i]))
				}
				if g != w {
					t.Fatalf("element %d = %d, want %d", i, g, w)
				}
			}
		})
	}
}

func fp16s(b []byte) []float16.Float16 {
	out := make([]float16.Float16, len(b)/2)
	for i := range out {
		out[i] = float16.Frombits(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}

// TestOracleDequantized rebuilds each compressed weight from its blobs and
// compares it bit for bit with the fp16 weight numpy dequantized (README.txt:
// "materializes bit-exactly to the numpy-dequantized fp16 weight").
func TestOracleDequantized(t *testing.T) {
	const rows, cols = 32, 64 // W is [out=32, in=64] in every linear fixture
	tests := []struct {
		pkg     string
		weights func(refs map[string]*milpb.Value, r *blob.Reader) ([]float16.Float16, error)
	}{
		{"linear_int4_blockwise", blockwise},
		{"linear_uint4_blockwise", blockwise},
		{"linear_lut4", func(refs map[string]*milpb.Value, r *blob.Reader) ([]float16.Float16, error) {
			_, idx, n, err := r.Blob(refs["main/constexpr_lut_to_dense.indices"].GetBlobFileValue().GetOffset())
			if err != nil {
				return nil, err
			}
			_, lut, _, err := r.Blob(refs["main/constexpr_lut_to_dense.lut"].GetBlobFileValue().GetOffset())
			if err != nil {
				return nil, err
			}
			// lut is [8, 1, 16, 1]: one 16-entry palette per 4 output rows.
			palettes := fp16s(lut)
			w := make([]float16.Float16, n)
			for i, k := range blob.UnpackBits(4, idx, n) {
				w[i] = palettes[(i/cols)/4*16+int(k)]
			}
			return w, nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.pkg, func(t *testing.T) {
			got, err := tc.weights(blobRefs(t, tc.pkg), openOracle(t, tc.pkg))
			if err != nil {
				t.Fatal(err)
			}
			want, err := readNpy(filepath.Join(oracleDir, tc.pkg+".ref", "extra_weight_dequantized_fp16.npy"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != rows*cols || want.count() != rows*cols {
				t.Fatalf("got %d weights, npy has %d, want %d", len(got), want.count(), rows*cols)
			}
			for i, w := range fp16s(want.data) {
				if got[i].Bits() != w.Bits() {
					t.Fatalf("W[%d,%d] = %v, want %v", i/cols, i%cols, got[i], w)
				}
			}
		})
	}
}

// blockwise applies constexpr_blockwise_shift_scale with block size 32 along
// the input axis: W[o,i] = scale[o,i/32]·(data[o,i] − offset[o,i/32]).
func blockwise(refs map[string]*milpb.Value, r *blob.Reader) ([]float16.Float16, error) {
	const cols, block = 64, 32
	get := func(in string) (blob.DataType, []byte, int, error) {
		return r.Blob(refs["main/constexpr_blockwise_shift_scale."+in].GetBlobFileValue().GetOffset())
	}
	dt, data, n, err := get("data")
	if err != nil {
		return nil, err
	}
	_, scale, _, err := get("scale")
	if err != nil {
		return nil, err
	}
	_, offset, m, err := get("offset")
	if err != nil {
		return nil, err
	}
	ints := func(u []uint8) []int {
		out := make([]int, len(u))
		for i, v := range u {
			out[i] = int(v)
			if dt == blob.Int4 {
				out[i] = int(int8(v<<4) >> 4)
			}
		}
		return out
	}
	q, z, s := ints(blob.UnpackBits(4, data, n)), ints(blob.UnpackBits(4, offset, m)), fp16s(scale)
	w := make([]float16.Float16, n)
	for i := range w {
		b := (i/cols)*(cols/block) + (i%cols)/block
		// |q − z| ≤ 15 and the scale has an 11-bit significand, so the
		// float32 product is exact and Fromfloat32 rounds once, as numpy's
		// fp16 arithmetic does.
		w[i] = float16.Fromfloat32(s[b].Float32() * float32(q[i]-z[b]))
	}
	return w, nil
}

// TestOracleLayout walks each oracle weight.bin the way Core ML does and
// checks that the writer reproduces the file byte for byte from its blobs.
func TestOracleLayout(t *testing.T) {
	tests := []struct {
		pkg     string
		offsets []uint64 // metadata offsets the program refers to
	}{
		// W 4096 B at 128; bias record at alignUp(4224) = 4224.
		{"linear_fp16", []uint64{64, 4224}},
		// data 1024 B at 128 → 1152; scale 128 B → 1344; offset 32 B → 1472.
		{"linear_int4_blockwise", []uint64{64, 1152, 1344, 1472}},
		{"linear_uint4_blockwise", []uint64{64, 1152, 1344, 1472}},
		// indices 1024 B → 1152; lut 256 B at 1216 → 1472.
		{"linear_lut4", []uint64{64, 1152, 1472}},
		// W [24,16] 768 B at 128 → 896; shared by both functions.
		{"multifunction_prefill_decode", []uint64{64, 896}},
	}
	for _, tc := range tests {
		t.Run(tc.pkg, func(t *testing.T) {
			r := openOracle(t, tc.pkg)
			offsets, err := r.Offsets()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(offsets, tc.offsets) {
				t.Errorf("offsets %v, want %v", offsets, tc.offsets)
			}
			var referenced []uint64
			for _, v := range blobRefs(t, tc.pkg) {
				referenced = append(referenced, v.GetBlobFileValue().GetOffset())
			}
			slices.Sort(referenced)
			if referenced = slices.Compact(referenced); !slices.Equal(referenced, tc.offsets) {
				t.Errorf("program refers to %v, want %v", referenced, tc.offsets)
			}

			path := filepath.Join(t.TempDir(), "weight.bin")
			w, err := blob.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, off := range offsets {
				dt, data, n, err := r.Blob(off)
				if err != nil {
					t.Fatal(err)
				}
				got, err := w.Add(dt, data, n)
				if err != nil {
					t.Fatal(err)
				}
				if got != off {
					t.Errorf("writer put blob at %d, coremltools at %d", got, off)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			ours, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := os.ReadFile(filepath.Join(oracleDir, tc.pkg+".mlpackage", "Data", "com.apple.CoreML", "weights", "weight.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, theirs) {
				t.Errorf("rewritten weight.bin (%d B) differs from coremltools' (%d B)", len(ours), len(theirs))
			}
		})
	}
}

// TestRoundTrip writes blobs of many types, including sub-byte types whose
// element count leaves padding, and reads them back.
func TestRoundTrip(t *testing.T) {
	type entry struct {
		dtype  blob.DataType
		values []uint8 // for sub-byte types: unpacked values; else raw bytes
		n      int
		pad    int // expected padding bits
	}
	entries := []entry{
		{blob.Float16, []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c}, 3, 0}, // 1, −2, +Inf
		{blob.Int4, []uint8{0x8, 0x7, 0x1, 0xf, 0x3}, 5, 4},              // −8, 7, 1, −1, 3: odd count
		{blob.UInt4, []uint8{15, 0, 9}, 3, 4},
		{blob.UInt4, []uint8{1, 2, 3, 4}, 4, 0},
		{blob.UInt3, []uint8{1, 2, 3, 4, 5, 6, 7}, 7, 3}, // 21 bits in 3 bytes
		{blob.UInt6, []uint8{63, 0, 42}, 3, 6},           // 18 bits in 3 bytes
		{blob.UInt1, []uint8{1, 0, 1, 1, 0, 0, 1, 0, 1}, 9, 7},
		{blob.UInt2, []uint8{3, 2, 1}, 3, 2},
		{blob.Float32, make([]byte, 4*100), 100, 0},
		{blob.Int8, []byte{0x80}, 1, 0},
		{blob.UInt8, nil, 0, 0}, // an empty tensor is legal
	}
	path := filepath.Join(t.TempDir(), "weight.bin")
	w, err := blob.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	offsets := make([]uint64, len(entries))
	for i, e := range entries {
		data := e.values
		if e.dtype.Bits() < 8 {
			data = blob.PackBits(e.dtype.Bits(), e.values)
		}
		if offsets[i], err = w.Add(e.dtype, data, e.n); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if offsets[i]%blob.Alignment != 0 {
			t.Errorf("entry %d at %d, not 64-byte aligned", i, offsets[i])
		}
	}
	if offsets[0] != 64 { // the first record follows the 64-byte header
		t.Errorf("first blob at %d, want 64", offsets[0])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r, err := blob.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Count() != len(entries) {
		t.Errorf("header count %d, want %d", r.Count(), len(entries))
	}
	walked, err := r.Offsets()
	if err != nil || !slices.Equal(walked, offsets) {
		t.Errorf("walked offsets %v (%v), want %v", walked, err, offsets)
	}
	raw, _ := os.ReadFile(path)
	for i, e := range entries {
		dt, data, n, err := r.Blob(offsets[i])
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if dt != e.dtype || n != e.n {
			t.Errorf("entry %d: %v × %d, want %v × %d", i, dt, n, e.dtype, e.n)
		}
		if pad := binary.LittleEndian.Uint64(raw[offsets[i]+24:]); pad != uint64(e.pad) {
			t.Errorf("entry %d: padding %d bits, want %d", i, pad, e.pad)
		}
		got := data
		if e.dtype.Bits() < 8 {
			got = blob.UnpackBits(e.dtype.Bits(), data, n)
		}
		if !bytes.Equal(got, e.values) {
			t.Errorf("entry %d: read %v, wrote %v", i, got, e.values)
		}
	}
	// The file ends right after the last payload (an empty one here).
	if want := int(offsets[len(offsets)-1]) + blob.MetadataSize; r.Size() != want {
		t.Errorf("file is %d bytes, want %d", r.Size(), want)
	}
}

func TestPackBits(t *testing.T) {
	tests := []struct {
		bits   int
		values []uint8
		packed []byte
	}{
		// Element 2k in the low nibble, 2k+1 in the high nibble; −8 → 0x8, −1 → 0xF.
		{4, []uint8{0x8, 0x7, 0x1, 0xf, 0x3}, []byte{0x78, 0xf1, 0x03}},
		// 6-bit: 63 → bits 0–5, 1 → bits 6–11 (crosses into byte 1).
		{6, []uint8{63, 1}, []byte{0x7f, 0x00}},
		// 3-bit: 5 (101), 7 (111), 2 (010) → 0b10_111_101, then 0b0.
		{3, []uint8{5, 7, 2}, []byte{0xbd, 0x00}},
		{1, []uint8{1, 0, 0, 0, 0, 0, 0, 1, 1}, []byte{0x81, 0x01}},
		// Values wider than the field keep only their low bits.
		{2, []uint8{0xff, 0}, []byte{0x03}},
	}
	for _, tc := range tests {
		got := blob.PackBits(tc.bits, tc.values)
		if !bytes.Equal(got, tc.packed) {
			t.Errorf("PackBits(%d, %v) = % x, want % x", tc.bits, tc.values, got, tc.packed)
		}
		mask := uint8(1)<<tc.bits - 1
		for i, v := range blob.UnpackBits(tc.bits, tc.packed, len(tc.values)) {
			if v != tc.values[i]&mask {
				t.Errorf("UnpackBits(%d) element %d = %d, want %d", tc.bits, i, v, tc.values[i]&mask)
			}
		}
	}
}

func TestAddRejects(t *testing.T) {
	w, err := blob.Create(filepath.Join(t.TempDir(), "weight.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tests := []struct {
		name  string
		dtype blob.DataType
		data  []byte
		n     int
	}{
		{"unknown type", blob.DataType(99), []byte{1}, 1},
		{"fp16 size mismatch", blob.Float16, []byte{1, 2, 3}, 2},
		{"int4 size mismatch", blob.Int4, []byte{1, 2}, 5}, // 5 nibbles need 3 bytes
		{"negative count", blob.UInt8, nil, -1},
	}
	for _, tc := range tests {
		if _, err := w.Add(tc.dtype, tc.data, tc.n); err == nil {
			t.Errorf("%s: Add succeeded", tc.name)
		}
	}
	if w.Count() != 0 {
		t.Errorf("count %d after rejected adds, want 0", w.Count())
	}
}

func TestMILTypes(t *testing.T) {
	// BlobDataType and MIL DataType numbers differ (MIL.proto's DataType vs StorageFormat.hpp's BlobDataType).
	tests := []struct {
		mil  milpb.DataType
		blob blob.DataType
	}{
		{milpb.DataType_FLOAT16, blob.Float16}, // 10 ↔ 1
		{milpb.DataType_FLOAT32, blob.Float32}, // 11 ↔ 2
		{milpb.DataType_UINT8, blob.UInt8},     // 31 ↔ 3
		{milpb.DataType_INT8, blob.Int8},       // 21 ↔ 4
		{milpb.DataType_INT4, blob.Int4},       // 25 ↔ 8
		{milpb.DataType_UINT4, blob.UInt4},     // 35 ↔ 11
		{milpb.DataType_INT32, blob.Int32},     // 23 ↔ 14
	}
	for _, tc := range tests {
		got, err := blob.FromMIL(tc.mil)
		if err != nil || got != tc.blob || tc.blob.MIL() != tc.mil {
			t.Errorf("FromMIL(%v) = %v, %v; %v.MIL() = %v", tc.mil, got, err, tc.blob, tc.blob.MIL())
		}
	}
	for _, bad := range []milpb.DataType{milpb.DataType_BOOL, milpb.DataType_STRING, milpb.DataType_INT64} {
		if _, err := blob.FromMIL(bad); err == nil {
			t.Errorf("FromMIL(%v) succeeded", bad)
		}
	}
}

// validFile is a storage file with one UInt4 blob of 3 elements at 64.
func validFile(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "w.bin")
	w, err := blob.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add(blob.UInt4, blob.PackBits(4, []uint8{1, 2, 3}), 3); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestCorrupt(t *testing.T) {
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	}
	put64 := func(off int, v uint64) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint64(b[off:], v); return b }
	}
	tests := []struct {
		name    string
		corrupt func([]byte) []byte
		offset  uint64 // blob offset to read
		atOpen  bool   // the error comes from NewReader
		trunc   bool   // the error wraps ErrTruncated
	}{
		{"short header", func(b []byte) []byte { return b[:40] }, 64, true, true},
		{"version 1", put32(4, 1), 64, true, false},
		{"count too large", put32(0, 1000), 64, true, true},
		{"bad sentinel", put32(64, 0xCAFEBABE), 64, false, false},
		{"unknown dtype", put32(68, 99), 64, false, false},
		{"payload past end", put64(72, 1<<40), 64, false, true},
		{"size overflows", put64(72, ^uint64(0)), 64, false, true},
		{"payload offset past end", put64(80, ^uint64(0)-3), 64, false, true},
		{"payload inside metadata", put64(80, 70), 64, false, false},
		{"padding 8 bits", put64(88, 8), 64, false, false},
		{"padding not a nibble", put64(88, 3), 64, false, false},
		{"truncated payload", func(b []byte) []byte { return b[:len(b)-1] }, 64, false, true},
		{"offset past end", nil, 1 << 20, false, true},
		{"offset in header", nil, 0, false, false},
		{"unaligned offset", nil, 65, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := validFile(t)
			if tc.corrupt != nil {
				raw = tc.corrupt(raw)
			}
			r, err := blob.NewReader(raw)
			if err == nil {
				_, _, _, err = r.Blob(tc.offset)
				if tc.atOpen {
					t.Fatalf("NewReader accepted the file")
				}
			} else if !tc.atOpen {
				t.Fatalf("NewReader: %v", err)
			}
			if err == nil {
				t.Fatal("corrupt blob read without error")
			}
			var fe *blob.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if !tc.atOpen && fe.Offset != tc.offset {
				t.Errorf("error names offset %d, want %d: %v", fe.Offset, tc.offset, err)
			}
			if errors.Is(err, blob.ErrTruncated) != tc.trunc {
				t.Errorf("errors.Is(ErrTruncated) = %v, want %v: %v", !tc.trunc, tc.trunc, err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := blob.Open(filepath.Join(dir, "missing.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	empty := filepath.Join(dir, "empty.bin")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := blob.Open(empty); !errors.Is(err, blob.ErrTruncated) {
		t.Errorf("empty file: %v, want ErrTruncated", err)
	}
	r, err := blob.NewReader(validFile(t))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, _, _, err := r.Blob(64); err == nil {
		t.Error("Blob after Close succeeded")
	}
}

// FuzzReader checks that no input makes the reader panic.
func FuzzReader(f *testing.F) {
	for _, pkg := range []string{"linear_fp16", "linear_int4_blockwise", "linear_lut4"} {
		raw, err := os.ReadFile(filepath.Join(oracleDir, pkg+".mlpackage", "Data", "com.apple.CoreML", "weights", "weight.bin"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw[:min(len(raw), 512)], uint64(64))
	}
	f.Fuzz(func(t *testing.T, raw []byte, off uint64) {
		r, err := blob.NewReader(raw)
		if err != nil {
			return
		}
		r.Offsets()
		if dt, data, n, err := r.Blob(off); err == nil && dt.PayloadSize(n) != len(data) {
			t.Errorf("%v × %d in %d bytes", dt, n, len(data))
		}
	})
}

// failingFile is an io.WriteSeeker whose writes fail once more than limit bytes are written.
type failingFile struct {
	pos, size, limit int64
}

func (f *failingFile) Seek(off int64, whence int) (int64, error) { f.pos = off; return off, nil }
func (f *failingFile) Write(p []byte) (int, error) {
	if f.size+int64(len(p)) > f.limit {
		return 0, errors.New("disk full")
	}
	f.size += int64(len(p))
	return len(p), nil
}

// TestWriteBehind: Add queues a record and returns before it is written; OnWritten gets
// each record's data once it is in the file, in order; a failed write is reported by a
// later Add (here the next, as MaxPending 1 makes each Add wait for the record before it)
// or by Close, and sticks.
func TestWriteBehind(t *testing.T) {
	for _, tc := range []struct {
		name  string
		adds  int // records added; the first one's payload fails
		queue int64
	}{
		{"next Add", 2, 1},
		{"Close", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := blob.NewWriter(&failingFile{limit: 64 + 64 + 500})
			if err != nil {
				t.Fatal(err)
			}
			w.MaxPending = tc.queue
			var errs []error
			for range tc.adds {
				_, err := w.Add(blob.UInt8, make([]byte, 1000), 1000)
				errs = append(errs, err)
			}
			if errs[0] != nil {
				t.Fatalf("first Add: %v; its record is written after it returns", errs[0])
			}
			cerr := w.Close()
			failed := errs[len(errs)-1]
			if tc.adds == 1 {
				failed = cerr
			}
			if failed == nil || !strings.Contains(failed.Error(), "disk full") {
				t.Fatalf("adds %v, close %v: want the failed write reported", errs, cerr)
			}
			if _, err := w.Add(blob.UInt8, []byte{1}, 1); err == nil {
				t.Error("Add after a failed write succeeded")
			}
		})
	}
	t.Run("OnWritten", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "weight.bin")
		w, err := blob.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		var written [][]byte
		w.OnWritten = func(b []byte) {
			if st, err := os.Stat(path); err != nil || st.Size() < int64(64+len(b)) {
				t.Errorf("OnWritten before the data is in the file (%v)", err)
			}
			written = append(written, b)
		}
		var added [][]byte
		for i := range 50 {
			b := bytes.Repeat([]byte{byte(i)}, 1000+i)
			added = append(added, b)
			if _, err := w.Add(blob.UInt8, b, len(b)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if len(written) != len(added) {
			t.Fatalf("OnWritten called %d times for %d records", len(written), len(added))
		}
		for i := range added {
			if &written[i][0] != &added[i][0] {
				t.Fatalf("record %d: OnWritten out of order", i)
			}
		}
	})
}
