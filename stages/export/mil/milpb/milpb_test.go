package milpb_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// oracleDir holds .mlpackage files written by coremltools 9.1 (see its README.txt).
const oracleDir = "../../../../testdata/oracle/coreml"

// refFeature and refFunction mirror the interface summary in NAME.ref.json,
// which the fixture generator read back from coremltools' own parser.
type refFeature struct {
	Name  string  `json:"name"`
	Kind  string  `json:"kind"`
	Shape []int64 `json:"shape"`
	DType string  `json:"dtype"`
}

type refFunction struct {
	Opset   string         `json:"opset"`
	Inputs  []refFeature   `json:"inputs"`
	Outputs []refFeature   `json:"outputs"`
	States  []refFeature   `json:"states"`
	Ops     map[string]int `json:"ops"`
}

type refPackage struct {
	SpecificationVersion int32                  `json:"specificationVersion"`
	DefaultFunctionName  string                 `json:"defaultFunctionName"`
	Functions            map[string]refFunction `json:"functions"`
}

func oraclePackages(t *testing.T) []string {
	t.Helper()
	pkgs, err := filepath.Glob(filepath.Join(oracleDir, "*.mlpackage"))
	if err != nil {
		t.Fatal(err)
	}
	// The README lists six golden packages.
	if len(pkgs) != 6 {
		t.Fatalf("found %d oracle packages in %s, want 6", len(pkgs), oracleDir)
	}
	return pkgs
}

func readModel(t *testing.T, pkg string) *milpb.Model {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(pkg, "Data", "com.apple.CoreML", "model.mlmodel"))
	if err != nil {
		t.Fatal(err)
	}
	m := new(milpb.Model)
	if err := proto.Unmarshal(raw, m); err != nil {
		t.Fatalf("%s: %v", pkg, err)
	}
	return m
}

// TestOracleModelsDecode checks that every coremltools-written model decodes
// with our schema, that nothing in it falls outside the schema (no unknown
// fields: every field coremltools wrote has a declared number), and that a
// re-marshal gives an equal message.
func TestOracleModelsDecode(t *testing.T) {
	for _, pkg := range oraclePackages(t) {
		name := strings.TrimSuffix(filepath.Base(pkg), ".mlpackage")
		t.Run(name, func(t *testing.T) {
			m := readModel(t, pkg)
			if path := unknownFields(m.ProtoReflect(), "Model"); path != "" {
				t.Errorf("unknown field at %s: schema misses a field coremltools writes", path)
			}
			again, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			m2 := new(milpb.Model)
			if err := proto.Unmarshal(again, m2); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(m, m2) {
				t.Error("re-marshalled model differs from the parsed one")
			}

			var ref refPackage
			raw, err := os.ReadFile(filepath.Join(oracleDir, name+".ref.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatal(err)
			}
			checkAgainstRef(t, m, &ref)
		})
	}
}

// unknownFields returns the path of the first message holding unknown
// fields, or "".
func unknownFields(m protoreflect.Message, path string) string {
	if len(m.GetUnknown()) > 0 {
		return path
	}
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				found = unknownFields(mv.Message(), p+"["+k.String()+"]")
				return found == ""
			})
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && found == ""; i++ {
				found = unknownFields(l.Get(i).Message(), p)
			}
		case !fd.IsMap() && !fd.IsList() && fd.Message() != nil:
			found = unknownFields(v.Message(), p)
		}
		return found == ""
	})
	return found
}

func checkAgainstRef(t *testing.T, m *milpb.Model, ref *refPackage) {
	t.Helper()
	// All oracle packages target iOS 18: specification version 9.
	if m.GetSpecificationVersion() != ref.SpecificationVersion || ref.SpecificationVersion != 9 {
		t.Errorf("specificationVersion = %d, ref.json says %d, want 9", m.GetSpecificationVersion(), ref.SpecificationVersion)
	}
	desc := m.GetDescription()
	if desc.GetDefaultFunctionName() != ref.DefaultFunctionName {
		t.Errorf("defaultFunctionName = %q, want %q", desc.GetDefaultFunctionName(), ref.DefaultFunctionName)
	}
	prog := m.GetMlProgram()
	if prog == nil {
		t.Fatal("Model.mlProgram (field 502) is not set")
	}
	if prog.GetVersion() != 1 { // coremltools always writes Program.version = 1
		t.Errorf("Program.version = %d, want 1", prog.GetVersion())
	}
	if len(prog.GetFunctions()) != len(ref.Functions) {
		t.Errorf("%d functions, want %d", len(prog.GetFunctions()), len(ref.Functions))
	}
	for fname, rf := range ref.Functions {
		fn := prog.GetFunctions()[fname]
		if fn == nil {
			t.Errorf("function %q missing", fname)
			continue
		}
		if fn.GetOpset() != rf.Opset || rf.Opset != "CoreML8" {
			t.Errorf("%s: opset %q, want CoreML8", fname, fn.GetOpset())
		}
		block := fn.GetBlockSpecializations()[fn.GetOpset()]
		if block == nil {
			t.Errorf("%s: no block specialization for %q", fname, fn.GetOpset())
			continue
		}
		ops := map[string]int{}
		for _, op := range block.GetOperations() {
			ops[op.GetType()]++
			if n := op.GetAttributes()["name"].GetImmediateValue().GetTensor().GetStrings().GetValues(); len(n) != 1 {
				t.Errorf("%s: %s op has no name attribute", fname, op.GetType())
			}
		}
		if !mapsEqual(ops, rf.Ops) {
			t.Errorf("%s: op counts %v, want %v", fname, ops, rf.Ops)
		}

		// The interface lives at the top level for single-function models
		// and in description.functions for multifunction ones.
		in, out, st := desc.GetInput(), desc.GetOutput(), desc.GetState()
		if len(desc.GetFunctions()) > 0 {
			i := slices.IndexFunc(desc.GetFunctions(), func(f *milpb.FunctionDescription) bool { return f.GetName() == fname })
			if i < 0 {
				t.Errorf("no FunctionDescription for %q", fname)
				continue
			}
			fd := desc.GetFunctions()[i]
			in, out, st = fd.GetInput(), fd.GetOutput(), fd.GetState()
		}
		checkFeatures(t, fname+" input", in, rf.Inputs, false)
		checkFeatures(t, fname+" output", out, rf.Outputs, false)
		checkFeatures(t, fname+" state", st, rf.States, true)

		// Function inputs are the model inputs followed by the states, and
		// a state input is a StateType wrapping an fp16 tensor of the state's shape.
		if got, want := len(fn.GetInputs()), len(rf.Inputs)+len(rf.States); got != want {
			t.Errorf("%s: %d function inputs, want %d", fname, got, want)
		}
		for _, s := range rf.States {
			i := slices.IndexFunc(fn.GetInputs(), func(nv *milpb.NamedValueType) bool { return nv.GetName() == s.Name })
			if i < 0 {
				t.Errorf("%s: state %q is not a function input", fname, s.Name)
				continue
			}
			tt := fn.GetInputs()[i].GetType().GetStateType().GetWrappedType().GetTensorType()
			if tt.GetDataType() != milpb.DataType_FLOAT16 || tt.GetRank() != int64(len(s.Shape)) {
				t.Errorf("%s: state input %q has type %v, want FLOAT16 rank %d", fname, s.Name, tt, len(s.Shape))
			}
		}
	}
}

func checkFeatures(t *testing.T, what string, got []*milpb.FeatureDescription, want []refFeature, state bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d features, want %d", what, len(got), len(want))
		return
	}
	for i, w := range want {
		g := got[i]
		arr := g.GetType().GetMultiArrayType()
		if state {
			arr = g.GetType().GetStateType().GetArrayType()
		}
		if g.GetName() != w.Name || arr == nil || arr.GetDataType().String() != w.DType || !slices.Equal(arr.GetShape(), w.Shape) {
			t.Errorf("%s %d: got %s %v %v, want %s %s %v", what, i, g.GetName(), arr.GetDataType(), arr.GetShape(), w.Name, w.DType, w.Shape)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestLinearFP16Fields pins individual fields of linear_fp16 so that a wrong
// field number shows up as a wrong value, not only as an unknown field.
func TestLinearFP16Fields(t *testing.T) {
	m := readModel(t, filepath.Join(oracleDir, "linear_fp16.mlpackage"))
	t.Logf("linear_fp16 model:\n%s", prototext.Format(m))

	block := m.GetMlProgram().GetFunctions()["main"].GetBlockSpecializations()["CoreML8"]
	if got := block.GetOutputs(); !slices.Equal(got, []string{"y"}) {
		t.Errorf("block outputs %v, want [y]", got)
	}
	// weight.bin holds W (32×64 fp16 = 4096 bytes) then b (32 fp16): the
	// first metadata record sits at 64, the payload ends at 128+4096 = 4224,
	// already 64-aligned, so the second record is at 4224.
	want := map[uint64][]int64{64: {32, 64}, 4224: {32}}
	var offsets []uint64
	for _, op := range block.GetOperations() {
		if op.GetType() != "const" {
			continue
		}
		val := op.GetAttributes()["val"]
		bf := val.GetBlobFileValue()
		if bf.GetFileName() != "@model_path/weights/weight.bin" {
			t.Errorf("const blob file %q", bf.GetFileName())
		}
		tt := val.GetType().GetTensorType()
		if tt.GetDataType() != milpb.DataType_FLOAT16 {
			t.Errorf("const at %d has dtype %v, want FLOAT16", bf.GetOffset(), tt.GetDataType())
		}
		var dims []int64
		for _, d := range tt.GetDimensions() {
			dims = append(dims, int64(d.GetConstant().GetSize()))
		}
		if !slices.Equal(dims, want[bf.GetOffset()]) {
			t.Errorf("const at offset %d has dims %v, want %v", bf.GetOffset(), dims, want[bf.GetOffset()])
		}
		offsets = append(offsets, bf.GetOffset())
	}
	slices.Sort(offsets)
	if !slices.Equal(offsets, []uint64{64, 4224}) {
		t.Errorf("blob offsets %v, want [64 4224]", offsets)
	}
}

// TestConstexprBindsBlobValues checks the iOS 18 constexpr convention: the
// parameters of constexpr_blockwise_shift_scale are inline value bindings
// pointing into weight.bin (README.txt notes), with int4 data of shape [32,64].
func TestConstexprBindsBlobValues(t *testing.T) {
	m := readModel(t, filepath.Join(oracleDir, "linear_int4_blockwise.mlpackage"))
	block := m.GetMlProgram().GetFunctions()["main"].GetBlockSpecializations()["CoreML8"]
	i := slices.IndexFunc(block.GetOperations(), func(op *milpb.Operation) bool {
		return op.GetType() == "constexpr_blockwise_shift_scale"
	})
	if i < 0 {
		t.Fatal("no constexpr_blockwise_shift_scale op")
	}
	op := block.GetOperations()[i]
	tests := []struct {
		input string
		dtype milpb.DataType
		dims  []uint64
	}{
		{"data", milpb.DataType_INT4, []uint64{32, 64}},
		{"scale", milpb.DataType_FLOAT16, []uint64{32, 2}},
		{"offset", milpb.DataType_INT4, []uint64{32, 2}},
	}
	for _, tc := range tests {
		args := op.GetInputs()[tc.input].GetArguments()
		if len(args) != 1 || args[0].GetValue() == nil {
			t.Errorf("%s: want one value binding, got %v", tc.input, args)
			continue
		}
		v := args[0].GetValue()
		tt := v.GetType().GetTensorType()
		var dims []uint64
		for _, d := range tt.GetDimensions() {
			dims = append(dims, d.GetConstant().GetSize())
		}
		if tt.GetDataType() != tc.dtype || !slices.Equal(dims, tc.dims) {
			t.Errorf("%s: %v %v, want %v %v", tc.input, tt.GetDataType(), dims, tc.dtype, tc.dims)
		}
		if v.GetBlobFileValue().GetOffset() == 0 {
			t.Errorf("%s: no blobFileValue offset", tc.input)
		}
	}
}

// TestUnknownModelTypePreserved checks that a Model oneof member we do not
// declare (neuralNetwork = 500 in Core ML's Model.proto) survives a decode
// and re-encode byte for byte, as proto3 unknown fields.
func TestUnknownModelTypePreserved(t *testing.T) {
	// Field 500, wire type 2 (bytes): tag varint (500<<3)|2 = 4002 = 0xA2 0x1F,
	// then length 2 and a nested field 1 varint 7 (0x08 0x07).
	extra := []byte{0xA2, 0x1F, 0x02, 0x08, 0x07}
	raw := append([]byte{0x08, 0x09}, extra...) // specificationVersion = 9
	m := new(milpb.Model)
	if err := proto.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
	if m.GetSpecificationVersion() != 9 || unknownFields(m.ProtoReflect(), "Model") != "Model" {
		t.Fatalf("decoded %v; want version 9 and the neuralNetwork bytes kept as unknown", m)
	}
	out, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(raw) {
		t.Errorf("re-encoded % x, want % x", out, raw)
	}
}
