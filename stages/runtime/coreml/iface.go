package coreml

import (
	"fmt"
	"slices"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/runtime"
)

// Feature is one multi-array input, output or state of a function as the model describes it.
type Feature struct {
	Name  string
	Type  DataType
	Shape []int
}

// Function is the described interface of one function of a package.
type Function struct {
	Name    string
	Inputs  []Feature
	Outputs []Feature
	States  []Feature
}

// Input returns the input named name.
func (f *Function) Input(name string) (Feature, bool) {
	i := slices.IndexFunc(f.Inputs, func(x Feature) bool { return x.Name == name })
	if i < 0 {
		return Feature{}, false
	}
	return f.Inputs[i], true
}

// Output returns the output named name.
func (f *Function) Output(name string) (Feature, bool) {
	i := slices.IndexFunc(f.Outputs, func(x Feature) bool { return x.Name == name })
	if i < 0 {
		return Feature{}, false
	}
	return f.Outputs[i], true
}

// Interface is what a lilims package declares: its prefill and decode functions and the
// shapes a Session builds inputs for. A compiled .mlmodelc keeps no description Go can
// read without the framework, so the interface always comes from the source package.
type Interface struct {
	Prefill, Decode Function
	Meta            runtime.Meta
}

// Function returns the interface of the contract function fn.
func (it *Interface) Function(fn string) (*Function, error) {
	switch fn {
	case contract.Prefill:
		return &it.Prefill, nil
	case contract.Decode:
		return &it.Decode, nil
	}
	return nil, fmt.Errorf("coreml: no function %q in a lilims package (have %s, %s)", fn, contract.Prefill, contract.Decode)
}

// ReadInterface reads the model description of the package at pkgDir and checks it against
// the prefill/decode contract.
func ReadInterface(pkgDir string) (*Interface, error) {
	pkg, err := mlpackage.Open(pkgDir)
	if err != nil {
		return nil, err
	}
	defer pkg.Close()
	it, err := InterfaceOf(pkg.Model)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkgDir, err)
	}
	return it, nil
}

// ReadInterfaces reads the packages of a chunked export (or one package), checks them
// together against the program contract — the first takes input_ids, each later one the
// previous one's hidden states, the last returns the logits (contract.Check) — and returns
// each one's interface, all with the Meta of the whole.
func ReadInterfaces(pkgDirs []string) ([]*Interface, error) {
	models := make([]*milpb.Model, len(pkgDirs))
	descs := make([]contract.Description, len(pkgDirs))
	for i, dir := range pkgDirs {
		pkg, err := mlpackage.Open(dir)
		if err != nil {
			return nil, err
		}
		models[i], descs[i] = pkg.Model, contract.Describe(pkg.Model)
		pkg.Close()
	}
	meta, err := contract.CheckOne(descs)
	if err != nil {
		return nil, fmt.Errorf("coreml: %w", err)
	}
	its := make([]*Interface, len(models))
	for i, m := range models {
		if its[i], err = functionsOf(m); err != nil {
			return nil, fmt.Errorf("%s: %w", pkgDirs[i], err)
		}
		its[i].Meta = meta
	}
	return its, nil
}

// InterfaceOf reads the prefill/decode interface from a model description (a multifunction
// model describes each function in ModelDescription.functions, Core ML spec 9) after
// checking it against the program contract (contract.Check).
func InterfaceOf(m *milpb.Model) (*Interface, error) {
	meta, err := contract.CheckOne([]contract.Description{contract.Describe(m)})
	if err != nil {
		return nil, fmt.Errorf("coreml: %w", err)
	}
	it, err := functionsOf(m)
	if err != nil {
		return nil, err
	}
	it.Meta = meta
	return it, nil
}

// functionsOf reads the described prefill and decode functions of a checked package.
func functionsOf(m *milpb.Model) (*Interface, error) {
	it := &Interface{}
	for _, fd := range m.GetDescription().GetFunctions() {
		var dst *Function
		switch fd.GetName() {
		case contract.Prefill:
			dst = &it.Prefill
		case contract.Decode:
			dst = &it.Decode
		default:
			continue
		}
		var err error
		if *dst, err = functionOf(fd); err != nil {
			return nil, err
		}
	}
	return it, nil
}

func functionOf(fd *milpb.FunctionDescription) (Function, error) {
	f := Function{Name: fd.GetName()}
	var err error
	if f.Inputs, err = featuresOf(fd.GetName(), "input", fd.GetInput(), false); err != nil {
		return f, err
	}
	if f.Outputs, err = featuresOf(fd.GetName(), "output", fd.GetOutput(), false); err != nil {
		return f, err
	}
	if f.States, err = featuresOf(fd.GetName(), "state", fd.GetState(), true); err != nil {
		return f, err
	}
	return f, nil
}

func featuresOf(fn, kind string, fds []*milpb.FeatureDescription, state bool) ([]Feature, error) {
	out := make([]Feature, 0, len(fds))
	for _, fd := range fds {
		arr := fd.GetType().GetMultiArrayType()
		if state {
			arr = fd.GetType().GetStateType().GetArrayType()
		}
		if arr == nil {
			return nil, fmt.Errorf("coreml: function %s: %s %q is not a multi-array", fn, kind, fd.GetName())
		}
		// ArrayDataType and MLMultiArrayDataType share their numbers (Core ML.framework MLMultiArrayDataType; coremltools
		// mlmodel/format/FeatureTypes.proto ArrayDataType).
		t := DataType(arr.GetDataType())
		if t.Size() == 0 {
			return nil, fmt.Errorf("coreml: function %s: %s %q has unsupported data type %v", fn, kind, fd.GetName(), arr.GetDataType())
		}
		shape := make([]int, len(arr.GetShape()))
		for i, d := range arr.GetShape() {
			if d < 0 || d > maxElements {
				return nil, fmt.Errorf("coreml: function %s: %s %q: dimension %d is %d", fn, kind, fd.GetName(), i, d)
			}
			shape[i] = int(d)
		}
		if _, err := elementCount(shape); err != nil {
			return nil, fmt.Errorf("coreml: function %s: %s %q: %w", fn, kind, fd.GetName(), err)
		}
		out = append(out, Feature{Name: fd.GetName(), Type: t, Shape: shape})
	}
	return out, nil
}
