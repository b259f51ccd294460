package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// ErrMissingKey is wrapped by the typed getters when a key is absent.
var ErrMissingKey = errors.New("missing metadata key")

// value decodes one value of type vt (the type tag has been read).
func (d *decoder) value(vt ValueType, key string) (Value, error) {
	at := d.off
	switch vt {
	case TypeString:
		s, err := d.str("string value")
		return Value{Type: vt, V: s}, err
	case TypeArray:
		et, err := d.u32("array element type")
		if err != nil {
			return Value{}, err
		}
		elem := ValueType(et)
		if elem == TypeArray {
			return Value{}, d.fail(at, key, "nested arrays are not supported")
		}
		if elem > TypeFloat64 {
			return Value{}, d.fail(at, key, "unknown array element type %d", et)
		}
		countAt := d.off
		n, err := d.count("array length")
		if err != nil {
			return Value{}, err
		}
		min := uint64(elem.fixedSize())
		if elem == TypeString {
			min = 8 // each string carries its own length prefix
			if d.v1 {
				min = 4
			}
		}
		if n > uint64(d.remaining())/min {
			return Value{}, &FormatError{Path: d.path, Offset: countAt, Key: key, Err: ErrTruncated,
				Msg: fmt.Sprintf("array of %d %s elements cannot fit in the %d bytes left", n, elem, d.remaining())}
		}
		v, err := d.array(elem, int(n))
		return Value{Type: TypeArray, Elem: elem, V: v}, err
	}
	size := vt.fixedSize()
	if size == 0 {
		return Value{}, d.fail(at-4, key, "unknown value type %d", uint32(vt))
	}
	if err := d.need(int64(size), key+" value"); err != nil {
		return Value{}, err
	}
	v := scalarAt(vt, d.b[d.off:])
	d.off += int64(size)
	return Value{Type: vt, V: v}, nil
}

func scalarAt(vt ValueType, b []byte) any {
	le := binary.LittleEndian
	switch vt {
	case TypeUint8:
		return b[0]
	case TypeInt8:
		return int8(b[0])
	case TypeBool:
		return b[0] != 0
	case TypeUint16:
		return le.Uint16(b)
	case TypeInt16:
		return int16(le.Uint16(b))
	case TypeUint32:
		return le.Uint32(b)
	case TypeInt32:
		return int32(le.Uint32(b))
	case TypeFloat32:
		return math.Float32frombits(le.Uint32(b))
	case TypeUint64:
		return le.Uint64(b)
	case TypeInt64:
		return int64(le.Uint64(b))
	case TypeFloat64:
		return math.Float64frombits(le.Uint64(b))
	}
	return nil
}

// array decodes n elements; the caller has checked that n·minimum size fits.
func (d *decoder) array(elem ValueType, n int) (any, error) {
	if elem == TypeString {
		out := make([]string, n)
		for i := range out {
			s, err := d.str("array string")
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	size := elem.fixedSize()
	b := d.b[d.off : d.off+int64(n*size)]
	d.off += int64(n * size)
	le := binary.LittleEndian
	switch elem {
	case TypeUint8:
		return append([]uint8(nil), b...), nil
	case TypeInt8:
		out := make([]int8, n)
		for i := range out {
			out[i] = int8(b[i])
		}
		return out, nil
	case TypeBool:
		out := make([]bool, n)
		for i := range out {
			out[i] = b[i] != 0
		}
		return out, nil
	case TypeUint16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = le.Uint16(b[2*i:])
		}
		return out, nil
	case TypeInt16:
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(le.Uint16(b[2*i:]))
		}
		return out, nil
	case TypeUint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = le.Uint32(b[4*i:])
		}
		return out, nil
	case TypeInt32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(le.Uint32(b[4*i:]))
		}
		return out, nil
	case TypeFloat32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out, nil
	case TypeUint64:
		out := make([]uint64, n)
		for i := range out {
			out[i] = le.Uint64(b[8*i:])
		}
		return out, nil
	case TypeInt64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
		return out, nil
	case TypeFloat64:
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("unreachable element type %v", elem)
}

// Get returns the value of key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KVs[i].Value, true
}

// Has reports whether key is present.
func (f *File) Has(key string) bool { _, ok := f.kvIndex[key]; return ok }

func (f *File) missing(key string) error {
	return fmt.Errorf("gguf: %s: %w %q", f.Path, ErrMissingKey, key)
}

func (f *File) wrongType(key string, v Value, want string) error {
	return &FormatError{Path: f.Path, Offset: -1, Key: key,
		Msg: fmt.Sprintf("has type %s, want %s", v.TypeName(), want)}
}

// GetString returns a string value.
func (f *File) GetString(key string) (string, error) {
	v, ok := f.Get(key)
	if !ok {
		return "", f.missing(key)
	}
	s, isStr := v.V.(string)
	if !isStr {
		return "", f.wrongType(key, v, "string")
	}
	return s, nil
}

// GetInt returns an integer value of any width.
func (f *File) GetInt(key string) (int64, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, f.missing(key)
	}
	n, isInt := v.Int()
	if !isInt {
		return 0, f.wrongType(key, v, "an integer")
	}
	return n, nil
}

// GetUint returns a non-negative integer value of any width.
func (f *File) GetUint(key string) (uint64, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, f.missing(key)
	}
	if u, isU64 := v.V.(uint64); isU64 {
		return u, nil
	}
	n, isInt := v.Int()
	if !isInt {
		return 0, f.wrongType(key, v, "an unsigned integer")
	}
	if n < 0 {
		return 0, &FormatError{Path: f.Path, Offset: -1, Key: key, Msg: fmt.Sprintf("is negative (%d)", n)}
	}
	return uint64(n), nil
}

// GetFloat returns a float32 or float64 value.
func (f *File) GetFloat(key string) (float64, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, f.missing(key)
	}
	x, isFloat := v.Float()
	if !isFloat {
		return 0, f.wrongType(key, v, "a float")
	}
	return x, nil
}

// GetBool returns a bool value.
func (f *File) GetBool(key string) (bool, error) {
	v, ok := f.Get(key)
	if !ok {
		return false, f.missing(key)
	}
	b, isBool := v.V.(bool)
	if !isBool {
		return false, f.wrongType(key, v, "bool")
	}
	return b, nil
}

// GetStrings returns a string array.
func (f *File) GetStrings(key string) ([]string, error) {
	v, ok := f.Get(key)
	if !ok {
		return nil, f.missing(key)
	}
	s, isStrs := v.V.([]string)
	if !isStrs {
		return nil, f.wrongType(key, v, "array[string]")
	}
	return s, nil
}

// GetFloat32s returns a float32 array.
func (f *File) GetFloat32s(key string) ([]float32, error) {
	v, ok := f.Get(key)
	if !ok {
		return nil, f.missing(key)
	}
	x, isF32 := v.V.([]float32)
	if !isF32 {
		return nil, f.wrongType(key, v, "array[float32]")
	}
	return x, nil
}

// GetInt32s returns an integer array of any element width, range-checked into int32.
func (f *File) GetInt32s(key string) ([]int32, error) {
	v, ok := f.Get(key)
	if !ok {
		return nil, f.missing(key)
	}
	if x, isI32 := v.V.([]int32); isI32 {
		return x, nil
	}
	ints, isInts := v.Ints()
	if !isInts {
		return nil, f.wrongType(key, v, "an integer array")
	}
	out := make([]int32, len(ints))
	for i, n := range ints {
		if n < math.MinInt32 || n > math.MaxInt32 {
			return nil, &FormatError{Path: f.Path, Offset: -1, Key: key, Msg: fmt.Sprintf("element %d (%d) out of int32 range", i, n)}
		}
		out[i] = int32(n)
	}
	return out, nil
}

// Architecture is general.architecture, or "" when absent.
func (f *File) Architecture() string {
	s, _ := f.GetString("general.architecture")
	return s
}

// keyKind is the type class a well-known key must have.
type keyKind int

const (
	kindString keyKind = iota
	kindInt
	kindFloat
	kindBool
	kindStrings
	kindFloats
	kindInts
	kindIntOrInts // per-layer hyper-parameters may be arrays
)

// knownKeys maps a key (for architecture keys, the part after "{arch}.") to the kind
// llama.cpp requires, so that a mistyped value is reported when the file is opened rather
// than deep inside a later stage.
var knownKeys = map[string]keyKind{
	"general.architecture":              kindString,
	"general.name":                      kindString,
	"general.file_type":                 kindInt,
	"general.quantization_version":      kindInt,
	"tokenizer.ggml.model":              kindString,
	"tokenizer.ggml.pre":                kindString,
	"tokenizer.ggml.tokens":             kindStrings,
	"tokenizer.ggml.scores":             kindFloats,
	"tokenizer.ggml.token_type":         kindInts,
	"tokenizer.ggml.merges":             kindStrings,
	"tokenizer.ggml.bos_token_id":       kindInt,
	"tokenizer.ggml.eos_token_id":       kindInt,
	"tokenizer.ggml.unknown_token_id":   kindInt,
	"tokenizer.ggml.padding_token_id":   kindInt,
	"tokenizer.ggml.seperator_token_id": kindInt,
	"tokenizer.ggml.eot_token_id":       kindInt,
	"tokenizer.ggml.eom_token_id":       kindInt,
	"tokenizer.ggml.add_bos_token":      kindBool,
	"tokenizer.ggml.add_eos_token":      kindBool,
	"tokenizer.ggml.add_space_prefix":   kindBool,
	"tokenizer.chat_template":           kindString,
	// {arch}.* keys
	"context_length":                   kindInt,
	"embedding_length":                 kindInt,
	"block_count":                      kindInt,
	"feed_forward_length":              kindIntOrInts,
	"attention.head_count":             kindIntOrInts,
	"attention.head_count_kv":          kindIntOrInts,
	"attention.key_length":             kindInt,
	"attention.value_length":           kindInt,
	"attention.layer_norm_epsilon":     kindFloat,
	"attention.layer_norm_rms_epsilon": kindFloat,
	"rope.dimension_count":             kindInt,
	"rope.freq_base":                   kindFloat,
	"rope.scaling.type":                kindString,
	"rope.scaling.factor":              kindFloat,
	"vocab_size":                       kindInt,
}

func (f *File) checkKnownKeys() error {
	arch := ""
	if v, ok := f.Get("general.architecture"); ok {
		arch, _ = v.V.(string)
	}
	for _, kv := range f.KVs {
		kind, ok := knownKeys[kv.Key]
		if !ok && arch != "" && strings.HasPrefix(kv.Key, arch+".") {
			kind, ok = knownKeys[strings.TrimPrefix(kv.Key, arch+".")]
		}
		if !ok {
			continue
		}
		v := kv.Value
		var good bool
		var want string
		switch kind {
		case kindString:
			_, good = v.V.(string)
			want = "string"
		case kindInt:
			_, good = v.Int()
			want = "an integer"
		case kindFloat:
			_, good = v.Float()
			want = "a float"
		case kindBool:
			_, good = v.V.(bool)
			want = "bool"
		case kindStrings:
			_, good = v.V.([]string)
			want = "array[string]"
		case kindFloats:
			_, good = v.V.([]float32)
			want = "array[float32]"
		case kindInts:
			good = v.Type == TypeArray && v.Elem.isInteger()
			want = "an integer array"
		case kindIntOrInts:
			_, good = v.Int()
			good = good || (v.Type == TypeArray && v.Elem.isInteger())
			want = "an integer or integer array"
		}
		if !good {
			return f.wrongType(kv.Key, v, want)
		}
	}
	return nil
}
