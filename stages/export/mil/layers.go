package mil

// Typed helpers over Function.Op, one per op, named as in coremltools' mb.*.
// Parameters given as Go values become const ops; inputs left out get their
// defaults written explicitly.

func (f *Function) binary(op string, x, y *Value) *Value {
	return f.add(op, Args{"x": x, "y": y})
}

func (f *Function) unary(op string, x *Value) *Value { return f.add(op, Args{"x": x}) }

// Add returns x + y (broadcasting).
func (f *Function) Add(x, y *Value) *Value { return f.binary("add", x, y) }

// Sub returns x − y.
func (f *Function) Sub(x, y *Value) *Value { return f.binary("sub", x, y) }

// Mul returns x · y.
func (f *Function) Mul(x, y *Value) *Value { return f.binary("mul", x, y) }

// RealDiv returns x / y.
func (f *Function) RealDiv(x, y *Value) *Value { return f.binary("real_div", x, y) }

// Pow returns x ** y.
func (f *Function) Pow(x, y *Value) *Value { return f.binary("pow", x, y) }

// Maximum returns max(x, y) elementwise.
func (f *Function) Maximum(x, y *Value) *Value { return f.binary("maximum", x, y) }

// Minimum returns min(x, y) elementwise.
func (f *Function) Minimum(x, y *Value) *Value { return f.binary("minimum", x, y) }

// Less returns x < y (bool).
func (f *Function) Less(x, y *Value) *Value { return f.binary("less", x, y) }

// LessEqual returns x ≤ y (bool).
func (f *Function) LessEqual(x, y *Value) *Value { return f.binary("less_equal", x, y) }

// Greater returns x > y (bool).
func (f *Function) Greater(x, y *Value) *Value { return f.binary("greater", x, y) }

// Equal returns x == y (bool).
func (f *Function) Equal(x, y *Value) *Value { return f.binary("equal", x, y) }

// Sqrt, Rsqrt, Exp, Tanh, Square, Abs, Sigmoid, Silu, Relu and Identity are
// the elementwise ops of the same names.
func (f *Function) Sqrt(x *Value) *Value     { return f.unary("sqrt", x) }
func (f *Function) Rsqrt(x *Value) *Value    { return f.unary("rsqrt", x) }
func (f *Function) Exp(x *Value) *Value      { return f.unary("exp", x) }
func (f *Function) Tanh(x *Value) *Value     { return f.unary("tanh", x) }
func (f *Function) Square(x *Value) *Value   { return f.unary("square", x) }
func (f *Function) Abs(x *Value) *Value      { return f.unary("abs", x) }
func (f *Function) Sigmoid(x *Value) *Value  { return f.unary("sigmoid", x) }
func (f *Function) Silu(x *Value) *Value     { return f.unary("silu", x) }
func (f *Function) Relu(x *Value) *Value     { return f.unary("relu", x) }
func (f *Function) Identity(x *Value) *Value { return f.unary("identity", x) }

// Gelu applies GELU; mode is "EXACT", "TANH_APPROXIMATION" or
// "SIGMOID_APPROXIMATION" ("" means EXACT).
func (f *Function) Gelu(x *Value, mode string) *Value {
	if mode == "" {
		mode = "EXACT"
	}
	return f.add("gelu", Args{"x": x, "mode": StringScalar(mode)})
}

// Linear returns x·weightᵀ + bias with weight [D_out, D_in]; a nil bias is
// written as zeros.
func (f *Function) Linear(x, weight, bias *Value) *Value {
	a := Args{"x": x, "weight": weight}
	if bias != nil {
		a["bias"] = bias
	}
	return f.add("linear", a)
}

// Matmul returns x·y with optional transposes of the last two dims.
func (f *Function) Matmul(x, y *Value, transposeX, transposeY bool) *Value {
	return f.add("matmul", Args{"x": x, "y": y, "transpose_x": BoolScalar(transposeX), "transpose_y": BoolScalar(transposeY)})
}

// Conv is a convolution with unit strides and dilations, no padding and one
// group: with a [C_out, C_in, 1, 1] weight on [B, C_in, 1, S] input it is
// the Neural-Engine-friendly form of linear. bias may be nil.
func (f *Function) Conv(x, weight, bias *Value) *Value {
	a := Args{"x": x, "weight": weight}
	if bias != nil {
		a["bias"] = bias
	}
	return f.add("conv", a)
}

// LayerNorm normalises x over axes: (x − mean)/sqrt(var + eps)·gamma + beta.
// gamma and beta may be nil.
func (f *Function) LayerNorm(x *Value, axes []int, gamma, beta *Value, eps float64) *Value {
	if x == nil {
		return f.add("layer_norm", Args{"x": x})
	}
	a := Args{"x": x, "axes": IntVec(axes...), "epsilon": FloatScalar(floatOr(x), eps)}
	if gamma != nil {
		a["gamma"] = gamma
	}
	if beta != nil {
		a["beta"] = beta
	}
	return f.add("layer_norm", a)
}

// floatOr is x's dtype for scalar parameters that follow it (epsilon).
func floatOr(x *Value) DType {
	if x != nil && x.typ.DType.IsFloat() {
		return x.typ.DType
	}
	return FP32
}

// Softmax applies softmax along axis.
func (f *Function) Softmax(x *Value, axis int) *Value {
	return f.add("softmax", Args{"x": x, "axis": IntScalar(axis)})
}

func (f *Function) reduce(op string, x *Value, axes []int, keepDims bool) *Value {
	return f.add(op, Args{"x": x, "axes": IntVec(axes...), "keep_dims": BoolScalar(keepDims)})
}

// ReduceMean averages x over axes.
func (f *Function) ReduceMean(x *Value, axes []int, keepDims bool) *Value {
	return f.reduce("reduce_mean", x, axes, keepDims)
}

// ReduceSum sums x over axes.
func (f *Function) ReduceSum(x *Value, axes []int, keepDims bool) *Value {
	return f.reduce("reduce_sum", x, axes, keepDims)
}

// ReduceMax takes the maximum of x over axes.
func (f *Function) ReduceMax(x *Value, axes []int, keepDims bool) *Value {
	return f.reduce("reduce_max", x, axes, keepDims)
}

// Reshape reshapes x; one dimension may be -1.
func (f *Function) Reshape(x *Value, shape ...int) *Value {
	return f.add("reshape", Args{"x": x, "shape": IntVec(shape...)})
}

// Transpose permutes x's dimensions.
func (f *Function) Transpose(x *Value, perm ...int) *Value {
	return f.add("transpose", Args{"x": x, "perm": IntVec(perm...)})
}

// ExpandDims inserts size-1 dimensions at axes (of the result).
func (f *Function) ExpandDims(x *Value, axes ...int) *Value {
	return f.add("expand_dims", Args{"x": x, "axes": IntVec(axes...)})
}

// Squeeze removes size-1 dimensions at axes (all of them when none given).
func (f *Function) Squeeze(x *Value, axes ...int) *Value {
	a := Args{"x": x}
	if len(axes) > 0 {
		a["axes"] = IntVec(axes...)
	}
	return f.add("squeeze", a)
}

// Concat joins values along axis.
func (f *Function) Concat(axis int, values ...*Value) *Value {
	return f.add("concat", Args{"values": values, "axis": IntScalar(axis)})
}

// Split cuts x along axis into pieces of the given sizes.
func (f *Function) Split(x *Value, axis int, sizes ...int) []*Value {
	outs, err := f.Op("split", Args{"x": x, "axis": IntScalar(axis), "split_sizes": IntVec(sizes...)})
	if err != nil {
		f.fail(err)
	}
	return outs
}

// SliceByIndex returns x[begin:end] (per axis, unit stride).
func (f *Function) SliceByIndex(x *Value, begin, end []int) *Value {
	return f.add("slice_by_index", Args{"x": x, "begin": IntVec(begin...), "end": IntVec(end...)})
}

// SliceBySize returns the slice of x starting at begin (possibly computed at
// run time) with the given static size.
func (f *Function) SliceBySize(x, begin *Value, size []int) *Value {
	return f.add("slice_by_size", Args{"x": x, "begin": begin, "size": IntVec(size...)})
}

// SliceUpdate returns x with x[begin:end] replaced by update; begin and end
// may be computed at run time (the KV-cache insert at the current position).
func (f *Function) SliceUpdate(x, update, begin, end *Value) *Value {
	return f.add("slice_update", Args{"x": x, "update": update, "begin": begin, "end": end})
}

// Gather takes x's slices at indices along axis (an embedding lookup with
// axis 0).
func (f *Function) Gather(x, indices *Value, axis int) *Value {
	return f.add("gather", Args{"x": x, "indices": indices, "axis": IntScalar(axis)})
}

// Tile repeats x reps[i] times along axis i.
func (f *Function) Tile(x *Value, reps ...int) *Value {
	return f.add("tile", Args{"x": x, "reps": IntVec(reps...)})
}

// Cast converts x to dtype d.
func (f *Function) Cast(x *Value, d DType) *Value {
	return f.add("cast", Args{"x": x, "dtype": StringScalar(d.String())})
}

// ReadState returns the current contents of state s.
func (f *Function) ReadState(s *Value) *Value { return f.add("read_state", Args{"input": s}) }

// WriteState stores data into state s; data's type must equal the state's.
func (f *Function) WriteState(s, data *Value) {
	f.add("write_state", Args{"input": s, "data": data})
}

// Select returns a where cond is true, else b (broadcasting).
func (f *Function) Select(cond, a, b *Value) *Value {
	return f.add("select", Args{"cond": cond, "a": a, "b": b})
}

// BandPart keeps the band of the last two dims with lower sub- and upper
// super-diagonals (-1 keeps all); (-1, 0) gives a lower triangle.
func (f *Function) BandPart(x *Value, lower, upper int) *Value {
	return f.add("band_part", Args{"x": x, "lower": IntScalar(lower), "upper": IntScalar(upper)})
}

// Range1D returns [start, end) with step; the three scalars must be
// constants for the result's length to be static.
func (f *Function) Range1D(end, start, step *Value) *Value {
	return f.add("range_1d", Args{"end": end, "start": start, "step": step})
}

// Fill returns a tensor of the given shape filled with the scalar value.
func (f *Function) Fill(shape []int, value Constant) *Value {
	return f.add("fill", Args{"shape": IntVec(shape...), "value": value})
}

// ScaledDotProductAttention returns softmax(q·kᵀ/sqrt(E) + mask)·v (iOS18);
// mask may be nil, a bool mask (true attends) or an additive float mask.
func (f *Function) ScaledDotProductAttention(q, k, v, mask *Value) *Value {
	a := Args{"query": q, "key": k, "value": v}
	if mask != nil {
		a["attn_mask"] = mask
	}
	return f.add("scaled_dot_product_attention", a)
}
