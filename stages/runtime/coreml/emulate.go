package coreml

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"

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
// holding a copy of its package, "loading" opens that package with the reference runtime, and a
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
	// Like a real compiled model, the emulated one stands alone: it holds (links to) a
	// copy of the package, which outlives the package's own directory.
	if err := copyTree(pkg, filepath.Join(out, emulatedSource)); err != nil {
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
	if fi, err := os.Stat(filepath.Join(compiled, emulatedSource)); err == nil && fi.IsDir() {
		src = filepath.Join(compiled, emulatedSource)
	}
	if src == "" {
		return nil, nsError("+[MLModel modelWithContentsOfURL:configuration:error:] (emulated)", "com.apple.CoreML", 0, compiled+" is not a compiled model")
	}
	m, err := reference.Open(src, reference.Options{Precision: reference.FP32})
	if err != nil {
		return nil, err
	}
	d, err := m.Describe(function)
	if err != nil {
		m.Close()
		return nil, nsError("+[MLModel modelWithContentsOfURL:configuration:error:] (emulated)", "com.apple.CoreML", 0, err.Error())
	}
	f.loaded++
	f.lastUnits = units
	f.lastFunctions = append(f.lastFunctions, function)
	return &fakeModel{f: f, m: m, fn: function, desc: d}, nil
}

// emulatedSource is the copy of the package inside an emulated compiled model.
const emulatedSource = "package.mlpackage"

// fakeModel is one loaded function: the package opened with the reference runtime.
type fakeModel struct {
	f    *fakeCoreML
	m    *reference.Model
	fn   string
	desc reference.FunctionDescription
}

// fakeState is an MLState: reference state made by the decode function's model and used
// by both, as one MLState serves both function instances in Core ML.
type fakeState struct {
	f        *fakeCoreML
	st       *reference.State
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
	st, err := m.m.NewState(m.fn)
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

// dataTypes maps the reference runtime's element types to MLMultiArray's.
var dataTypes = map[reference.DType]DataType{reference.Float16: Float16, reference.Float32: Float32, reference.Int32: Int32}

func (m *fakeModel) predict(inputs []*namedArray, outputs []string, st state) (map[string]*Array, error) {
	m.f.predictions++
	if m.f.predictErr != nil {
		return nil, m.f.predictErr
	}
	fs, ok := st.(*fakeState)
	if !ok || fs.released {
		return nil, fmt.Errorf("fake: bad state %T", st)
	}
	ins := map[string]*reference.Tensor{}
	for _, a := range inputs {
		i := slices.IndexFunc(m.desc.Inputs, func(f reference.Feature) bool { return f.Name == a.name })
		if i < 0 {
			return nil, coreMLError("unexpected input %q", a.name)
		}
		want := m.desc.Inputs[i]
		if a.Type != dataTypes[want.DType] || !slices.Equal(a.Shape, want.Shape) {
			return nil, coreMLError("input %q is %v %v, the model takes %v %v", a.name, a.Type, a.Shape, dataTypes[want.DType], want.Shape)
		}
		var t *reference.Tensor
		var err error
		if a.Type == Int32 {
			t, err = reference.FromInt32(a.Shape, int32s(a.Array))
		} else {
			var v []float32
			if v, err = a.Float32s(); err == nil {
				t, err = reference.FromFloat32(want.DType, a.Shape, v)
			}
		}
		if err != nil {
			return nil, err
		}
		ins[a.name] = t
	}
	if len(ins) != len(m.desc.Inputs) {
		return nil, coreMLError("%d inputs for a model with %d", len(ins), len(m.desc.Inputs))
	}
	res, err := m.m.Predict(m.fn, ins, fs.st)
	if err != nil {
		return nil, err
	}
	out := map[string]*Array{}
	for _, name := range outputs {
		t, ok := res[name]
		if !ok || (name == "logits" && m.f.nilLogits) {
			continue // featureValueForName: gives nil
		}
		fp16 := t.DType == reference.Float16
		if name == "logits" {
			fp16 = m.f.fp16Logits
		}
		a, err := paddedArray(t.Shape, t.Float32s(), m.f.pad, fp16)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		out[name] = a
	}
	return out, nil
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
func paddedArray(shape []int, v []float32, pad int, fp16 bool) (*Array, error) {
	t := Float32
	if fp16 {
		t = Float16
	}
	padded := append([]int(nil), shape...)
	padded[len(padded)-1] += pad
	a, err := NewArray(t, padded)
	if err != nil {
		return nil, err
	}
	a.Shape = append([]int(nil), shape...) // the padded strides stay
	return a, a.SetFloat32s(v)
}

func isEmulated(fw framework) bool {
	_, ok := fw.(*fakeCoreML)
	return ok
}
