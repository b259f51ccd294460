package compile

import (
	"fmt"

	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// CheckModel validates a whole model: the spec version, the program (every op against its
// signature, through mil.CheckProgram) and the interface — that the model description and the
// program's functions agree on input, output and state names, dtypes and shapes, as Core ML's
// interface validators require (coreml-mil.md §2.2, §6).
func CheckModel(m *milpb.Model) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	prog := m.GetMlProgram()
	if prog == nil {
		return []error{fmt.Errorf("the model holds no ML Program (mlProgram, field 502)")}
	}
	if v := m.GetSpecificationVersion(); v < 6 {
		fail("specification version %d is below 6, the first with ML Programs", v)
	}
	errs = append(errs, mil.CheckProgram(prog)...)
	desc := m.GetDescription()
	type iface struct {
		name                   string
		inputs, outputs, state []*milpb.FeatureDescription
	}
	var ifaces []iface
	if len(desc.GetFunctions()) > 0 || desc.GetDefaultFunctionName() != "" {
		if m.GetSpecificationVersion() < 9 {
			fail("multifunction models need specification version 9, have %d", m.GetSpecificationVersion())
		}
		if len(desc.GetInput())+len(desc.GetOutput())+len(desc.GetState()) > 0 {
			fail("a multifunction model must leave the top-level input/output/state empty")
		}
		found := false
		for _, fd := range desc.GetFunctions() {
			ifaces = append(ifaces, iface{fd.GetName(), fd.GetInput(), fd.GetOutput(), fd.GetState()})
			found = found || fd.GetName() == desc.GetDefaultFunctionName()
		}
		if !found {
			fail("defaultFunctionName %q names no function of the description", desc.GetDefaultFunctionName())
		}
	} else {
		ifaces = append(ifaces, iface{"main", desc.GetInput(), desc.GetOutput(), desc.GetState()})
	}
	for _, it := range ifaces {
		fn, ok := prog.GetFunctions()[it.name]
		if !ok {
			fail("function %s: described but absent from the program", it.name)
			continue
		}
		progInputs := map[string]*milpb.ValueType{}
		for _, in := range fn.GetInputs() {
			progInputs[in.GetName()] = in.GetType()
		}
		for _, fdesc := range it.inputs {
			vt, ok := progInputs[fdesc.GetName()]
			if !ok {
				fail("function %s: input %q is described but not an input of the program", it.name, fdesc.GetName())
				continue
			}
			if err := sameArray(fdesc.GetType().GetMultiArrayType(), vt.GetTensorType()); err != nil {
				fail("function %s: input %q: %v", it.name, fdesc.GetName(), err)
			}
			delete(progInputs, fdesc.GetName())
		}
		for _, fdesc := range it.state {
			if m.GetSpecificationVersion() < 9 {
				fail("function %s: state %q needs specification version 9", it.name, fdesc.GetName())
			}
			vt, ok := progInputs[fdesc.GetName()]
			if !ok || vt.GetStateType() == nil {
				fail("function %s: state %q is described but the program has no state input of that name", it.name, fdesc.GetName())
				continue
			}
			arr := fdesc.GetType().GetStateType().GetArrayType()
			if arr.GetDataType() != milpb.ArrayFeatureType_FLOAT16 {
				fail("function %s: state %q must be FLOAT16, is %v", it.name, fdesc.GetName(), arr.GetDataType())
			}
			if err := sameArray(arr, vt.GetStateType().GetWrappedType().GetTensorType()); err != nil {
				fail("function %s: state %q: %v", it.name, fdesc.GetName(), err)
			}
			delete(progInputs, fdesc.GetName())
		}
		for name := range progInputs {
			fail("function %s: program input %q is missing from the model description", it.name, name)
		}
		block := fn.GetBlockSpecializations()[fn.GetOpset()]
		outs := map[string]bool{}
		for _, o := range block.GetOutputs() {
			outs[o] = true
		}
		for _, fdesc := range it.outputs {
			if !outs[fdesc.GetName()] {
				fail("function %s: output %q is described but the program does not return it", it.name, fdesc.GetName())
			}
			delete(outs, fdesc.GetName())
		}
		for name := range outs {
			fail("function %s: program output %q is missing from the model description", it.name, name)
		}
	}
	return errs
}

var arrayToMIL = map[milpb.ArrayFeatureType_ArrayDataType]milpb.DataType{
	milpb.ArrayFeatureType_FLOAT16: milpb.DataType_FLOAT16,
	milpb.ArrayFeatureType_FLOAT32: milpb.DataType_FLOAT32,
	milpb.ArrayFeatureType_DOUBLE:  milpb.DataType_FLOAT64,
	milpb.ArrayFeatureType_INT32:   milpb.DataType_INT32,
	milpb.ArrayFeatureType_INT8:    milpb.DataType_INT8,
}

// sameArray compares a described multi-array with the program's tensor type.
func sameArray(a *milpb.ArrayFeatureType, t *milpb.TensorType) error {
	if a == nil || t == nil {
		return fmt.Errorf("not a multi-array tensor")
	}
	if want, ok := arrayToMIL[a.GetDataType()]; !ok || want != t.GetDataType() {
		return fmt.Errorf("described as %v, the program declares %v", a.GetDataType(), t.GetDataType())
	}
	dims := t.GetDimensions()
	if len(a.GetShape()) != len(dims) {
		return fmt.Errorf("described with rank %d, the program declares rank %d", len(a.GetShape()), len(dims))
	}
	for i, d := range dims {
		if c := d.GetConstant(); c != nil && int64(c.GetSize()) != a.GetShape()[i] {
			return fmt.Errorf("dimension %d is %d in the description, %d in the program", i, a.GetShape()[i], c.GetSize())
		}
	}
	return nil
}
