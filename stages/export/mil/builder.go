package mil

import (
	"fmt"
	"strconv"
	"strings"
)

// A WeightSource returns a weight's raw little-endian bytes (sub-byte types
// packed LSB-first). Build calls it once, when the weight is written to
// weight.bin, so a large model is streamed tensor by tensor.
type WeightSource func() ([]byte, error)

// A WeightFill writes a weight's bytes (those its WeightSource returns) into dst, which
// has exactly their length and holds nothing in particular. Build calls it instead of the
// source when its blob writer hands out the weight's record in place (a BlobReserver).
type WeightFill func(dst []byte) error

// Bytes is a WeightSource for data already in memory.
func Bytes(b []byte) WeightSource { return func() ([]byte, error) { return b, nil } }

// Program is a MIL program under construction: one or more functions that
// share weights. Its zero value is not usable; call NewProgram.
type Program struct {
	funcs       []*Function
	byName      map[string]*Function
	defaultFunc string
	metadata    map[string]string
	weights     map[string]*weight // by name, shared across functions
}

// weight is a tensor stored by value: a const op's val or a constexpr
// parameter. Whether it goes to weight.bin or inline is decided at Build.
type weight struct {
	name string
	typ  TensorType
	src  WeightSource
	fill WeightFill // nil, or src's bytes written in place
	c    *Constant  // for builder-made constants instead of src
	// filled by Build
	written bool
	offset  uint64
}

// NewProgram returns an empty program targeting Core ML spec 9 (iOS 18 /
// macOS 15, opset CoreML8): the first version with states, multifunction
// models and constexpr_blockwise_shift_scale.
func NewProgram() *Program {
	return &Program{byName: map[string]*Function{}, weights: map[string]*weight{}, metadata: map[string]string{}}
}

// Function returns the function called name, adding it if needed. A program
// whose only function is "main" is written as a single-function model;
// otherwise as a multifunction model.
func (p *Program) Function(name string) *Function {
	if f, ok := p.byName[name]; ok {
		return f
	}
	f := &Function{p: p, name: name, names: map[string]bool{}, weightVals: map[string]*Value{}}
	if !validIdent(name) {
		f.fail(fmt.Errorf("mil: function name %q is not an identifier", name))
	}
	p.funcs = append(p.funcs, f)
	p.byName[name] = f
	return f
}

// SetDefaultFunction names the function a multifunction model runs when the
// caller picks none (ModelDescription.defaultFunctionName). It defaults to
// the first function added.
func (p *Program) SetDefaultFunction(name string) { p.defaultFunc = name }

// SetMetadata records a user-defined metadata entry (Metadata.userDefined).
func (p *Program) SetMetadata(key, value string) { p.metadata[key] = value }

// Err returns the first build error of any function.
func (p *Program) Err() error {
	for _, f := range p.funcs {
		if f.err != nil {
			return f.err
		}
	}
	return nil
}

// Function is one MIL function: typed inputs and states, ops in topological
// order, named outputs. Methods that add ops return the op's output; the
// first error (a type mismatch, a foreign value) is kept, later calls become
// no-ops returning nil, and Err and Program.Build report it.
type Function struct {
	p          *Program
	name       string
	inputs     []*Value // tensor inputs and states, in declaration order
	ops        []*op
	outputs    []*Value
	names      map[string]bool
	seq        int
	weightVals map[string]*Value
	err        error
}

// Value is a tensor (or state) defined in a function.
type Value struct {
	f     *Function
	name  string
	typ   TensorType
	state bool
	input bool      // a function input or state
	konst bool      // produced by const or constexpr_*
	val   *Constant // known value of an immediate const
	op    *op       // producing op, nil for inputs
}

// Name is the value's name in the program.
func (v *Value) Name() string { return v.name }

// Type is the value's tensor type (for a state, the wrapped tensor type).
func (v *Value) Type() TensorType { return v.typ }

// Shape is shorthand for Type().Shape.
func (v *Value) Shape() []int { return v.typ.Shape }

// IsState reports whether v is a state declared with Function.State.
func (v *Value) IsState() bool { return v.state }

func (v *Value) info() ArgInfo {
	return ArgInfo{Type: v.typ, State: v.state, Const: v.konst, Value: v.val}
}

type op struct {
	typ     string
	name    string
	inputs  map[string][]binding // in signature order when serialised
	outputs []*Value
	val     *weight // const's val
}

// binding is one Argument.Binding: by name (v) or by value (w).
type binding struct {
	v *Value
	w *weight
}

// Name is the function's name.
func (f *Function) Name() string { return f.name }

// Err returns the first error met while building f.
func (f *Function) Err() error { return f.err }

func (f *Function) fail(err error) {
	if f.err == nil {
		f.err = err
	}
}

// reserved are names coremltools renames (it appends "_workaround"): MIL
// keywords and type names.
var reserved = map[string]bool{}

func init() {
	for _, w := range strings.Fields("any bool program func tensor list dict tuple true false string bf16 fp16 fp32 fp64 int8 int16 int32 int64 uint8 uint16 uint32 uint64 state") {
		reserved[w] = true
	}
}

// validIdent reports whether s matches [A-Za-z_][A-Za-z0-9_]* and is not
// reserved, as MIL requires of names.
func validIdent(s string) bool {
	if s == "" || reserved[s] {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// sanitize maps an arbitrary name (a GGUF tensor name such as
// "blk.0.attn_q.weight") to a MIL identifier.
func sanitize(s string) string {
	var b strings.Builder
	for i, r := range s {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if i == 0 && r >= '0' && r <= '9' {
			b.WriteByte('_')
		}
		if ok {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out == "" {
		out = "_"
	}
	if reserved[out] {
		out += "_workaround"
	}
	return out
}

// fresh returns an unused value name derived from base.
func (f *Function) fresh(base string) string {
	base = sanitize(base)
	name := base
	for i := 1; f.names[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	f.names[name] = true
	return name
}

// Input declares a tensor input of the function. Core ML model inputs are
// fp16 (spec ≥ 7), fp32 or int32.
func (f *Function) Input(name string, d DType, shape ...int) *Value {
	return f.declare(name, Tensor(d, shape...), false)
}

// State declares a state (e.g. one KV-cache tensor). Core ML states are fp16
// with a fixed shape.
func (f *Function) State(name string, d DType, shape ...int) *Value {
	return f.declare(name, Tensor(d, shape...), true)
}

func (f *Function) declare(name string, t TensorType, state bool) *Value {
	if f.err != nil {
		return nil
	}
	kind := "input"
	if state {
		kind = "state"
	}
	switch {
	case !validIdent(name):
		f.fail(fmt.Errorf("mil: function %s: %s name %q is not an identifier", f.name, kind, name))
	case f.names[name]:
		f.fail(fmt.Errorf("mil: function %s: %s name %q already used", f.name, kind, name))
	case state && t.DType != FP16:
		f.fail(fmt.Errorf("mil: function %s: state %s is %s; Core ML states are fp16", f.name, name, t.DType))
	case !state && t.DType != FP16 && t.DType != FP32 && t.DType != Int32:
		f.fail(fmt.Errorf("mil: function %s: input %s is %s; model inputs are fp16, fp32 or int32", f.name, name, t.DType))
	case t.Rank() > MaxRank:
		f.fail(fmt.Errorf("mil: function %s: %s %s has rank %d > %d", f.name, kind, name, t.Rank(), MaxRank))
	}
	if err := checkShape(t.Shape); err != nil {
		f.fail(fmt.Errorf("mil: function %s: %s %s: %v", f.name, kind, name, err))
	}
	if f.err != nil {
		return nil
	}
	f.names[name] = true
	v := &Value{f: f, name: name, typ: t, state: state, input: true}
	f.inputs = append(f.inputs, v)
	return v
}

// Output marks v as a function output called name. The value is renamed
// (coremltools names the producing op's output after the model output); a
// function input or a value already output is passed through identity.
func (f *Function) Output(name string, v *Value) {
	if f.err != nil {
		return
	}
	if err := f.own("output "+name, v); err != nil {
		f.fail(err)
		return
	}
	switch {
	case v.state:
		f.fail(fmt.Errorf("mil: function %s: output %s: a state cannot be an output; read it with read_state", f.name, name))
		return
	case !validIdent(name):
		f.fail(fmt.Errorf("mil: function %s: output name %q is not an identifier", f.name, name))
		return
	case v.typ.DType != FP16 && v.typ.DType != FP32 && v.typ.DType != Int32:
		f.fail(fmt.Errorf("mil: function %s: output %s is %s; model outputs are fp16, fp32 or int32", f.name, name, v.typ.DType))
		return
	}
	for _, o := range f.outputs {
		if o.name == name {
			f.fail(fmt.Errorf("mil: function %s: output %s declared twice", f.name, name))
			return
		}
	}
	if v.input || v.konst || f.isOutput(v) || v.name == name {
		if v.name != name {
			if f.names[name] {
				f.fail(fmt.Errorf("mil: function %s: output name %s already used", f.name, name))
				return
			}
			v = f.Identity(v)
			if v == nil {
				return
			}
		}
	} else if f.names[name] {
		f.fail(fmt.Errorf("mil: function %s: output name %s already used", f.name, name))
		return
	}
	if v.name != name {
		delete(f.names, v.name)
		f.names[name] = true
		v.name = name
		if len(v.op.outputs) == 1 {
			v.op.name = name
		}
	}
	f.outputs = append(f.outputs, v)
}

func (f *Function) isOutput(v *Value) bool {
	for _, o := range f.outputs {
		if o == v {
			return true
		}
	}
	return false
}

// own checks that v is a value of f.
func (f *Function) own(where string, v *Value) error {
	if v == nil {
		return fmt.Errorf("mil: function %s: %s: nil value (an earlier error?)", f.name, where)
	}
	if v.f != f {
		return fmt.Errorf("mil: function %s: %s: value %s belongs to function %s", f.name, where, v.name, v.f.name)
	}
	return nil
}

// Args are the inputs of Function.Op: each is a *Value, a []*Value (a
// variadic input such as concat.values) or a Constant, which is emitted as
// its own const op.
type Args map[string]any

// Op adds an op of any type in the table. Inputs the caller leaves out that
// have a default are filled in explicitly, as coremltools does. It returns
// the op's outputs, or an *OpError naming the op and the input at fault.
func (f *Function) Op(opType string, args Args) ([]*Value, error) {
	if f.err != nil {
		return nil, f.err
	}
	sig, ok := Lookup(opType)
	if !ok || opType == "const" || sig.Constexpr {
		return nil, &OpError{Function: f.name, Type: opType, Err: fmt.Errorf("unknown op or not addable through Op")}
	}
	name := f.fresh(opType)
	fail := func(err error) ([]*Value, error) {
		delete(f.names, name)
		return nil, &OpError{Function: f.name, Op: name, Type: opType, Err: err}
	}
	o := &op{typ: opType, name: name, inputs: map[string][]binding{}}
	var pending []*op // const ops for Constant args and defaults
	info := map[string]ArgInfo{}
	constOp := func(input string, c Constant) (*Value, error) {
		if err := c.check(); err != nil {
			return nil, inErr(input, "%v", err)
		}
		cv := c
		v := &Value{f: f, name: f.fresh(name + "_" + input), typ: cv.Type, konst: true, val: &cv}
		co := &op{typ: "const", name: v.name, outputs: []*Value{v}, val: &weight{name: v.name, typ: cv.Type, c: &cv}}
		v.op = co
		pending = append(pending, co)
		return v, nil
	}
	undo := func() {
		for _, p := range pending {
			delete(f.names, p.name)
		}
	}
	for input := range args {
		if _, known := sig.Input(input); !known {
			return fail(inErr(input, "%s has no input %q", opType, input))
		}
	}
	// Walk inputs in signature order so that generated names (and the
	// serialised program) are deterministic.
	for _, def := range sig.Inputs {
		input := def.Name
		a, given := args[input]
		if !given {
			continue
		}
		var vals []*Value
		switch a := a.(type) {
		case *Value:
			vals = []*Value{a}
		case []*Value:
			vals = a
		case Constant:
			v, err := constOp(input, a)
			if err != nil {
				undo()
				return fail(err)
			}
			vals = []*Value{v}
		default:
			undo()
			return fail(inErr(input, "argument of type %T; want *Value, []*Value or Constant", a))
		}
		for _, v := range vals {
			if err := f.own("op "+name+" input "+input, v); err != nil {
				undo()
				return fail(inErr(input, "%v", err))
			}
			o.inputs[input] = append(o.inputs[input], binding{v: v})
		}
		if def.Variadic {
			ai := ArgInfo{}
			for _, v := range vals {
				ai.List = append(ai.List, v.info())
			}
			info[input] = ai
		} else if len(vals) != 1 {
			undo()
			return fail(inErr(input, "takes one value, got %d", len(vals)))
		} else {
			info[input] = vals[0].info()
		}
	}
	for _, def := range sig.Inputs {
		if _, given := info[def.Name]; given || def.Default == nil {
			continue
		}
		c, ok := def.Default(info)
		if !ok {
			continue
		}
		v, err := constOp(def.Name, c)
		if err != nil {
			undo()
			return fail(err)
		}
		o.inputs[def.Name] = []binding{{v: v}}
		info[def.Name] = v.info()
	}
	types, err := sig.Check(info)
	if err != nil {
		undo()
		return fail(err)
	}
	for i, t := range types {
		vn := name
		if len(types) > 1 {
			vn = f.fresh(name + "_" + strconv.Itoa(i))
		}
		o.outputs = append(o.outputs, &Value{f: f, name: vn, typ: t, op: o})
	}
	f.ops = append(f.ops, pending...)
	f.ops = append(f.ops, o)
	return o.outputs, nil
}

// add is Op for the typed helpers: errors are kept in f, the single output
// (or nil) is returned.
func (f *Function) add(opType string, args Args) *Value {
	outs, err := f.Op(opType, args)
	if err != nil {
		f.fail(err)
		return nil
	}
	if len(outs) == 0 {
		return nil
	}
	return outs[0]
}

// Const adds an immediate const op holding c. Values of 10 or more elements
// are written to weight.bin by Build, smaller ones inline (coremltools' rule).
func (f *Function) Const(c Constant) *Value {
	if f.err != nil {
		return nil
	}
	if err := c.check(); err != nil {
		f.fail(&OpError{Function: f.name, Type: "const", Err: err})
		return nil
	}
	cv := c
	v := &Value{f: f, name: f.fresh("const"), typ: c.Type, konst: true, val: &cv}
	o := &op{typ: "const", name: v.name, outputs: []*Value{v}, val: &weight{name: v.name, typ: c.Type, c: &cv}}
	v.op = o
	f.ops = append(f.ops, o)
	return v
}

// Weight adds a const op whose value is the named weight, read lazily from
// src at Build. Weights are shared by name across the program's functions:
// every function's const op points at the same weight.bin record.
func (f *Function) Weight(name string, d DType, shape []int, src WeightSource) *Value {
	if f.err != nil {
		return nil
	}
	if v, ok := f.weightVals[name]; ok {
		if !v.typ.Equal(Tensor(d, shape...)) {
			f.fail(fmt.Errorf("mil: function %s: weight %s redeclared as %s, was %s", f.name, name, Tensor(d, shape...), v.typ))
			return nil
		}
		return v
	}
	w, err := f.p.weight(name, Tensor(d, shape...), src, nil)
	if err != nil {
		f.fail(fmt.Errorf("mil: function %s: %w", f.name, err))
		return nil
	}
	v := &Value{f: f, name: f.fresh(name), typ: w.typ, konst: true}
	o := &op{typ: "const", name: v.name, outputs: []*Value{v}, val: w}
	v.op = o
	f.ops = append(f.ops, o)
	f.weightVals[name] = v
	return v
}

// weight registers (or finds) a program-wide weight.
func (p *Program) weight(name string, t TensorType, src WeightSource, fill WeightFill) (*weight, error) {
	if w, ok := p.weights[name]; ok {
		if !w.typ.Equal(t) {
			return nil, fmt.Errorf("weight %s declared as %s and as %s", name, w.typ, t)
		}
		return w, nil
	}
	if !t.DType.Valid() || t.DType == String || t.DType == Bool {
		return nil, fmt.Errorf("weight %s: dtype %s cannot be stored", name, t.DType)
	}
	if err := checkShape(t.Shape); err != nil {
		return nil, fmt.Errorf("weight %s: %v", name, err)
	}
	if src == nil {
		return nil, fmt.Errorf("weight %s: nil source", name)
	}
	w := &weight{name: name, typ: t, src: src, fill: fill}
	p.weights[name] = w
	return w, nil
}

// WeightTensor is one parameter of a constexpr op: a named tensor whose
// bytes come from Data at Build.
type WeightTensor struct {
	Name  string // program-wide name; tensors with the same name share storage
	DType DType
	Shape []int
	Data  WeightSource
	Fill  WeightFill // optional: Data's bytes written in place
}

// BlockwiseShiftScale adds constexpr_blockwise_shift_scale (iOS18):
// out = scale·(data − offset) per block, block size data.shape/scale.shape on
// every axis; the output has data's shape and scale's dtype. offset may be
// nil (symmetric quantisation). Its parameters are bound by value, not
// through const ops, as coremltools writes iOS18 constexpr ops.
func (f *Function) BlockwiseShiftScale(name string, data, scale WeightTensor, offset *WeightTensor) *Value {
	return f.shiftScale(name, map[string]WeightTensor{"data": data, "scale": scale}, nil, offset)
}

// shiftScale adds constexpr_blockwise_shift_scale with its inputs bound by value (params)
// or to constexpr outputs (vals), and offset (nil: none) by value.
func (f *Function) shiftScale(name string, params map[string]WeightTensor, vals map[string]*Value, offset *WeightTensor) *Value {
	if offset != nil {
		params["offset"] = *offset
	}
	return f.constexpr("constexpr_blockwise_shift_scale", name, params, vals, nil)
}

// LUTBlockwise adds constexpr_lut_to_dense (name_codes) whose output is the data of a
// constexpr_blockwise_shift_scale (name): out = scale·(lut[indices] − offset) per block.
// coremltools' iOS18 op definitions allow it: blockwise_shift_scale's data is any const
// tensor of SrcT (int4, uint4, int8, uint8, fp16, fp32), a constexpr op's output included
// (compression.py materializes such data through the producing op), and the lut's T
// (int8, uint8, fp16, fp32) lies within SrcT. It stores n-bit codes (uint1–uint8 indices
// into a table of the code values) with block-wise scales and offsets, which the
// blockwise op alone cannot for 2-, 3-, 5- and 6-bit codes. offset may be nil; an integer
// offset must have the lut's dtype.
func (f *Function) LUTBlockwise(name string, indices, lut, scale WeightTensor, offset *WeightTensor) *Value {
	codes := f.LUTToDense(name+"_codes", indices, lut, -1)
	if codes == nil {
		return nil
	}
	return f.shiftScale(name, map[string]WeightTensor{"scale": scale}, map[string]*Value{"data": codes}, offset)
}

// BlockwiseShiftScaleFactored is BlockwiseShiftScale with factored scales (see
// LUTBlockwiseFactored).
func (f *Function) BlockwiseShiftScaleFactored(name string, data, codes, factor WeightTensor, offset *WeightTensor) *Value {
	scale := f.BlockwiseShiftScale(name+"_scale", codes, factor, nil)
	if scale == nil {
		return nil
	}
	return f.shiftScale(name, map[string]WeightTensor{"data": data}, map[string]*Value{"scale": scale}, offset)
}

// LUTBlockwiseFactored is LUTBlockwise with factored scales: int8 (or uint8) codes, one
// per block, and one fp16 factor per group of them (a ggml K-quant's sub-block scales and
// super-block d). A constexpr_blockwise_shift_scale of their own (name_scale) makes the
// fp16 scales factor·code, which coremltools' iOS18 compression.py materializes through
// the producing constexpr op as it does data.
func (f *Function) LUTBlockwiseFactored(name string, indices, lut, codes, factor WeightTensor, offset *WeightTensor) *Value {
	values := f.LUTToDense(name+"_codes", indices, lut, -1)
	scale := f.BlockwiseShiftScale(name+"_scale", codes, factor, nil)
	if values == nil || scale == nil {
		return nil
	}
	return f.shiftScale(name, map[string]WeightTensor{}, map[string]*Value{"data": values, "scale": scale}, offset)
}

// LUTToDense adds constexpr_lut_to_dense (iOS18): indices (uint1–uint8, the
// weight's logical shape) select entries of lut [b_1..b_K, 2^nbits,
// VECTOR_SIZE]. vectorAxis is needed only when VECTOR_SIZE > 1; a negative
// vectorAxis leaves the input out.
func (f *Function) LUTToDense(name string, indices, lut WeightTensor, vectorAxis int) *Value {
	var extra map[string]Constant
	if vectorAxis >= 0 {
		extra = map[string]Constant{"vector_axis": IntScalar(vectorAxis)}
	}
	return f.constexpr("constexpr_lut_to_dense", name, map[string]WeightTensor{"indices": indices, "lut": lut}, nil, extra)
}

// constexpr adds a constexpr op whose inputs are weights bound by value (params), outputs
// of other constexpr ops bound by name (vals) and immediate constants (extra).
func (f *Function) constexpr(opType, name string, params map[string]WeightTensor, vals map[string]*Value, extra map[string]Constant) *Value {
	if f.err != nil {
		return nil
	}
	if v, ok := f.weightVals[name]; ok {
		return v
	}
	sig, _ := Lookup(opType)
	o := &op{typ: opType, inputs: map[string][]binding{}}
	info := map[string]ArgInfo{}
	for _, def := range sig.Inputs {
		in := def.Name
		if v, ok := vals[in]; ok {
			if v.f != f || v.op == nil || !isConstexpr(v.op.typ) {
				f.fail(&OpError{Function: f.name, Op: name, Type: opType, Err: inErr(in, "binds %s, which is not a constexpr output of this function", v.name)})
				return nil
			}
			o.inputs[in] = []binding{{v: v}}
			info[in] = ArgInfo{Type: v.typ, Const: true}
			continue
		}
		t, ok := params[in]
		if !ok {
			continue
		}
		w, err := f.p.weight(t.Name, Tensor(t.DType, t.Shape...), t.Data, t.Fill)
		if err != nil {
			f.fail(&OpError{Function: f.name, Op: name, Type: opType, Err: inErr(in, "%v", err)})
			return nil
		}
		o.inputs[in] = []binding{{w: w}}
		info[in] = ArgInfo{Type: w.typ, Const: true}
	}
	for in, c := range extra {
		if err := c.check(); err != nil {
			f.fail(&OpError{Function: f.name, Op: name, Type: opType, Err: inErr(in, "%v", err)})
			return nil
		}
		cv := c
		o.inputs[in] = []binding{{w: &weight{name: name + "_" + in, typ: c.Type, c: &cv}}}
		info[in] = ArgInfo{Type: c.Type, Const: true, Value: &cv}
	}
	types, err := sig.Check(info)
	if err != nil {
		f.fail(&OpError{Function: f.name, Op: name, Type: opType, Err: err})
		return nil
	}
	o.name = f.fresh(name)
	v := &Value{f: f, name: o.name, typ: types[0], konst: true, op: o}
	o.outputs = []*Value{v}
	f.ops = append(f.ops, o)
	f.weightVals[name] = v
	return v
}
