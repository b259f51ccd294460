package mil

import (
	"fmt"
	"sort"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// CheckProgram re-runs the op table's checks and type inference over a
// deserialised program and reports every problem found, each naming the
// function, op and input: unknown ops, unknown or missing inputs, bindings to
// undefined values, const and state requirements, dtypes, and declared output
// types that differ from the inferred ones. It is the static validator of the
// compile stage. A nil result means the program passed.
func CheckProgram(p *milpb.Program) []error {
	if p == nil {
		return []error{fmt.Errorf("mil: no program")}
	}
	var errs []error
	if p.GetVersion() != 1 {
		errs = append(errs, fmt.Errorf("mil: program version %d, want 1", p.GetVersion()))
	}
	if len(p.GetFunctions()) == 0 {
		errs = append(errs, fmt.Errorf("mil: program has no functions"))
	}
	names := make([]string, 0, len(p.GetFunctions()))
	for n := range p.GetFunctions() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		errs = append(errs, checkFunction(n, p.Functions[n])...)
	}
	return errs
}

func checkFunction(name string, f *milpb.Function) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("mil: function %s: "+format, append([]any{name}, args...)...))
	}
	if f == nil {
		fail("empty")
		return errs
	}
	block, ok := f.GetBlockSpecializations()[f.GetOpset()]
	if !ok || len(f.GetBlockSpecializations()) != 1 {
		fail("opset %q needs exactly one block specialization keyed by it (have %d)", f.GetOpset(), len(f.GetBlockSpecializations()))
		if block == nil {
			return errs
		}
	}
	env := map[string]ArgInfo{}
	for _, in := range f.GetInputs() {
		t, state, err := fromValueType(in.GetType())
		if err != nil {
			fail("input %s: %v", in.GetName(), err)
			continue
		}
		if !validIdent(in.GetName()) {
			fail("input name %q is not an identifier", in.GetName())
		}
		env[in.GetName()] = ArgInfo{Type: t, State: state}
	}
	for i, o := range block.GetOperations() {
		for _, err := range checkOp(env, o) {
			opName := opNameOf(o)
			if opName == "" {
				opName = fmt.Sprintf("#%d", i)
			}
			errs = append(errs, &OpError{Function: name, Op: opName, Type: o.GetType(), Err: err})
		}
	}
	for _, out := range block.GetOutputs() {
		a, ok := env[out]
		switch {
		case !ok:
			fail("block output %s is not defined", out)
		case a.State:
			fail("block output %s is a state", out)
		}
	}
	return errs
}

func opNameOf(o *milpb.Operation) string {
	c, err := valueConstant(o.GetAttributes()["name"])
	if err != nil || c.Type.DType != String || len(c.Strings) != 1 {
		return ""
	}
	return c.Strings[0]
}

// checkOp checks one op against the table and defines its outputs in env
// (with the declared types, so that one bad op does not cascade).
func checkOp(env map[string]ArgInfo, o *milpb.Operation) []error {
	var errs []error
	defineOutputs := func() {
		for _, out := range o.GetOutputs() {
			if t, st, err := fromValueType(out.GetType()); err == nil {
				env[out.GetName()] = ArgInfo{Type: t, State: st, Const: o.GetType() == "const" || isConstexpr(o.GetType())}
			}
		}
	}
	if opNameOf(o) == "" {
		errs = append(errs, fmt.Errorf("missing string attribute \"name\""))
	}
	sig, ok := Lookup(o.GetType())
	if !ok {
		defineOutputs()
		return append(errs, fmt.Errorf("unknown op type %q", o.GetType()))
	}
	in := map[string]ArgInfo{}
	if o.GetType() == "const" {
		val := o.GetAttributes()["val"]
		if val == nil {
			defineOutputs()
			return append(errs, inErr("val", "const op has no val attribute"))
		}
		a, err := valueArg(val)
		if err != nil {
			defineOutputs()
			return append(errs, inErr("val", "%v", err))
		}
		in["val"] = a
	}
	keys := make([]string, 0, len(o.GetInputs()))
	for k := range o.GetInputs() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bad := false
	for _, k := range keys {
		def, known := sig.Input(k)
		if !known || def.Attribute {
			errs = append(errs, inErr(k, "%s has no input %q", o.GetType(), k))
			bad = true
			continue
		}
		bs := o.GetInputs()[k].GetArguments()
		if len(bs) == 0 || (!def.Variadic && len(bs) != 1) {
			errs = append(errs, inErr(k, "has %d bindings", len(bs)))
			bad = true
			continue
		}
		var list []ArgInfo
		for _, b := range bs {
			var a ArgInfo
			switch {
			case b.GetValue() != nil:
				v, err := valueArg(b.GetValue())
				if err != nil {
					errs = append(errs, inErr(k, "%v", err))
					bad = true
					continue
				}
				a = v
			default:
				v, ok := env[b.GetName()]
				if !ok {
					errs = append(errs, inErr(k, "binds %q, which is not defined before this op", b.GetName()))
					bad = true
					continue
				}
				a = v
			}
			list = append(list, a)
		}
		if bad {
			continue
		}
		if def.Variadic {
			in[k] = ArgInfo{List: list}
		} else {
			in[k] = list[0]
		}
	}
	if bad {
		defineOutputs()
		return errs
	}
	types, err := sig.Check(in)
	if err != nil {
		defineOutputs()
		return append(errs, err)
	}
	if len(types) != len(o.GetOutputs()) {
		errs = append(errs, fmt.Errorf("declares %d outputs, %s produces %d", len(o.GetOutputs()), o.GetType(), len(types)))
	}
	for i, out := range o.GetOutputs() {
		t, _, err := fromValueType(out.GetType())
		if err != nil {
			errs = append(errs, fmt.Errorf("output %s: %v", out.GetName(), err))
			continue
		}
		if i < len(types) && !t.Equal(types[i]) {
			errs = append(errs, fmt.Errorf("output %s declared %s, inferred %s", out.GetName(), t, types[i]))
		}
		if _, dup := env[out.GetName()]; dup {
			errs = append(errs, fmt.Errorf("output %s redefines an existing value", out.GetName()))
		}
	}
	defineOutputs()
	// Keep known constant values flowing to later ops (reshape shapes etc.).
	if o.GetType() == "const" && len(o.GetOutputs()) == 1 {
		a := env[o.GetOutputs()[0].GetName()]
		a.Value = in["val"].Value
		env[o.GetOutputs()[0].GetName()] = a
	}
	return errs
}

func isConstexpr(op string) bool {
	s, ok := Lookup(op)
	return ok && s.Constexpr
}

// fromValueType reads a static tensor type (or a state wrapping one).
func fromValueType(vt *milpb.ValueType) (TensorType, bool, error) {
	state := false
	if st := vt.GetStateType(); st != nil {
		state = true
		vt = st.GetWrappedType()
	}
	tt := vt.GetTensorType()
	if tt == nil {
		return TensorType{}, false, fmt.Errorf("not a tensor type")
	}
	d := DType(tt.GetDataType())
	if !d.Valid() {
		return TensorType{}, false, fmt.Errorf("unknown data type %v", tt.GetDataType())
	}
	if tt.GetRank() != int64(len(tt.GetDimensions())) {
		return TensorType{}, false, fmt.Errorf("rank %d with %d dimensions", tt.GetRank(), len(tt.GetDimensions()))
	}
	t := TensorType{DType: d}
	for _, dim := range tt.GetDimensions() {
		c := dim.GetConstant()
		if c == nil {
			return TensorType{}, false, fmt.Errorf("dynamic dimension (static shapes only)")
		}
		if c.GetSize() > 1<<40 {
			return TensorType{}, false, fmt.Errorf("dimension %d too large", c.GetSize())
		}
		t.Shape = append(t.Shape, int(c.GetSize()))
	}
	if err := checkShape(t.Shape); err != nil {
		return TensorType{}, false, err
	}
	return t, state, nil
}

// valueArg describes a Value bound directly (const val, constexpr params).
func valueArg(v *milpb.Value) (ArgInfo, error) {
	t, state, err := fromValueType(v.GetType())
	if err != nil {
		return ArgInfo{}, err
	}
	if state {
		return ArgInfo{}, fmt.Errorf("a constant cannot be a state")
	}
	a := ArgInfo{Type: t, Const: true}
	switch {
	case v.GetBlobFileValue() != nil:
		if v.GetBlobFileValue().GetFileName() == "" {
			return ArgInfo{}, fmt.Errorf("blob value without file name")
		}
	case v.GetImmediateValue() != nil:
		c, err := valueConstant(v)
		if err != nil {
			return ArgInfo{}, err
		}
		a.Value = &c
	default:
		return ArgInfo{}, fmt.Errorf("value has neither immediate nor blob data")
	}
	return a, nil
}

// valueConstant decodes an immediate tensor Value.
func valueConstant(v *milpb.Value) (Constant, error) {
	if v == nil {
		return Constant{}, fmt.Errorf("no value")
	}
	t, _, err := fromValueType(v.GetType())
	if err != nil {
		return Constant{}, err
	}
	tv := v.GetImmediateValue().GetTensor()
	if tv == nil {
		return Constant{}, fmt.Errorf("not an immediate tensor")
	}
	n := t.NumElements()
	c := Constant{Type: t}
	got := -1
	switch x := tv.GetValue().(type) {
	case *milpb.TensorValue_Floats:
		for _, f := range x.Floats.GetValues() {
			c.Floats = append(c.Floats, float64(f))
		}
		got = len(c.Floats)
	case *milpb.TensorValue_Doubles:
		c.Floats, got = x.Doubles.GetValues(), len(x.Doubles.GetValues())
	case *milpb.TensorValue_Ints:
		for _, i := range x.Ints.GetValues() {
			c.Ints = append(c.Ints, int64(i))
		}
		got = len(c.Ints)
	case *milpb.TensorValue_LongInts:
		c.Ints, got = x.LongInts.GetValues(), len(x.LongInts.GetValues())
	case *milpb.TensorValue_Bools:
		c.Bools, got = x.Bools.GetValues(), len(x.Bools.GetValues())
	case *milpb.TensorValue_Strings:
		c.Strings, got = x.Strings.GetValues(), len(x.Strings.GetValues())
	case *milpb.TensorValue_Bytes:
		return DecodeConstant(t, x.Bytes.GetValues())
	default:
		return Constant{}, fmt.Errorf("empty tensor value")
	}
	if got != n {
		return Constant{}, fmt.Errorf("%s holds %d values, want %d", t, got, n)
	}
	if err := c.check(); err != nil {
		return Constant{}, err
	}
	return c, nil
}
