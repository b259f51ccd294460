// Package blob reads and writes MILBlob storage files, version 2: the
// weights/weight.bin file of a Core ML ML Program, which the program's
// BlobFileValue entries point into.
//
// A file is a 64-byte header (blob count, version 2) followed by records.
// Each record is a 64-byte metadata block (sentinel 0xDEADBEEF, data type,
// payload size and offset, padding bits) followed by the raw little-endian
// payload; every metadata block starts on a 64-byte boundary. A program
// refers to a blob by the file offset of its metadata block.
//
// The package knows nothing about tensor shapes: it stores and checks bytes,
// data types and element counts. Turning a blob into a tensor is the job of
// its callers (the MIL builder and the reference runtime).
package blob

import (
	"errors"
	"fmt"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// Format constants of MILBlob v2 (coremltools' mlmodel/src/MILBlob/Blob/StorageFormat.hpp).
const (
	// Version is the storage format version this package reads and writes;
	// Core ML rejects any other (1 is the retired Espresso format).
	Version = 2
	// Alignment of every metadata block and payload.
	Alignment = 64
	// HeaderSize is the size of the file header.
	HeaderSize = 64
	// MetadataSize is the size of the per-blob metadata block.
	MetadataSize = 64
	// Sentinel opens every metadata block.
	Sentinel = 0xDEADBEEF
)

// DataType is the element type of a blob as stored in weight.bin
// (BlobDataType). Its numbering differs from MIL's milpb.DataType; convert
// with FromMIL and DataType.MIL, never by casting.
type DataType uint32

// BlobDataType values. They are append-only in Core ML, so the numbers are
// fixed.
const (
	Float16      DataType = 1
	Float32      DataType = 2
	UInt8        DataType = 3
	Int8         DataType = 4
	BFloat16     DataType = 5
	Int16        DataType = 6
	UInt16       DataType = 7
	Int4         DataType = 8
	UInt1        DataType = 9
	UInt2        DataType = 10
	UInt4        DataType = 11
	UInt3        DataType = 12
	UInt6        DataType = 13
	Int32        DataType = 14
	UInt32       DataType = 15
	Float8E4M3FN DataType = 16
	Float8E5M2   DataType = 17
)

// dataTypes lists, per BlobDataType, its name, element width and MIL type.
var dataTypes = map[DataType]struct {
	name string
	bits int
	mil  milpb.DataType
}{
	Float16:      {"Float16", 16, milpb.DataType_FLOAT16},
	Float32:      {"Float32", 32, milpb.DataType_FLOAT32},
	UInt8:        {"UInt8", 8, milpb.DataType_UINT8},
	Int8:         {"Int8", 8, milpb.DataType_INT8},
	BFloat16:     {"BFloat16", 16, milpb.DataType_BFLOAT16},
	Int16:        {"Int16", 16, milpb.DataType_INT16},
	UInt16:       {"UInt16", 16, milpb.DataType_UINT16},
	Int4:         {"Int4", 4, milpb.DataType_INT4},
	UInt1:        {"UInt1", 1, milpb.DataType_UINT1},
	UInt2:        {"UInt2", 2, milpb.DataType_UINT2},
	UInt4:        {"UInt4", 4, milpb.DataType_UINT4},
	UInt3:        {"UInt3", 3, milpb.DataType_UINT3},
	UInt6:        {"UInt6", 6, milpb.DataType_UINT6},
	Int32:        {"Int32", 32, milpb.DataType_INT32},
	UInt32:       {"UInt32", 32, milpb.DataType_UINT32},
	Float8E4M3FN: {"Float8E4M3FN", 8, milpb.DataType_FLOAT8E4M3FN},
	Float8E5M2:   {"Float8E5M2", 8, milpb.DataType_FLOAT8E5M2},
}

func (d DataType) String() string {
	if t, ok := dataTypes[d]; ok {
		return t.name
	}
	return fmt.Sprintf("DataType(%d)", uint32(d))
}

// Bits returns the element width in bits, or 0 for an unknown type.
func (d DataType) Bits() int { return dataTypes[d].bits }

// MIL returns the MIL data type of d, or milpb.DataType_UNUSED_TYPE for an
// unknown type.
func (d DataType) MIL() milpb.DataType {
	if t, ok := dataTypes[d]; ok {
		return t.mil
	}
	return milpb.DataType_UNUSED_TYPE
}

// FromMIL returns the blob data type that stores tensors of MIL type t.
// Types that cannot live in a blob (bool, string, 64-bit) are an error.
func FromMIL(t milpb.DataType) (DataType, error) {
	for d, info := range dataTypes {
		if info.mil == t {
			return d, nil
		}
	}
	return 0, fmt.Errorf("blob: MIL type %v has no blob storage type", t)
}

// PayloadSize returns the payload size in bytes of n elements of type d:
// sub-byte types are packed, so it is ceil(n·bits/8).
func (d DataType) PayloadSize(n int) int {
	return (n*d.Bits() + 7) / 8
}

// ErrTruncated reports a header, metadata block or payload that runs past
// the end of the file.
var ErrTruncated = errors.New("truncated")

// FormatError reports malformed blob data: the file, the byte offset of the
// offending header or metadata block, and what is wrong.
type FormatError struct {
	Path   string // file name, or "" for in-memory data
	Offset uint64 // offset of the header (0) or metadata block involved
	Msg    string
	Err    error // an underlying sentinel such as ErrTruncated, or nil
}

func (e *FormatError) Error() string {
	path := e.Path
	if path == "" {
		path = "blob"
	}
	msg := e.Msg
	if e.Err != nil {
		msg = e.Err.Error() + ": " + msg
	}
	return fmt.Sprintf("%s: offset %d: %s", path, e.Offset, msg)
}

func (e *FormatError) Unwrap() error { return e.Err }

// alignUp rounds n up to the next multiple of Alignment.
func alignUp(n uint64) uint64 {
	return (n + Alignment - 1) &^ (Alignment - 1)
}
