package gguf

import (
	"fmt"
	"math"
)

// ValueType is a gguf_type: the type tag of a metadata value.
type ValueType uint32

// Metadata value types (GGUF spec; ids ≥ 13 are invalid).
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("gguf_type(%d)", uint32(t))
}

// fixedSize is the encoded size of a scalar of type t, or 0 for strings and arrays.
func (t ValueType) fixedSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

func (t ValueType) isInteger() bool {
	switch t {
	case TypeUint8, TypeInt8, TypeUint16, TypeInt16, TypeUint32, TypeInt32, TypeUint64, TypeInt64:
		return true
	}
	return false
}

// Value is one metadata value. V holds uint8, int8, uint16, int16, uint32, int32, float32, bool,
// string, uint64, int64 or float64 for scalars, and a slice of one of those for arrays
// (Type == TypeArray, Elem the element type).
type Value struct {
	Type ValueType
	Elem ValueType
	V    any
}

// TypeName is "uint32" for scalars and "array[string]" for arrays.
func (v Value) TypeName() string {
	if v.Type == TypeArray {
		return "array[" + v.Elem.String() + "]"
	}
	return v.Type.String()
}

// Len is the element count of an array value and 1 for a scalar.
func (v Value) Len() int {
	switch a := v.V.(type) {
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []float32:
		return len(a)
	case []bool:
		return len(a)
	case []string:
		return len(a)
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float64:
		return len(a)
	}
	return 1
}

// asInt64 converts an integer scalar; ok is false for non-integers and uint64 values above
// MaxInt64.
func asInt64(x any) (int64, bool) {
	switch n := x.(type) {
	case uint8:
		return int64(n), true
	case int8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case int16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

// Int returns an integer scalar of any width.
func (v Value) Int() (int64, bool) { return asInt64(v.V) }

// Ints returns an integer array of any element width as int64s.
func (v Value) Ints() ([]int64, bool) {
	if v.Type != TypeArray || !v.Elem.isInteger() {
		return nil, false
	}
	out := make([]int64, 0, v.Len())
	ok := true
	each := func(x any) {
		n, good := asInt64(x)
		ok = ok && good
		out = append(out, n)
	}
	switch a := v.V.(type) {
	case []uint8:
		for _, x := range a {
			each(x)
		}
	case []int8:
		for _, x := range a {
			each(x)
		}
	case []uint16:
		for _, x := range a {
			each(x)
		}
	case []int16:
		for _, x := range a {
			each(x)
		}
	case []uint32:
		for _, x := range a {
			each(x)
		}
	case []int32:
		for _, x := range a {
			each(x)
		}
	case []uint64:
		for _, x := range a {
			each(x)
		}
	case []int64:
		out = append(out, a...)
	}
	return out, ok
}

// Float returns a float scalar (float32 or float64).
func (v Value) Float() (float64, bool) {
	switch f := v.V.(type) {
	case float32:
		return float64(f), true
	case float64:
		return f, true
	}
	return 0, false
}
