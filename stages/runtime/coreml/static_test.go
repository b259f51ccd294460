package coreml

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// findingsOf lists "check:name" of each finding.
func findingsOf(r *StaticReport) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Check+":"+f.Name)
	}
	return out
}

func setDims(t *milpb.TensorType, d ...uint64) {
	t.Dimensions = nil
	for _, x := range d {
		t.Dimensions = append(t.Dimensions, &milpb.Dimension{Dimension: &milpb.Dimension_Constant{Constant: &milpb.Dimension_ConstantDimension{Size: x}}})
	}
	t.Rank = int64(len(d))
}

// The exported tiny-phi2 (fp16, vocabulary 1024, states [1, 4, 64, 32]) passes every static
// check but one: its logits are cast to fp32 for the output, in each function. Each
// mutation breaks one documented limit and is reported as exactly that.
func TestStaticChecks(t *testing.T) {
	base := readModel(t, exportPackage(t, "tiny-phi2-f16.gguf", 64, 16))
	r := StaticChecks(base)
	if r.Quantized || r.Ops["linear"] == 0 || r.Ops["const"] != 0 {
		t.Errorf("ops %v quantized %v: want linears counted, consts not, fp16 weights", r.Ops, r.Quantized)
	}
	for _, f := range r.Findings {
		if f.Check != "dtype" || f.Op != "cast" || f.Where != "head" {
			t.Errorf("unexpected finding on the exported package: %s", f)
		}
	}
	if len(r.Findings) != 2 {
		t.Errorf("findings %v, want the fp32 logits cast of prefill and decode", findingsOf(r))
	}

	fn := func(m *milpb.Model, name string) *milpb.Function { return m.GetMlProgram().GetFunctions()[name] }
	opNamed := func(m *milpb.Model, fname, out string) *milpb.Operation {
		for _, op := range OpsInOrder(fn(m, fname)) {
			if op.Op.GetOutputs()[0].GetName() == out {
				return op.Op
			}
		}
		t.Fatalf("no op %s in %s", out, fname)
		return nil
	}
	for _, tc := range []struct {
		name   string
		mutate func(m *milpb.Model)
		want   string // "check:name" that must appear
		msg    string
	}{
		{"128k vocabulary embedding", func(m *milpb.Model) {
			setDims(opNamed(m, "decode", "token_embd_weight").GetOutputs()[0].GetType().GetTensorType(), 128256, 128)
		}, "op:gather", "table of 128256 rows"},
		{"128k vocabulary embedding dimension", func(m *milpb.Model) {
			setDims(opNamed(m, "decode", "token_embd_weight").GetOutputs()[0].GetType().GetTensorType(), 128256, 128)
		}, "dimension:token_embd_weight", "dimension 0 is 128256, above the ANE's 65536"},
		{"fp32 activations", func(m *milpb.Model) {
			opNamed(m, "prefill", "layer_norm").GetOutputs()[0].GetType().GetTensorType().DataType = milpb.DataType_FLOAT32
		}, "dtype:layer_norm", "fp16 only"},
		{"state head dim 48", func(m *milpb.Model) {
			for _, in := range fn(m, "decode").GetInputs() {
				if st := in.GetType().GetStateType(); st != nil {
					setDims(st.GetWrappedType().GetTensorType(), 1, 4, 64, 48)
					return
				}
			}
		}, "state:", "not a multiple of 32 (coremltools issue 2631)"},
		{"fp32 state", func(m *milpb.Model) {
			for _, in := range fn(m, "prefill").GetInputs() {
				if st := in.GetType().GetStateType(); st != nil {
					st.GetWrappedType().GetTensorType().DataType = milpb.DataType_FLOAT32
					return
				}
			}
		}, "state:", "fp16 states only"},
	} {
		m := proto.Clone(base).(*milpb.Model)
		tc.mutate(m)
		r := StaticChecks(m)
		found := slices.ContainsFunc(r.Findings, func(f StaticFinding) bool {
			return strings.HasPrefix(f.Check+":"+f.Name, tc.want) && strings.Contains(f.Msg, tc.msg)
		})
		if !found {
			t.Errorf("%s: findings %v, want %s saying %q", tc.name, r.Findings, tc.want, tc.msg)
		}
	}
}

// Ops are placed in layers by the weights they read: tiny-phi2 has 3 layers, and the LM head
// comes last.
func TestOpsInOrderLayers(t *testing.T) {
	m := readModel(t, exportPackage(t, "tiny-phi2-f16.gguf", 64, 16))
	seen := map[string]int{}
	var order []string
	for _, op := range OpsInOrder(m.GetMlProgram().GetFunctions()["decode"]) {
		if seen[op.Where] == 0 {
			order = append(order, op.Where)
		}
		seen[op.Where]++
	}
	if want := []string{"input", "layer 0", "layer 1", "layer 2", "head"}; !slices.Equal(order, want) {
		t.Errorf("placement order %v, want %v", order, want)
	}
}

// A finding shared by both functions is one line naming both.
func TestStaticLines(t *testing.T) {
	r := &StaticReport{Findings: []StaticFinding{
		{Function: "decode", Check: "state", Where: "state", Msg: "state \"k_cache_0\" is bad"},
		{Function: "prefill", Check: "state", Where: "state", Msg: "state \"k_cache_0\" is bad"},
		{Function: "prefill", Check: "dtype", Where: "head", Msg: "cast is fp32"},
	}}
	want := []string{`decode, prefill state: [state] state "k_cache_0" is bad`, "prefill head: [dtype] cast is fp32"}
	if got := r.Lines(); !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}
