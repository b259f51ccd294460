package reference

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lilims/lilims/stages/export/mlpackage"
)

// maxFuzzElements bounds the tensors FuzzOpen allocates to run a program: a fuzzed type may
// declare any shape, and the runtime sizes its buffers from the declaration.
const maxFuzzElements = 1 << 16

// FuzzOpen writes fuzzed bytes as the model.mlmodel protobuf and the weights/weight.bin of
// a package (beside a real Manifest.json) and opens it through mlpackage.Open and then the
// reference runtime; when it opens, every function is described and, if its inputs and
// states are small, run once on zeros. Each step must return a value or an error naming
// what is wrong — never panic, whatever the program says.
func FuzzOpen(f *testing.F) {
	manifest, err := os.ReadFile(filepath.Join(coremlDir, "linear_fp16.mlpackage", "Manifest.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{"linear_fp16", "linear_int4_blockwise", "linear_lut4", "kv_cache_state", "multifunction_prefill_decode"} {
		data := filepath.Join(coremlDir, name+".mlpackage", "Data", "com.apple.CoreML")
		model, err := os.ReadFile(filepath.Join(data, "model.mlmodel"))
		if err != nil {
			f.Fatal(err)
		}
		weights, _ := os.ReadFile(filepath.Join(data, "weights", "weight.bin")) // kv_cache_state has none
		if len(model)+len(weights) > 5<<10 {
			continue // small seeds keep minimisation fast (linear_fp16's weights are 4.3 KiB)
		}
		f.Add(model, weights)
	}
	// One package directory per fuzz worker process, rewritten on every input: creating a
	// directory tree per input would dominate the run time.
	dir := filepath.Join(f.TempDir(), "fuzz.mlpackage")
	weightsDir := filepath.Join(dir, "Data", "com.apple.CoreML", "weights")
	if err := os.MkdirAll(weightsDir, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Manifest.json"), manifest, 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, model, weights []byte) {
		if err := os.WriteFile(filepath.Join(dir, "Data", "com.apple.CoreML", "model.mlmodel"), model, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(weightsDir, "weight.bin"), weights, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := mlpackage.Open(dir)
		if err != nil {
			return
		}
		for _, name := range p.WeightFiles() {
			if _, err := p.Weights(name); err != nil {
				t.Errorf("listed weight file %q: %v", name, err)
			}
		}
		p.Close()

		m, err := Open(dir, Options{Threads: 1})
		if err != nil {
			return
		}
		defer m.Close()
		for _, fn := range m.Functions() {
			desc, err := m.Describe(fn)
			if err != nil {
				t.Errorf("Describe(%q) of a listed function: %v", fn, err)
				continue
			}
			inputs, ok := zeroInputs(desc)
			if !ok {
				continue
			}
			st, err := m.NewState(fn)
			if err != nil {
				t.Errorf("NewState(%q): %v", fn, err)
				continue
			}
			m.Predict(fn, inputs, st)
		}
	})
}

// zeroInputs returns zero tensors for every input of desc, or false when an input or state
// has a run-time dimension or more than maxFuzzElements elements.
func zeroInputs(desc FunctionDescription) (map[string]*Tensor, bool) {
	small := func(shape []int) bool {
		n := 1
		for _, d := range shape {
			if d < 0 || d > maxFuzzElements {
				return false
			}
			n *= d
			if n > maxFuzzElements {
				return false
			}
		}
		return true
	}
	for _, s := range desc.States {
		if !small(s.Shape) {
			return nil, false
		}
	}
	in := map[string]*Tensor{}
	for _, x := range desc.Inputs {
		if !small(x.Shape) {
			return nil, false
		}
		in[x.Name] = NewTensor(x.DType, x.Shape...)
	}
	return in, true
}
