package reference

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/x448/float16"
	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// copyPackage copies a fixture package to a temp dir, letting edit change its program.
func copyPackage(t *testing.T, name string, edit func(*milpb.Model)) string {
	t.Helper()
	src := filepath.Join(coremlDir, name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if filepath.Base(p) == "model.mlmodel" {
			var m milpb.Model
			if err := proto.Unmarshal(b, &m); err != nil {
				return err
			}
			edit(&m)
			if b, err = proto.Marshal(&m); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func mainOps(m *milpb.Model) []*milpb.Operation {
	return m.GetMlProgram().GetFunctions()["main"].GetBlockSpecializations()["CoreML8"].GetOperations()
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*milpb.Model)
		want []string // substrings the error must contain
	}{
		{"unknown op", func(m *milpb.Model) {
			for _, op := range mainOps(m) {
				if op.GetType() == "linear" {
					op.Type = "frobnicate"
				}
			}
		}, []string{"frobnicate", "not implemented", "op "}},
		{"blob offset outside weight.bin", func(m *milpb.Model) {
			for _, op := range mainOps(m) {
				if bv := op.GetAttributes()["val"].GetBlobFileValue(); bv != nil {
					bv.Offset = 1 << 20 // weight.bin is 4352 bytes
					break
				}
			}
		}, []string{"y_weight_0", "offset 1048576", "weight.bin"}},
		{"blob dtype mismatch", func(m *milpb.Model) {
			for _, op := range mainOps(m) {
				if v := op.GetAttributes()["val"]; v.GetBlobFileValue() != nil {
					v.GetType().GetTensorType().DataType = milpb.DataType_FLOAT32
					break
				}
			}
		}, []string{"y_weight_0", "holds Float16", "FLOAT32"}},
	}
	for _, tc := range tests {
		dir := copyPackage(t, "linear_fp16.mlpackage", tc.edit)
		_, err := Open(dir, Options{})
		if err == nil {
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.mlpackage"), Options{}); err == nil {
		t.Error("Open of a missing package succeeded")
	}
}

func TestPredictInputErrors(t *testing.T) {
	m, err := Open(filepath.Join(coremlDir, "kv_cache_state.mlpackage"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, _ := m.NewState("")
	good := func() map[string]*Tensor {
		return map[string]*Tensor{
			"q": NewTensor(Float16, 1, 1, 16), "k_new": NewTensor(Float16, 1, 1, 16),
			"v_new": NewTensor(Float16, 1, 1, 16), "pos": NewTensor(Int32, 1), "mask": NewTensor(Float16, 1, 1, 8),
		}
	}
	tests := []struct {
		name  string
		edit  func(map[string]*Tensor)
		state *State
		want  string
	}{
		{"missing input", func(in map[string]*Tensor) { delete(in, "q") }, st, `missing input "q"`},
		{"wrong shape", func(in map[string]*Tensor) { in["q"] = NewTensor(Float16, 1, 2, 16) }, st, `input "q"`},
		{"wrong dtype", func(in map[string]*Tensor) { in["pos"] = NewTensor(Float32, 1) }, st, `input "pos"`},
		{"unknown input", func(in map[string]*Tensor) { in["z"] = NewTensor(Float32, 1) }, st, `unknown input "z"`},
		{"no state", func(map[string]*Tensor) {}, nil, "State"},
		{"position past the cache", func(in map[string]*Tensor) { in["pos"].i32[0] = 8 }, st, "slice_update"},
	}
	for _, tc := range tests {
		in := good()
		tc.edit(in)
		_, err := m.Predict("", in, tc.state)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want mention of %q", tc.name, err, tc.want)
		}
		if tc.name != "position past the cache" && !errors.Is(err, ErrInput) {
			t.Errorf("%s: err does not wrap ErrInput", tc.name)
		}
	}
}

// TestFloatToHalf checks our rounding against x448/float16 (round to nearest, ties to even)
// on special values and a million random bit patterns.
func TestFloatToHalf(t *testing.T) {
	vals := []float32{0, -0, 1, -2, 65504, 65520, 1e9, 5.96e-8, 2.98e-8, 2.99e-8, 6.1e-5, float32(math.Inf(1)), 1.0009765625, 1.00048828125}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		vals = append(vals, math.Float32frombits(r.Uint32()))
	}
	for _, v := range vals {
		got, want := floatToHalf(v), float16.Fromfloat32(v).Bits()
		if v != v { // NaN: any quiet NaN will do
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Errorf("floatToHalf(NaN) = %#x", got)
			}
			continue
		}
		if got != want {
			t.Fatalf("floatToHalf(%g) = %#x, want %#x", v, got, want)
		}
	}
}

// TestRoundFP16 checks the float32-only rounding against the table path
// lut[floatToHalf(f)] (itself checked against x448/float16 above) on the fp16 range
// boundaries — 2^-25 (a tie that rounds to 0), 2^-24 (smallest subnormal), 2^-14 (smallest
// normal), 65504 (largest finite), 65520 (ties to Inf) — and a million random bit patterns.
func TestRoundFP16(t *testing.T) {
	vals := []float32{0, float32(math.Copysign(0, -1)), 1, -2, 65504, 65519.99, 65520, -65520, 1e9,
		0x1p-25, 0x1.8p-25, 0x1p-24, 0x1.8p-24, 0x1p-14, 0x1.ffcp-15, 0x1.ffep-15, 6.1e-5,
		float32(math.Inf(1)), float32(math.Inf(-1)), 1.0009765625, 1.00048828125, 1.00146484375}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1 << 20 {
		vals = append(vals, math.Float32frombits(r.Uint32()))
	}
	lut := halfLUT()
	for _, v := range vals {
		got, want := roundFP16(v), lut[floatToHalf(v)]
		if v != v {
			if got == got {
				t.Errorf("roundFP16(NaN) = %v", got)
			}
			continue
		}
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("roundFP16(%g [%#x]) = %g, want %g", v, math.Float32bits(v), got, want)
		}
	}
}
