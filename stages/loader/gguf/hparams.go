package gguf

import (
	"fmt"
	"sort"
)

// GetLayerInt reads an integer hyper-parameter that GGUF may store either as one integer or
// as a per-layer array (llama.cpp's get_key_or_arr). An array must hold one value in every
// layer; the typed hyper-parameters of an architecture (package arch) do not vary by layer.
func (f *File) GetLayerInt(key string) (int, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, f.missing(key)
	}
	if n, isInt := v.Int(); isInt {
		if n < 0 || n > 1<<40 {
			return 0, &FormatError{Path: f.Path, Offset: -1, Key: key, Msg: fmt.Sprintf("value %d out of range", n)}
		}
		return int(n), nil
	}
	if ints, isInts := v.Ints(); isInts && len(ints) > 0 {
		uniq := map[int64]bool{}
		for _, n := range ints {
			uniq[n] = true
		}
		if len(uniq) == 1 && ints[0] >= 0 && ints[0] <= 1<<40 {
			return int(ints[0]), nil
		}
		vals := make([]int, 0, len(uniq))
		for n := range uniq {
			vals = append(vals, int(n))
		}
		sort.Ints(vals)
		return 0, &FormatError{Path: f.Path, Offset: -1, Key: key,
			Msg: fmt.Sprintf("per-layer values %v differ; layer-varying shapes are not supported", vals)}
	}
	return 0, f.wrongType(key, v, "an integer")
}

// ParameterCount is the total element count of all tensors.
func (f *File) ParameterCount() int64 {
	var n int64
	for _, t := range f.Tensors {
		n += t.Elements()
	}
	return n
}
