package coreml

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// DataType is MLMultiArrayDataType, the element type of an MLMultiArray.
type DataType int

// The NSInteger values of MLMultiArrayDataType (Apple's MLMultiArray.h): the
// same numbers as ArrayFeatureType.ArrayDataType in the model description (coremltools' mlmodel/format/FeatureTypes.proto), a type
// class in bits 16+ (1 float, 2 int) and the width in bits below.
const (
	Float64 DataType = 0x10040 // 65600
	Float32 DataType = 0x10020 // 65568
	Float16 DataType = 0x10010 // 65552, macOS 12
	Int32   DataType = 0x20020 // 131104
)

// Size is the width of one element in bytes, 0 for a type this package does not handle.
func (d DataType) Size() int {
	switch d {
	case Float64:
		return 8
	case Float32, Int32:
		return 4
	case Float16:
		return 2
	}
	return 0
}

func (d DataType) String() string {
	switch d {
	case Float64:
		return "float64"
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	case Int32:
		return "int32"
	}
	return fmt.Sprintf("DataType(%#x)", int(d))
}

// maxElements bounds the elements of one array this package builds or reads: 1<<31 is far
// beyond any input or logits tensor (Phi-2 prefill logits: 64·51200 ≈ 3.3M) and keeps
// every byte count inside an int on 32-bit targets too.
const maxElements = 1 << 31

// Array is the host side of an MLMultiArray: elements of one DataType laid out in Data at
// Strides (in elements, as Core ML counts them; -[MLMultiArray strides]) over Shape. The arrays
// this package builds are row-major; the ones Core ML returns may be padded (MLMultiArray.strides),
// so readers always go through Strides.
type Array struct {
	Type    DataType
	Shape   []int
	Strides []int
	Data    []byte // little-endian elements, as on every Apple platform
}

// RowMajorStrides returns the strides, in elements, of a dense row-major array: the last
// axis has stride 1 and each earlier axis the product of the dimensions after it.
func RowMajorStrides(shape []int) ([]int, error) {
	if _, err := elementCount(shape); err != nil {
		return nil, err
	}
	strides := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		s *= shape[i]
	}
	return strides, nil
}

// elementCount is the product of shape, checked for negative dimensions and overflow.
func elementCount(shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("coreml: shape %v: dimension %d is negative", shape, i)
		}
		if d != 0 && n > maxElements/d {
			return 0, fmt.Errorf("coreml: shape %v holds more than %d elements", shape, maxElements)
		}
		n *= d
	}
	return n, nil
}

// NewArray returns a zeroed row-major array.
func NewArray(t DataType, shape []int) (*Array, error) {
	if t.Size() == 0 {
		return nil, fmt.Errorf("coreml: unsupported data type %v", t)
	}
	n, err := elementCount(shape)
	if err != nil {
		return nil, err
	}
	strides, _ := RowMajorStrides(shape)
	return &Array{Type: t, Shape: append([]int(nil), shape...), Strides: strides, Data: make([]byte, n*t.Size())}, nil
}

// Len is the number of elements of a's shape.
func (a *Array) Len() int {
	n, err := elementCount(a.Shape)
	if err != nil {
		return 0
	}
	return n
}

// check verifies that Shape, Strides and Data agree: every element a strided walk reaches
// lies inside Data. It is what stands between a malformed array from the framework (or a
// wrong stride) and an out-of-range read.
func (a *Array) check() error {
	size := a.Type.Size()
	if size == 0 {
		return fmt.Errorf("coreml: unsupported data type %v", a.Type)
	}
	if len(a.Strides) != len(a.Shape) {
		return fmt.Errorf("coreml: %d strides for a shape of rank %d", len(a.Strides), len(a.Shape))
	}
	n, err := elementCount(a.Shape)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	last := 0 // offset, in elements, of the last element
	for i, d := range a.Shape {
		s := a.Strides[i]
		if s < 0 {
			return fmt.Errorf("coreml: stride %d of axis %d is negative", s, i)
		}
		if s > 0 && d-1 > (maxElements-last)/s {
			return fmt.Errorf("coreml: strides %v over shape %v reach beyond %d elements", a.Strides, a.Shape, maxElements)
		}
		last += (d - 1) * s
	}
	if need := (last + 1) * size; need > len(a.Data) {
		return fmt.Errorf("coreml: shape %v at strides %v needs %d bytes, the array holds %d", a.Shape, a.Strides, need, len(a.Data))
	}
	return nil
}

// walk calls f with the byte offset of every element in row-major order of the shape.
func (a *Array) walk(f func(off int)) {
	n, _ := elementCount(a.Shape)
	if n == 0 {
		return
	}
	size := a.Type.Size()
	idx := make([]int, len(a.Shape))
	for range n {
		off := 0
		for i, x := range idx {
			off += x * a.Strides[i]
		}
		f(off * size)
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < a.Shape[i] {
				break
			}
			idx[i] = 0
		}
	}
}

// SetInt32s stores v, in row-major order, into an Int32 array.
func (a *Array) SetInt32s(v []int32) error {
	if a.Type != Int32 {
		return fmt.Errorf("coreml: cannot store int32 values in a %v array", a.Type)
	}
	if err := a.checkLen(len(v)); err != nil {
		return err
	}
	i := 0
	a.walk(func(off int) {
		binary.LittleEndian.PutUint32(a.Data[off:], uint32(v[i]))
		i++
	})
	return nil
}

// SetFloat32s stores v, in row-major order, into a float array, rounding to the array's
// precision (fp16: round to nearest even).
func (a *Array) SetFloat32s(v []float32) error {
	if err := a.checkLen(len(v)); err != nil {
		return err
	}
	i := 0
	switch a.Type {
	case Float16:
		a.walk(func(off int) {
			binary.LittleEndian.PutUint16(a.Data[off:], float16.Fromfloat32(v[i]).Bits())
			i++
		})
	case Float32:
		a.walk(func(off int) {
			binary.LittleEndian.PutUint32(a.Data[off:], math.Float32bits(v[i]))
			i++
		})
	case Float64:
		a.walk(func(off int) {
			binary.LittleEndian.PutUint64(a.Data[off:], math.Float64bits(float64(v[i])))
			i++
		})
	default:
		return fmt.Errorf("coreml: cannot store float values in a %v array", a.Type)
	}
	return nil
}

func (a *Array) checkLen(n int) error {
	if err := a.check(); err != nil {
		return err
	}
	if want := a.Len(); n != want {
		return fmt.Errorf("coreml: %d values for an array of shape %v (%d elements)", n, a.Shape, want)
	}
	return nil
}

// Float32s returns the elements of a float array in row-major order, honouring its strides.
func (a *Array) Float32s() ([]float32, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	out := make([]float32, 0, a.Len())
	switch a.Type {
	case Float16:
		a.walk(func(off int) {
			out = append(out, float16.Frombits(binary.LittleEndian.Uint16(a.Data[off:])).Float32())
		})
	case Float32:
		a.walk(func(off int) {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(a.Data[off:])))
		})
	case Float64:
		a.walk(func(off int) {
			out = append(out, float32(math.Float64frombits(binary.LittleEndian.Uint64(a.Data[off:]))))
		})
	default:
		return nil, fmt.Errorf("coreml: a %v array holds no float values", a.Type)
	}
	return out, nil
}

// CopyTo copies a's elements into dst, an array of the same type and shape laid out at
// other strides (Core ML's own allocation, whose strides its mutable-bytes handler
// reports; Apple's MLMultiArray documentation).
func (a *Array) CopyTo(dst *Array) error {
	if dst.Type != a.Type {
		return fmt.Errorf("coreml: copy of a %v array into a %v array", a.Type, dst.Type)
	}
	if !sameShape(a.Shape, dst.Shape) {
		return fmt.Errorf("coreml: copy of shape %v into shape %v", a.Shape, dst.Shape)
	}
	if err := a.check(); err != nil {
		return err
	}
	if err := dst.check(); err != nil {
		return err
	}
	var offs []int
	a.walk(func(off int) { offs = append(offs, off) })
	size, i := a.Type.Size(), 0
	dst.walk(func(off int) {
		copy(dst.Data[off:off+size], a.Data[offs[i]:offs[i]+size])
		i++
	})
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
