package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/lilims/lilims/stages/loader/ggml"
)

// Builder assembles a GGUF v3 file: metadata in insertion order, then tensors laid out
// sequentially at the alignment, as gguf-py writes them. It is used to make test fixtures and
// synthetic models; tensor data is supplied by the caller at write time so that large models
// stream.
type Builder struct {
	kvs     []KV
	tensors []builderTensor
	align   uint64
}

type builderTensor struct {
	name  string
	shape []int64
	typ   ggml.Type
	size  int64
	data  func(w io.Writer) error
}

// NewBuilder returns an empty builder with the default alignment.
func NewBuilder() *Builder { return &Builder{align: DefaultAlignment} }

// Set adds a metadata value. v may be any scalar or slice type that Value.V can hold;
// Go int is written as int32 and []int as []int32, as gguf-py does.
func (b *Builder) Set(key string, v any) {
	val := Value{V: v}
	switch x := v.(type) {
	case int:
		val = Value{Type: TypeInt32, V: int32(x)}
	case []int:
		a := make([]int32, len(x))
		for i, n := range x {
			a[i] = int32(n)
		}
		val = Value{Type: TypeArray, Elem: TypeInt32, V: a}
	default:
		val.Type, val.Elem = typeOf(v)
	}
	if key == "general.alignment" {
		if a, ok := v.(uint32); ok && a != 0 {
			b.align = uint64(a)
		}
	}
	b.kvs = append(b.kvs, KV{key, val})
}

func typeOf(v any) (ValueType, ValueType) {
	switch v.(type) {
	case uint8:
		return TypeUint8, 0
	case int8:
		return TypeInt8, 0
	case uint16:
		return TypeUint16, 0
	case int16:
		return TypeInt16, 0
	case uint32:
		return TypeUint32, 0
	case int32:
		return TypeInt32, 0
	case float32:
		return TypeFloat32, 0
	case bool:
		return TypeBool, 0
	case string:
		return TypeString, 0
	case uint64:
		return TypeUint64, 0
	case int64:
		return TypeInt64, 0
	case float64:
		return TypeFloat64, 0
	case []uint8:
		return TypeArray, TypeUint8
	case []int8:
		return TypeArray, TypeInt8
	case []uint16:
		return TypeArray, TypeUint16
	case []int16:
		return TypeArray, TypeInt16
	case []uint32:
		return TypeArray, TypeUint32
	case []int32:
		return TypeArray, TypeInt32
	case []float32:
		return TypeArray, TypeFloat32
	case []bool:
		return TypeArray, TypeBool
	case []string:
		return TypeArray, TypeString
	case []uint64:
		return TypeArray, TypeUint64
	case []int64:
		return TypeArray, TypeInt64
	case []float64:
		return TypeArray, TypeFloat64
	}
	panic(fmt.Sprintf("gguf.Builder: unsupported metadata type %T", v))
}

// AddTensor declares a tensor whose bytes (exactly RowBytes(shape[0])·rows) are produced by
// data when the file is written.
func (b *Builder) AddTensor(name string, typ ggml.Type, shape []int64, data func(w io.Writer) error) error {
	rows := int64(1)
	for _, d := range shape[1:] {
		rows *= d
	}
	rb, err := typ.RowBytes(shape[0])
	if err != nil {
		return fmt.Errorf("tensor %q: %w", name, err)
	}
	b.tensors = append(b.tensors, builderTensor{name, shape, typ, rb * rows, data})
	return nil
}

// AddTensorBytes declares a tensor with its bytes in memory.
func (b *Builder) AddTensorBytes(name string, typ ggml.Type, shape []int64, raw []byte) error {
	return b.AddTensor(name, typ, shape, func(w io.Writer) error { _, err := w.Write(raw); return err })
}

// WriteTo writes the file.
func (b *Builder) WriteTo(w io.Writer) (int64, error) {
	header, _ := b.Header()
	n, err := w.Write(header)
	total := int64(n)
	if err != nil {
		return total, err
	}
	for _, t := range b.tensors {
		cw := &countingWriter{w: w}
		if err := t.data(cw); err != nil {
			return total + cw.n, fmt.Errorf("tensor %q: %w", t.name, err)
		}
		if cw.n != t.size {
			return total + cw.n, fmt.Errorf("tensor %q: wrote %d bytes, want %d", t.name, cw.n, t.size)
		}
		pad := int64(alignUp(uint64(t.size), b.align)) - t.size
		n, err := w.Write(make([]byte, pad))
		total += cw.n + int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Parse writes the file into memory and reads it back as name: a model made in a test, or
// metadata to carry, without a file on disk.
func (b *Builder) Parse(name string) (*File, error) {
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		return nil, err
	}
	return Parse(name, buf.Bytes())
}

// Header returns the encoded header (up to the start of the data section) and the size the
// whole file will have.
func (b *Builder) Header() ([]byte, int64) {
	var h bytes.Buffer
	le := binary.LittleEndian
	put := func(v any) { binary.Write(&h, le, v) }
	putStr := func(s string) { put(uint64(len(s))); h.WriteString(s) }
	put(uint32(Magic))
	put(uint32(3))
	put(uint64(len(b.tensors)))
	put(uint64(len(b.kvs)))
	for _, kv := range b.kvs {
		putStr(kv.Key)
		put(uint32(kv.Value.Type))
		if kv.Value.Type == TypeArray {
			put(uint32(kv.Value.Elem))
			put(uint64(kv.Value.Len()))
		}
		switch x := kv.Value.V.(type) {
		case string:
			putStr(x)
		case []string:
			for _, s := range x {
				putStr(s)
			}
		case bool:
			put(boolByte(x))
		case []bool:
			for _, v := range x {
				put(boolByte(v))
			}
		default:
			put(x)
		}
	}
	offset := uint64(0)
	for _, t := range b.tensors {
		putStr(t.name)
		put(uint32(len(t.shape)))
		for _, d := range t.shape {
			put(uint64(d))
		}
		put(uint32(t.typ))
		put(offset)
		offset = alignUp(offset+uint64(t.size), b.align)
	}
	h.Write(make([]byte, alignUp(uint64(h.Len()), b.align)-uint64(h.Len())))
	return h.Bytes(), int64(h.Len()) + int64(offset)
}

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// F32Bytes encodes floats little-endian (a convenience for F32 tensors).
func F32Bytes(x []float32) []byte {
	out := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}
