package coreml

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
)

// MLMultiArrayDataType values and widths (Apple's MLMultiArray.h; the same
// numbers as ArrayFeatureType in coremltools' mlmodel/format/FeatureTypes.proto).
func TestDataType(t *testing.T) {
	for _, tc := range []struct {
		dt   DataType
		num  int
		size int
	}{
		{Float64, 65600, 8}, {Float32, 65568, 4}, {Float16, 65552, 2}, {Int32, 131104, 4},
		{DataType(131080), 131080, 0}, // Int8 (macOS 26): not one lilims passes
	} {
		if int(tc.dt) != tc.num || tc.dt.Size() != tc.size {
			t.Errorf("%v: value %d size %d, want %d and %d", tc.dt, int(tc.dt), tc.dt.Size(), tc.num, tc.size)
		}
	}
}

func TestRowMajorStrides(t *testing.T) {
	for _, tc := range []struct {
		shape, want []int
		err         string
	}{
		// causal_mask of a prefill chunk of 64 over a context of 2048 (Phi-2 export).
		{[]int{1, 1, 64, 2048}, []int{131072, 131072, 2048, 1}, ""},
		{[]int{1, 64, 51200}, []int{3276800, 51200, 1}, ""}, // Phi-2 prefill logits
		{[]int{1}, []int{1}, ""},
		{[]int{}, []int{}, ""}, // a scalar
		{[]int{3, 0, 2}, []int{0, 2, 1}, ""},
		{[]int{2, -1}, nil, "negative"},
		{[]int{1 << 20, 1 << 20}, nil, "more than"},
	} {
		got, err := RowMajorStrides(tc.shape)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("RowMajorStrides(%v): error %v, want %q", tc.shape, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("RowMajorStrides(%v) = %v, %v; want %v", tc.shape, got, err, tc.want)
		}
	}
}

// The causal mask's two values are exact in fp16: 0 → 0x0000 and −1e4 → 0xF0E2
// (sign 1, exponent 13+15 = 28, mantissa (10000/8192 − 1)·1024 = 226).
func TestSetFloat32sFP16(t *testing.T) {
	a, err := NewArray(Float16, []int{1, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetFloat32s([]float32{0, -1e4, -1e4, 0, 0, -1e4}); err != nil {
		t.Fatal(err)
	}
	want := []uint16{0, 0xF0E2, 0xF0E2, 0, 0, 0xF0E2}
	for i, w := range want {
		if got := binary.LittleEndian.Uint16(a.Data[2*i:]); got != w {
			t.Errorf("element %d = %#04x, want %#04x", i, got, w)
		}
	}
	back, _ := a.Float32s()
	if !slices.Equal(back, []float32{0, -1e4, -1e4, 0, 0, -1e4}) {
		t.Errorf("round trip = %v", back)
	}
}

// A strided (padded) array reads back in row-major order, and CopyTo fills a padded
// destination the way the mutable-bytes handler's strides ask.
func TestStrides(t *testing.T) {
	src, _ := NewArray(Int32, []int{2, 3})
	if err := src.SetInt32s([]int32{1, 2, 3, 4, 5, 6}); err != nil {
		t.Fatal(err)
	}
	// Rows padded to 8 elements (32 bytes), as a 64-byte-aligned buffer might be.
	dst := &Array{Type: Int32, Shape: []int{2, 3}, Strides: []int{8, 1}, Data: make([]byte, 4*(8+3))}
	if err := src.CopyTo(dst); err != nil {
		t.Fatal(err)
	}
	raw := make([]int32, 11)
	for i := range raw {
		raw[i] = int32(binary.LittleEndian.Uint32(dst.Data[4*i:]))
	}
	if want := []int32{1, 2, 3, 0, 0, 0, 0, 0, 4, 5, 6}; !slices.Equal(raw, want) {
		t.Errorf("padded layout = %v, want %v", raw, want)
	}

	// Logits [1, 2, 3] as fp32 with padded rows and as a transposed (column-major) layout.
	for _, tc := range []struct {
		name    string
		strides []int
		data    []float32 // memory
	}{
		{"padded", []int{10, 5, 1}, []float32{0.5, -1, 2, 9, 9, 3.25, 4, -5, 9, 9}},
		{"column-major", []int{6, 1, 2}, []float32{0.5, 3.25, -1, 4, 2, -5}},
	} {
		a := &Array{Type: Float32, Shape: []int{1, 2, 3}, Strides: tc.strides, Data: make([]byte, 4*len(tc.data))}
		for i, v := range tc.data {
			binary.LittleEndian.PutUint32(a.Data[4*i:], math.Float32bits(v))
		}
		got, err := a.Float32s()
		if want := []float32{0.5, -1, 2, 3.25, 4, -5}; err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: Float32s = %v, %v; want %v", tc.name, got, err, want)
		}
	}
}

func TestArrayErrors(t *testing.T) {
	i32, _ := NewArray(Int32, []int{1, 4})
	f16, _ := NewArray(Float16, []int{2, 2})
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"too few values", i32.SetInt32s([]int32{1, 2, 3}), "3 values for an array of shape [1 4]"},
		{"too many values", f16.SetFloat32s(make([]float32, 5)), "5 values for an array of shape [2 2]"},
		{"int32 into float", f16.SetInt32s([]int32{1, 2, 3, 4}), "cannot store int32 values in a float16 array"},
		{"float into int32", i32.SetFloat32s([]float32{1, 2, 3, 4}), "cannot store float values in a int32 array"},
		{"floats of int32", func() error { _, err := i32.Float32s(); return err }(), "holds no float values"},
		{"short data", func() error {
			a := &Array{Type: Float32, Shape: []int{1, 2, 3}, Strides: []int{10, 5, 1}, Data: make([]byte, 4*7)}
			_, err := a.Float32s()
			return err
		}(), "needs 32 bytes, the array holds 28"},
		{"rank mismatch", func() error {
			a := &Array{Type: Float32, Shape: []int{2, 3}, Strides: []int{3}, Data: make([]byte, 24)}
			_, err := a.Float32s()
			return err
		}(), "1 strides for a shape of rank 2"},
		{"negative stride", func() error {
			a := &Array{Type: Float32, Shape: []int{2}, Strides: []int{-1}, Data: make([]byte, 8)}
			_, err := a.Float32s()
			return err
		}(), "negative"},
		{"huge stride", func() error {
			a := &Array{Type: Float16, Shape: []int{4, 2}, Strides: []int{1 << 40, 1}, Data: make([]byte, 16)}
			_, err := a.Float32s()
			return err
		}(), "reach beyond"},
		{"unknown type", func() error { _, err := NewArray(DataType(131080), []int{2}); return err }(), "unsupported data type"},
		{"copy shape", i32.CopyTo(&Array{Type: Int32, Shape: []int{4, 1}, Strides: []int{1, 1}, Data: make([]byte, 16)}), "copy of shape [1 4] into shape [4 1]"},
		{"copy type", i32.CopyTo(f16), "copy of a int32 array into a float16 array"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}
