package coreml

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// OpenEmulated opens path through the same Session, Backend, input marshalling, output
// reading, compile cache and checks as OpenOptions, with every Core ML call answered by
// the reference runtime (fp32) instead of the framework. No Core ML runs: it exercises
// lilims's side of the Core ML path on any OS, and it is what `lilims verify` runs where
// Core ML is unavailable, saying so.
func OpenEmulated(path string, opts Options) (*Session, error) {
	return openWith(&fakeCoreML{}, path, opts)
}

// fakeCoreML stands in for the framework: "compiling" writes a compiled-model directory
// that names its package, "loading" opens that package with the reference runtime, and a
// prediction decodes the MLMultiArrays it is given (checking them against the compiled
// interface, as Core ML rejects mismatched inputs), runs the reference runtime and returns
// the logits at padded strides, in fp32 or fp16, as an IOSurface-backed Core ML output may
// come (Apple's MLMultiArray documentation: strides may pad the last axis). Tests set its
// fault-injection fields; OpenEmulated uses it as it is.
type fakeCoreML struct {
	compiledFrom string // the package a "compiled model" was built from (when not compiled here)
	compiledPath string // where compileModel put it
	fp16Logits   bool
	pad          int // extra elements per logits row

	// Fault injection.
	compileErr, loadErr, predictErr error
	nilState, nilLogits             bool

	calls               []string
	loaded, released    int
	states, statesFreed int
	lastUnits           ComputeUnits
	lastFunctions       []string
	predictions         int
	open                []*reference.Model
}

func (f *fakeCoreML) compileModel(pkg, dir string) (string, error) {
	f.calls = append(f.calls, "compile")
	if f.compileErr != nil {
		return "", f.compileErr
	}
	out := filepath.Join(dir, "model.mlmodelc")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(out, emulatedSource), []byte(abs), 0o644); err != nil {
		return "", err
	}
	f.compiledFrom = pkg
	f.compiledPath = out
	return out, nil
}

func (f *fakeCoreML) loadModel(compiled, function string, units ComputeUnits) (model, error) {
	f.calls = append(f.calls, "load "+function)
	if f.loadErr != nil {
		return nil, f.loadErr
	}
	src := f.compiledFrom
	if b, err := os.ReadFile(filepath.Join(compiled, emulatedSource)); err == nil {
		src = string(b)
	}
	if src == "" {
		return nil, nsError("+[MLModel modelWithContentsOfURL:configuration:error:] (emulated)", "com.apple.CoreML", 0, compiled+" is not a compiled model")
	}
	m, err := reference.Open(src, reference.Options{Precision: reference.FP32})
	if err != nil {
		return nil, err
	}
	b, _, err := runtime.NewReferenceBackend(m)
	if err != nil {
		return nil, err
	}
	it, err := ReadInterface(src)
	if err != nil {
		return nil, err
	}
	fi, err := it.Function(function)
	if err != nil {
		return nil, err
	}
	f.loaded++
	f.lastUnits = units
	f.lastFunctions = append(f.lastFunctions, function)
	return &fakeModel{f: f, m: m, b: b, fn: function, it: fi, c: it.Meta.ContextLength}, nil
}

// emulatedSource is the file of an emulated compiled model that names its package.
const emulatedSource = "lilims-emulated-source"

type fakeModel struct {
	f  *fakeCoreML
	m  *reference.Model
	b  *runtime.ReferenceBackend
	fn string
	it *Function
	c  int
}

type fakeState struct {
	f        *fakeCoreML
	st       runtime.State
	released bool
}

func (s *fakeState) release() {
	if !s.released {
		s.released = true
		s.f.statesFreed++
	}
}

func (m *fakeModel) newState() (state, error) {
	if m.f.nilState {
		return nil, nil
	}
	st, err := m.b.NewState()
	if err != nil {
		return nil, err
	}
	m.f.states++
	return &fakeState{f: m.f, st: st}, nil
}

func (m *fakeModel) release() {
	m.f.released++
	m.m.Close()
}

// coreMLError is what the fake reports for a bad input, shaped like Core ML's NSError.
func coreMLError(format string, args ...any) error {
	return nsError("-[MLModel predictionFromFeatures:usingState:error:] (emulated)", "com.apple.CoreML", 0, fmt.Sprintf(format, args...))
}

func (m *fakeModel) predict(inputs []*namedArray, outputs []string, st state) (map[string]*Array, error) {
	m.f.predictions++
	if m.f.predictErr != nil {
		return nil, m.f.predictErr
	}
	fs, ok := st.(*fakeState)
	if !ok || fs.released {
		return nil, fmt.Errorf("fake: bad state %T", st)
	}
	var in runtime.Inputs
	seen := map[string]bool{}
	for _, a := range inputs {
		want, ok := m.it.Input(a.name)
		if !ok {
			return nil, coreMLError("unexpected input %q", a.name)
		}
		if a.Type != want.Type || !slices.Equal(a.Shape, want.Shape) {
			return nil, coreMLError("input %q is %v %v, the model takes %v %v", a.name, a.Type, a.Shape, want.Type, want.Shape)
		}
		seen[a.name] = true
		switch a.name {
		case "input_ids":
			in.InputIDs = int32s(a.Array)
		case "position_ids":
			in.PositionIDs = int32s(a.Array)
		case "current_pos":
			in.CurrentPos = int32s(a.Array)[0]
		case "causal_mask":
			v, err := a.Float32s()
			if err != nil {
				return nil, err
			}
			in.CausalMask = v
		}
	}
	if len(seen) != len(m.it.Inputs) {
		return nil, coreMLError("%d inputs for a model with %d", len(seen), len(m.it.Inputs))
	}
	logits, err := m.b.Predict(m.fn, in, fs.st)
	if err != nil {
		return nil, err
	}
	if m.f.nilLogits {
		return map[string]*Array{}, nil
	}
	want, _ := m.it.Output("logits")
	return map[string]*Array{"logits": paddedArray(want.Shape, logits, m.f.pad, m.f.fp16Logits)}, nil
}

// int32s reads a row-major Int32 array.
func int32s(a *Array) []int32 {
	out := make([]int32, a.Len())
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(a.Data[4*i:]))
	}
	return out
}

// paddedArray lays v (row-major over shape) out with pad extra elements after every last-
// axis row, and strides to match.
func paddedArray(shape []int, v []float32, pad int, fp16 bool) *Array {
	t := Float32
	if fp16 {
		t = Float16
	}
	padded := append([]int(nil), shape...)
	padded[len(padded)-1] += pad
	a, err := NewArray(t, padded)
	if err != nil {
		panic(err)
	}
	a.Shape = append([]int(nil), shape...) // the padded strides stay
	if err := a.SetFloat32s(v); err != nil {
		panic(err)
	}
	return a
}
