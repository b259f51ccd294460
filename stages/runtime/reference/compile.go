package reference

import (
	"fmt"
	"maps"
	"slices"
	"unsafe"

	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// value is a named value of a function being compiled.
type value struct {
	t       *Tensor      // runtime buffer, or the constant's data
	isConst bool         // t is known at Open
	strs    []string     // a string constant
	w       weightMatrix // a constexpr weight not yet materialised (t == nil until needed)
	wType   *milpb.TensorType
	state   string // a function input of stateType: the state's name
	stType  DType
	stShape []int
}

type compiler struct {
	m       *Model
	weights func(fileName string) (*blob.Reader, error) // the package's blob files
	f       *function
	vals    map[string]*value
	fnName  string
	aliases map[string]*stateAlias // in-place state chains of the function being compiled
	keys    *keyPlan               // where the function's key axis runs (see keys.go)
	plan    *bufferPlan            // output storage sharing of the function being compiled
}

// Open reads the .mlpackage at pkgDir (through package mlpackage, which also checks every
// blob reference of the program against its weight file) and prepares every function of
// its ML Program. The weight files stay mapped until Close.
func Open(pkgDir string, opts Options) (*Model, error) {
	p, err := mlpackage.Open(pkgDir)
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	m, err := openSpec(p.Model, p.Weights, opts)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%w (package %s)", err, pkgDir)
	}
	m.closers = append(m.closers, p.Close)
	return m, nil
}

// openSpec compiles spec; weights resolves the blob files its values name (nil when the
// program has none).
func openSpec(spec *milpb.Model, weights func(string) (*blob.Reader, error), opts Options) (_ *Model, err error) {
	prog := spec.GetMlProgram()
	if prog == nil {
		return nil, fmt.Errorf("reference: model is not an ML Program")
	}
	if !littleEndian() {
		return nil, fmt.Errorf("reference: big-endian hosts are not supported")
	}
	if weights == nil {
		weights = func(name string) (*blob.Reader, error) {
			return nil, fmt.Errorf("no blob file %q", name)
		}
	}
	m := &Model{opts: opts, funcs: map[string]*function{}, pool: newWorkerPool(opts.Threads),
		metadata: maps.Clone(spec.GetDescription().GetMetadata().GetUserDefined())}
	c := &compiler{m: m, weights: weights}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	descs := functionDescriptions(spec)
	for _, name := range sortedKeys(prog.GetFunctions()) {
		// "" means "the default function" to Predict, Describe and NewState, so a function
		// may not be called that (found by FuzzOpen: Functions listed "", Describe("")
		// looked up the default instead).
		if name == "" {
			return nil, fmt.Errorf("reference: the program has a function with an empty name")
		}
		f, err := c.compileFunction(name, prog.GetFunctions()[name], descs[name])
		if err != nil {
			return nil, err
		}
		m.funcs[name] = f
		m.names = append(m.names, name)
	}
	if len(m.names) == 0 {
		return nil, fmt.Errorf("reference: program has no functions")
	}
	switch d := spec.GetDescription().GetDefaultFunctionName(); {
	case d != "":
		if m.funcs[d] == nil {
			return nil, fmt.Errorf("reference: defaultFunctionName %q is not a function of the program", d)
		}
		m.deflt = d
	case len(m.names) == 1:
		m.deflt = m.names[0]
	default:
		m.deflt = "main"
	}
	return m, nil
}

// functionDescriptions returns the interface description per function name: the
// FunctionDescriptions of a multifunction model, or the top-level one as "main"/the only
// function (Model.proto, spec 9).
func functionDescriptions(spec *milpb.Model) map[string]*milpb.FunctionDescription {
	d := spec.GetDescription()
	out := map[string]*milpb.FunctionDescription{}
	for _, fd := range d.GetFunctions() {
		out[fd.GetName()] = fd
	}
	if len(out) == 0 {
		top := &milpb.FunctionDescription{Input: d.GetInput(), Output: d.GetOutput(), State: d.GetState()}
		for name := range spec.GetMlProgram().GetFunctions() {
			out[name] = top
		}
	}
	return out
}

func (c *compiler) compileFunction(name string, fn *milpb.Function, _ *milpb.FunctionDescription) (*function, error) {
	f := &function{desc: FunctionDescription{Name: name}}
	c.f, c.fnName = f, name
	c.vals = map[string]*value{}
	blk, ok := fn.GetBlockSpecializations()[fn.GetOpset()]
	if !ok {
		if len(fn.GetBlockSpecializations()) != 1 {
			return nil, fmt.Errorf("reference: function %s: no block for opset %q", name, fn.GetOpset())
		}
		for _, b := range fn.GetBlockSpecializations() {
			blk = b
		}
	}
	for _, in := range fn.GetInputs() {
		if st := in.GetType().GetStateType(); st != nil {
			dt, shape, err := tensorTypeOf(st.GetWrappedType().GetTensorType())
			if err != nil || slices.Contains(shape, -1) {
				return nil, fmt.Errorf("reference: function %s: state %q: needs a fixed-shape tensor type (%v)", name, in.GetName(), err)
			}
			c.vals[in.GetName()] = &value{state: in.GetName(), stType: dt, stShape: shape}
			f.desc.States = append(f.desc.States, Feature{Name: in.GetName(), DType: dt, Shape: shape})
			continue
		}
		dt, shape, err := tensorTypeOf(in.GetType().GetTensorType())
		if err != nil {
			return nil, fmt.Errorf("reference: function %s: input %q: %v", name, in.GetName(), err)
		}
		t := newBuffer(dt, shape)
		c.vals[in.GetName()] = &value{t: t}
		f.inputs = append(f.inputs, t)
		f.desc.Inputs = append(f.desc.Inputs, Feature{Name: in.GetName(), DType: dt, Shape: shape})
	}
	c.keys = newKeyPlan(f.desc.States, f.desc.Inputs)
	if c.m.opts.allKeys {
		c.keys.broken = true
	}
	if c.keys.dynamic() { // the mask's buffer holds the covered keys only (coverKeys)
		t := f.inputs[c.keys.mask]
		v, free, err := reserveFloats(t.Len())
		if err != nil {
			return nil, fmt.Errorf("reference: function %s: causal mask %v: %v", name, t.Shape, err)
		}
		t.f32 = v
		c.m.closers = append(c.m.closers, free)
	}
	c.aliases = nil
	if !c.m.opts.copyStates {
		c.aliases = stateAliases(blk)
	}
	c.plan = newBufferPlan(blk.GetOperations(), blk.GetOutputs())
	defer func() { c.plan = nil }()
	for i, op := range blk.GetOperations() {
		if err := c.compileOp(op); err != nil {
			return nil, err
		}
		c.plan.after(c, op, i)
	}
	c.keys.end(blk.GetOutputs())
	f.keyExtent, f.dynKeys, f.maskIn, f.keys = c.keys.extent, c.keys.dynamic(), c.keys.mask, c.keys.extent
	for _, o := range blk.GetOutputs() {
		v, ok := c.vals[o]
		if !ok {
			return nil, fmt.Errorf("reference: function %s: block output %q is not defined", name, o)
		}
		t, err := c.materialise(v)
		if err != nil || t == nil {
			return nil, fmt.Errorf("reference: function %s: block output %q is not a tensor", name, o)
		}
		f.outputs = append(f.outputs, t)
		f.desc.Outputs = append(f.desc.Outputs, Feature{Name: o, DType: t.DType, Shape: slices.Clone(t.Shape)})
	}
	return f, nil
}

// newBuffer allocates a runtime buffer for a declared type; unknown dimensions start at 0
// and are sized by the first run.
func newBuffer(dt DType, shape []int) *Tensor {
	s := slices.Clone(shape)
	for i := range s {
		if s[i] < 0 {
			s[i] = 0
		}
	}
	return NewTensor(dt, s...)
}

// tensorTypeOf returns the dtype and shape of a MIL tensor type (-1 for unknown dimensions).
func tensorTypeOf(tt *milpb.TensorType) (DType, []int, error) {
	if tt == nil {
		return Invalid, nil, fmt.Errorf("not a tensor type")
	}
	dt, ok := dtypeOf(tt.GetDataType())
	if !ok {
		return Invalid, nil, fmt.Errorf("unsupported dtype %v", tt.GetDataType())
	}
	if tt.GetRank() < 0 {
		return Invalid, nil, fmt.Errorf("variadic rank is not supported")
	}
	dims := tt.GetDimensions()
	if int64(len(dims)) != tt.GetRank() {
		return Invalid, nil, fmt.Errorf("rank %d with %d dimensions", tt.GetRank(), len(dims))
	}
	shape := make([]int, len(dims))
	for i, d := range dims {
		if k := d.GetConstant(); k != nil {
			if k.GetSize() > 1<<40 {
				return Invalid, nil, fmt.Errorf("dimension %d too large (%d)", i, k.GetSize())
			}
			shape[i] = int(k.GetSize())
		} else {
			shape[i] = -1
		}
	}
	return dt, shape, nil
}

// compileOp prepares one op: constants are evaluated now, every other op becomes a step.
func (c *compiler) compileOp(op *milpb.Operation) error {
	o := &opCtx{c: c, op: op, typ: op.GetType(), name: opName(op)}
	if len(op.GetBlocks()) > 0 {
		return o.errf("ops with nested blocks (control flow) are not supported")
	}
	if o.typ == "const" {
		return c.compileConst(o)
	}
	if fn, ok := constexprOps[o.typ]; ok {
		return fn(o)
	}
	fn, ok := kernels[o.typ]
	if !ok {
		return o.errf("op type %q is not implemented by the reference runtime", o.typ)
	}
	s := step{typ: o.typ, name: o.name}
	c.keys.follow(o)
	run, err := fn(o)
	if err != nil {
		return err
	}
	if run == nil { // the op has nothing to do at run time
		return nil
	}
	s.run = run
	if c.m.opts.Observe != nil {
		s.observed = c.observed(o)
	}
	for i, t := range o.outs {
		s.outs = append(s.outs, t)
		s.declared = append(s.declared, o.declared[i])
		s.round = append(s.round, t.DType == Float16 && !valuePreserving[o.typ])
	}
	c.f.steps = append(c.f.steps, s)
	return nil
}

func opName(op *milpb.Operation) string {
	if v := op.GetAttributes()["name"]; v != nil {
		if s := v.GetImmediateValue().GetTensor().GetStrings().GetValues(); len(s) == 1 {
			return s[0]
		}
	}
	if outs := op.GetOutputs(); len(outs) > 0 {
		return outs[0].GetName()
	}
	return "?"
}

func (c *compiler) compileConst(o *opCtx) error {
	val := o.op.GetAttributes()["val"]
	if val == nil {
		return o.errf("const has no val attribute")
	}
	if len(o.op.GetOutputs()) != 1 {
		return o.errf("const must have one output")
	}
	v, err := c.decodeValue(val)
	if err != nil {
		return o.errf("val: %v", err)
	}
	c.vals[o.op.GetOutputs()[0].GetName()] = v
	return nil
}

// decodeValue turns an immediate or blob Value into a constant.
func (c *compiler) decodeValue(val *milpb.Value) (*value, error) {
	tt := val.GetType().GetTensorType()
	if tt == nil {
		return nil, fmt.Errorf("only tensor values are supported")
	}
	if tt.GetDataType() == milpb.DataType_STRING {
		return &value{isConst: true, strs: val.GetImmediateValue().GetTensor().GetStrings().GetValues()}, nil
	}
	dt, shape, err := tensorTypeOf(tt)
	if err != nil {
		return nil, err
	}
	if slices.Contains(shape, -1) {
		return nil, fmt.Errorf("constant with unknown dimension %v", shape)
	}
	n := numElements(shape)
	t := &Tensor{DType: dt, Shape: shape}
	if bv := val.GetBlobFileValue(); bv != nil {
		if err := c.readBlob(t, tt.GetDataType(), bv); err != nil {
			return nil, err
		}
		return &value{t: t, isConst: true}, nil
	}
	tv := val.GetImmediateValue().GetTensor()
	if tv == nil {
		return nil, fmt.Errorf("value is neither an immediate tensor nor a blob")
	}
	count := -1
	switch {
	case tv.GetFloats() != nil:
		v := tv.GetFloats().GetValues()
		count = len(v)
		t.f32 = slices.Clone(v)
		if dt == Int32 { // tolerate a float immediate for an integer type
			t.f32, t.i32 = nil, make([]int32, len(v))
			for i, f := range v {
				t.i32[i] = int32(f)
			}
		}
	case tv.GetDoubles() != nil:
		v := tv.GetDoubles().GetValues()
		count = len(v)
		t.f32 = make([]float32, len(v))
		for i, f := range v {
			t.f32[i] = float32(f)
		}
	case tv.GetInts() != nil:
		v := tv.GetInts().GetValues()
		count = len(v)
		if dt.IsFloat() {
			t.f32 = make([]float32, len(v))
			for i, x := range v {
				t.f32[i] = float32(x)
			}
		} else {
			t.i32 = slices.Clone(v)
		}
	case tv.GetLongInts() != nil:
		v := tv.GetLongInts().GetValues()
		count = len(v)
		t.i32 = make([]int32, len(v))
		for i, x := range v {
			t.i32[i] = int32(x)
		}
	case tv.GetBools() != nil:
		t.b = slices.Clone(tv.GetBools().GetValues())
		count = len(t.b)
	case tv.GetBytes() != nil:
		// fp16, int8, uint8 and sub-byte immediates are raw little-endian bytes (MIL.proto's TensorValue.bytes).
		b := tv.GetBytes().GetValues()
		if err := setRaw(t, tt.GetDataType(), b, n); err != nil {
			return nil, err
		}
		count = n
	}
	if count != n {
		return nil, fmt.Errorf("%v%v value holds %d elements", dt, shape, count)
	}
	if dt.IsFloat() && t.f32 == nil && t.half == nil {
		return nil, fmt.Errorf("%v value stored in an unexpected field", dt)
	}
	if dt == Float16 && t.f32 != nil {
		roundSliceFP16(t.f32)
	}
	if dt == Int32 && t.i32 == nil || dt == Bool && t.b == nil {
		return nil, fmt.Errorf("%v value stored in an unexpected field", dt)
	}
	return &value{t: t, isConst: true}, nil
}

// setRaw makes t view b, the packed storage of n elements of MIL dtype d.
func setRaw(t *Tensor, d milpb.DataType, b []byte, n int) error {
	want := 0
	switch d {
	case milpb.DataType_FLOAT16:
		want = 2 * n
	case milpb.DataType_FLOAT32, milpb.DataType_INT32, milpb.DataType_UINT32:
		want = 4 * n
	case milpb.DataType_INT16, milpb.DataType_UINT16:
		want = 2 * n
	case milpb.DataType_INT8, milpb.DataType_UINT8:
		want = n
	case milpb.DataType_INT4, milpb.DataType_UINT4:
		want = (n + 1) / 2
	default:
		return fmt.Errorf("dtype %v cannot be stored as bytes", d)
	}
	if len(b) < want {
		return fmt.Errorf("%v%v needs %d bytes, have %d", d, t.Shape, want, len(b))
	}
	b = b[:want]
	switch d {
	case milpb.DataType_FLOAT16:
		t.half = bytesAs[uint16](b)
	case milpb.DataType_FLOAT32:
		t.f32 = bytesAs[float32](b)
	case milpb.DataType_INT32:
		t.i32 = bytesAs[int32](b)
	case milpb.DataType_UINT32:
		t.i32 = slices.Clone(bytesAs[int32](b))
	case milpb.DataType_INT16:
		t.i32 = make([]int32, n)
		for i, v := range bytesAs[int16](b) {
			t.i32[i] = int32(v)
		}
	case milpb.DataType_UINT16:
		t.i32 = make([]int32, n)
		for i, v := range bytesAs[uint16](b) {
			t.i32[i] = int32(v)
		}
	default:
		t.raw = b
	}
	return nil
}

// bytesAs views little-endian bytes as a slice of T without copying. Blob payloads are
// 64-byte aligned (MILBlob v2, StorageFormat.hpp); immediate bytes are copied first if misaligned.
func bytesAs[T any](b []byte) []T {
	var z T
	size := int(unsafe.Sizeof(z))
	if len(b) == 0 {
		return []T{}
	}
	if uintptr(unsafe.Pointer(&b[0]))%uintptr(unsafe.Alignof(z)) != 0 {
		b = slices.Clone(b)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/size)
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// readBlob points t at its payload in the weight file named by bv.
func (c *compiler) readBlob(t *Tensor, d milpb.DataType, bv *milpb.Value_BlobFileValue) error {
	name := bv.GetFileName()
	r, err := c.weights(name)
	if err != nil {
		return fmt.Errorf("blob file %q: %w", name, err)
	}
	bd, data, count, err := r.Blob(bv.GetOffset())
	if err != nil {
		return fmt.Errorf("blob %q at offset %d: %w", name, bv.GetOffset(), err)
	}
	if bd.MIL() != d {
		return fmt.Errorf("blob %q at offset %d holds %v, the value is declared %v", name, bv.GetOffset(), bd.MIL(), d)
	}
	if n := numElements(t.Shape); n != count {
		return fmt.Errorf("blob %q at offset %d holds %d elements, the value is declared %v%v", name, bv.GetOffset(), count, t.DType, t.Shape)
	}
	if err := setRaw(t, d, data, count); err != nil {
		return fmt.Errorf("blob %q at offset %d: %v", name, bv.GetOffset(), err)
	}
	return nil
}

// materialise returns v's tensor, densifying a constexpr weight the first time a consumer
// needs it as a plain tensor.
func (c *compiler) materialise(v *value) (*Tensor, error) {
	if v.t == nil && v.w != nil {
		dt, shape, err := tensorTypeOf(v.wType)
		if err != nil {
			return nil, err
		}
		if dt != Float16 {
			dt = Float32
		}
		t := NewTensor(dt, shape...)
		rows, cols := v.w.dims()
		for r := 0; r < rows; r++ {
			v.w.row(r, t.f32[r*cols:(r+1)*cols])
		}
		if dt == Float16 {
			roundSliceFP16(t.f32)
		}
		v.t = t
	}
	if v.t != nil && v.t.DType.IsFloat() {
		v.t.widen()
	}
	return v.t, nil
}
