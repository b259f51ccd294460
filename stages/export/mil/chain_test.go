package mil

import (
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// A lut of integer codes feeding blockwise_shift_scale's data: 3-bit indices, an int8
// table, fp16 scale and offset per block of 16.
func TestLUTBlockwise(t *testing.T) {
	p := NewProgram()
	f := p.Function("main")
	x := f.Input("x", FP16, 1, 64)
	w := f.LUTBlockwise("w",
		WeightTensor{Name: "w.idx", DType: UInt3, Shape: []int{32, 64}, Data: Bytes(make([]byte, 32*64*3/8))},
		WeightTensor{Name: "w.lut", DType: Int8, Shape: []int{1, 1, 8, 1}, Data: Bytes([]byte{252, 253, 254, 255, 0, 1, 2, 3})},
		WeightTensor{Name: "w.scale", DType: FP16, Shape: []int{32, 4}, Data: Bytes(make([]byte, 256))},
		&WeightTensor{Name: "w.offset", DType: FP16, Shape: []int{32, 4}, Data: Bytes(make([]byte, 256))})
	if !w.Type().Equal(Tensor(FP16, 32, 64)) {
		t.Fatalf("inferred %s, want fp16[32,64]", w.Type())
	}
	f.Output("y", f.Linear(x, w, nil))
	m, _ := build(t, p)
	noErrors(t, CheckProgram(m.GetMlProgram()))
	os := ops(m, "main")
	if os[0].GetType() != "constexpr_lut_to_dense" || os[1].GetType() != "constexpr_blockwise_shift_scale" {
		t.Fatalf("ops %s, %s", os[0].GetType(), os[1].GetType())
	}
	if b := os[1].GetInputs()["data"].GetArguments()[0]; b.GetName() != os[0].GetOutputs()[0].GetName() {
		t.Errorf("data bound to %v, want the lut's output %s", b, os[0].GetOutputs()[0].GetName())
	}
	if dt := os[0].GetInputs()["indices"].GetArguments()[0].GetValue().GetType().GetTensorType().GetDataType(); dt != milpb.DataType_UINT3 {
		t.Errorf("indices dtype %v, want UINT3", dt)
	}
}

// The builder and the checker refuse what coremltools refuses: an integer offset whose
// dtype is not the lut's, a palette whose size is not 2^bits, data that is not a constant.
func TestLUTBlockwiseRejects(t *testing.T) {
	idx := WeightTensor{Name: "i", DType: UInt2, Shape: []int{4, 16}, Data: Bytes(make([]byte, 16))}
	lut := WeightTensor{Name: "l", DType: UInt8, Shape: []int{1, 1, 4, 1}, Data: Bytes(make([]byte, 4))}
	scale := WeightTensor{Name: "s", DType: FP16, Shape: []int{4, 1}, Data: Bytes(make([]byte, 8))}
	for name, tc := range map[string]struct {
		build func(f *Function)
		want  string
	}{
		"int offset dtype": {func(f *Function) {
			f.LUTBlockwise("w", idx, lut, scale, &WeightTensor{Name: "o", DType: Int8, Shape: []int{4, 1}, Data: Bytes(make([]byte, 4))})
		}, "integer offset dtype int8 must equal data's uint8"},
		"palette size": {func(f *Function) {
			bad := lut
			bad.Shape = []int{1, 1, 8, 1}
			f.LUTBlockwise("w", idx, bad, scale, nil)
		}, "palette size 8, want 2^2 = 4"},
		"scale blocks": {func(f *Function) {
			bad := scale
			bad.Shape = []int{4, 3}
			f.LUTBlockwise("w", idx, lut, bad, nil)
		}, "dim 1 (3) does not divide data dim 16"},
	} {
		t.Run(name, func(t *testing.T) {
			f := NewProgram().Function("main")
			tc.build(f)
			if f.Err() == nil || !strings.Contains(f.Err().Error(), tc.want) {
				t.Fatalf("error %v, want %q", f.Err(), tc.want)
			}
		})
	}
	// The checker: data bound to a function input (not a constant).
	p := NewProgram()
	f := p.Function("main")
	x := f.Input("x", FP16, 1, 16)
	w := f.LUTBlockwise("w", idx, lut, scale, nil)
	f.Output("y", f.Linear(x, w, nil))
	m, _ := build(t, p)
	noErrors(t, CheckProgram(m.GetMlProgram()))
	ops(m, "main")[1].Inputs["data"].Arguments[0] = &milpb.Argument_Binding{Binding: &milpb.Argument_Binding_Name{Name: "x"}}
	errs := CheckProgram(m.GetMlProgram())
	if len(errs) == 0 || !strings.Contains(errs[0].Error(), "input data: must be a compile-time constant") {
		t.Errorf("errors %v, want data refused as not constant", errs)
	}
}
