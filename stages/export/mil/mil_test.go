package mil

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/x448/float16"
	"google.golang.org/protobuf/proto"
)

const oracleDir = "../../../testdata/oracle/coreml"

func loadModel(t *testing.T, path string) *milpb.Model {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m milpb.Model
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &m
}

// build serialises p into a fresh weight.bin and re-parses the Model bytes,
// so tests see exactly what a reader of the package would see.
func build(t *testing.T, p *Program) (*milpb.Model, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "weight.bin")
	w, err := blob.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.Build(w)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back milpb.Model
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &back, bin
}

func fp16Bytes(n int, f func(i int) float32) []byte {
	b := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint16(b[2*i:], float16.Fromfloat32(f(i)).Bits())
	}
	return b
}

func ops(m *milpb.Model, fn string) []*milpb.Operation {
	f := m.GetMlProgram().GetFunctions()[fn]
	return f.GetBlockSpecializations()[f.GetOpset()].GetOperations()
}

func opByName(t *testing.T, m *milpb.Model, fn, name string) *milpb.Operation {
	t.Helper()
	for _, o := range ops(m, fn) {
		if opNameOf(o) == name {
			return o
		}
	}
	t.Fatalf("function %s has no op %s", fn, name)
	return nil
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for _, e := range errs {
		t.Error(e)
	}
}

// The coremltools-written goldens must pass our validator unchanged: they
// are the conventions Core ML accepts.
func TestCheckProgramAcceptsOracle(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(oracleDir, "*.mlpackage/Data/com.apple.CoreML/model.mlmodel"))
	if err != nil {
		t.Fatal(err)
	}
	// README.txt lists six golden packages.
	if len(paths) != 6 {
		t.Fatalf("found %d oracle packages, want 6", len(paths))
	}
	for _, p := range paths {
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(p)))), func(t *testing.T) {
			m := loadModel(t, p)
			if m.GetSpecificationVersion() != SpecVersion {
				t.Errorf("spec %d, want %d", m.GetSpecificationVersion(), SpecVersion)
			}
			noErrors(t, CheckProgram(m.GetMlProgram()))
		})
	}
}

func TestLinearGelu(t *testing.T) {
	p := NewProgram()
	f := p.Function("main")
	x := f.Input("x", FP16, 1, 64)
	w := f.Weight("blk.0.ffn_up.weight", FP16, []int{32, 64}, Bytes(fp16Bytes(32*64, func(i int) float32 { return float32(i%7) / 8 })))
	y := f.Gelu(f.Linear(x, w, nil), "TANH_APPROXIMATION")
	f.Output("y", y)
	if got := y.Type(); !got.Equal(Tensor(FP16, 1, 32)) {
		t.Fatalf("inferred %s, want fp16[1,32]", got)
	}
	m, bin := build(t, p)
	noErrors(t, CheckProgram(m.GetMlProgram()))

	fn := m.GetMlProgram().GetFunctions()["main"]
	if fn.GetOpset() != "CoreML8" || len(fn.GetBlockSpecializations()) != 1 || fn.GetBlockSpecializations()["CoreML8"] == nil {
		t.Errorf("opset %q, specializations %v; want CoreML8 keyed by itself", fn.GetOpset(), fn.GetBlockSpecializations())
	}
	if m.GetMlProgram().GetVersion() != 1 || m.GetSpecificationVersion() != 9 {
		t.Errorf("program version %d spec %d, want 1 and 9", m.GetMlProgram().GetVersion(), m.GetSpecificationVersion())
	}
	// Single function "main": top-level description, like linear_fp16.
	d := m.GetDescription()
	if len(d.GetInput()) != 1 || d.GetInput()[0].GetName() != "x" || len(d.GetOutput()) != 1 || d.GetOutput()[0].GetName() != "y" || len(d.GetFunctions()) != 0 {
		t.Errorf("description %v", d)
	}
	if a := d.GetOutput()[0].GetType().GetMultiArrayType(); a.GetDataType() != milpb.ArrayFeatureType_FLOAT16 || len(a.GetShape()) != 2 || a.GetShape()[1] != 32 {
		t.Errorf("output array type %v, want FLOAT16 [1,32]", a)
	}
	// Every op carries a name attribute; const ops carry val and no inputs.
	types := map[string]int{}
	for _, o := range ops(m, "main") {
		types[o.GetType()]++
		if opNameOf(o) == "" {
			t.Errorf("op %s has no name attribute", o.GetType())
		}
		if o.GetType() == "const" && (o.GetAttributes()["val"] == nil || len(o.GetInputs()) != 0) {
			t.Errorf("const %s: val %v inputs %v", opNameOf(o), o.GetAttributes()["val"], o.GetInputs())
		}
	}
	// weight, the zero bias linear left out, gelu's mode: 3 consts.
	if types["const"] != 3 || types["linear"] != 1 || types["gelu"] != 1 {
		t.Errorf("op counts %v, want 3 const, 1 linear, 1 gelu", types)
	}
	lin := ops(m, "main")[2]
	if lin.GetType() != "linear" {
		t.Fatalf("op 2 is %s", lin.GetType())
	}
	for _, in := range []string{"x", "weight", "bias"} {
		if len(lin.GetInputs()[in].GetArguments()) != 1 || lin.GetInputs()[in].GetArguments()[0].GetName() == "" {
			t.Errorf("linear input %s not bound by name: %v", in, lin.GetInputs()[in])
		}
	}
	// The weight is a blob at offset 64 (first record after the 64-byte
	// header); the bias (32 fp16 zeros ≥ 10 elements) follows at
	// 64 + 64 + 4096 = 4224, exactly as in linear_fp16's golden.
	wv := opByName(t, m, "main", "blk_0_ffn_up_weight").GetAttributes()["val"].GetBlobFileValue()
	if wv.GetFileName() != WeightFile || wv.GetOffset() != 64 {
		t.Errorf("weight blob %v, want %s @64", wv, WeightFile)
	}
	bias := opByName(t, m, "main", lin.GetInputs()["bias"].GetArguments()[0].GetName())
	if off := bias.GetAttributes()["val"].GetBlobFileValue().GetOffset(); off != 4224 {
		t.Errorf("bias blob offset %d, want 4224", off)
	}
	// weight.bin: 2 records, 64 + (64+4096) + (64+64) bytes.
	if n := binary.LittleEndian.Uint32(bin); n != 2 || len(bin) != 4352 {
		t.Errorf("weight.bin holds %d blobs in %d bytes, want 2 in 4352 (linear_fp16 golden: 4352 B)", n, len(bin))
	}
	mode := opByName(t, m, "main", ops(m, "main")[4].GetInputs()["mode"].GetArguments()[0].GetName())
	if s := mode.GetAttributes()["val"].GetImmediateValue().GetTensor().GetStrings().GetValues(); len(s) != 1 || s[0] != "TANH_APPROXIMATION" {
		t.Errorf("gelu mode %v", s)
	}
}

// A KV-cache step in the layout of the kv_cache_state golden: read the
// state, write the new row at pos with slice_update, write it back.
func buildKV(p *Program, fn string, q int) {
	f := p.Function(fn)
	kNew := f.Input("k_new", FP16, 1, q, 16)
	pos := f.Input("pos", Int32, 1)
	kc := f.State("k_cache", FP16, 1, 8, 16)
	cache := f.ReadState(kc)
	begin := f.Concat(0, f.Const(IntVec(0)), pos, f.Const(IntVec(0)))
	end := f.Add(begin, f.Const(IntVec(1, q, 16)))
	upd := f.SliceUpdate(cache, kNew, begin, end)
	f.WriteState(kc, upd)
	f.Output("k", f.ReadState(kc))
}

func TestStatefulKVUpdate(t *testing.T) {
	p := NewProgram()
	buildKV(p, "main", 1)
	m, _ := build(t, p)
	noErrors(t, CheckProgram(m.GetMlProgram()))
	d := m.GetDescription()
	if len(d.GetState()) != 1 || len(d.GetInput()) != 2 {
		t.Fatalf("description: %d states, %d inputs; want 1 and 2 (states are not inputs)", len(d.GetState()), len(d.GetInput()))
	}
	if a := d.GetState()[0].GetType().GetStateType().GetArrayType(); a.GetDataType() != milpb.ArrayFeatureType_FLOAT16 || len(a.GetShape()) != 3 {
		t.Errorf("state feature %v, want FLOAT16 [1,8,16]", a)
	}
	var stateIn *milpb.NamedValueType
	for _, in := range m.GetMlProgram().GetFunctions()["main"].GetInputs() {
		if in.GetName() == "k_cache" {
			stateIn = in
		}
	}
	if tt := stateIn.GetType().GetStateType().GetWrappedType().GetTensorType(); tt.GetDataType() != milpb.DataType_FLOAT16 || tt.GetRank() != 3 {
		t.Errorf("function input k_cache type %v, want stateType wrapping fp16 rank 3", stateIn.GetType())
	}
	var seq []string
	for _, o := range ops(m, "main") {
		if o.GetType() != "const" {
			seq = append(seq, o.GetType())
		}
	}
	want := "read_state concat add slice_update write_state read_state"
	if got := strings.Join(seq, " "); got != want {
		t.Errorf("ops %q, want %q", got, want)
	}
	su := ops(m, "main")[len(ops(m, "main"))-3]
	// stride and the three masks are emitted explicitly as const ops.
	for _, in := range []string{"x", "update", "begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"} {
		if su.GetInputs()[in] == nil {
			t.Errorf("slice_update input %s not emitted", in)
		}
	}
	ws := ops(m, "main")[len(ops(m, "main"))-2]
	if len(ws.GetOutputs()) != 0 || ws.GetInputs()["input"].GetArguments()[0].GetName() != "k_cache" {
		t.Errorf("write_state %v", ws)
	}
}

// prefill and decode share one weight: one blob record, same offset in both.
func TestSharedWeightAcrossFunctions(t *testing.T) {
	p := NewProgram()
	calls := 0
	src := func() ([]byte, error) {
		calls++
		return fp16Bytes(24*16, func(i int) float32 { return float32(i) / 384 }), nil
	}
	for _, fc := range []struct {
		name string
		seq  int
	}{{"prefill", 4}, {"decode", 1}} {
		f := p.Function(fc.name)
		x := f.Input("x", FP16, 1, fc.seq, 16)
		w := f.Weight("output.weight", FP16, []int{24, 16}, src)
		f.Output("y", f.Relu(f.Linear(x, w, nil)))
	}
	p.SetDefaultFunction("decode")
	m, bin := build(t, p)
	noErrors(t, CheckProgram(m.GetMlProgram()))
	if calls != 1 {
		t.Errorf("weight source read %d times, want once", calls)
	}
	d := m.GetDescription()
	if d.GetDefaultFunctionName() != "decode" || len(d.GetFunctions()) != 2 || len(d.GetInput())+len(d.GetOutput())+len(d.GetState()) != 0 {
		t.Errorf("multifunction description %v", d)
	}
	off := map[string]uint64{}
	for _, fn := range []string{"prefill", "decode"} {
		off[fn] = opByName(t, m, fn, "output_weight").GetAttributes()["val"].GetBlobFileValue().GetOffset()
	}
	if off["prefill"] != 64 || off["decode"] != 64 {
		t.Errorf("weight offsets %v, want 64 in both", off)
	}
	// weight (768 B) + one shared zero bias (48 B): 64+64+768+64+48 = 1008,
	// the size of the multifunction golden's weight.bin.
	if n := binary.LittleEndian.Uint32(bin); n != 2 || len(bin) != 1008 {
		t.Errorf("weight.bin: %d blobs, %d bytes; want 2, 1008", n, len(bin))
	}
}

// constexpr parameters are value bindings (blob or immediate), not const
// ops, as in the linear_int4_blockwise golden.
func TestBlockwiseShiftScale(t *testing.T) {
	p := NewProgram()
	f := p.Function("main")
	x := f.Input("x", FP16, 1, 64)
	data := make([]byte, 32*64/2)
	for i := range data {
		data[i] = byte(i)
	}
	w := f.BlockwiseShiftScale("w_dequant",
		WeightTensor{Name: "w.q", DType: Int4, Shape: []int{32, 64}, Data: Bytes(data)},
		WeightTensor{Name: "w.scale", DType: FP16, Shape: []int{32, 2}, Data: Bytes(fp16Bytes(64, func(int) float32 { return 0.01 }))},
		&WeightTensor{Name: "w.offset", DType: Int4, Shape: []int{32, 2}, Data: Bytes(make([]byte, 32))})
	f.Output("y", f.Linear(x, w, nil))
	m, _ := build(t, p)
	noErrors(t, CheckProgram(m.GetMlProgram()))
	cx := ops(m, "main")[0]
	if cx.GetType() != "constexpr_blockwise_shift_scale" || opNameOf(cx) != "w_dequant" {
		t.Fatalf("op 0 is %s %s", cx.GetType(), opNameOf(cx))
	}
	// Golden offsets: data @64 (1024 B), scale @1152, offset @1344.
	want := map[string]uint64{"data": 64, "scale": 1152, "offset": 1344}
	for in, off := range want {
		v := cx.GetInputs()[in].GetArguments()[0].GetValue()
		if v.GetBlobFileValue().GetOffset() != off {
			t.Errorf("%s bound to %v, want blob @%d", in, v, off)
		}
	}
	if dt := cx.GetInputs()["data"].GetArguments()[0].GetValue().GetType().GetTensorType().GetDataType(); dt != milpb.DataType_INT4 {
		t.Errorf("data dtype %v, want INT4", dt)
	}
}

// Builder errors name the op and input and are reported by Build.
func TestBuilderTypeErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(f *Function)
		want  string
	}{
		{"linear D_in mismatch", func(f *Function) {
			x := f.Input("x", FP16, 1, 64)
			f.Linear(x, f.Weight("w", FP16, []int{32, 48}, Bytes(make([]byte, 32*48*2))), nil)
		}, "op linear (linear): input weight: shape [32 48]: D_in 48 does not match x's last dim 64"},
		{"add broadcast", func(f *Function) {
			f.Add(f.Input("a", FP16, 2, 3), f.Input("b", FP16, 4))
		}, "op add (add): input y"},
		{"add dtypes", func(f *Function) {
			f.Add(f.Input("a", FP16, 2), f.Input("b", FP32, 2))
		}, "dtype fp32 differs from x's fp16"},
		{"reshape count", func(f *Function) {
			f.Reshape(f.Input("a", FP16, 2, 3), 4, 2)
		}, "op reshape (reshape): input shape"},
		{"gelu mode", func(f *Function) {
			f.Gelu(f.Input("a", FP16, 2), "FAST")
		}, `unknown gelu mode "FAST"`},
		{"state as tensor", func(f *Function) {
			f.Relu(f.State("s", FP16, 2))
		}, "read it with read_state"},
		{"write_state type", func(f *Function) {
			s := f.State("s", FP16, 2, 4)
			f.WriteState(s, f.Input("a", FP16, 4, 2))
		}, "op write_state (write_state): input data: type fp16[4,2] differs from the state's fp16[2,4]"},
		{"blockwise divisibility", func(f *Function) {
			f.BlockwiseShiftScale("w", WeightTensor{Name: "q", DType: Int4, Shape: []int{4, 6}, Data: Bytes(make([]byte, 12))},
				WeightTensor{Name: "s", DType: FP16, Shape: []int{4, 4}, Data: Bytes(make([]byte, 32))}, nil)
		}, "input scale: dim 1 (4) does not divide data dim 6"},
		{"foreign value", func(f *Function) {
			other := f.p.Function("other").Input("z", FP16, 2)
			f.Relu(other)
		}, "belongs to function other"},
		{"bad input name", func(f *Function) { f.Input("fp16", FP16, 1) }, `input name "fp16" is not an identifier`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewProgram()
			f := p.Function("main")
			tc.build(f)
			if f.Err() == nil || !strings.Contains(f.Err().Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", f.Err(), tc.want)
			}
			if _, err := p.Build(nil); err == nil {
				t.Error("Build succeeded on a broken function")
			}
		})
	}
}

func TestCheckProgramRejects(t *testing.T) {
	base := func() *milpb.Model {
		p := NewProgram()
		f := p.Function("main")
		x := f.Input("x", FP16, 1, 8)
		h := f.Add(x, x)
		f.Output("y", f.Softmax(h, -1))
		m, err := p.Build(nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	find := func(m *milpb.Model, typ string) *milpb.Operation {
		for _, o := range ops(m, "main") {
			if o.GetType() == typ {
				return o
			}
		}
		t.Fatalf("no %s op", typ)
		return nil
	}
	tests := []struct {
		name   string
		break_ func(m *milpb.Model)
		want   string
	}{
		{"wrong input name", func(m *milpb.Model) {
			o := find(m, "add")
			o.Inputs["z"] = o.Inputs["y"]
			delete(o.Inputs, "y")
		}, `op add (add): input z: add has no input "z"`},
		{"shape mismatch", func(m *milpb.Model) {
			find(m, "add").Outputs[0].Type = valueType(Tensor(FP16, 1, 9), false)
		}, "op add (add): output add declared fp16[1,9], inferred fp16[1,8]"},
		{"unknown op", func(m *milpb.Model) { find(m, "add").Type = "fused_magic" }, `op add (fused_magic): unknown op type "fused_magic"`},
		{"missing binding", func(m *milpb.Model) {
			find(m, "softmax").Inputs["x"].Arguments[0] = &milpb.Argument_Binding{Binding: &milpb.Argument_Binding_Name{Name: "nowhere"}}
		}, `op y (softmax): input x: binds "nowhere", which is not defined before this op`},
		{"missing required", func(m *milpb.Model) { delete(find(m, "softmax").Inputs, "x") }, "op y (softmax): input x: required input missing"},
		{"non-const axis", func(m *milpb.Model) {
			find(m, "softmax").Inputs["axis"].Arguments[0] = &milpb.Argument_Binding{Binding: &milpb.Argument_Binding_Name{Name: "x"}}
		}, "op y (softmax): input axis: must be a compile-time constant"},
		{"opset key", func(m *milpb.Model) {
			f := m.GetMlProgram().Functions["main"]
			f.BlockSpecializations["CoreML7"] = f.BlockSpecializations["CoreML8"]
			delete(f.BlockSpecializations, "CoreML8")
		}, `function main: opset "CoreML8" needs exactly one block specialization`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			noErrors(t, CheckProgram(m.GetMlProgram()))
			tc.break_(m)
			errs := CheckProgram(m.GetMlProgram())
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			if all := strings.Join(msgs, "\n"); !strings.Contains(all, tc.want) {
				t.Errorf("errors:\n%s\nwant one containing %q", all, tc.want)
			}
		})
	}
}

// int4 packing: element 2k in the low nibble, two's complement (MILBlob's sub-byte packing, StorageFormat.hpp).
func TestConstantInt4RoundTrip(t *testing.T) {
	c := Constant{Type: Tensor(Int4, 3), Ints: []int64{-8, 7, -1}}
	b, err := c.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// -8 → 0x8 low nibble, 7 → 0x7 high nibble: 0x78; -1 → 0xF low: 0x0F.
	if len(b) != 2 || b[0] != 0x78 || b[1] != 0x0F {
		t.Fatalf("packed % x, want 78 0f", b)
	}
	back, err := DecodeConstant(c.Type, b)
	if err != nil || back.Ints[0] != -8 || back.Ints[1] != 7 || back.Ints[2] != -1 {
		t.Fatalf("decoded %v %v", back.Ints, err)
	}
}

func TestInferShapes(t *testing.T) {
	p := NewProgram()
	f := p.Function("main")
	x := f.Input("x", FP16, 1, 4, 8, 16) // [B, H, S, D]
	tests := []struct {
		name string
		v    *Value
		want TensorType
	}{
		{"matmul qkT", f.Matmul(x, x, false, true), Tensor(FP16, 1, 4, 8, 8)},
		{"transpose", f.Transpose(x, 0, 2, 1, 3), Tensor(FP16, 1, 8, 4, 16)},
		{"reshape -1", f.Reshape(x, 1, -1, 16), Tensor(FP16, 1, 32, 16)},
		{"reduce keep", f.ReduceMean(x, []int{-1}, true), Tensor(FP16, 1, 4, 8, 1)},
		{"slice", f.SliceByIndex(x, []int{0, 0, 2, 0}, []int{1, 4, 6, 16}), Tensor(FP16, 1, 4, 4, 16)},
		{"expand+squeeze", f.Squeeze(f.ExpandDims(x, 0)), Tensor(FP16, 4, 8, 16)},
		{"sdpa", f.ScaledDotProductAttention(x, x, x, nil), Tensor(FP16, 1, 4, 8, 16)},
		{"layer_norm", f.LayerNorm(x, []int{-1}, nil, nil, 1e-5), Tensor(FP16, 1, 4, 8, 16)},
		{"cast", f.Cast(x, FP32), Tensor(FP32, 1, 4, 8, 16)},
		{"band_part mask", f.BandPart(f.Fill([]int{8, 8}, FloatScalar(FP16, 1)), -1, 0), Tensor(FP16, 8, 8)},
		{"range", f.Range1D(f.Const(IntScalar(8)), f.Const(IntScalar(0)), f.Const(IntScalar(3))), Tensor(Int32, 3)},
		{"gather", f.Gather(f.Const(FloatTensor(FP16, []int{5, 2}, make([]float64, 10))), f.Const(IntVec(1, 3)), 0), Tensor(FP16, 2, 2)},
	}
	if f.Err() != nil {
		t.Fatal(f.Err())
	}
	for _, tc := range tests {
		if !tc.v.Type().Equal(tc.want) {
			t.Errorf("%s: inferred %s, want %s", tc.name, tc.v.Type(), tc.want)
		}
	}
	parts := f.Split(x, 3, 4, 12)
	if len(parts) != 2 || !parts[1].Type().Equal(Tensor(FP16, 1, 4, 8, 12)) {
		t.Errorf("split: %v", parts)
	}
	f.Output("out", tests[0].v)
	m, _ := build(t, p)
	noErrors(t, CheckProgram(m.GetMlProgram()))
}

// Same shapes as the linear_lut4 golden: uint4 indices [32,64] @64, fp16
// LUT [8,1,16,1] @1152 (64 + 64 + 1024 bytes of packed indices).
func TestLUTToDense(t *testing.T) {
	p := NewProgram()
	f := p.Function("main")
	x := f.Input("x", FP16, 1, 64)
	w := f.LUTToDense("w_palettized",
		WeightTensor{Name: "w.idx", DType: UInt4, Shape: []int{32, 64}, Data: Bytes(make([]byte, 1024))},
		WeightTensor{Name: "w.lut", DType: FP16, Shape: []int{8, 1, 16, 1}, Data: Bytes(make([]byte, 256))}, -1)
	if !w.Type().Equal(Tensor(FP16, 32, 64)) {
		t.Fatalf("inferred %s, want fp16[32,64]", w.Type())
	}
	f.Output("y", f.Linear(x, w, nil))
	m, _ := build(t, p)
	noErrors(t, CheckProgram(m.GetMlProgram()))
	cx := ops(m, "main")[0]
	for in, off := range map[string]uint64{"indices": 64, "lut": 1152} {
		if got := cx.GetInputs()[in].GetArguments()[0].GetValue().GetBlobFileValue().GetOffset(); got != off {
			t.Errorf("%s at %d, want %d", in, got, off)
		}
	}
	if len(cx.GetInputs()) != 2 {
		t.Errorf("inputs %v, want indices and lut only (no vector_axis for VECTOR_SIZE 1)", cx.GetInputs())
	}
}
