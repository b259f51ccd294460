package reference

import (
	"fmt"
	"strings"
)

// DType is the element type of a Tensor.
type DType uint8

// The element types the runtime holds. Float16 tensors hold float32 values that are exactly
// representable in fp16; Int8, Uint8, Int4 and Uint4 only occur as constexpr operands.
const (
	Invalid DType = iota
	Float16
	Float32
	Int32
	Bool
	Int8
	Uint8
	Int4
	Uint4
)

var dtypeNames = [...]string{"invalid", "fp16", "fp32", "int32", "bool", "int8", "uint8", "int4", "uint4"}

func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// IsFloat reports whether d is Float16 or Float32.
func (d DType) IsFloat() bool { return d == Float16 || d == Float32 }

// Tensor is a dense, row-major n-dimensional array.
//
// Float16 and Float32 tensors keep their values as float32 (Float32s); Int32 tensors as
// int32 (Int32s); Bool tensors as bool (Bools). Int8/Uint8 hold one byte per element and
// Int4/Uint4 two elements per byte, element 2k in the low nibble (Bytes).
type Tensor struct {
	DType DType
	Shape []int

	f32  []float32
	i32  []int32
	b    []bool
	raw  []byte   // Int8, Uint8, Int4, Uint4: as stored in weight.bin (may be mmapped)
	half []uint16 // Float16 constants kept as bits (may be mmapped); see widen
}

// NewTensor returns a zero-filled tensor of the given dtype and shape.
func NewTensor(dt DType, shape ...int) *Tensor {
	t := &Tensor{DType: dt, Shape: append([]int(nil), shape...)}
	t.alloc(numElements(shape))
	return t
}

// FromFloat32 returns a Float16 or Float32 tensor holding v (not copied). For Float16 the
// values are rounded to fp16 in place.
func FromFloat32(dt DType, shape []int, v []float32) (*Tensor, error) {
	if !dt.IsFloat() {
		return nil, fmt.Errorf("FromFloat32: dtype %v is not a float type", dt)
	}
	if n := numElements(shape); n != len(v) {
		return nil, fmt.Errorf("FromFloat32: shape %v holds %d elements, got %d values", shape, n, len(v))
	}
	if dt == Float16 {
		roundSliceFP16(v)
	}
	return &Tensor{DType: dt, Shape: append([]int(nil), shape...), f32: v}, nil
}

// FromInt32 returns an Int32 tensor holding v (not copied).
func FromInt32(shape []int, v []int32) (*Tensor, error) {
	if n := numElements(shape); n != len(v) {
		return nil, fmt.Errorf("FromInt32: shape %v holds %d elements, got %d values", shape, n, len(v))
	}
	return &Tensor{DType: Int32, Shape: append([]int(nil), shape...), i32: v}, nil
}

// FromBool returns a Bool tensor holding v (not copied).
func FromBool(shape []int, v []bool) (*Tensor, error) {
	if n := numElements(shape); n != len(v) {
		return nil, fmt.Errorf("FromBool: shape %v holds %d elements, got %d values", shape, n, len(v))
	}
	return &Tensor{DType: Bool, Shape: append([]int(nil), shape...), b: v}, nil
}

// Len returns the number of elements.
func (t *Tensor) Len() int { return numElements(t.Shape) }

// Float32s returns the values of a Float16 or Float32 tensor; nil for other dtypes.
func (t *Tensor) Float32s() []float32 {
	if t.DType.IsFloat() && t.f32 == nil && t.half != nil {
		t.widen()
	}
	return t.f32
}

// Int32s returns the values of an Int32 tensor; nil for other dtypes.
func (t *Tensor) Int32s() []int32 { return t.i32 }

// Bools returns the values of a Bool tensor; nil for other dtypes.
func (t *Tensor) Bools() []bool { return t.b }

// Bytes returns the storage of an Int8, Uint8, Int4 or Uint4 tensor.
func (t *Tensor) Bytes() []byte { return t.raw }

// Float64At returns element i converted to float64, whatever the dtype (for tests and tools).
func (t *Tensor) Float64At(i int) float64 {
	switch t.DType {
	case Float16, Float32:
		if t.f32 != nil {
			return float64(t.f32[i])
		}
		return float64(halfToFloat(t.half[i]))
	case Int32:
		return float64(t.i32[i])
	case Bool:
		if t.b[i] {
			return 1
		}
		return 0
	default:
		return float64(t.intAt(i))
	}
}

func (t *Tensor) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%v%v", t.DType, t.Shape)
	return sb.String()
}

// intAt returns element i of an integer tensor (any integer dtype).
func (t *Tensor) intAt(i int) int32 {
	switch t.DType {
	case Int32:
		return t.i32[i]
	case Int8:
		return int32(int8(t.raw[i]))
	case Uint8:
		return int32(t.raw[i])
	case Int4:
		n := t.raw[i>>1] >> (uint(i&1) * 4) & 0xF
		return int32(int8(n<<4) >> 4) // nibbles are two's complement (MILBlob's sub-byte packing)
	case Uint4:
		return int32(t.raw[i>>1] >> (uint(i&1) * 4) & 0xF)
	case Bool:
		if t.b[i] {
			return 1
		}
		return 0
	}
	return 0
}

// alloc gives t fresh storage for n elements of its dtype.
func (t *Tensor) alloc(n int) {
	switch t.DType {
	case Float16, Float32:
		t.f32 = make([]float32, n)
	case Int32:
		t.i32 = make([]int32, n)
	case Bool:
		t.b = make([]bool, n)
	case Int8, Uint8:
		t.raw = make([]byte, n)
	case Int4, Uint4:
		t.raw = make([]byte, (n+1)/2)
	}
}

// setShape makes t hold shape, reusing its storage when it is large enough, so that a kernel
// whose output shape only varies between calls does not allocate in steady state.
func (t *Tensor) setShape(shape []int) {
	if len(t.Shape) == len(shape) {
		copy(t.Shape, shape)
	} else {
		t.Shape = append(t.Shape[:0], shape...)
	}
	n := numElements(shape)
	switch t.DType {
	case Float16, Float32:
		if cap(t.f32) < n {
			t.f32 = make([]float32, n)
		}
		t.f32 = t.f32[:n]
	case Int32:
		if cap(t.i32) < n {
			t.i32 = make([]int32, n)
		}
		t.i32 = t.i32[:n]
	case Bool:
		if cap(t.b) < n {
			t.b = make([]bool, n)
		}
		t.b = t.b[:n]
	}
}

// widen materialises the float32 values of a Float16 tensor stored as bits.
func (t *Tensor) widen() {
	if t.f32 != nil || t.half == nil {
		return
	}
	t.f32 = make([]float32, len(t.half))
	halfsToFloats(t.f32, t.half)
}

// clone returns a deep copy of t with float32/int32/bool storage.
func (t *Tensor) clone() *Tensor {
	c := &Tensor{DType: t.DType, Shape: append([]int(nil), t.Shape...)}
	switch {
	case t.DType.IsFloat():
		c.f32 = append([]float32(nil), t.Float32s()...)
	case t.DType == Int32:
		c.i32 = append([]int32(nil), t.i32...)
	case t.DType == Bool:
		c.b = append([]bool(nil), t.b...)
	default:
		c.raw = append([]byte(nil), t.raw...)
	}
	return c
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
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
