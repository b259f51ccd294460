// Package ggml holds the ggml tensor types as GGUF files store them: their ids, block layouts,
// and the row-wise dequantization of each block format to float32.
//
// It knows nothing of the GGUF container (see package gguf) and does no arithmetic on
// tensors beyond decoding blocks.
package ggml

import (
	"fmt"
	"maps"
	"slices"
)

// Type is a ggml_type id, stored as a u32 in each GGUF tensor info.
type Type uint32

// Type ids (ggml.h). Ids 4, 5, 31–33 and 36–38 were removed upstream and are invalid.
const (
	F32     Type = 0
	F16     Type = 1
	Q4_0    Type = 2
	Q4_1    Type = 3
	Q5_0    Type = 6
	Q5_1    Type = 7
	Q8_0    Type = 8
	Q8_1    Type = 9
	Q2_K    Type = 10
	Q3_K    Type = 11
	Q4_K    Type = 12
	Q5_K    Type = 13
	Q6_K    Type = 14
	Q8_K    Type = 15
	IQ2_XXS Type = 16
	IQ2_XS  Type = 17
	IQ3_XXS Type = 18
	IQ1_S   Type = 19
	IQ4_NL  Type = 20
	IQ3_S   Type = 21
	IQ2_S   Type = 22
	IQ4_XS  Type = 23
	I8      Type = 24
	I16     Type = 25
	I32     Type = 26
	I64     Type = 27
	F64     Type = 28
	IQ1_M   Type = 29
	BF16    Type = 30
	TQ1_0   Type = 34
	TQ2_0   Type = 35
	MXFP4   Type = 39
)

// QK_K is the super-block size of the K-quants.
const QK_K = 256

type traits struct {
	name       string
	blockElems int // elements per block
	blockBytes int // bytes per block
}

// typeTraits lists every type a GGUF file may name, with its block geometry
// (ggml-common.h / gguf-py GGML_QUANT_SIZES). Types we cannot dequantize still have
// geometry so that files holding them can be inspected.
var typeTraits = map[Type]traits{
	F32: {"F32", 1, 4}, F16: {"F16", 1, 2}, BF16: {"BF16", 1, 2}, F64: {"F64", 1, 8},
	I8: {"I8", 1, 1}, I16: {"I16", 1, 2}, I32: {"I32", 1, 4}, I64: {"I64", 1, 8},
	Q4_0: {"Q4_0", 32, 18}, Q4_1: {"Q4_1", 32, 20},
	Q5_0: {"Q5_0", 32, 22}, Q5_1: {"Q5_1", 32, 24},
	Q8_0: {"Q8_0", 32, 34}, Q8_1: {"Q8_1", 32, 36},
	Q2_K: {"Q2_K", QK_K, 84}, Q3_K: {"Q3_K", QK_K, 110}, Q4_K: {"Q4_K", QK_K, 144},
	Q5_K: {"Q5_K", QK_K, 176}, Q6_K: {"Q6_K", QK_K, 210}, Q8_K: {"Q8_K", QK_K, 292},
	IQ2_XXS: {"IQ2_XXS", QK_K, 66}, IQ2_XS: {"IQ2_XS", QK_K, 74}, IQ3_XXS: {"IQ3_XXS", QK_K, 98},
	IQ1_S: {"IQ1_S", QK_K, 50}, IQ4_NL: {"IQ4_NL", 32, 18}, IQ3_S: {"IQ3_S", QK_K, 110},
	IQ2_S: {"IQ2_S", QK_K, 82}, IQ4_XS: {"IQ4_XS", QK_K, 136}, IQ1_M: {"IQ1_M", QK_K, 56},
	TQ1_0: {"TQ1_0", QK_K, 54}, TQ2_0: {"TQ2_0", QK_K, 66}, MXFP4: {"MXFP4", 32, 17},
}

// Types returns every type a GGUF file may name, in id order.
func Types() []Type {
	ts := slices.Collect(maps.Keys(typeTraits))
	slices.Sort(ts)
	return ts
}

// Valid reports whether t is a type id that ggml defines.
func (t Type) Valid() bool { _, ok := typeTraits[t]; return ok }

func (t Type) String() string {
	if tr, ok := typeTraits[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockElems is the number of elements one block holds (1 for plain types).
func (t Type) BlockElems() int { return typeTraits[t].blockElems }

// BlockBytes is the size in bytes of one block.
func (t Type) BlockBytes() int { return typeTraits[t].blockBytes }

// ParseType maps a name such as "Q4_0" (case-insensitive) to its Type.
func ParseType(name string) (Type, error) {
	for t, tr := range typeTraits {
		if equalFold(tr.name, name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown ggml type %q", name)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'a' <= ca && ca <= 'z' {
			ca -= 'a' - 'A'
		}
		if 'a' <= cb && cb <= 'z' {
			cb -= 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

// RowBytes returns the byte size of a row of n elements, or an error when n is not a
// multiple of the block size (ggml requires ne[0] % block == 0).
func (t Type) RowBytes(n int64) (int64, error) {
	tr, ok := typeTraits[t]
	if !ok {
		return 0, fmt.Errorf("unknown ggml type id %d", uint32(t))
	}
	if n < 0 || n%int64(tr.blockElems) != 0 {
		return 0, fmt.Errorf("row of %d elements is not a multiple of the %s block size %d", n, tr.name, tr.blockElems)
	}
	return n / int64(tr.blockElems) * int64(tr.blockBytes), nil
}
