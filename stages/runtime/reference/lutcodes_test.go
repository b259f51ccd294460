package reference

import (
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// lutBlockwiseSpec is main(x: fp32 [1, in]) → y = linear(x, W) with W =
// constexpr_blockwise_shift_scale(data = constexpr_lut_to_dense(indices, codes), scale,
// offset): 3-bit indices into an int8 table, a scale and offset per block of 4.
func lutBlockwiseSpec(indices []byte, codes []int8, out, in int, scale, offset []float32) *milpb.Model {
	cb := make([]byte, len(codes))
	for i, c := range codes {
		cb[i] = byte(c)
	}
	lut := &milpb.Operation{Type: "constexpr_lut_to_dense",
		Inputs: map[string]*milpb.Argument{
			"indices": bindValue(bytesValue(milpb.DataType_UINT3, indices, out, in)),
			"lut":     bindValue(bytesValue(milpb.DataType_INT8, cb, 1, 1, len(codes), 1)),
		},
		Outputs:    []*milpb.NamedValueType{{Name: "codes", Type: ttype(milpb.DataType_INT8, out, in)}},
		Attributes: map[string]*milpb.Value{"name": str("codes")}}
	bw := &milpb.Operation{Type: "constexpr_blockwise_shift_scale",
		Inputs: map[string]*milpb.Argument{
			"data":   bindName("codes"),
			"scale":  bindValue(floatsShaped([]int{out, in / 4}, scale...)),
			"offset": bindValue(floatsShaped([]int{out, in / 4}, offset...)),
		},
		Outputs:    []*milpb.NamedValueType{{Name: "w", Type: ttype(milpb.DataType_FLOAT32, out, in)}},
		Attributes: map[string]*milpb.Value{"name": str("w")}}
	return linearSpec(out, in, lut, bw)
}

// bindValue and bindName are an op argument bound to a value or to a named value.
func bindValue(v *milpb.Value) *milpb.Argument {
	return &milpb.Argument{Arguments: []*milpb.Argument_Binding{{Binding: &milpb.Argument_Binding_Value{Value: v}}}}
}

func bindName(n string) *milpb.Argument {
	return &milpb.Argument{Arguments: []*milpb.Argument_Binding{{Binding: &milpb.Argument_Binding_Name{Name: n}}}}
}

// bytesValue is an immediate tensor of dtype dt and shape holding the bytes b.
func bytesValue(dt milpb.DataType, b []byte, shape ...int) *milpb.Value {
	return immediate(ttype(dt, shape...), &milpb.TensorValue{Value: &milpb.TensorValue_Bytes{Bytes: &milpb.TensorValue_RepeatedBytes{Values: b}}})
}

// linearSpec is main(x: fp32 [1, in]) → y = linear(x, w), w made by ops.
func linearSpec(out, in int, ops ...*milpb.Operation) *milpb.Model {
	lin := &milpb.Operation{Type: "linear",
		Inputs:     map[string]*milpb.Argument{"x": bindName("x"), "weight": bindName("w")},
		Outputs:    []*milpb.NamedValueType{{Name: "y", Type: ttype(milpb.DataType_FLOAT32, 1, out)}},
		Attributes: map[string]*milpb.Value{"name": str("y")}}
	fn := &milpb.Function{Opset: "CoreML8",
		Inputs:               []*milpb.NamedValueType{{Name: "x", Type: ttype(milpb.DataType_FLOAT32, 1, in)}},
		BlockSpecializations: map[string]*milpb.Block{"CoreML8": {Outputs: []string{"y"}, Operations: append(ops, lin)}}}
	return &milpb.Model{SpecificationVersion: 9, Type: &milpb.Model_MlProgram{MlProgram: &milpb.Program{Version: 1, Functions: map[string]*milpb.Function{"main": fn}}}}
}

// predictLinear opens spec (a linearSpec) and returns y for x.
func predictLinear(t *testing.T, spec *milpb.Model, x []float32) []float32 {
	t.Helper()
	m, err := openSpec(spec, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	xt, _ := FromFloat32(Float32, []int{1, len(x)}, x)
	res, err := m.Predict("", map[string]*Tensor{"x": xt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res["y"].Float32s()
}

// The chain lut → blockwise computes scale·(codes[index] − offset) per block, and a
// short indices array is refused naming the op.
func TestLUTBlockwiseChain(t *testing.T) {
	const out, in = 2, 8
	idx := []uint8{0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0}
	codes := []int8{-4, -3, -2, -1, 0, 1, 2, 3}
	scale := []float32{0.5, 1, 2, 0.25}
	offset := []float32{0, 1, -0.5, 2}
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	got := predictLinear(t, lutBlockwiseSpec(blob.PackBits(3, idx), codes, out, in, scale, offset), x)
	for r := range out {
		var want float32
		for c := range in {
			j := r*in/4 + c/4
			want += x[c] * scale[j] * (float32(codes[idx[r*in+c]]) - offset[j])
		}
		if got[r] != want {
			t.Errorf("y[%d] = %g, want %g", r, got[r], want)
		}
	}
	_, err := openSpec(lutBlockwiseSpec(blob.PackBits(3, idx)[:4], codes, out, in, scale, offset), nil, Options{})
	if err == nil || !strings.Contains(err.Error(), "16 3-bit indices need 6") {
		t.Errorf("short indices: error %v", err)
	}
}

// A float palette with 3-bit indices, one table per row, feeds linear directly: y is the
// palette values' dot product with x (the indices stay one byte a weight, not a dense
// float32 matrix).
func TestLUTNarrowPalette(t *testing.T) {
	const out, in = 2, 8
	idx := []uint8{0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0}
	pal := []float32{-1, -0.5, -0.25, 0, 0.25, 0.5, 1, 2, 3, 2.5, 2, 1.5, 1, 0.5, 0, -0.5}
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	lut := &milpb.Operation{Type: "constexpr_lut_to_dense",
		Inputs: map[string]*milpb.Argument{
			"indices": bindValue(bytesValue(milpb.DataType_UINT3, blob.PackBits(3, idx), out, in)),
			"lut":     bindValue(floatsShaped([]int{out, 1, 8, 1}, pal...)),
		},
		Outputs:    []*milpb.NamedValueType{{Name: "w", Type: ttype(milpb.DataType_FLOAT32, out, in)}},
		Attributes: map[string]*milpb.Value{"name": str("w")}}
	got := predictLinear(t, linearSpec(out, in, lut), x)
	for r := range out {
		var want float32
		for c := range in {
			want += x[c] * pal[8*r+int(idx[r*in+c])]
		}
		if got[r] != want {
			t.Errorf("y[%d] = %g, want %g", r, got[r], want)
		}
	}
}
