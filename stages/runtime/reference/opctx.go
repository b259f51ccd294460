package reference

import (
	"fmt"
	"slices"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// opCtx gives a kernel constructor access to one op's inputs and outputs.
type opCtx struct {
	c         *compiler
	op        *milpb.Operation
	typ, name string
	outs      []*Tensor
	declared  [][]int
}

// kernelFunc compiles an op into the function that runs it.
type kernelFunc func(o *opCtx) (func() error, error)

func (o *opCtx) errf(format string, args ...any) error {
	return fmt.Errorf("reference: function %s: op %s (%s): %s", o.c.fnName, o.name, o.typ, fmt.Sprintf(format, args...))
}

func (o *opCtx) has(key string) bool {
	a := o.op.GetInputs()[key]
	return a != nil && len(a.GetArguments()) > 0
}

// args resolves every binding of input key.
func (o *opCtx) args(key string) ([]*value, error) {
	a := o.op.GetInputs()[key]
	if a == nil || len(a.GetArguments()) == 0 {
		return nil, o.errf("missing input %q", key)
	}
	var out []*value
	for _, b := range a.GetArguments() {
		switch {
		case b.GetValue() != nil:
			v, err := o.c.decodeValue(b.GetValue())
			if err != nil {
				return nil, o.errf("input %q: %v", key, err)
			}
			out = append(out, v)
		default:
			v, ok := o.c.vals[b.GetName()]
			if !ok {
				return nil, o.errf("input %q refers to undefined value %q", key, b.GetName())
			}
			out = append(out, v)
		}
	}
	return out, nil
}

func (o *opCtx) arg(key string) (*value, error) {
	vs, err := o.args(key)
	if err != nil {
		return nil, err
	}
	if len(vs) != 1 {
		return nil, o.errf("input %q has %d bindings, want 1", key, len(vs))
	}
	return vs[0], nil
}

// tensor returns input key as a tensor (a runtime buffer or a constant).
func (o *opCtx) tensor(key string) (*Tensor, error) {
	v, err := o.arg(key)
	if err != nil {
		return nil, err
	}
	if v.state != "" || v.strs != nil {
		return nil, o.errf("input %q is not a tensor", key)
	}
	t, err := o.c.materialise(v)
	if err != nil {
		return nil, o.errf("input %q: %v", key, err)
	}
	return t, nil
}

// floatTensor is tensor for inputs that must be fp16/fp32.
func (o *opCtx) floatTensor(key string) (*Tensor, error) {
	t, err := o.tensor(key)
	if err == nil && !t.DType.IsFloat() {
		err = o.errf("input %q is %v, want fp16 or fp32", key, t.DType)
	}
	return t, err
}

// constTensor returns input key, which must be known at Open; nil if absent.
func (o *opCtx) constTensor(key string) (*Tensor, error) {
	if !o.has(key) {
		return nil, nil
	}
	v, err := o.arg(key)
	if err != nil {
		return nil, err
	}
	if !v.isConst && v.w == nil {
		return nil, o.errf("input %q must be a constant", key)
	}
	return o.tensor(key)
}

func (o *opCtx) constInts(key string, def []int) ([]int, error) {
	t, err := o.constTensor(key)
	if err != nil || t == nil {
		return def, err
	}
	out := make([]int, t.Len())
	switch t.DType {
	case Int32, Int8, Uint8, Int4, Uint4, Bool:
		for i := range out {
			out[i] = int(t.intAt(i))
		}
	default:
		return nil, o.errf("input %q is %v, want integers", key, t.DType)
	}
	return out, nil
}

func (o *opCtx) constInt(key string, def int) (int, error) {
	v, err := o.constInts(key, []int{def})
	if err == nil && len(v) != 1 {
		err = o.errf("input %q must be a scalar", key)
	}
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (o *opCtx) constBools(key string, def []bool) ([]bool, error) {
	t, err := o.constTensor(key)
	if err != nil || t == nil {
		return def, err
	}
	if t.DType != Bool {
		return nil, o.errf("input %q is %v, want bool", key, t.DType)
	}
	return t.b, nil
}

func (o *opCtx) constBool(key string, def bool) (bool, error) {
	v, err := o.constBools(key, []bool{def})
	if err == nil && len(v) != 1 {
		err = o.errf("input %q must be a scalar", key)
	}
	if err != nil {
		return false, err
	}
	return v[0], nil
}

func (o *opCtx) constFloat(key string, def float32) (float32, error) {
	t, err := o.constTensor(key)
	if err != nil || t == nil {
		return def, err
	}
	if t.Len() != 1 {
		return 0, o.errf("input %q must be a scalar", key)
	}
	return float32(t.Float64At(0)), nil
}

func (o *opCtx) constString(key, def string) (string, error) {
	if !o.has(key) {
		return def, nil
	}
	v, err := o.arg(key)
	if err != nil {
		return "", err
	}
	if len(v.strs) != 1 {
		return "", o.errf("input %q must be a string constant", key)
	}
	return v.strs[0], nil
}

// output allocates the buffer of output i from its declared type and defines its value.
func (o *opCtx) output(i int) (*Tensor, error) {
	outs := o.op.GetOutputs()
	if i >= len(outs) {
		return nil, o.errf("has %d outputs, want at least %d", len(outs), i+1)
	}
	dt, shape, err := tensorTypeOf(outs[i].GetType().GetTensorType())
	if err != nil {
		return nil, o.errf("output %q: %v", outs[i].GetName(), err)
	}
	a, keys := o.c.keys.axis[outs[i].GetName()]
	t, err := o.c.buffer(dt, shape, keys)
	if err != nil {
		return nil, o.errf("output %q: reserving %v: %v", outs[i].GetName(), shape, err)
	}
	o.c.vals[outs[i].GetName()] = &value{t: t}
	o.outs = append(o.outs, t)
	declared := slices.Clone(shape)
	if keys {
		declared[a] = -1 // R, set per call (keys.go)
	}
	o.declared = append(o.declared, declared)
	return t, nil
}

// floatOutput is output for ops whose result must be fp16/fp32.
func (o *opCtx) floatOutput(i int) (*Tensor, error) {
	t, err := o.output(i)
	if err == nil && !t.DType.IsFloat() {
		err = o.errf("output %d is %v, want fp16 or fp32", i, t.DType)
	}
	return t, err
}

// xAndOut returns input x and output 0: the operands of every op of one tensor input.
func (o *opCtx) xAndOut() (x, out *Tensor, err error) {
	if x, err = o.tensor("x"); err != nil {
		return nil, nil, err
	}
	out, err = o.output(0)
	return x, out, err
}

// floatXAndOut is xAndOut for ops defined on fp16/fp32 only.
func (o *opCtx) floatXAndOut() (x, out *Tensor, err error) {
	if x, err = o.floatTensor("x"); err != nil {
		return nil, nil, err
	}
	out, err = o.floatOutput(0)
	return x, out, err
}

// attr decodes attribute key of the op (iOS16 constexpr ops take their operands as
// attributes).
func (o *opCtx) attr(key string) (*value, error) {
	v := o.op.GetAttributes()[key]
	if v == nil {
		return nil, o.errf("missing attribute %q", key)
	}
	r, err := o.c.decodeValue(v)
	if err != nil {
		return nil, o.errf("attribute %q: %v", key, err)
	}
	return r, nil
}

// bias returns the optional float input "bias", which must hold n values.
func (o *opCtx) bias(n int) ([]float32, error) {
	if !o.has("bias") {
		return nil, nil
	}
	b, err := o.floatTensor("bias")
	if err != nil {
		return nil, err
	}
	if b.Len() != n {
		return nil, o.errf("bias has %d elements, want %d", b.Len(), n)
	}
	return b.Float32s(), nil
}
