package reference

// kernels maps every op type the runtime executes to its compiler. const and the constexpr
// ops are evaluated at Open instead (see compileConst and constexprOps).
var kernels = map[string]kernelFunc{}

// valuePreserving ops only move values, so their fp16 outputs need no rounding.
var valuePreserving = map[string]bool{
	"reshape": true, "transpose": true, "expand_dims": true, "squeeze": true, "concat": true,
	"split": true, "slice_by_index": true, "slice_by_size": true, "slice_update": true,
	"gather": true, "tile": true, "band_part": true, "identity": true, "read_state": true,
	"select": true, "relu": true, "maximum": true, "minimum": true,
}

func init() {
	for op := range binaryFloat {
		kernels[op] = compileBinary
	}
	for op := range compare {
		kernels[op] = compileBinary
	}
	for op := range logical {
		kernels[op] = compileBinary
	}
	for op := range unaryFloat {
		kernels[op] = compileUnary
	}
	for _, op := range []string{"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_sum_square"} {
		kernels[op] = compileReduce
	}
	for _, op := range []string{"reshape", "expand_dims", "squeeze"} {
		kernels[op] = compileCopyShape
	}
	for op, f := range map[string]kernelFunc{
		"linear":                       compileLinear,
		"matmul":                       compileMatmul,
		"conv":                         compileConv,
		"select":                       compileSelect,
		"cast":                         compileCast,
		"softmax":                      compileSoftmax,
		"layer_norm":                   compileLayerNorm,
		"transpose":                    compileTranspose,
		"concat":                       compileConcat,
		"split":                        compileSplit,
		"slice_by_index":               compileSliceByIndex,
		"slice_by_size":                compileSliceBySize,
		"slice_update":                 compileSliceUpdate,
		"gather":                       compileGather,
		"tile":                         compileTile,
		"band_part":                    compileBandPart,
		"range_1d":                     compileRange1D,
		"fill":                         compileFill,
		"scaled_dot_product_attention": compileSDPA,
		"read_state":                   compileReadState,
		"write_state":                  compileWriteState,
		"logical_not":                  compileLogicalNot,
	} {
		kernels[op] = f
	}
}

func compileLogicalNot(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
	if err != nil {
		return nil, err
	}
	if x.DType != Bool || out.DType != Bool {
		return nil, o.errf("x must be bool")
	}
	return func() error {
		out.setShape(x.Shape)
		for i, v := range x.b {
			out.b[i] = !v
		}
		return nil
	}, nil
}
