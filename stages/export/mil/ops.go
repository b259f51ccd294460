package mil

import (
	"fmt"
	"sort"
)

// ArgInfo describes one input of an op as seen by type inference.
type ArgInfo struct {
	Type  TensorType // for a state: the wrapped tensor type
	State bool       // the value is a state (only read_state/write_state take one)
	Const bool       // produced by const or constexpr_*, or bound by value
	// Value is the constant's value when it is known: immediate consts and
	// builder-made parameters. Blob-backed weights have Const set and Value nil.
	Value *Constant
	// List holds one entry per binding for a variadic input (concat.values).
	List []ArgInfo
}

// Input describes one named input of an op.
type Input struct {
	Name     string
	Optional bool
	Const    bool    // must be a compile-time constant
	Variadic bool    // takes several bindings (concat.values)
	State    bool    // must be a state value
	DTypes   []DType // allowed element types; nil allows any
	// Attribute marks a parameter carried in Operation.attributes instead of
	// inputs (only const's val).
	Attribute bool
	// Default returns the value the builder emits when the caller gives
	// none; coremltools writes every defaultable parameter explicitly as its
	// own const op. ok is false when there is no default (the input is then
	// left out, e.g. conv.bias or constexpr_blockwise_shift_scale.offset).
	Default func(in map[string]ArgInfo) (c Constant, ok bool)
}

// Signature is one op's entry in the op table.
type Signature struct {
	Op     string
	Inputs []Input
	// Constexpr marks iOS18 constexpr_* ops: their parameters are bound by
	// value (Argument.Binding.value, immediate or blob), not through const ops,
	// and their outputs are constants.
	Constexpr bool
	// NoRankLimit exempts outputs from the rank ≤ 5 rule (const values
	// feeding constexpr ops, such as rank K+2 LUTs).
	NoRankLimit bool
	// Infer returns the output types given the inputs; it runs after Check
	// has verified presence, const-ness, state-ness and dtypes.
	Infer func(in map[string]ArgInfo) ([]TensorType, error)
}

// Input returns the named input's description.
func (s *Signature) Input(name string) (Input, bool) {
	for _, in := range s.Inputs {
		if in.Name == name {
			return in, true
		}
	}
	return Input{}, false
}

// InputError reports a problem with one input of an op; Check and the
// inference functions return it so that callers can name the op around it.
type InputError struct {
	Input string
	Msg   string
}

func (e *InputError) Error() string {
	if e.Input == "" {
		return e.Msg
	}
	return "input " + e.Input + ": " + e.Msg
}

func inErr(input, format string, args ...any) error {
	return &InputError{Input: input, Msg: fmt.Sprintf(format, args...)}
}

// OpError locates an error at one op of one function.
type OpError struct {
	Function string // function name; empty while building
	Op       string // op name (its "name" attribute)
	Type     string // op type, e.g. "linear"
	Err      error
}

func (e *OpError) Error() string {
	s := "mil: "
	if e.Function != "" {
		s += "function " + e.Function + ": "
	}
	if e.Op != "" || e.Type != "" {
		s += "op " + e.Op + " (" + e.Type + "): "
	}
	return s + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// Check verifies in against the signature — unknown and missing inputs,
// variadic arity, const and state requirements, dtypes — then runs Infer and
// enforces the rank limit. Errors are *InputError or plain errors without the
// op name; callers wrap them in *OpError.
func (s *Signature) Check(in map[string]ArgInfo) ([]TensorType, error) {
	names := make([]string, 0, len(in))
	for name := range in {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := s.Input(name); !ok {
			return nil, inErr(name, "%s has no input %q", s.Op, name)
		}
	}
	for _, def := range s.Inputs {
		a, ok := in[def.Name]
		if !ok {
			if def.Optional {
				continue
			}
			return nil, inErr(def.Name, "required input missing")
		}
		args := []ArgInfo{a}
		if def.Variadic {
			if len(a.List) == 0 {
				return nil, inErr(def.Name, "variadic input has no values")
			}
			args = a.List
		}
		for _, x := range args {
			if def.State != x.State {
				if def.State {
					return nil, inErr(def.Name, "must be a state")
				}
				return nil, inErr(def.Name, "a state cannot be used directly; read it with read_state")
			}
			if def.Const && !x.Const {
				return nil, inErr(def.Name, "must be a compile-time constant")
			}
			if def.DTypes != nil && !dtypeIn(x.Type.DType, def.DTypes) {
				return nil, inErr(def.Name, "dtype %s not allowed (want one of %v)", x.Type.DType, def.DTypes)
			}
		}
	}
	out, err := s.Infer(in)
	if err != nil {
		return nil, err
	}
	if !s.NoRankLimit && !s.Constexpr {
		for _, t := range out {
			if t.Rank() > MaxRank {
				return nil, fmt.Errorf("output %s has rank %d > %d", t, t.Rank(), MaxRank)
			}
		}
	}
	return out, nil
}

func dtypeIn(d DType, set []DType) bool {
	for _, x := range set {
		if x == d {
			return true
		}
	}
	return false
}

// Lookup returns the signature of a MIL op type (as of opset CoreML8).
func Lookup(opType string) (*Signature, bool) {
	s, ok := opTable[opType]
	return s, ok
}

// Ops lists the op types in the table, sorted.
func Ops() []string {
	out := make([]string, 0, len(opTable))
	for k := range opTable {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var (
	floatT      = []DType{FP16, FP32}
	numT        = []DType{FP16, FP32, Int32}
	int32T      = []DType{Int32}
	boolT       = []DType{Bool}
	stringT     = []DType{String}
	indexT      = []DType{Int32, Int16, Int8, UInt16, UInt8}
	constexprT  = []DType{Int4, UInt4, Int8, UInt8, FP16, FP32}
	lutIndicesT = []DType{UInt1, UInt2, UInt3, UInt4, UInt6, UInt8}
	lutT        = []DType{Int8, UInt8, FP16, FP32}
)

var opTable = map[string]*Signature{}

func register(s *Signature) { opTable[s.Op] = s }

// Default helpers.

func constDefault(c Constant) func(map[string]ArgInfo) (Constant, bool) {
	return func(map[string]ArgInfo) (Constant, bool) { return c, true }
}

// sameDTypeScalar is a default scalar in the dtype of input x (epsilon etc.).
func sameDTypeScalar(v float64) func(map[string]ArgInfo) (Constant, bool) {
	return func(in map[string]ArgInfo) (Constant, bool) {
		d := in["x"].Type.DType
		if !d.IsFloat() {
			d = FP32
		}
		return FloatScalar(d, v), true
	}
}

// allAxes is [0, 1, ..., rank(x)-1].
func allAxes(in map[string]ArgInfo) (Constant, bool) {
	r := in["x"].Type.Rank()
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	return IntVec(axes...), true
}

// rankVec is a 1-D constant of rank(x) copies of v (stride ones, masks false).
func rankVec(d DType, v float64) func(map[string]ArgInfo) (Constant, bool) {
	return func(in map[string]ArgInfo) (Constant, bool) {
		return filled(Tensor(d, in["x"].Type.Rank()), v), true
	}
}

// spatialVec is a 1-D int32 constant of (rank(x)-2)·mul copies of v (conv).
func spatialVec(mul, v int) func(map[string]ArgInfo) (Constant, bool) {
	return func(in map[string]ArgInfo) (Constant, bool) {
		s := in["x"].Type.Rank() - 2
		if s < 0 {
			s = 0
		}
		return filled(Tensor(Int32, s*mul), float64(v)), true
	}
}

// Inference helpers.

func normAxis(input string, axis, rank int) (int, error) {
	if axis < -rank || axis >= rank {
		return 0, inErr(input, "axis %d out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += rank
	}
	return axis, nil
}

// constValue returns the known value of a const input, or an error saying
// that static shape inference needs it.
func constValue(in map[string]ArgInfo, name string) (*Constant, error) {
	a := in[name]
	if a.Value == nil {
		return nil, inErr(name, "value must be known at build time (static shapes only)")
	}
	return a.Value, nil
}

func scalarInt(in map[string]ArgInfo, name string) (int, error) {
	c, err := constValue(in, name)
	if err != nil {
		return 0, err
	}
	if c.Type.Rank() != 0 && !(c.Type.Rank() == 1 && c.Type.Shape[0] == 1) {
		return 0, inErr(name, "must be a scalar, got %s", c.Type)
	}
	return c.Int(0), nil
}

func vecInt(in map[string]ArgInfo, name string) ([]int, error) {
	c, err := constValue(in, name)
	if err != nil {
		return nil, err
	}
	if c.Type.Rank() != 1 {
		return nil, inErr(name, "must be 1-D, got %s", c.Type)
	}
	return c.IntSlice(), nil
}

func scalarBool(in map[string]ArgInfo, name string, def bool) (bool, error) {
	a, ok := in[name]
	if !ok {
		return def, nil
	}
	if a.Value == nil {
		return false, inErr(name, "value must be known at build time")
	}
	if a.Value.Type.Rank() != 0 {
		return false, inErr(name, "must be a scalar, got %s", a.Value.Type)
	}
	return a.Value.Int(0) != 0, nil
}

func optInt(in map[string]ArgInfo, name string, def int) (int, error) {
	if _, ok := in[name]; !ok {
		return def, nil
	}
	return scalarInt(in, name)
}

// broadcast applies NumPy broadcasting to two shapes.
func broadcast(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, false
		}
	}
	return out, true
}

func sameDType(in map[string]ArgInfo, a, b string) error {
	if in[a].Type.DType != in[b].Type.DType {
		return inErr(b, "dtype %s differs from %s's %s", in[b].Type.DType, a, in[a].Type.DType)
	}
	return nil
}

func one(t TensorType) []TensorType { return []TensorType{t} }

// Op families.

func unaryOp(op string, dt []DType) {
	register(&Signature{Op: op,
		Inputs: []Input{{Name: "x", DTypes: dt}},
		Infer:  func(in map[string]ArgInfo) ([]TensorType, error) { return one(in["x"].Type), nil },
	})
}

func binaryOp(op string, dt []DType, out DType) {
	register(&Signature{Op: op,
		Inputs: []Input{{Name: "x", DTypes: dt}, {Name: "y", DTypes: dt}},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			x, y := in["x"].Type, in["y"].Type
			if err := sameDType(in, "x", "y"); err != nil {
				return nil, err
			}
			s, ok := broadcast(x.Shape, y.Shape)
			if !ok {
				return nil, inErr("y", "shape %v does not broadcast with x's %v", y.Shape, x.Shape)
			}
			d := x.DType
			if out != InvalidDType {
				d = out
			}
			return one(TensorType{DType: d, Shape: s}), nil
		},
	})
}

func reduction(op string) {
	register(&Signature{Op: op,
		Inputs: []Input{
			{Name: "x", DTypes: numT},
			{Name: "axes", Optional: true, Const: true, DTypes: int32T, Default: allAxes},
			{Name: "keep_dims", Optional: true, Const: true, DTypes: boolT, Default: constDefault(BoolScalar(false))},
		},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			x := in["x"].Type
			keep, err := scalarBool(in, "keep_dims", false)
			if err != nil {
				return nil, err
			}
			reduced := make([]bool, x.Rank())
			if _, ok := in["axes"]; ok {
				axes, err := vecInt(in, "axes")
				if err != nil {
					return nil, err
				}
				for _, a := range axes {
					a, err := normAxis("axes", a, x.Rank())
					if err != nil {
						return nil, err
					}
					reduced[a] = true
				}
			} else {
				for i := range reduced {
					reduced[i] = true
				}
			}
			var s []int
			for i, d := range x.Shape {
				switch {
				case !reduced[i]:
					s = append(s, d)
				case keep:
					s = append(s, 1)
				}
			}
			return one(TensorType{DType: x.DType, Shape: s}), nil
		},
	})
}

func init() {
	register(&Signature{Op: "const", NoRankLimit: true,
		Inputs: []Input{{Name: "val", Const: true, Attribute: true}},
		Infer:  func(in map[string]ArgInfo) ([]TensorType, error) { return one(in["val"].Type), nil },
	})
	register(&Signature{Op: "constexpr_blockwise_shift_scale", Constexpr: true,
		Inputs: []Input{
			{Name: "data", Const: true, DTypes: constexprT},
			{Name: "scale", Const: true, DTypes: floatT},
			{Name: "offset", Optional: true, Const: true, DTypes: constexprT},
		},
		Infer: inferBlockwise,
	})
	register(&Signature{Op: "constexpr_lut_to_dense", Constexpr: true,
		Inputs: []Input{
			{Name: "indices", Const: true, DTypes: lutIndicesT},
			{Name: "lut", Const: true, DTypes: lutT},
			{Name: "vector_axis", Optional: true, Const: true, DTypes: int32T},
		},
		Infer: inferLUT,
	})
	register(&Signature{Op: "linear",
		Inputs: []Input{
			{Name: "x", DTypes: numT},
			{Name: "weight", Const: true, DTypes: numT},
			{Name: "bias", Optional: true, Const: true, DTypes: numT, Default: func(in map[string]ArgInfo) (Constant, bool) {
				w := in["weight"].Type
				if w.Rank() != 2 {
					return Constant{}, false
				}
				return filled(Tensor(w.DType, w.Shape[0]), 0), true
			}},
		},
		Infer: inferLinear,
	})
	register(&Signature{Op: "matmul",
		Inputs: []Input{
			{Name: "x", DTypes: numT},
			{Name: "y", DTypes: numT},
			{Name: "transpose_x", Optional: true, Const: true, DTypes: boolT, Default: constDefault(BoolScalar(false))},
			{Name: "transpose_y", Optional: true, Const: true, DTypes: boolT, Default: constDefault(BoolScalar(false))},
		},
		Infer: inferMatmul,
	})
	register(&Signature{Op: "conv",
		Inputs: []Input{
			{Name: "x", DTypes: floatT},
			{Name: "weight", DTypes: floatT},
			{Name: "bias", Optional: true, DTypes: floatT},
			{Name: "strides", Optional: true, Const: true, DTypes: int32T, Default: spatialVec(1, 1)},
			{Name: "pad_type", Optional: true, Const: true, DTypes: stringT, Default: constDefault(StringScalar("valid"))},
			{Name: "pad", Optional: true, Const: true, DTypes: int32T, Default: spatialVec(2, 0)},
			{Name: "dilations", Optional: true, Const: true, DTypes: int32T, Default: spatialVec(1, 1)},
			{Name: "groups", Optional: true, Const: true, DTypes: int32T, Default: constDefault(IntScalar(1))},
		},
		Infer: inferConv,
	})
	for _, op := range []string{"add", "sub", "mul", "real_div", "pow", "maximum", "minimum"} {
		binaryOp(op, numT, InvalidDType)
	}
	for _, op := range []string{"less", "less_equal", "greater", "greater_equal", "equal", "not_equal"} {
		binaryOp(op, []DType{FP16, FP32, Int32, Bool}, Bool)
	}
	for _, op := range []string{"sqrt", "exp", "tanh", "sigmoid", "silu", "relu", "erf", "log", "sin", "cos"} {
		unaryOp(op, floatT)
	}
	for _, op := range []string{"square", "abs", "identity"} {
		unaryOp(op, numT)
	}
	opTable["identity"].Inputs[0].DTypes = nil
	register(&Signature{Op: "rsqrt",
		Inputs: []Input{
			{Name: "x", DTypes: floatT},
			{Name: "epsilon", Optional: true, Const: true, DTypes: floatT, Default: sameDTypeScalar(1e-12)},
		},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) { return one(in["x"].Type), nil },
	})
	register(&Signature{Op: "gelu",
		Inputs: []Input{
			{Name: "x", DTypes: floatT},
			{Name: "mode", Optional: true, Const: true, DTypes: stringT, Default: constDefault(StringScalar("EXACT"))},
		},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			if _, ok := in["mode"]; ok {
				c, err := constValue(in, "mode")
				if err != nil {
					return nil, err
				}
				switch m := c.Strings[0]; m {
				case "EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION":
				default:
					return nil, inErr("mode", "unknown gelu mode %q", m)
				}
			}
			return one(in["x"].Type), nil
		},
	})
	register(&Signature{Op: "softmax",
		Inputs: []Input{
			{Name: "x", DTypes: floatT},
			{Name: "axis", Optional: true, Const: true, DTypes: int32T, Default: constDefault(IntScalar(-1))},
		},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			x := in["x"].Type
			a, err := optInt(in, "axis", -1)
			if err != nil {
				return nil, err
			}
			if _, err := normAxis("axis", a, x.Rank()); err != nil {
				return nil, err
			}
			return one(x), nil
		},
	})
	register(&Signature{Op: "layer_norm",
		Inputs: []Input{
			{Name: "x", DTypes: floatT},
			{Name: "axes", Optional: true, Const: true, DTypes: int32T, Default: allAxes},
			{Name: "gamma", Optional: true, Const: true, DTypes: floatT},
			{Name: "beta", Optional: true, Const: true, DTypes: floatT},
			{Name: "epsilon", Optional: true, Const: true, DTypes: floatT, Default: sameDTypeScalar(1e-5)},
		},
		Infer: inferLayerNorm,
	})
	for _, op := range []string{"reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod"} {
		reduction(op)
	}
	register(&Signature{Op: "reshape",
		Inputs: []Input{{Name: "x"}, {Name: "shape", DTypes: []DType{Int32, Int16, Int8}}},
		Infer:  inferReshape,
	})
	register(&Signature{Op: "transpose",
		Inputs: []Input{{Name: "x"}, {Name: "perm", Const: true, DTypes: int32T}},
		Infer:  inferTranspose,
	})
	register(&Signature{Op: "expand_dims",
		Inputs: []Input{{Name: "x"}, {Name: "axes", Const: true, DTypes: int32T}},
		Infer:  inferExpandDims,
	})
	register(&Signature{Op: "squeeze",
		Inputs: []Input{{Name: "x"}, {Name: "axes", Optional: true, Const: true, DTypes: int32T, Default: func(in map[string]ArgInfo) (Constant, bool) {
			var axes []int
			for i, d := range in["x"].Type.Shape {
				if d == 1 {
					axes = append(axes, i)
				}
			}
			return IntVec(axes...), true
		}}},
		Infer: inferSqueeze,
	})
	register(&Signature{Op: "concat",
		Inputs: []Input{
			{Name: "values", Variadic: true},
			{Name: "axis", Const: true, DTypes: int32T},
			{Name: "interleave", Optional: true, Const: true, DTypes: boolT, Default: constDefault(BoolScalar(false))},
		},
		Infer: inferConcat,
	})
	register(&Signature{Op: "split",
		Inputs: []Input{
			{Name: "x"},
			{Name: "axis", Const: true, DTypes: int32T},
			{Name: "num_splits", Optional: true, Const: true, DTypes: int32T},
			{Name: "split_sizes", Optional: true, Const: true, DTypes: int32T},
		},
		Infer: inferSplit,
	})
	sliceMasks := []Input{
		{Name: "stride", Optional: true, DTypes: int32T, Default: rankVec(Int32, 1)},
		{Name: "begin_mask", Optional: true, Const: true, DTypes: boolT, Default: rankVec(Bool, 0)},
		{Name: "end_mask", Optional: true, Const: true, DTypes: boolT, Default: rankVec(Bool, 0)},
		{Name: "squeeze_mask", Optional: true, Const: true, DTypes: boolT, Default: rankVec(Bool, 0)},
	}
	register(&Signature{Op: "slice_by_index",
		Inputs: append([]Input{{Name: "x"}, {Name: "begin", DTypes: indexT}, {Name: "end", DTypes: indexT}}, sliceMasks...),
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			s, err := sliceShape(in)
			if err != nil {
				return nil, err
			}
			return one(TensorType{DType: in["x"].Type.DType, Shape: s}), nil
		},
	})
	register(&Signature{Op: "slice_by_size",
		Inputs: []Input{{Name: "x"}, {Name: "begin", DTypes: indexT}, {Name: "size", Const: true, DTypes: indexT}},
		Infer:  inferSliceBySize,
	})
	register(&Signature{Op: "slice_update",
		Inputs: append([]Input{{Name: "x"}, {Name: "update"}, {Name: "begin", DTypes: indexT}, {Name: "end", DTypes: indexT}}, sliceMasks...),
		Infer:  inferSliceUpdate,
	})
	register(&Signature{Op: "gather",
		Inputs: []Input{
			{Name: "x"},
			{Name: "indices", DTypes: indexT},
			{Name: "axis", Optional: true, Const: true, DTypes: int32T, Default: constDefault(IntScalar(0))},
			{Name: "batch_dims", Optional: true, Const: true, DTypes: int32T, Default: constDefault(IntScalar(0))},
			{Name: "validate_indices", Optional: true, Const: true, DTypes: boolT, Default: constDefault(BoolScalar(false))},
		},
		Infer: inferGather,
	})
	register(&Signature{Op: "tile",
		Inputs: []Input{{Name: "x"}, {Name: "reps", DTypes: int32T}},
		Infer:  inferTile,
	})
	register(&Signature{Op: "cast",
		Inputs: []Input{{Name: "x"}, {Name: "dtype", Const: true, DTypes: stringT}},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			c, err := constValue(in, "dtype")
			if err != nil {
				return nil, err
			}
			d, ok := ParseDType(c.Strings[0])
			if !ok || !dtypeIn(d, []DType{Int32, FP16, FP32, Bool, Int8, UInt8, Int16, UInt16}) {
				return nil, inErr("dtype", "cannot cast to %q", c.Strings[0])
			}
			return one(TensorType{DType: d, Shape: in["x"].Type.Shape}), nil
		},
	})
	register(&Signature{Op: "read_state",
		Inputs: []Input{{Name: "input", State: true}},
		Infer:  func(in map[string]ArgInfo) ([]TensorType, error) { return one(in["input"].Type), nil },
	})
	register(&Signature{Op: "write_state",
		Inputs: []Input{{Name: "input", State: true}, {Name: "data"}},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			if s, d := in["input"].Type, in["data"].Type; !s.Equal(d) {
				return nil, inErr("data", "type %s differs from the state's %s", d, s)
			}
			return nil, nil
		},
	})
	register(&Signature{Op: "select",
		Inputs: []Input{{Name: "cond", DTypes: boolT}, {Name: "a"}, {Name: "b"}},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			if err := sameDType(in, "a", "b"); err != nil {
				return nil, err
			}
			s, ok := broadcast(in["cond"].Type.Shape, in["a"].Type.Shape)
			if ok {
				s, ok = broadcast(s, in["b"].Type.Shape)
			}
			if !ok {
				return nil, inErr("b", "shapes cond %v, a %v, b %v do not broadcast", in["cond"].Type.Shape, in["a"].Type.Shape, in["b"].Type.Shape)
			}
			return one(TensorType{DType: in["a"].Type.DType, Shape: s}), nil
		},
	})
	register(&Signature{Op: "band_part",
		Inputs: []Input{
			{Name: "x"},
			{Name: "lower", Optional: true, Const: true, DTypes: int32T, Default: constDefault(IntScalar(-1))},
			{Name: "upper", Optional: true, Const: true, DTypes: int32T, Default: constDefault(IntScalar(-1))},
		},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			if in["x"].Type.Rank() < 2 {
				return nil, inErr("x", "rank %d < 2", in["x"].Type.Rank())
			}
			return one(in["x"].Type), nil
		},
	})
	register(&Signature{Op: "range_1d",
		Inputs: []Input{{Name: "end", DTypes: numT}, {Name: "start", DTypes: numT}, {Name: "step", DTypes: numT}},
		Infer:  inferRange,
	})
	register(&Signature{Op: "fill",
		Inputs: []Input{
			{Name: "shape", DTypes: int32T},
			{Name: "value", Optional: true, Const: true, Default: constDefault(FloatScalar(FP32, 0))},
		},
		Infer: func(in map[string]ArgInfo) ([]TensorType, error) {
			s, err := vecInt(in, "shape")
			if err != nil {
				return nil, err
			}
			if err := checkShape(s); err != nil {
				return nil, inErr("shape", "%v", err)
			}
			d := FP32
			if v, ok := in["value"]; ok {
				if v.Type.Rank() != 0 {
					return nil, inErr("value", "must be a scalar, got %s", v.Type)
				}
				d = v.Type.DType
			}
			return one(TensorType{DType: d, Shape: s}), nil
		},
	})
	register(&Signature{Op: "scaled_dot_product_attention",
		Inputs: []Input{
			{Name: "query", DTypes: floatT},
			{Name: "key", DTypes: floatT},
			{Name: "value", DTypes: floatT},
			{Name: "attn_mask", Optional: true, DTypes: []DType{Bool, FP16, FP32}},
		},
		Infer: inferSDPA,
	})
}

func inferBlockwise(in map[string]ArgInfo) ([]TensorType, error) {
	data, scale := in["data"].Type, in["scale"].Type
	if data.Rank() < 1 {
		return nil, inErr("data", "rank must be ≥ 1")
	}
	if scale.Rank() != data.Rank() {
		return nil, inErr("scale", "rank %d differs from data's %d", scale.Rank(), data.Rank())
	}
	for i, d := range data.Shape {
		if s := scale.Shape[i]; s <= 0 || d%s != 0 {
			return nil, inErr("scale", "dim %d (%d) does not divide data dim %d", i, s, d)
		}
	}
	if o, ok := in["offset"]; ok {
		if !shapeEqual(o.Type.Shape, scale.Shape) {
			return nil, inErr("offset", "shape %v differs from scale's %v", o.Type.Shape, scale.Shape)
		}
		if o.Type.DType.IsInt() && o.Type.DType != data.DType {
			return nil, inErr("offset", "integer offset dtype %s must equal data's %s", o.Type.DType, data.DType)
		}
	}
	return one(TensorType{DType: scale.DType, Shape: data.Shape}), nil
}

func inferLUT(in map[string]ArgInfo) ([]TensorType, error) {
	idx, lut := in["indices"].Type, in["lut"].Type
	k := idx.Rank()
	if k < 1 {
		return nil, inErr("indices", "rank must be ≥ 1")
	}
	if lut.Rank() != k+2 {
		return nil, inErr("lut", "rank %d, want indices rank + 2 = %d", lut.Rank(), k+2)
	}
	if want := 1 << idx.DType.Bits(); lut.Shape[k] != want {
		return nil, inErr("lut", "palette size %d, want 2^%d = %d", lut.Shape[k], idx.DType.Bits(), want)
	}
	for i := 0; i < k; i++ {
		if b := lut.Shape[i]; b <= 0 || idx.Shape[i]%b != 0 {
			return nil, inErr("lut", "group count %d does not divide indices dim %d (%d)", b, i, idx.Shape[i])
		}
	}
	out := append([]int(nil), idx.Shape...)
	vs := lut.Shape[k+1]
	if _, ok := in["vector_axis"]; ok {
		a, err := scalarInt(in, "vector_axis")
		if err != nil {
			return nil, err
		}
		a, err = normAxis("vector_axis", a, k)
		if err != nil {
			return nil, err
		}
		out[a] *= vs
	} else if vs != 1 {
		return nil, inErr("vector_axis", "required when the LUT vector size is %d", vs)
	}
	return one(TensorType{DType: lut.DType, Shape: out}), nil
}

func inferLinear(in map[string]ArgInfo) ([]TensorType, error) {
	x, w := in["x"].Type, in["weight"].Type
	if x.Rank() < 1 || x.Rank() > 3 {
		return nil, inErr("x", "rank %d, linear takes rank 1–3", x.Rank())
	}
	if w.Rank() != 2 {
		return nil, inErr("weight", "rank %d, want 2 ([D_out, D_in])", w.Rank())
	}
	if din := x.Shape[x.Rank()-1]; w.Shape[1] != din {
		return nil, inErr("weight", "shape %v: D_in %d does not match x's last dim %d", w.Shape, w.Shape[1], din)
	}
	if b, ok := in["bias"]; ok && !shapeEqual(b.Type.Shape, []int{w.Shape[0]}) {
		return nil, inErr("bias", "shape %v, want [%d]", b.Type.Shape, w.Shape[0])
	}
	s := append(append([]int(nil), x.Shape[:x.Rank()-1]...), w.Shape[0])
	return one(TensorType{DType: x.DType, Shape: s}), nil
}

func inferMatmul(in map[string]ArgInfo) ([]TensorType, error) {
	x, y := in["x"].Type, in["y"].Type
	if x.Rank() < 1 || y.Rank() < 1 {
		return nil, inErr("x", "matmul operands must have rank ≥ 1")
	}
	d := x.DType
	if x.DType != y.DType {
		// iOS17: mixed dtypes when one side is const; the result takes the
		// non-const side's dtype.
		switch {
		case in["y"].Const && !in["x"].Const:
		case in["x"].Const && !in["y"].Const:
			d = y.DType
		default:
			return nil, inErr("y", "dtype %s differs from x's %s", y.DType, x.DType)
		}
	}
	tx, err := scalarBool(in, "transpose_x", false)
	if err != nil {
		return nil, err
	}
	ty, err := scalarBool(in, "transpose_y", false)
	if err != nil {
		return nil, err
	}
	xs, ys := append([]int(nil), x.Shape...), append([]int(nil), y.Shape...)
	if len(xs) >= 2 && tx {
		xs[len(xs)-1], xs[len(xs)-2] = xs[len(xs)-2], xs[len(xs)-1]
	}
	if len(ys) >= 2 && ty {
		ys[len(ys)-1], ys[len(ys)-2] = ys[len(ys)-2], ys[len(ys)-1]
	}
	xVec, yVec := len(xs) == 1, len(ys) == 1
	if xVec {
		xs = []int{1, xs[0]}
	}
	if yVec {
		ys = []int{ys[0], 1}
	}
	if k1, k2 := xs[len(xs)-1], ys[len(ys)-2]; k1 != k2 {
		return nil, inErr("y", "inner dims differ: x %v (transpose_x=%v) · y %v (transpose_y=%v)", x.Shape, tx, y.Shape, ty)
	}
	batch, ok := broadcast(xs[:len(xs)-2], ys[:len(ys)-2])
	if !ok {
		return nil, inErr("y", "batch dims of %v and %v do not broadcast", x.Shape, y.Shape)
	}
	s := batch
	if !xVec {
		s = append(s, xs[len(xs)-2])
	}
	if !yVec {
		s = append(s, ys[len(ys)-1])
	}
	return one(TensorType{DType: d, Shape: s}), nil
}

func inferConv(in map[string]ArgInfo) ([]TensorType, error) {
	x, w := in["x"].Type, in["weight"].Type
	if x.Rank() < 3 || x.Rank() > 5 {
		return nil, inErr("x", "rank %d, conv takes [N, C_in, 1–3 spatial dims]", x.Rank())
	}
	sp := x.Rank() - 2
	if w.Rank() != x.Rank() {
		return nil, inErr("weight", "rank %d differs from x's %d", w.Rank(), x.Rank())
	}
	groups, err := optInt(in, "groups", 1)
	if err != nil {
		return nil, err
	}
	if groups < 1 || x.Shape[1]%groups != 0 || w.Shape[0]%groups != 0 {
		return nil, inErr("groups", "%d does not divide C_in %d and C_out %d", groups, x.Shape[1], w.Shape[0])
	}
	if w.Shape[1] != x.Shape[1]/groups {
		return nil, inErr("weight", "shape %v: C_in/groups %d, want %d", w.Shape, w.Shape[1], x.Shape[1]/groups)
	}
	if b, ok := in["bias"]; ok && !shapeEqual(b.Type.Shape, []int{w.Shape[0]}) {
		return nil, inErr("bias", "shape %v, want [%d]", b.Type.Shape, w.Shape[0])
	}
	vec := func(name string, n, def int) ([]int, error) {
		if _, ok := in[name]; !ok {
			v := make([]int, n)
			for i := range v {
				v[i] = def
			}
			return v, nil
		}
		v, err := vecInt(in, name)
		if err == nil && len(v) != n {
			err = inErr(name, "length %d, want %d", len(v), n)
		}
		return v, err
	}
	strides, err := vec("strides", sp, 1)
	if err != nil {
		return nil, err
	}
	dil, err := vec("dilations", sp, 1)
	if err != nil {
		return nil, err
	}
	pad, err := vec("pad", 2*sp, 0)
	if err != nil {
		return nil, err
	}
	padType := "valid"
	if _, ok := in["pad_type"]; ok {
		c, err := constValue(in, "pad_type")
		if err != nil {
			return nil, err
		}
		padType = c.Strings[0]
	}
	out := []int{x.Shape[0], w.Shape[0]}
	for i := 0; i < sp; i++ {
		d, k, s := x.Shape[2+i], (w.Shape[2+i]-1)*dil[i]+1, strides[i]
		if s < 1 {
			return nil, inErr("strides", "stride %d < 1", s)
		}
		var o int
		switch padType {
		case "valid":
			o = (d-k)/s + 1
		case "custom":
			o = (d+pad[2*i]+pad[2*i+1]-k)/s + 1
		case "same", "same_lower":
			o = (d + s - 1) / s
		default:
			return nil, inErr("pad_type", "unknown pad type %q", padType)
		}
		if o < 1 {
			return nil, inErr("weight", "kernel %v larger than input %v", w.Shape, x.Shape)
		}
		out = append(out, o)
	}
	return one(TensorType{DType: x.DType, Shape: out}), nil
}

func inferLayerNorm(in map[string]ArgInfo) ([]TensorType, error) {
	x := in["x"].Type
	var norm []int
	if _, ok := in["axes"]; ok {
		axes, err := vecInt(in, "axes")
		if err != nil {
			return nil, err
		}
		for _, a := range axes {
			a, err := normAxis("axes", a, x.Rank())
			if err != nil {
				return nil, err
			}
			norm = append(norm, x.Shape[a])
		}
	} else {
		norm = x.Shape
	}
	for _, name := range []string{"gamma", "beta"} {
		if g, ok := in[name]; ok && !shapeEqual(g.Type.Shape, norm) {
			return nil, inErr(name, "shape %v, want x.shape[axes] = %v", g.Type.Shape, norm)
		}
	}
	if e, ok := in["epsilon"]; ok && e.Type.Rank() != 0 {
		return nil, inErr("epsilon", "must be a scalar")
	}
	return one(x), nil
}

func inferReshape(in map[string]ArgInfo) ([]TensorType, error) {
	x := in["x"].Type
	if in["shape"].Type.Rank() != 1 {
		return nil, inErr("shape", "must be 1-D")
	}
	s, err := vecInt(in, "shape")
	if err != nil {
		return nil, err
	}
	out := make([]int, len(s))
	infer, known := -1, 1
	for i, d := range s {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, inErr("shape", "more than one -1 in %v", s)
			}
			infer = i
			continue
		case d == 0:
			// 0 copies the dimension at the same position (iOS15 rule).
			if i >= x.Rank() {
				return nil, inErr("shape", "0 at position %d beyond x's rank %d", i, x.Rank())
			}
			d = x.Shape[i]
		case d < -1:
			return nil, inErr("shape", "negative dimension %d", d)
		}
		out[i] = d
		known *= d
	}
	n := x.NumElements()
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, inErr("shape", "%v cannot hold %d elements of x %v", s, n, x.Shape)
		}
		out[infer] = n / known
	} else if known != n {
		return nil, inErr("shape", "%v holds %d elements, x %v has %d", s, known, x.Shape, n)
	}
	return one(TensorType{DType: x.DType, Shape: out}), nil
}

func inferTranspose(in map[string]ArgInfo) ([]TensorType, error) {
	x := in["x"].Type
	perm, err := vecInt(in, "perm")
	if err != nil {
		return nil, err
	}
	if len(perm) != x.Rank() {
		return nil, inErr("perm", "length %d, x has rank %d", len(perm), x.Rank())
	}
	seen := make([]bool, x.Rank())
	out := make([]int, x.Rank())
	for i, p := range perm {
		p, err := normAxis("perm", p, x.Rank())
		if err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, inErr("perm", "%v is not a permutation", perm)
		}
		seen[p] = true
		out[i] = x.Shape[p]
	}
	return one(TensorType{DType: x.DType, Shape: out}), nil
}

func inferExpandDims(in map[string]ArgInfo) ([]TensorType, error) {
	x := in["x"].Type
	axes, err := vecInt(in, "axes")
	if err != nil {
		return nil, err
	}
	r := x.Rank() + len(axes)
	isNew := make([]bool, r)
	for _, a := range axes {
		a, err := normAxis("axes", a, r)
		if err != nil {
			return nil, err
		}
		if isNew[a] {
			return nil, inErr("axes", "duplicate axis in %v", axes)
		}
		isNew[a] = true
	}
	out, j := make([]int, r), 0
	for i := range out {
		if isNew[i] {
			out[i] = 1
		} else {
			out[i] = x.Shape[j]
			j++
		}
	}
	return one(TensorType{DType: x.DType, Shape: out}), nil
}

func inferSqueeze(in map[string]ArgInfo) ([]TensorType, error) {
	x := in["x"].Type
	drop := make([]bool, x.Rank())
	if _, ok := in["axes"]; ok {
		axes, err := vecInt(in, "axes")
		if err != nil {
			return nil, err
		}
		for _, a := range axes {
			a, err := normAxis("axes", a, x.Rank())
			if err != nil {
				return nil, err
			}
			if x.Shape[a] != 1 {
				return nil, inErr("axes", "dim %d of %v is not 1", a, x.Shape)
			}
			drop[a] = true
		}
	} else {
		for i, d := range x.Shape {
			drop[i] = d == 1
		}
	}
	var out []int
	for i, d := range x.Shape {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return one(TensorType{DType: x.DType, Shape: out}), nil
}

func inferConcat(in map[string]ArgInfo) ([]TensorType, error) {
	vals := in["values"].List
	first := vals[0].Type
	axis, err := scalarInt(in, "axis")
	if err != nil {
		return nil, err
	}
	axis, err = normAxis("axis", axis, first.Rank())
	if err != nil {
		return nil, err
	}
	out := append([]int(nil), first.Shape...)
	for i, v := range vals[1:] {
		t := v.Type
		if t.DType != first.DType || t.Rank() != first.Rank() {
			return nil, inErr("values", "value %d is %s, value 0 is %s", i+1, t, first)
		}
		for d := range t.Shape {
			if d != axis && t.Shape[d] != first.Shape[d] {
				return nil, inErr("values", "value %d shape %v differs from %v off axis %d", i+1, t.Shape, first.Shape, axis)
			}
		}
		out[axis] += t.Shape[axis]
	}
	return one(TensorType{DType: first.DType, Shape: out}), nil
}

func inferSplit(in map[string]ArgInfo) ([]TensorType, error) {
	x := in["x"].Type
	axis, err := scalarInt(in, "axis")
	if err != nil {
		return nil, err
	}
	axis, err = normAxis("axis", axis, x.Rank())
	if err != nil {
		return nil, err
	}
	dim := x.Shape[axis]
	var sizes []int
	switch {
	case has(in, "split_sizes"):
		sizes, err = vecInt(in, "split_sizes")
		if err != nil {
			return nil, err
		}
		sum := 0
		for _, s := range sizes {
			if s < 0 {
				return nil, inErr("split_sizes", "negative size in %v", sizes)
			}
			sum += s
		}
		if sum != dim {
			return nil, inErr("split_sizes", "%v sums to %d, axis %d has %d", sizes, sum, axis, dim)
		}
	case has(in, "num_splits"):
		n, err := scalarInt(in, "num_splits")
		if err != nil {
			return nil, err
		}
		if n < 1 || dim%n != 0 {
			return nil, inErr("num_splits", "%d does not divide dim %d", n, dim)
		}
		for i := 0; i < n; i++ {
			sizes = append(sizes, dim/n)
		}
	default:
		return nil, inErr("num_splits", "split needs num_splits or split_sizes")
	}
	out := make([]TensorType, len(sizes))
	for i, s := range sizes {
		sh := append([]int(nil), x.Shape...)
		sh[axis] = s
		out[i] = TensorType{DType: x.DType, Shape: sh}
	}
	return out, nil
}

// sliceShape computes slice_by_index's result shape (NumPy rules with masks).
func sliceShape(in map[string]ArgInfo) ([]int, error) {
	x := in["x"].Type
	r := x.Rank()
	begin, err := vecInt(in, "begin")
	if err != nil {
		return nil, err
	}
	end, err := vecInt(in, "end")
	if err != nil {
		return nil, err
	}
	mask := func(name string) ([]bool, error) {
		m := make([]bool, r)
		if _, ok := in[name]; !ok {
			return m, nil
		}
		v, err := vecInt(in, name)
		if err != nil {
			return nil, err
		}
		if len(v) != r {
			return nil, inErr(name, "length %d, x has rank %d", len(v), r)
		}
		for i := range v {
			m[i] = v[i] != 0
		}
		return m, nil
	}
	stride := make([]int, r)
	for i := range stride {
		stride[i] = 1
	}
	if _, ok := in["stride"]; ok {
		if stride, err = vecInt(in, "stride"); err != nil {
			return nil, err
		}
	}
	bm, err := mask("begin_mask")
	if err != nil {
		return nil, err
	}
	em, err := mask("end_mask")
	if err != nil {
		return nil, err
	}
	sq, err := mask("squeeze_mask")
	if err != nil {
		return nil, err
	}
	for name, v := range map[string][]int{"begin": begin, "end": end, "stride": stride} {
		if len(v) != r {
			return nil, inErr(name, "length %d, x has rank %d", len(v), r)
		}
	}
	var out []int
	for i, dim := range x.Shape {
		s := stride[i]
		if s == 0 {
			return nil, inErr("stride", "zero stride on axis %d", i)
		}
		clamp := func(v int, lo, hi int) int { return min(max(v, lo), hi) }
		b, e := begin[i], end[i]
		if b < 0 {
			b += dim
		}
		if e < 0 {
			e += dim
		}
		if s > 0 {
			if bm[i] {
				b = 0
			}
			if em[i] {
				e = dim
			}
			b, e = clamp(b, 0, dim), clamp(e, 0, dim)
		} else {
			if bm[i] {
				b = dim - 1
			}
			if em[i] {
				e = -1
			}
			b, e = clamp(b, -1, dim-1), clamp(e, -1, dim-1)
		}
		n := 0
		if s > 0 && e > b {
			n = (e - b + s - 1) / s
		} else if s < 0 && b > e {
			n = (b - e - s - 1) / -s
		}
		if sq[i] {
			if n != 1 {
				return nil, inErr("squeeze_mask", "axis %d squeezed but slice has %d elements", i, n)
			}
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

func inferSliceBySize(in map[string]ArgInfo) ([]TensorType, error) {
	x := in["x"].Type
	size, err := vecInt(in, "size")
	if err != nil {
		return nil, err
	}
	if len(size) != x.Rank() {
		return nil, inErr("size", "length %d, x has rank %d", len(size), x.Rank())
	}
	if in["begin"].Type.Rank() != 1 || in["begin"].Type.Shape[0] != x.Rank() {
		return nil, inErr("begin", "shape %v, want [%d]", in["begin"].Type.Shape, x.Rank())
	}
	out := make([]int, len(size))
	for i, s := range size {
		switch {
		case s == -1:
			b, err := vecInt(in, "begin")
			if err != nil {
				return nil, inErr("size", "-1 on axis %d needs a constant begin", i)
			}
			s = x.Shape[i] - b[i]
		case s < 0 || s > x.Shape[i]:
			return nil, inErr("size", "size %d out of range for dim %d", s, x.Shape[i])
		}
		if b := in["begin"].Value; b != nil && (b.Int(i) < 0 || b.Int(i)+s > x.Shape[i]) {
			return nil, inErr("begin", "slice [%d, %d) out of range for dim %d", b.Int(i), b.Int(i)+s, x.Shape[i])
		}
		out[i] = s
	}
	return one(TensorType{DType: x.DType, Shape: out}), nil
}

func inferSliceUpdate(in map[string]ArgInfo) ([]TensorType, error) {
	x, u := in["x"].Type, in["update"].Type
	if err := sameDType(in, "x", "update"); err != nil {
		return nil, err
	}
	for _, name := range []string{"begin", "end"} {
		if t := in[name].Type; t.Rank() != 1 || t.Shape[0] != x.Rank() {
			return nil, inErr(name, "shape %v, want [%d]", t.Shape, x.Rank())
		}
	}
	if in["begin"].Value != nil && in["end"].Value != nil {
		want, err := sliceShape(in)
		if err != nil {
			return nil, err
		}
		if !shapeEqual(want, u.Shape) {
			return nil, inErr("update", "shape %v, the slice is %v", u.Shape, want)
		}
	} else if u.Rank() < 1 || u.Rank() > x.Rank() {
		return nil, inErr("update", "rank %d, x has rank %d", u.Rank(), x.Rank())
	} else {
		for i := 1; i <= u.Rank(); i++ {
			if u.Shape[u.Rank()-i] > x.Shape[x.Rank()-i] {
				return nil, inErr("update", "shape %v larger than x %v", u.Shape, x.Shape)
			}
		}
	}
	return one(x), nil
}

func inferGather(in map[string]ArgInfo) ([]TensorType, error) {
	x, idx := in["x"].Type, in["indices"].Type
	axis, err := optInt(in, "axis", 0)
	if err != nil {
		return nil, err
	}
	axis, err = normAxis("axis", axis, x.Rank())
	if err != nil {
		return nil, err
	}
	bd, err := optInt(in, "batch_dims", 0)
	if err != nil {
		return nil, err
	}
	if bd < 0 || bd > axis || bd > idx.Rank() {
		return nil, inErr("batch_dims", "%d out of range (axis %d, indices rank %d)", bd, axis, idx.Rank())
	}
	if !shapeEqual(x.Shape[:bd], idx.Shape[:bd]) {
		return nil, inErr("indices", "batch dims %v differ from x's %v", idx.Shape[:bd], x.Shape[:bd])
	}
	out := append(append(append([]int(nil), x.Shape[:axis]...), idx.Shape[bd:]...), x.Shape[axis+1:]...)
	return one(TensorType{DType: x.DType, Shape: out}), nil
}

func inferTile(in map[string]ArgInfo) ([]TensorType, error) {
	x := in["x"].Type
	reps, err := vecInt(in, "reps")
	if err != nil {
		return nil, err
	}
	if len(reps) != x.Rank() {
		return nil, inErr("reps", "length %d, x has rank %d", len(reps), x.Rank())
	}
	out := make([]int, len(reps))
	for i, r := range reps {
		if r < 1 {
			return nil, inErr("reps", "rep %d < 1", r)
		}
		out[i] = x.Shape[i] * r
	}
	return one(TensorType{DType: x.DType, Shape: out}), nil
}

func inferRange(in map[string]ArgInfo) ([]TensorType, error) {
	for _, name := range []string{"end", "start", "step"} {
		if in[name].Type.Rank() != 0 {
			return nil, inErr(name, "must be a scalar")
		}
		if err := sameDType(in, "end", name); err != nil {
			return nil, err
		}
	}
	var v [3]float64
	for i, name := range []string{"start", "end", "step"} {
		c, err := constValue(in, name)
		if err != nil {
			return nil, err
		}
		if len(c.Floats) > 0 {
			v[i] = c.Floats[0]
		} else {
			v[i] = float64(c.Int(0))
		}
	}
	if v[2] == 0 {
		return nil, inErr("step", "zero step")
	}
	n := 0
	if q := (v[1] - v[0]) / v[2]; q > 0 {
		n = int(q)
		if float64(n) < q {
			n++
		}
	}
	return one(TensorType{DType: in["end"].Type.DType, Shape: []int{n}}), nil
}

func inferSDPA(in map[string]ArgInfo) ([]TensorType, error) {
	q, k, v := in["query"].Type, in["key"].Type, in["value"].Type
	if q.Rank() < 3 {
		return nil, inErr("query", "rank %d < 3", q.Rank())
	}
	if k.Rank() != q.Rank() || v.Rank() != q.Rank() {
		return nil, inErr("key", "query, key and value ranks differ: %d, %d, %d", q.Rank(), k.Rank(), v.Rank())
	}
	if k.DType != q.DType || v.DType != q.DType {
		return nil, inErr("key", "query, key and value dtypes differ")
	}
	r := q.Rank()
	L, E, S := q.Shape[r-2], q.Shape[r-1], k.Shape[r-2]
	if k.Shape[r-1] != E {
		return nil, inErr("key", "last dim %d, query's is %d", k.Shape[r-1], E)
	}
	if v.Shape[r-2] != S {
		return nil, inErr("value", "sequence dim %d, key's is %d", v.Shape[r-2], S)
	}
	batch, ok := broadcast(q.Shape[:r-2], k.Shape[:r-2])
	if ok {
		batch, ok = broadcast(batch, v.Shape[:r-2])
	}
	if !ok {
		return nil, inErr("key", "batch dims of query %v, key %v, value %v do not broadcast", q.Shape, k.Shape, v.Shape)
	}
	if m, has := in["attn_mask"]; has {
		full := append(append([]int(nil), batch...), L, S)
		if b, ok := broadcast(m.Type.Shape, full); !ok || !shapeEqual(b, full) {
			return nil, inErr("attn_mask", "shape %v does not broadcast to %v", m.Type.Shape, full)
		}
	}
	out := append(append([]int(nil), batch...), L, v.Shape[r-1])
	return one(TensorType{DType: q.DType, Shape: out}), nil
}

func has(in map[string]ArgInfo, name string) bool { _, ok := in[name]; return ok }
