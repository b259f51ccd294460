package mil

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Constant is a tensor whose value is known when the program is built or
// checked: the val of an immediate const op, or a default the builder fills
// in. Exactly one of the value slices is used, chosen by Type.DType: Floats for
// floating types, Ints for integer types, Bools for bool, Strings for string.
// Values are in row-major order and there are Type.NumElements() of them.
type Constant struct {
	Type    TensorType
	Floats  []float64
	Ints    []int64
	Bools   []bool
	Strings []string
}

// IntScalar is an int32 scalar constant.
func IntScalar(v int) Constant { return Constant{Type: Tensor(Int32), Ints: []int64{int64(v)}} }

// IntVec is a 1-D int32 constant.
func IntVec(v ...int) Constant {
	c := Constant{Type: Tensor(Int32, len(v)), Ints: make([]int64, len(v))}
	for i, x := range v {
		c.Ints[i] = int64(x)
	}
	return c
}

// FloatScalar is a floating scalar constant of dtype d (FP16 or FP32).
func FloatScalar(d DType, v float64) Constant {
	return Constant{Type: Tensor(d), Floats: []float64{v}}
}

// FloatTensor is a floating constant of dtype d and the given shape.
func FloatTensor(d DType, shape []int, v []float64) Constant {
	return Constant{Type: Tensor(d, shape...), Floats: append([]float64(nil), v...)}
}

// BoolScalar is a bool scalar constant.
func BoolScalar(b bool) Constant { return Constant{Type: Tensor(Bool), Bools: []bool{b}} }

// BoolVec is a 1-D bool constant.
func BoolVec(b ...bool) Constant {
	return Constant{Type: Tensor(Bool, len(b)), Bools: append([]bool(nil), b...)}
}

// StringScalar is a string scalar constant.
func StringScalar(s string) Constant { return Constant{Type: Tensor(String), Strings: []string{s}} }

// filled returns a constant of type t with every element equal to v.
func filled(t TensorType, v float64) Constant {
	n := t.NumElements()
	c := Constant{Type: t}
	switch {
	case t.DType.IsFloat():
		c.Floats = make([]float64, n)
		for i := range c.Floats {
			c.Floats[i] = v
		}
	case t.DType == Bool:
		c.Bools = make([]bool, n)
		for i := range c.Bools {
			c.Bools[i] = v != 0
		}
	default:
		c.Ints = make([]int64, n)
		for i := range c.Ints {
			c.Ints[i] = int64(v)
		}
	}
	return c
}

// check verifies that the value slice matching the dtype holds exactly
// NumElements values.
func (c Constant) check() error {
	if !c.Type.DType.Valid() {
		return fmt.Errorf("constant has invalid dtype %d", c.Type.DType)
	}
	if err := checkShape(c.Type.Shape); err != nil {
		return err
	}
	n, got := c.Type.NumElements(), 0
	switch d := c.Type.DType; {
	case d.IsFloat():
		got = len(c.Floats)
	case d.IsInt():
		got = len(c.Ints)
	case d == Bool:
		got = len(c.Bools)
	case d == String:
		got = len(c.Strings)
	}
	if got != n {
		return fmt.Errorf("constant %s holds %d values, want %d", c.Type, got, n)
	}
	return nil
}

// Int returns element i as an int (floats truncated, bools 0/1).
func (c Constant) Int(i int) int {
	switch {
	case i < len(c.Ints):
		return int(c.Ints[i])
	case i < len(c.Floats):
		return int(c.Floats[i])
	case i < len(c.Bools) && c.Bools[i]:
		return 1
	}
	return 0
}

// IntSlice returns all elements as ints.
func (c Constant) IntSlice() []int {
	n := c.Type.NumElements()
	out := make([]int, n)
	for i := range out {
		out[i] = c.Int(i)
	}
	return out
}

// Bytes encodes c as raw little-endian element bytes, sub-byte types packed
// LSB-first (element 2k of an int4 tensor in the low nibble of byte k): the
// layout of MILBlob v2 payloads and of TensorValue.bytes immediates.
func (c Constant) Bytes() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	d := c.Type.DType
	n := c.Type.NumElements()
	if d == String {
		return nil, fmt.Errorf("string constant has no byte encoding")
	}
	out := make([]byte, d.ByteSize(n))
	for i := 0; i < n; i++ {
		switch d {
		case FP16:
			binary.LittleEndian.PutUint16(out[2*i:], float16.Fromfloat32(float32(c.Floats[i])).Bits())
		case BF16:
			binary.LittleEndian.PutUint16(out[2*i:], uint16(math.Float32bits(float32(c.Floats[i]))>>16))
		case FP32:
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(c.Floats[i])))
		case FP64:
			binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(c.Floats[i]))
		case Bool:
			if c.Bools[i] {
				out[i] = 1
			}
		case Int8, UInt8:
			out[i] = byte(c.Ints[i])
		case Int16, UInt16:
			binary.LittleEndian.PutUint16(out[2*i:], uint16(c.Ints[i]))
		case Int32, UInt32:
			binary.LittleEndian.PutUint32(out[4*i:], uint32(c.Ints[i]))
		case Int64, UInt64:
			binary.LittleEndian.PutUint64(out[8*i:], uint64(c.Ints[i]))
		default: // sub-byte: LSB-first bit stream
			b := d.Bits()
			v := uint64(c.Ints[i]) & (1<<b - 1)
			for k := 0; k < b; k++ {
				if v>>k&1 != 0 {
					bit := i*b + k
					out[bit/8] |= 1 << (bit % 8)
				}
			}
		}
	}
	return out, nil
}

// DecodeConstant is the inverse of Constant.Bytes: it reads a tensor of type
// t from raw little-endian (sub-byte: LSB-first packed) bytes. The byte count
// must match exactly.
func DecodeConstant(t TensorType, raw []byte) (Constant, error) {
	d := t.DType
	if !d.Valid() || d == String {
		return Constant{}, fmt.Errorf("cannot decode %s from bytes", t)
	}
	if err := checkShape(t.Shape); err != nil {
		return Constant{}, err
	}
	n := t.NumElements()
	if want := d.ByteSize(n); len(raw) != want {
		return Constant{}, fmt.Errorf("%s needs %d bytes, have %d", t, want, len(raw))
	}
	c := Constant{Type: TensorType{DType: d, Shape: append([]int(nil), t.Shape...)}}
	switch {
	case d.IsFloat():
		c.Floats = make([]float64, n)
	case d == Bool:
		c.Bools = make([]bool, n)
	default:
		c.Ints = make([]int64, n)
	}
	for i := 0; i < n; i++ {
		switch d {
		case FP16:
			c.Floats[i] = float64(float16.Frombits(binary.LittleEndian.Uint16(raw[2*i:])).Float32())
		case BF16:
			c.Floats[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16))
		case FP32:
			c.Floats[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		case FP64:
			c.Floats[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		case Bool:
			c.Bools[i] = raw[i] != 0
		case Int8:
			c.Ints[i] = int64(int8(raw[i]))
		case UInt8:
			c.Ints[i] = int64(raw[i])
		case Int16:
			c.Ints[i] = int64(int16(binary.LittleEndian.Uint16(raw[2*i:])))
		case UInt16:
			c.Ints[i] = int64(binary.LittleEndian.Uint16(raw[2*i:]))
		case Int32:
			c.Ints[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		case UInt32:
			c.Ints[i] = int64(binary.LittleEndian.Uint32(raw[4*i:]))
		case Int64, UInt64:
			c.Ints[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		default:
			b := d.Bits()
			var v uint64
			for k := 0; k < b; k++ {
				bit := i*b + k
				v |= uint64(raw[bit/8]>>(bit%8)&1) << k
			}
			if d == Int4 && v >= 8 { // two's complement in the nibble
				c.Ints[i] = int64(v) - 16
			} else {
				c.Ints[i] = int64(v)
			}
		}
	}
	return c, nil
}
