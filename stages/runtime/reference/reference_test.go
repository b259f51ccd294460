package reference

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/lilims/lilims/stages/runtime/reference/npy"
)

const coremlDir = "../../../testdata/oracle/coreml"

type refTensor struct {
	Npy string `json:"npy"`
}

type refCase struct {
	Function            string               `json:"function"`
	Inputs              map[string]refTensor `json:"inputs"`
	StatesBefore        map[string]refTensor `json:"states_before"`
	ExpectedOutputs     map[string]refTensor `json:"expected_outputs"`
	ExpectedStatesAfter map[string]refTensor `json:"expected_states_after"`
}

type refFile struct {
	Package   string `json:"package"`
	Tolerance struct {
		Rtol, Atol float64
	} `json:"suggested_tolerance"`
	DefaultFunctionName string    `json:"defaultFunctionName"`
	Cases               []refCase `json:"cases"`
}

// loadTensor reads a fixture .npy file, rel to coremlDir.
func loadTensor(t *testing.T, rel string) *Tensor {
	t.Helper()
	return readTensor(t, filepath.Join(coremlDir, rel))
}

func readTensor(t *testing.T, path string) *Tensor {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := tensorFromNpy(a)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// allClose is numpy.allclose: |a − e| ≤ atol + rtol·|e| elementwise; it returns the worst excess.
func allClose(t *testing.T, what string, got, want *Tensor, rtol, atol float64) {
	t.Helper()
	if !sameShape(got.Shape, want.Shape) {
		t.Errorf("%s: shape %v, want %v", what, got.Shape, want.Shape)
		return
	}
	worst := 0.0
	for i := range want.Len() {
		d := math.Abs(got.Float64At(i) - want.Float64At(i))
		worst = math.Max(worst, d)
		if d > atol+rtol*math.Abs(want.Float64At(i)) {
			t.Errorf("%s[%d] = %v, want %v (rtol %g, atol %g)", what, i, got.Float64At(i), want.Float64At(i), rtol, atol)
			return
		}
	}
	t.Logf("%s: max |Δ| = %.3g", what, worst)
}

// TestGoldenPackages runs every coremltools-written package in testdata/oracle/coreml and
// checks outputs (and states) against the float64 numpy references within each fixture's
// suggested tolerance (rtol 0.01, atol 0.01 for all of them).
func TestGoldenPackages(t *testing.T) {
	refs, err := filepath.Glob(filepath.Join(coremlDir, "*.ref.json"))
	if err != nil || len(refs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, precision := range []Precision{FP16Faithful, FP32} {
		for _, path := range refs {
			var ref refFile
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &ref); err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(path)
			t.Run(name+"/"+[]string{"fp16", "fp32"}[precision], func(t *testing.T) {
				m, err := Open(filepath.Join(coremlDir, ref.Package), Options{Precision: precision})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if ref.DefaultFunctionName != "" && m.DefaultFunction() != ref.DefaultFunctionName {
					t.Errorf("default function %q, want %q", m.DefaultFunction(), ref.DefaultFunctionName)
				}
				states := map[string]*State{}
				for ci, c := range ref.Cases {
					st := states[c.Function]
					if st == nil {
						if st, err = m.NewState(c.Function); err != nil {
							t.Fatal(err)
						}
						states[c.Function] = st
					}
					// The state must hold what the fixture says it held before the call:
					// zeros at first, then what the previous call left.
					for _, sn := range sortedKeys(c.StatesBefore) {
						got, err := st.Get(sn)
						if err != nil {
							t.Fatal(err)
						}
						allClose(t, "state before "+sn, got, loadTensor(t, c.StatesBefore[sn].Npy), 0, 0)
					}
					in := map[string]*Tensor{}
					for k, v := range c.Inputs {
						in[k] = loadTensor(t, v.Npy)
					}
					out, err := m.Predict(c.Function, in, st)
					if err != nil {
						t.Fatalf("case %d: %v", ci, err)
					}
					keys := sortedKeys(c.ExpectedOutputs)
					sort.Strings(keys)
					for _, k := range keys {
						allClose(t, k, out[k], loadTensor(t, c.ExpectedOutputs[k].Npy), ref.Tolerance.Rtol, ref.Tolerance.Atol)
					}
					for _, sn := range sortedKeys(c.ExpectedStatesAfter) {
						got, _ := st.Get(sn)
						allClose(t, "state after "+sn, got, loadTensor(t, c.ExpectedStatesAfter[sn].Npy), ref.Tolerance.Rtol, ref.Tolerance.Atol)
					}
				}
			})
		}
	}
}
