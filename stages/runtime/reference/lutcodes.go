package reference

import (
	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// lutIndexBits is the width of constexpr_lut_to_dense's IndicesT (coremltools
// mil/ops/defs/iOS18/compression.py: uint1, uint2, uint3, uint4, uint6, uint8).
var lutIndexBits = map[milpb.DataType]int{
	milpb.DataType_UINT1: 1, milpb.DataType_UINT2: 2, milpb.DataType_UINT3: 3,
	milpb.DataType_UINT4: 4, milpb.DataType_UINT6: 6, milpb.DataType_UINT8: 8,
}

// compileLUTCodes evaluates the constexpr_lut_to_dense (iOS18) forms that the LUT kernels
// do not take: indices of 1, 2, 3 or 6 bits, or an int8/uint8 table — integer codes, the
// data of a constexpr_blockwise_shift_scale that applies block-wise scales and offsets
// (docs/quantization.md, "lut+blockwise"). The output is the dense table values as
// int8/uint8 codes, computed once at Open, which the blockwise op consuming them reads as it
// reads stored int8 data; a float table with such indices is a palettized weight
// (defineLUT). done is false for the forms compileLUT handles itself.
func compileLUTCodes(o *opCtx) (done bool, err error) {
	ia, la := o.op.GetInputs()["indices"], o.op.GetInputs()["lut"]
	if len(ia.GetArguments()) != 1 || len(la.GetArguments()) != 1 || ia.GetArguments()[0].GetValue() == nil {
		return false, nil
	}
	iv := ia.GetArguments()[0].GetValue()
	itt := iv.GetType().GetTensorType()
	bits := lutIndexBits[itt.GetDataType()]
	ldt := la.GetArguments()[0].GetValue().GetType().GetTensorType().GetDataType()
	intTable := ldt == milpb.DataType_INT8 || ldt == milpb.DataType_UINT8
	if bits == 0 || (!intTable && (bits == 4 || bits == 8)) {
		return false, nil
	}
	_, shape, err := tensorTypeOf(&milpb.TensorType{DataType: milpb.DataType_UINT8, Rank: itt.GetRank(), Dimensions: itt.GetDimensions()})
	if err != nil || len(shape) == 0 {
		return true, o.errf("indices: %v (rank ≥ 1 wanted)", err)
	}
	n := numElements(shape)
	var packed []byte
	if bv := iv.GetBlobFileValue(); bv != nil {
		r, err := o.c.weights(bv.GetFileName())
		if err != nil {
			return true, o.errf("indices: blob file %q: %v", bv.GetFileName(), err)
		}
		bd, data, count, err := r.Blob(bv.GetOffset())
		if err != nil {
			return true, o.errf("indices: blob at offset %d: %v", bv.GetOffset(), err)
		}
		if bd.MIL() != itt.GetDataType() || count != n {
			return true, o.errf("indices: blob at offset %d holds %d %v, declared %d %v", bv.GetOffset(), count, bd.MIL(), n, itt.GetDataType())
		}
		packed = data
	} else {
		packed = iv.GetImmediateValue().GetTensor().GetBytes().GetValues()
	}
	if len(packed) < (n*bits+7)/8 {
		return true, o.errf("indices: %d bytes, %d %d-bit indices need %d", len(packed), n, bits, (n*bits+7)/8)
	}
	lut, err := o.tensor("lut")
	if err != nil {
		return true, err
	}
	k := len(shape)
	if len(lut.Shape) != k+2 || lut.Shape[k] != 1<<bits || lut.Shape[k+1] != 1 {
		return true, o.errf("lut shape %v: want rank %d, %d entries, VECTOR_SIZE 1", lut.Shape, k+2, 1<<bits)
	}
	for d := range k {
		if lut.Shape[d] == 0 || shape[d]%lut.Shape[d] != 0 {
			return true, o.errf("lut groups %v do not divide indices shape %v", lut.Shape[:k], shape)
		}
	}
	idx := blob.UnpackBits(bits, packed, n)
	if !intTable {
		// A float table is a palettized weight: its indices, one byte each, and the tables
		// (a dense float32 weight would take four bytes a weight).
		return true, defineLUT(o, &Tensor{DType: Uint8, Shape: shape, raw: idx}, lut, 1<<bits)
	}
	// An integer table gives an int8/uint8 tensor, which the blockwise op reads as it reads
	// stored int8 data (one byte a weight).
	t := &Tensor{DType: lut.DType, Shape: shape, raw: make([]byte, n)}
	pos := make([]int, k)
	for i, q := range idx {
		g := 0 // the table of element i: its group index along every axis
		for d := range k {
			g = g*lut.Shape[d] + pos[d]/(shape[d]/lut.Shape[d])
		}
		v := lut.Float64At(g<<bits + int(q))
		t.raw[i] = byte(int8(v))
		if lut.DType == Uint8 {
			t.raw[i] = byte(v)
		}
		for d := k - 1; d >= 0; d-- {
			if pos[d]++; pos[d] < shape[d] {
				break
			}
			pos[d] = 0
		}
	}
	outs := o.op.GetOutputs()
	if len(outs) != 1 {
		return true, o.errf("must have one output")
	}
	o.c.vals[outs[0].GetName()] = &value{t: t, isConst: true}
	return true, nil
}
