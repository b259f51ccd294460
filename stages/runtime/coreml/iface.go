package coreml

import (
	"fmt"
	"slices"

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
	case runtime.PrefillFunction:
		return &it.Prefill, nil
	case runtime.DecodeFunction:
		return &it.Decode, nil
	}
	return nil, fmt.Errorf("coreml: no function %q in a lilims package (have %s, %s)", fn, runtime.PrefillFunction, runtime.DecodeFunction)
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

// InterfaceOf reads the prefill/decode interface from a model description (coremltools'
// Model.proto: a multifunction model describes each function in
// ModelDescription.functions) and checks the contract of package export:
//
//	input_ids int32 [1, N], position_ids int32 [N], causal_mask fp16 [1, 1, N, C],
//	current_pos int32 [1], logits fp32 (or fp16) [1, N, V], fp16 states [1, H, C, D]
//
// with N = 1 for decode and the same states in both functions, since one MLState serves
// both (§6.2).
func InterfaceOf(m *milpb.Model) (*Interface, error) {
	return chunkInterfaceOf(m, wholeModel)
}

// chunkRole is the place of a package in a chunked export (mlpackage.ChunkIndex): the first
// takes input_ids, every later one the previous one's hidden states in their place; the
// last returns the logits, every earlier one its hidden states.
type chunkRole struct{ first, last bool }

var wholeModel = chunkRole{first: true, last: true}

// ReadChunkInterface is ReadInterface for package i of the n of a chunked export.
func ReadChunkInterface(pkgDir string, i, n int) (*Interface, error) {
	pkg, err := mlpackage.Open(pkgDir)
	if err != nil {
		return nil, err
	}
	defer pkg.Close()
	it, err := chunkInterfaceOf(pkg.Model, chunkRole{first: i == 0, last: i == n-1})
	if err != nil {
		return nil, fmt.Errorf("%s (chunk %d of %d): %w", pkgDir, i, n, err)
	}
	return it, nil
}

func chunkInterfaceOf(m *milpb.Model, role chunkRole) (*Interface, error) {
	if err := checkContractVersion(m); err != nil {
		return nil, err
	}
	desc := m.GetDescription()
	if len(desc.GetFunctions()) == 0 {
		return nil, fmt.Errorf("coreml: not a lilims package: the model describes no functions (want %s and %s)", runtime.PrefillFunction, runtime.DecodeFunction)
	}
	it := &Interface{}
	found := map[string]bool{}
	for _, fd := range desc.GetFunctions() {
		var dst *Function
		switch fd.GetName() {
		case runtime.PrefillFunction:
			dst = &it.Prefill
		case runtime.DecodeFunction:
			dst = &it.Decode
		default:
			continue
		}
		f, err := functionOf(fd)
		if err != nil {
			return nil, err
		}
		*dst = f
		found[fd.GetName()] = true
	}
	for _, name := range []string{runtime.PrefillFunction, runtime.DecodeFunction} {
		if !found[name] {
			return nil, fmt.Errorf("coreml: not a lilims package: no function %q", name)
		}
	}
	n, c, v, err := checkContract(&it.Prefill, role)
	if err != nil {
		return nil, err
	}
	n1, c1, v1, err := checkContract(&it.Decode, role)
	if err != nil {
		return nil, err
	}
	switch {
	case n1 != 1:
		return nil, fmt.Errorf("coreml: function decode takes %d tokens, want 1", n1)
	case c1 != c:
		return nil, fmt.Errorf("coreml: prefill is exported for a context of %d, decode for %d", c, c1)
	case v1 != v:
		return nil, fmt.Errorf("coreml: prefill returns %d logits per token, decode %d", v, v1)
	case !sameFeatures(it.Prefill.States, it.Decode.States):
		return nil, fmt.Errorf("coreml: prefill and decode declare different states; one MLState must serve both")
	}
	it.Meta = runtime.Meta{ContextLength: c, PrefillChunk: n, VocabSize: v}
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
		// ArrayDataType and MLMultiArrayDataType share their numbers (Model.proto in coremltools' mlmodel/format and MLMultiArray.h).
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

// checkContract checks one function against the contract and returns its N, C and V (V is
// 0 for a chunk that returns hidden states).
func checkContract(f *Function, role chunkRole) (n, c, v int, err error) {
	fail := func(format string, args ...any) (int, int, int, error) {
		return 0, 0, 0, fmt.Errorf("coreml: function %s: "+format, append([]any{f.Name}, args...)...)
	}
	get := func(name string, types []DataType, rank int) (Feature, error) {
		in, ok := f.Input(name)
		if !ok {
			return in, fmt.Errorf("coreml: function %s: no input %q", f.Name, name)
		}
		if !slices.Contains(types, in.Type) {
			return in, fmt.Errorf("coreml: function %s: input %q is %v, want %v", f.Name, name, in.Type, types[0])
		}
		if len(in.Shape) != rank {
			return in, fmt.Errorf("coreml: function %s: input %q has shape %v, want rank %d", f.Name, name, in.Shape, rank)
		}
		return in, nil
	}
	if role.first {
		ids, err := get("input_ids", []DataType{Int32}, 2)
		if err != nil {
			return 0, 0, 0, err
		}
		n = ids.Shape[1]
		if ids.Shape[0] != 1 || n < 1 {
			return fail("input_ids has shape %v, want [1, N]", ids.Shape)
		}
	} else {
		h, ok := f.Input(hiddenStates)
		if !ok {
			return fail("no input %q (a chunk after the first takes the previous one's hidden states)", hiddenStates)
		}
		if n = hiddenTokens(h); n < 1 || (h.Type != Float16 && h.Type != Float32) {
			return fail("input %q is %v %v, want float16 [1, N, E] (or [1, E, 1, N] in the ANE layout)", hiddenStates, h.Type, h.Shape)
		}
	}
	pos, err := get("position_ids", []DataType{Int32}, 1)
	if err != nil {
		return 0, 0, 0, err
	}
	if pos.Shape[0] != n {
		return fail("position_ids has shape %v, want [%d]", pos.Shape, n)
	}
	mask, err := get("causal_mask", []DataType{Float16, Float32}, 4)
	if err != nil {
		return 0, 0, 0, err
	}
	c = mask.Shape[3]
	if mask.Shape[0] != 1 || mask.Shape[1] != 1 || mask.Shape[2] != n || c < n {
		return fail("causal_mask has shape %v, want [1, 1, %d, C] with C ≥ %d", mask.Shape, n, n)
	}
	cur, err := get("current_pos", []DataType{Int32}, 1)
	if err != nil {
		return 0, 0, 0, err
	}
	if cur.Shape[0] != 1 {
		return fail("current_pos has shape %v, want [1]", cur.Shape)
	}
	if len(f.Inputs) != 4 {
		return fail("has %d inputs, want input_ids (or %s), position_ids, causal_mask and current_pos", len(f.Inputs), hiddenStates)
	}
	if !role.last {
		h, ok := f.Output(hiddenStatesOut)
		if !ok {
			return fail("no output %q (a chunk before the last passes its hidden states on)", hiddenStatesOut)
		}
		if hiddenTokens(h) != n || (h.Type != Float16 && h.Type != Float32) {
			return fail("%s is %v %v, want float16 [1, %d, E] (or [1, E, 1, %d] in the ANE layout)", hiddenStatesOut, h.Type, h.Shape, n, n)
		}
	} else if err := checkLogits(f, n, &v); err != nil {
		return 0, 0, 0, err
	}
	if len(f.States) == 0 {
		return fail("declares no KV state")
	}
	for _, s := range f.States {
		// States are fp16 (coremltools' StateType: fp16 tensors only); the KV rows are axis 2 (package export).
		if s.Type != Float16 || len(s.Shape) != 4 || s.Shape[2] != c {
			return fail("state %q is %v %v, want float16 [1, H, %d, D]", s.Name, s.Type, s.Shape, c)
		}
	}
	return n, c, v, nil
}

// hiddenTokens is the N of a hidden-states feature: [1, N, E] in the standard layout,
// [1, E, 1, N] in the ANE layout (channels first); 0 for any other shape.
func hiddenTokens(h Feature) int {
	switch s := h.Shape; {
	case len(s) == 3 && s[0] == 1 && s[2] >= 1:
		return s[1]
	case len(s) == 4 && s[0] == 1 && s[1] >= 1 && s[2] == 1:
		return s[3]
	}
	return 0
}

// checkLogits checks the logits output of the last (or only) package and sets *v.
func checkLogits(f *Function, n int, v *int) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("coreml: function %s: "+format, append([]any{f.Name}, args...)...)
	}
	logits, ok := f.Output("logits")
	if !ok {
		return fail("no output \"logits\"")
	}
	if logits.Type != Float32 && logits.Type != Float16 {
		return fail("logits are %v, want float32 or float16", logits.Type)
	}
	if len(logits.Shape) != 3 || logits.Shape[0] != 1 || logits.Shape[1] != n || logits.Shape[2] < 1 {
		return fail("logits have shape %v, want [1, %d, V]", logits.Shape, n)
	}
	*v = logits.Shape[2]
	return nil
}

func sameFeatures(a, b []Feature) bool {
	return slices.EqualFunc(a, b, func(x, y Feature) bool {
		return x.Name == y.Name && x.Type == y.Type && slices.Equal(x.Shape, y.Shape)
	})
}
