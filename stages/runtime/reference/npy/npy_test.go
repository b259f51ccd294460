package npy

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// The fixtures were written by NumPy: case0_in_x.npy is fp16 [1,64]; pos is int32 [1].
func TestReadFixtures(t *testing.T) {
	tests := []struct {
		path  string
		dtype Dtype
		shape []int
		first float64
	}{
		// kv_cache_state.ref.json lists q[0] = 0.78173828125 (an exact fp16 value).
		{"../../../../testdata/oracle/coreml/kv_cache_state.ref/step0_in_q.npy", Float16, []int{1, 1, 16}, 0.78173828125},
		// pos for the first call is 0, the second 1.
		{"../../../../testdata/oracle/coreml/kv_cache_state.ref/step1_in_pos.npy", Int32, []int{1}, 1},
		// README.txt: linear_fp16 expected y[0] = 0.671755 (stored as float32).
		{"../../../../testdata/oracle/coreml/linear_fp16.ref/case0_out_y.npy", "", []int{1, 32}, 0.671755},
	}
	for _, tc := range tests {
		a, err := ReadFile(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if tc.dtype != "" && a.Dtype != tc.dtype {
			t.Errorf("%s: dtype %s, want %s", tc.path, a.Dtype, tc.dtype)
		}
		if len(a.Shape) != len(tc.shape) {
			t.Fatalf("%s: shape %v, want %v", tc.path, a.Shape, tc.shape)
		}
		for i := range a.Shape {
			if a.Shape[i] != tc.shape[i] {
				t.Fatalf("%s: shape %v, want %v", tc.path, a.Shape, tc.shape)
			}
		}
		if got := a.Float64s()[0]; math.Abs(got-tc.first) > 5e-6 {
			t.Errorf("%s: first element %v, want %v", tc.path, got, tc.first)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		a    Array
	}{
		{"scalar f4", Array{Float32, nil, []byte{0, 0, 0x80, 0x3f}}},
		{"vector i4", Array{Int32, []int{2}, []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}}},
		{"matrix f2", Array{Float16, []int{2, 1}, []byte{0x00, 0x3c, 0x00, 0xc0}}},
		{"bool", Array{Bool, []int{3}, []byte{1, 0, 1}}},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		if err := Write(&buf, &tc.a); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// NumPy pads the preamble so data starts on a 64-byte boundary.
		if (buf.Len()-len(tc.a.Data))%64 != 0 {
			t.Errorf("%s: preamble of %d bytes is not 64-aligned", tc.name, buf.Len()-len(tc.a.Data))
		}
		got, err := Read(&buf)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Dtype != tc.a.Dtype || len(got.Shape) != len(tc.a.Shape) || !bytes.Equal(got.Data, tc.a.Data) {
			t.Errorf("%s: round trip gave %+v, want %+v", tc.name, got, tc.a)
		}
	}
	// 1.0 and -2.0 in fp16 are 0x3c00 and 0xc000.
	a := Array{Float16, []int{2}, []byte{0x00, 0x3c, 0x00, 0xc0}}
	if v := a.Float64s(); v[0] != 1 || v[1] != -2 {
		t.Errorf("fp16 decode: %v, want [1 -2]", v)
	}
}

func TestBadInput(t *testing.T) {
	good := func(hdr string, data []byte) []byte {
		var b bytes.Buffer
		b.Write(magic)
		b.Write([]byte{1, 0, byte(len(hdr)), 0})
		b.WriteString(hdr)
		b.Write(data)
		return b.Bytes()
	}
	tests := []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"bad magic", []byte("\x93NUMPX\x01\x00")},
		{"version 9", append(append([]byte{}, magic...), 9, 0, 0, 0)},
		{"big endian", good("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", []byte{0, 0, 0, 0})},
		{"fortran", good("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", []byte{0, 0, 0, 0})},
		{"truncated data", good("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", []byte{0, 0, 0, 0})},
		{"huge shape", good("{'descr': '<f4', 'fortran_order': False, 'shape': (2000000000, 2000000000), }", nil)},
		{"missing shape", good("{'descr': '<f4', 'fortran_order': False}", nil)},
	}
	for _, tc := range tests {
		_, err := Read(bytes.NewReader(tc.file))
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", tc.name, err)
		}
	}
}
