package mil

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
)

const (
	// SpecVersion is the Core ML specification version Build writes: 9 is
	// the first with states, multifunction models and int4 block-wise
	// constexprs (iOS 18 / macOS 15).
	SpecVersion = 9
	// Opset is the MIL opset string of spec 9 (Function.opset and the key
	// of its only block specialization).
	Opset = "CoreML8"
	// WeightFile is how const ops name weight.bin; @model_path is the
	// directory holding model.mlmodel.
	WeightFile = "@model_path/weights/weight.bin"
	// blobMinElems: coremltools puts a value in weight.bin iff it has at
	// least 10 elements (load.py should_use_weight_file).
	blobMinElems = 10
)

// BlobWriter appends one record to weight.bin and returns the offset of its
// metadata block; *blob.Writer implements it. It may write data after Add
// returns (blob.Writer.OnWritten says when it has): a weight source must not
// reuse the buffer it returned before then.
type BlobWriter interface {
	Add(dtype blob.DataType, data []byte, elemCount int) (offset uint64, err error)
}

// A BlobReserver is a BlobWriter that can also hand out a record's payload for a weight's
// WeightFill to write in place (blob.Writer.Reserve); an error wrapping blob.ErrNoReserve
// means the record must go through Add.
type BlobReserver interface {
	BlobWriter
	Reserve(dtype blob.DataType, elemCount int) (offset uint64, payload []byte, commit func() error, err error)
}

// blobbable are the dtypes coremltools stores in weight.bin at spec ≥ 9
// (plus the sub-byte types of the iOS18 constexpr ops).
func blobbable(d DType) bool {
	switch d {
	case FP16, FP32, Int8, UInt8, Int16, UInt16, Int32, UInt32, Int4, UInt4, UInt1, UInt2, UInt3, UInt6:
		return true
	}
	return false
}

// Build writes every weight of the program to w (each shared weight once)
// and returns the Core ML Model: spec 9, an mlProgram with opset CoreML8.
// A program whose only function is "main" gets a single-function
// description; otherwise ModelDescription.functions and defaultFunctionName
// are set and the top-level input/output/state stay empty.
func (p *Program) Build(w BlobWriter) (*milpb.Model, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	if len(p.funcs) == 0 {
		return nil, fmt.Errorf("mil: program has no functions")
	}
	// Offsets belong to one weight file: a second Build writes afresh.
	for _, wt := range p.weights {
		wt.written, wt.offset = false, 0
	}
	s := &serializer{p: p, w: w, constBlobs: map[[32]byte]uint64{}}
	prog := &milpb.Program{Version: 1, Functions: map[string]*milpb.Function{}}
	desc := &milpb.ModelDescription{}
	for _, f := range p.funcs {
		if len(f.outputs) == 0 {
			return nil, fmt.Errorf("mil: function %s has no outputs", f.name)
		}
		fn, err := s.function(f)
		if err != nil {
			return nil, err
		}
		prog.Functions[f.name] = fn
		fd, err := functionDescription(f)
		if err != nil {
			return nil, err
		}
		desc.Functions = append(desc.Functions, fd)
	}
	if len(p.funcs) == 1 && p.funcs[0].name == "main" {
		fd := desc.Functions[0]
		desc = &milpb.ModelDescription{Input: fd.Input, Output: fd.Output, State: fd.State}
	} else {
		desc.DefaultFunctionName = p.funcs[0].name
		if p.defaultFunc != "" {
			if _, ok := p.byName[p.defaultFunc]; !ok {
				return nil, fmt.Errorf("mil: default function %s does not exist", p.defaultFunc)
			}
			desc.DefaultFunctionName = p.defaultFunc
		}
	}
	if len(p.metadata) > 0 {
		desc.Metadata = &milpb.Metadata{UserDefined: p.metadata}
	}
	return &milpb.Model{
		SpecificationVersion: SpecVersion,
		Description:          desc,
		Type:                 &milpb.Model_MlProgram{MlProgram: prog},
	}, nil
}

type serializer struct {
	p          *Program
	w          BlobWriter
	constBlobs map[[32]byte]uint64 // builder-made constants, deduplicated by content
}

func (s *serializer) function(f *Function) (*milpb.Function, error) {
	fn := &milpb.Function{Opset: Opset}
	for _, v := range f.inputs {
		fn.Inputs = append(fn.Inputs, &milpb.NamedValueType{Name: v.name, Type: valueType(v.typ, v.state)})
	}
	block := &milpb.Block{}
	for _, v := range f.outputs {
		block.Outputs = append(block.Outputs, v.name)
	}
	for _, o := range f.ops {
		po := &milpb.Operation{
			Type:       o.typ,
			Inputs:     map[string]*milpb.Argument{},
			Attributes: map[string]*milpb.Value{"name": stringValue(o.name)},
		}
		if o.val != nil {
			val, err := s.value(o.val)
			if err != nil {
				return nil, &OpError{Function: f.name, Op: o.name, Type: o.typ, Err: err}
			}
			po.Attributes["val"] = val
		}
		sig, _ := Lookup(o.typ)
		for _, def := range sig.Inputs {
			in := def.Name
			bs, ok := o.inputs[in]
			if !ok {
				continue
			}
			arg := &milpb.Argument{}
			for _, b := range bs {
				if b.v != nil {
					arg.Arguments = append(arg.Arguments, &milpb.Argument_Binding{Binding: &milpb.Argument_Binding_Name{Name: b.v.name}})
					continue
				}
				val, err := s.value(b.w)
				if err != nil {
					return nil, &OpError{Function: f.name, Op: o.name, Type: o.typ, Err: inErr(in, "%v", err)}
				}
				arg.Arguments = append(arg.Arguments, &milpb.Argument_Binding{Binding: &milpb.Argument_Binding_Value{Value: val}})
			}
			po.Inputs[in] = arg
		}
		for _, v := range o.outputs {
			po.Outputs = append(po.Outputs, &milpb.NamedValueType{Name: v.name, Type: valueType(v.typ, false)})
		}
		block.Operations = append(block.Operations, po)
	}
	fn.BlockSpecializations = map[string]*milpb.Block{Opset: block}
	return fn, nil
}

// value returns the Value for a stored tensor: a blob reference for
// blobbable tensors of ≥ 10 elements, an immediate otherwise. Named weights
// are written once and shared; builder-made constants are shared by content.
func (s *serializer) value(w *weight) (*milpb.Value, error) {
	n := w.typ.NumElements()
	toBlob := n >= blobMinElems && blobbable(w.typ.DType)
	if w.c != nil && !toBlob {
		return immediate(*w.c)
	}
	if w.c == nil && w.written {
		return blobValue(w.typ, w.offset), nil
	}
	if r, ok := s.w.(BlobReserver); ok && w.fill != nil && toBlob {
		off, err := reserve(r, w, n)
		if err == nil {
			w.written, w.offset = true, off
			return blobValue(w.typ, off), nil
		}
		if !errors.Is(err, blob.ErrNoReserve) {
			return nil, fmt.Errorf("weight %s: %w", w.name, err)
		}
	}
	var raw []byte
	var err error
	if w.c != nil {
		raw, err = w.c.Bytes()
	} else {
		raw, err = w.src()
		if err == nil && len(raw) != w.typ.DType.ByteSize(n) {
			err = fmt.Errorf("%d bytes, %s needs %d", len(raw), w.typ, w.typ.DType.ByteSize(n))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("weight %s: %w", w.name, err)
	}
	if !toBlob {
		c, err := DecodeConstant(w.typ, raw)
		if err != nil {
			return nil, fmt.Errorf("weight %s: %w", w.name, err)
		}
		return immediate(c)
	}
	var key [32]byte
	if w.c != nil {
		key = sha256.Sum256(append([]byte(w.typ.String()), raw...))
		if off, ok := s.constBlobs[key]; ok {
			return blobValue(w.typ, off), nil
		}
	}
	if s.w == nil {
		return nil, fmt.Errorf("weight %s: program needs weight.bin but no blob writer was given", w.name)
	}
	bt, err := blob.FromMIL(milpb.DataType(w.typ.DType))
	if err != nil {
		return nil, fmt.Errorf("weight %s: %w", w.name, err)
	}
	off, err := s.w.Add(bt, raw, n)
	if err != nil {
		return nil, fmt.Errorf("weight %s: %w", w.name, err)
	}
	if w.c != nil {
		s.constBlobs[key] = off
	} else {
		w.written, w.offset = true, off
	}
	return blobValue(w.typ, off), nil
}

// reserve writes weight w of n elements through its fill into a record r hands out.
func reserve(r BlobReserver, w *weight, n int) (uint64, error) {
	bt, err := blob.FromMIL(milpb.DataType(w.typ.DType))
	if err != nil {
		return 0, err
	}
	off, payload, commit, err := r.Reserve(bt, n)
	if err != nil {
		return 0, err
	}
	if len(payload) != w.typ.DType.ByteSize(n) {
		// Never: both sizes are ceil(n·bits/8).
		return 0, fmt.Errorf("record of %d bytes, %s needs %d", len(payload), w.typ, w.typ.DType.ByteSize(n))
	}
	if err := w.fill(payload); err != nil {
		return 0, err
	}
	return off, commit()
}

func blobValue(t TensorType, off uint64) *milpb.Value {
	return &milpb.Value{
		Type:  valueType(t, false),
		Value: &milpb.Value_BlobFileValue_{BlobFileValue: &milpb.Value_BlobFileValue{FileName: WeightFile, Offset: off}},
	}
}

// immediate encodes c in the TensorValue field coremltools uses for its
// dtype: floats for fp32, doubles for fp64, ints for int32/int16/uint16,
// longInts for 64-bit ints, bools, strings, and raw bytes for fp16, 8-bit,
// sub-byte and uint32 types.
func immediate(c Constant) (*milpb.Value, error) {
	tv := &milpb.TensorValue{}
	switch c.Type.DType {
	case FP32:
		v := make([]float32, len(c.Floats))
		for i, x := range c.Floats {
			v[i] = float32(x)
		}
		tv.Value = &milpb.TensorValue_Floats{Floats: &milpb.TensorValue_RepeatedFloats{Values: v}}
	case FP64:
		tv.Value = &milpb.TensorValue_Doubles{Doubles: &milpb.TensorValue_RepeatedDoubles{Values: c.Floats}}
	case Int32, Int16, UInt16:
		v := make([]int32, len(c.Ints))
		for i, x := range c.Ints {
			v[i] = int32(x)
		}
		tv.Value = &milpb.TensorValue_Ints{Ints: &milpb.TensorValue_RepeatedInts{Values: v}}
	case Int64, UInt64:
		tv.Value = &milpb.TensorValue_LongInts{LongInts: &milpb.TensorValue_RepeatedLongInts{Values: c.Ints}}
	case Bool:
		tv.Value = &milpb.TensorValue_Bools{Bools: &milpb.TensorValue_RepeatedBools{Values: c.Bools}}
	case String:
		tv.Value = &milpb.TensorValue_Strings{Strings: &milpb.TensorValue_RepeatedStrings{Values: c.Strings}}
	default:
		raw, err := c.Bytes()
		if err != nil {
			return nil, err
		}
		tv.Value = &milpb.TensorValue_Bytes{Bytes: &milpb.TensorValue_RepeatedBytes{Values: raw}}
	}
	return &milpb.Value{
		Type:  valueType(c.Type, false),
		Value: &milpb.Value_ImmediateValue_{ImmediateValue: &milpb.Value_ImmediateValue{Value: &milpb.Value_ImmediateValue_Tensor{Tensor: tv}}},
	}, nil
}

func stringValue(s string) *milpb.Value {
	v, _ := immediate(StringScalar(s))
	return v
}

func tensorType(t TensorType) *milpb.TensorType {
	tt := &milpb.TensorType{DataType: milpb.DataType(t.DType), Rank: int64(t.Rank())}
	for _, d := range t.Shape {
		tt.Dimensions = append(tt.Dimensions, &milpb.Dimension{Dimension: &milpb.Dimension_Constant{Constant: &milpb.Dimension_ConstantDimension{Size: uint64(d)}}})
	}
	return tt
}

// valueType wraps a tensor type, inside a StateType for states.
func valueType(t TensorType, state bool) *milpb.ValueType {
	vt := &milpb.ValueType{Type: &milpb.ValueType_TensorType{TensorType: tensorType(t)}}
	if state {
		vt = &milpb.ValueType{Type: &milpb.ValueType_StateType{StateType: &milpb.StateType{WrappedType: vt}}}
	}
	return vt
}

func arrayType(t TensorType) (*milpb.ArrayFeatureType, error) {
	a := &milpb.ArrayFeatureType{}
	switch t.DType {
	case FP16:
		a.DataType = milpb.ArrayFeatureType_FLOAT16
	case FP32:
		a.DataType = milpb.ArrayFeatureType_FLOAT32
	case Int32:
		a.DataType = milpb.ArrayFeatureType_INT32
	default:
		return nil, fmt.Errorf("%s has no Core ML array type", t)
	}
	for _, d := range t.Shape {
		a.Shape = append(a.Shape, int64(d))
	}
	return a, nil
}

// functionDescription lists inputs (multiArrayType), outputs and states
// (stateType wrapping an fp16 array); states are not inputs here.
func functionDescription(f *Function) (*milpb.FunctionDescription, error) {
	fd := &milpb.FunctionDescription{Name: f.name}
	feature := func(v *Value) (*milpb.FeatureDescription, error) {
		a, err := arrayType(v.typ)
		if err != nil {
			return nil, fmt.Errorf("mil: function %s: %s: %w", f.name, v.name, err)
		}
		ft := &milpb.FeatureType{Type: &milpb.FeatureType_MultiArrayType{MultiArrayType: a}}
		if v.state {
			ft = &milpb.FeatureType{Type: &milpb.FeatureType_StateType{StateType: &milpb.StateFeatureType{Type: &milpb.StateFeatureType_ArrayType{ArrayType: a}}}}
		}
		return &milpb.FeatureDescription{Name: v.name, Type: ft}, nil
	}
	for _, v := range f.inputs {
		d, err := feature(v)
		if err != nil {
			return nil, err
		}
		if v.state {
			fd.State = append(fd.State, d)
		} else {
			fd.Input = append(fd.Input, d)
		}
	}
	for _, v := range f.outputs {
		d, err := feature(v)
		if err != nil {
			return nil, err
		}
		fd.Output = append(fd.Output, d)
	}
	return fd, nil
}
