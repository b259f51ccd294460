package reference

import (
	"math"
	"testing"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

func ttype(dt milpb.DataType, shape ...int) *milpb.ValueType {
	tt := &milpb.TensorType{DataType: dt, Rank: int64(len(shape))}
	for _, d := range shape {
		tt.Dimensions = append(tt.Dimensions, &milpb.Dimension{Dimension: &milpb.Dimension_Constant{Constant: &milpb.Dimension_ConstantDimension{Size: uint64(d)}}})
	}
	return &milpb.ValueType{Type: &milpb.ValueType_TensorType{TensorType: tt}}
}

func immediate(vt *milpb.ValueType, tv *milpb.TensorValue) *milpb.Value {
	return &milpb.Value{Type: vt, Value: &milpb.Value_ImmediateValue_{ImmediateValue: &milpb.Value_ImmediateValue{Value: &milpb.Value_ImmediateValue_Tensor{Tensor: tv}}}}
}

func ints(v ...int32) *milpb.Value {
	return immediate(ttype(milpb.DataType_INT32, len(v)), &milpb.TensorValue{Value: &milpb.TensorValue_Ints{Ints: &milpb.TensorValue_RepeatedInts{Values: v}}})
}
func scalarInt(v int32) *milpb.Value {
	return immediate(ttype(milpb.DataType_INT32), &milpb.TensorValue{Value: &milpb.TensorValue_Ints{Ints: &milpb.TensorValue_RepeatedInts{Values: []int32{v}}}})
}
func bools(v ...bool) *milpb.Value {
	return immediate(ttype(milpb.DataType_BOOL, len(v)), &milpb.TensorValue{Value: &milpb.TensorValue_Bools{Bools: &milpb.TensorValue_RepeatedBools{Values: v}}})
}
func str(s string) *milpb.Value {
	return immediate(ttype(milpb.DataType_STRING), &milpb.TensorValue{Value: &milpb.TensorValue_Strings{Strings: &milpb.TensorValue_RepeatedStrings{Values: []string{s}}}})
}
func floatsShaped(shape []int, v ...float32) *milpb.Value {
	return immediate(ttype(milpb.DataType_FLOAT32, shape...), &milpb.TensorValue{Value: &milpb.TensorValue_Floats{Floats: &milpb.TensorValue_RepeatedFloats{Values: v}}})
}
func floats(v ...float32) *milpb.Value {
	return immediate(ttype(milpb.DataType_FLOAT32, len(v)), &milpb.TensorValue{Value: &milpb.TensorValue_Floats{Floats: &milpb.TensorValue_RepeatedFloats{Values: v}}})
}

// runOneOp builds main(x: fp32 inShape) → y = op(x=x, params…) with y fp32 outShape and runs it.
func runOneOp(t *testing.T, typ string, inShape, outShape []int, params map[string]*milpb.Value, x []float32) []float32 {
	t.Helper()
	inputs := map[string]*milpb.Argument{"x": {Arguments: []*milpb.Argument_Binding{{Binding: &milpb.Argument_Binding_Name{Name: "x"}}}}}
	for k, v := range params {
		inputs[k] = &milpb.Argument{Arguments: []*milpb.Argument_Binding{{Binding: &milpb.Argument_Binding_Value{Value: v}}}}
	}
	op := &milpb.Operation{Type: typ, Inputs: inputs,
		Outputs:    []*milpb.NamedValueType{{Name: "y", Type: ttype(milpb.DataType_FLOAT32, outShape...)}},
		Attributes: map[string]*milpb.Value{"name": str("op0")}}
	fn := &milpb.Function{Opset: "CoreML8",
		Inputs:               []*milpb.NamedValueType{{Name: "x", Type: ttype(milpb.DataType_FLOAT32, inShape...)}},
		BlockSpecializations: map[string]*milpb.Block{"CoreML8": {Outputs: []string{"y"}, Operations: []*milpb.Operation{op}}}}
	spec := &milpb.Model{SpecificationVersion: 9, Type: &milpb.Model_MlProgram{MlProgram: &milpb.Program{Version: 1, Functions: map[string]*milpb.Function{"main": fn}}}}
	m, err := openSpec(spec, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	xt, _ := FromFloat32(Float32, inShape, x)
	out, err := m.Predict("", map[string]*Tensor{"x": xt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out["y"].Float32s()
}

func TestOpSemantics(t *testing.T) {
	seq := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	tests := []struct {
		name    string
		typ     string
		in, out []int
		params  map[string]*milpb.Value
		x, want []float32
	}{
		// gelu(1): EXACT 0.5·(1+erf(1/√2)) = 0.841345; tanh form 0.841192; sigmoid form 1/(1+e^-1.702) = 0.845796.
		{"gelu exact", "gelu", []int{2}, []int{2}, map[string]*milpb.Value{"mode": str("EXACT")}, []float32{1, -1}, []float32{0.841345, -0.158655}},
		{"gelu tanh", "gelu", []int{1}, []int{1}, map[string]*milpb.Value{"mode": str("TANH_APPROXIMATION")}, []float32{1}, []float32{0.841192}},
		{"gelu sigmoid", "gelu", []int{1}, []int{1}, map[string]*milpb.Value{"mode": str("SIGMOID_APPROXIMATION")}, []float32{1}, []float32{0.845796}},
		// layer_norm of [1,2,3]: mean 2, var 2/3 → [-1.224745, 0, 1.224745] (eps 0).
		{"layer_norm", "layer_norm", []int{1, 3}, []int{1, 3}, map[string]*milpb.Value{"axes": ints(-1), "epsilon": immediate(ttype(milpb.DataType_FLOAT32), &milpb.TensorValue{Value: &milpb.TensorValue_Floats{Floats: &milpb.TensorValue_RepeatedFloats{Values: []float32{0}}}})}, []float32{1, 2, 3}, []float32{-1.224745, 0, 1.224745}},
		// softmax([0, ln 3]) = [0.25, 0.75].
		{"softmax", "softmax", []int{2}, []int{2}, map[string]*milpb.Value{"axis": scalarInt(-1)}, []float32{0, float32(math.Log(3))}, []float32{0.25, 0.75}},
		// A masked position (−1e4, the contract's mask value) gets exactly 0: [0.25, 0, 0.75].
		{"softmax masked", "softmax", []int{3}, []int{3}, map[string]*milpb.Value{"axis": scalarInt(0)}, []float32{0, -1e4, float32(math.Log(3))}, []float32{0.25, 0, 0.75}},
		// softmax over axis 0 of [2,2] (strided lanes): columns [0, ln 3] → [0.25, 0.75].
		{"softmax axis 0", "softmax", []int{2, 2}, []int{2, 2}, map[string]*milpb.Value{"axis": scalarInt(0)}, []float32{0, 0, float32(math.Log(3)), float32(math.Log(3))}, []float32{0.25, 0.25, 0.75, 0.75}},
		// x[3,4]; rows 2..0 step -2 (begin_mask on axis 1 keeps all columns from 1): numpy x[2::-2, 1:].
		{"slice_by_index", "slice_by_index", []int{3, 4}, []int{2, 3}, map[string]*milpb.Value{
			"begin": ints(2, 1), "end": ints(0, 0), "stride": ints(-2, 1), "begin_mask": bools(false, false), "end_mask": bools(true, true)},
			seq, []float32{9, 10, 11, 1, 2, 3}},
		// numpy transpose of [2,3] arange.
		{"transpose", "transpose", []int{2, 3}, []int{3, 2}, map[string]*milpb.Value{"perm": ints(1, 0)}, seq[:6], []float32{0, 3, 1, 4, 2, 5}},
		// gather rows 2 and 0 of [3,2].
		{"gather", "gather", []int{3, 2}, []int{2, 2}, map[string]*milpb.Value{"indices": ints(2, 0), "axis": scalarInt(0)}, seq[:6], []float32{4, 5, 0, 1}},
		// band_part(lower=-1, upper=0) keeps the lower triangle.
		{"band_part", "band_part", []int{2, 2}, []int{2, 2}, map[string]*milpb.Value{"lower": scalarInt(-1), "upper": scalarInt(0)}, []float32{1, 2, 3, 4}, []float32{1, 0, 3, 4}},
		// reduce_mean over axis 1 of [[0,1,2],[3,4,5]] = [1, 4].
		{"reduce_mean", "reduce_mean", []int{2, 3}, []int{2}, map[string]*milpb.Value{"axes": ints(1)}, seq[:6], []float32{1, 4}},
		// tile [1,2] by [2,2] → [[0,1,0,1],[0,1,0,1]].
		{"tile", "tile", []int{1, 2}, []int{2, 4}, map[string]*milpb.Value{"reps": ints(2, 2)}, seq[:2], []float32{0, 1, 0, 1, 0, 1, 0, 1}},
		// Broadcasting in rows: x [2,3] + y [2,1] adds 10 to row 0 and 20 to row 1.
		{"add column", "add", []int{2, 3}, []int{2, 3}, map[string]*milpb.Value{"y": floatsShaped([]int{2, 1}, 10, 20)}, seq[:6], []float32{10, 11, 12, 23, 24, 25}},
		// x [2,3] · y [3] scales column j by j+1.
		{"mul row", "mul", []int{2, 3}, []int{2, 3}, map[string]*milpb.Value{"y": floats(1, 2, 3)}, seq[:6], []float32{0, 2, 6, 3, 8, 15}},
		// x [2,1,3] − y [2,1] broadcasts both ways to [2,2,3]: out[i,j,k] = x[i,0,k] − y[j].
		{"sub both ways", "sub", []int{2, 1, 3}, []int{2, 2, 3}, map[string]*milpb.Value{"y": floatsShaped([]int{2, 1}, 1, 2)}, seq[:6],
			[]float32{-1, 0, 1, -2, -1, 0, 2, 3, 4, 1, 2, 3}},
		// real_div by a scalar; maximum against a row.
		{"real_div scalar", "real_div", []int{3}, []int{3}, map[string]*milpb.Value{"y": floatsShaped(nil, 4)}, seq[1:4], []float32{0.25, 0.5, 0.75}},
		{"maximum row", "maximum", []int{2, 2}, []int{2, 2}, map[string]*milpb.Value{"y": floats(1, 2)}, seq[:4], []float32{1, 2, 2, 3}},
		// numpy arange(12).reshape(2,3,2).transpose(2,0,1).
		{"transpose 3-D", "transpose", []int{2, 3, 2}, []int{2, 2, 3}, map[string]*milpb.Value{"perm": ints(2, 0, 1)}, seq, []float32{0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11}},
		// silu(1) = 1/(1+e^-1) = 0.731059; silu(-1) = -0.268941.
		{"silu", "silu", []int{2}, []int{2}, nil, []float32{1, -1}, []float32{0.731059, -0.268941}},
		// clip to [0, 1]; leaky_relu with alpha 0.1.
		{"clip", "clip", []int{3}, []int{3}, map[string]*milpb.Value{"alpha": floatsShaped(nil, 0), "beta": floatsShaped(nil, 1)}, []float32{-2, 0.5, 3}, []float32{0, 0.5, 1}},
		{"leaky_relu", "leaky_relu", []int{2}, []int{2}, map[string]*milpb.Value{"alpha": floatsShaped(nil, 0.1)}, []float32{-2, 3}, []float32{-0.2, 3}},
		// [[0,1,2],[3,4,5]]·[[1,2],[3,4],[5,6]] = [[13,16],[40,52]], with the operands given
		// plain or transposed; xᵀ of [[0,1],[2,3],[4,5]] gives [[26,32],[35,44]].
		{"matmul", "matmul", []int{2, 3}, []int{2, 2}, map[string]*milpb.Value{"y": floatsShaped([]int{3, 2}, 1, 2, 3, 4, 5, 6)}, seq[:6], []float32{13, 16, 40, 52}},
		{"matmul transpose_y", "matmul", []int{2, 3}, []int{2, 2}, map[string]*milpb.Value{"y": floatsShaped([]int{2, 3}, 1, 3, 5, 2, 4, 6), "transpose_y": bools(true)}, seq[:6], []float32{13, 16, 40, 52}},
		{"matmul transpose_x", "matmul", []int{3, 2}, []int{2, 2}, map[string]*milpb.Value{"y": floatsShaped([]int{3, 2}, 1, 2, 3, 4, 5, 6), "transpose_x": bools(true)}, seq[:6], []float32{26, 32, 35, 44}},
		{"matmul both", "matmul", []int{3, 2}, []int{2, 2}, map[string]*milpb.Value{"y": floatsShaped([]int{2, 3}, 1, 3, 5, 2, 4, 6), "transpose_x": bools(true), "transpose_y": bools(true)}, seq[:6], []float32{26, 32, 35, 44}},
		// rsqrt(4) = 0.5 (eps 1e-12 default).
		{"rsqrt", "rsqrt", []int{1}, []int{1}, nil, []float32{4}, []float32{0.5}},
	}
	for _, tc := range tests {
		for k, v := range tc.params {
			if v == nil {
				delete(tc.params, k)
			}
		}
		got := runOneOp(t, tc.typ, tc.in, tc.out, tc.params, tc.x)
		for i := range tc.want {
			if math.Abs(float64(got[i]-tc.want[i])) > 2e-6 {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}
