// Package mil builds, serialises and statically checks Core ML "ML Program"
// (MIL) programs.
//
// It holds three things that must agree with each other:
//
//   - the op signature table (Lookup): input names, which inputs are optional
//     and their defaults, which must be compile-time constants, allowed dtypes,
//     and a type-inference function per op;
//   - a builder (NewProgram, (*Program).Function, (*Function).Linear, ...) in
//     the spirit of coremltools' mb.* that infers and checks every op when it
//     is added, and serialises the program to a Core ML Model protobuf
//     ((*Program).Build) following coremltools' conventions;
//   - a static validator (CheckProgram) that re-runs the same inference over a
//     deserialised program, used by the compile stage and the reference runtime.
//
// Only static shapes are supported. The package does not write the
// .mlpackage directory, the weight.bin file format (package blob) or the
// protobuf types (package milpb); it does not execute programs.
package mil

import (
	"fmt"
	"strconv"
	"strings"
)

// DType is a MIL element type. Its numeric values are those of the MIL.proto
// DataType enum (BOOL 1, STRING 2, FLOAT16 10, ... UINT3 39), so converting to
// the protobuf enum is a plain conversion.
type DType int32

const (
	InvalidDType DType = 0
	Bool         DType = 1
	String       DType = 2
	FP16         DType = 10
	FP32         DType = 11
	FP64         DType = 12
	BF16         DType = 13
	Int8         DType = 21
	Int16        DType = 22
	Int32        DType = 23
	Int64        DType = 24
	Int4         DType = 25
	UInt8        DType = 31
	UInt16       DType = 32
	UInt32       DType = 33
	UInt64       DType = 34
	UInt4        DType = 35
	UInt2        DType = 36
	UInt1        DType = 37
	UInt6        DType = 38
	UInt3        DType = 39
)

// dtypeInfo gives the MIL text spelling (also the spelling cast's dtype input
// uses) and the element width in bits (0 for string).
var dtypeInfo = map[DType]struct {
	name string
	bits int
}{
	Bool: {"bool", 8}, String: {"string", 0},
	FP16: {"fp16", 16}, FP32: {"fp32", 32}, FP64: {"fp64", 64}, BF16: {"bf16", 16},
	Int8: {"int8", 8}, Int16: {"int16", 16}, Int32: {"int32", 32}, Int64: {"int64", 64}, Int4: {"int4", 4},
	UInt8: {"uint8", 8}, UInt16: {"uint16", 16}, UInt32: {"uint32", 32}, UInt64: {"uint64", 64},
	UInt4: {"uint4", 4}, UInt2: {"uint2", 2}, UInt1: {"uint1", 1}, UInt6: {"uint6", 6}, UInt3: {"uint3", 3},
}

// String returns the MIL spelling of d ("fp16", "int32", ...).
func (d DType) String() string {
	if info, ok := dtypeInfo[d]; ok {
		return info.name
	}
	return "dtype(" + strconv.Itoa(int(d)) + ")"
}

// Valid reports whether d is a known MIL element type.
func (d DType) Valid() bool { _, ok := dtypeInfo[d]; return ok }

// Bits is the element width in bits; 0 for String and unknown types.
func (d DType) Bits() int { return dtypeInfo[d].bits }

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool { return d == FP16 || d == FP32 || d == FP64 || d == BF16 }

// IsInt reports whether d is a signed or unsigned integer type (any width).
func (d DType) IsInt() bool {
	switch d {
	case Int4, Int8, Int16, Int32, Int64, UInt1, UInt2, UInt3, UInt4, UInt6, UInt8, UInt16, UInt32, UInt64:
		return true
	}
	return false
}

// IsSubByte reports whether elements of d are packed several to a byte
// (int4, uint1/2/3/4/6): LSB-first bit streams in blobs and immediates.
func (d DType) IsSubByte() bool { b := d.Bits(); return b > 0 && b < 8 }

// ParseDType maps a MIL spelling ("fp16") to its DType.
func ParseDType(s string) (DType, bool) {
	for d, info := range dtypeInfo {
		if info.name == s {
			return d, true
		}
	}
	return InvalidDType, false
}

// ByteSize is the number of bytes n elements of d occupy, packed: sub-byte
// types take ceil(n·bits/8) bytes (MILBlob v2 sizeInBytes rule).
func (d DType) ByteSize(n int) int {
	return (n*d.Bits() + 7) / 8
}

// MaxRank is Core ML's limit on tensor rank for values produced by ops.
const MaxRank = 5

// TensorType is the static type of a MIL tensor: element type and shape.
// A scalar has an empty (nil) Shape.
type TensorType struct {
	DType DType
	Shape []int
}

// Tensor returns the TensorType with the given dtype and dimensions.
func Tensor(d DType, shape ...int) TensorType {
	return TensorType{DType: d, Shape: append([]int(nil), shape...)}
}

// Rank is the number of dimensions (0 for a scalar).
func (t TensorType) Rank() int { return len(t.Shape) }

// NumElements is the product of the dimensions (1 for a scalar).
func (t TensorType) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Equal reports whether t and u have the same dtype and shape.
func (t TensorType) Equal(u TensorType) bool {
	return t.DType == u.DType && shapeEqual(t.Shape, u.Shape)
}

// String formats t as "fp16[1,64]" ("fp32[]" for a scalar).
func (t TensorType) String() string {
	return t.DType.String() + shapeString(t.Shape)
}

func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func shapeEqual(a, b []int) bool {
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

// checkShape rejects negative dimensions and ranks beyond what a weight may
// carry; maxElems bounds the element count so that callers can allocate.
func checkShape(shape []int) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %s", shapeString(shape))
		}
		if d > 0 && n > (1<<62)/d {
			return fmt.Errorf("shape %s overflows", shapeString(shape))
		}
		n *= d
	}
	return nil
}
