//go:build darwin

package coreml

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego/objc"
)

// Open opens an exported lilims package with Core ML. path is an .mlpackage, compiled
// first into a temporary directory that Session.Close removes (a compiled .mlmodelc needs
// OpenOptions, since its interface is read from its source package). computeUnits is
// cpu_only, cpu_and_gpu, cpu_and_ne or all. Both functions are loaded and checked with one
// prediction each before Open returns.
func Open(path, computeUnits string) (*Session, error) {
	return OpenOptions(path, Options{ComputeUnits: computeUnits})
}

// OpenOptions is Open with every option.
func OpenOptions(path string, opts Options) (*Session, error) {
	if err := loadFramework(); err != nil {
		return nil, err
	}
	return openWith(objcFramework{}, path, opts)
}

// objcFramework is the framework over the Objective-C runtime.
type objcFramework struct{}

func (objcFramework) compileModel(pkg, dir string) (string, error) {
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))+".mlmodelc")
	var tmp string
	err = withPool(func() error {
		const name = "+[MLModel compileModelAtURL:error:]"
		defer call(name)()
		nsErr := new(objc.ID)
		url := classMLModel.Send(selCompileModelAtURL, fileURL(abs), unsafe.Pointer(nsErr))
		if url == 0 {
			return errorOf(name, *nsErr)
		}
		tmp = goString(url.Send(selPath))
		return nil
	})
	if err != nil {
		return "", err
	}
	if tmp == "" {
		return "", nilResult("-[NSURL path] of the compiled model")
	}
	// The compiled model is written to a temporary location the caller must move
	// (Apple's documentation of +[MLModel compileModelAtURL:error:]).
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		// Another volume: copy, then remove the temporary model.
		if cerr := copyTree(tmp, dst); cerr != nil {
			return "", fmt.Errorf("move compiled model %s to %s: %v", tmp, dst, cerr)
		}
		os.RemoveAll(tmp)
	}
	return dst, nil
}

func (objcFramework) loadModel(compiled, function string, units ComputeUnits) (model, error) {
	abs, err := filepath.Abs(compiled)
	if err != nil {
		return nil, err
	}
	var m objc.ID
	err = withPool(func() error {
		cfg, err := newConfiguration(function, units)
		if err != nil {
			return err
		}
		defer cfg.Send(selRelease)
		const name = "+[MLModel modelWithContentsOfURL:configuration:error:]"
		defer call(name)()
		nsErr := new(objc.ID)
		m = classMLModel.Send(selModelWithContentsOfURL, fileURL(abs), cfg, unsafe.Pointer(nsErr))
		if m == 0 {
			return errorOf(name, *nsErr)
		}
		// The model is autoreleased; keep it past the pool.
		m.Send(selRetain)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &objcModel{id: m, function: function}, nil
}

// newConfiguration returns an owned MLModelConfiguration (the "new" family: +1) for one
// function of a multifunction model with the given compute units. Call inside withPool.
func newConfiguration(function string, units ComputeUnits) (objc.ID, error) {
	cfg := classMLModelConfiguration.Send(selNew)
	if cfg == 0 {
		return 0, nilResult("+[MLModelConfiguration new]")
	}
	cfg.Send(selSetComputeUnits, int(units))
	cfg.Send(selSetFunctionName, nsString(function))
	return cfg, nil
}

// objcModel is one loaded function (a retained MLModel).
type objcModel struct {
	id       objc.ID
	function string
}

// objcState is a retained MLState.
type objcState struct{ id objc.ID }

func (s *objcState) release() {
	release(s.id)
	s.id = 0
}

func (m *objcModel) release() {
	release(m.id)
	m.id = 0
}

func (m *objcModel) newState() (state, error) {
	var st objc.ID
	err := withPool(func() error {
		defer call("-[MLModel newState]")()
		// "new" family: the caller owns the result.
		st = m.id.Send(selNewState)
		if st == 0 {
			return nilResult("-[MLModel newState]")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &objcState{id: st}, nil
}

func (m *objcModel) predict(inputs []*namedArray, outputs []string, st state) (map[string]*Array, error) {
	s, ok := st.(*objcState)
	if !ok || s.id == 0 {
		return nil, fmt.Errorf("coreml: state %T is not a live MLState", st)
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("coreml: %s: no inputs", m.function)
	}
	out := map[string]*Array{}
	err := withPool(func() error {
		keys := make([]objc.ID, len(inputs))
		values := make([]objc.ID, len(inputs))
		for i, in := range inputs {
			arr, err := newMultiArray(in.Array)
			if err != nil {
				return fmt.Errorf("input %s: %w", in.name, err)
			}
			defer arr.Send(selRelease)
			keys[i] = nsString(in.name)
			values[i] = classMLFeatureValue.Send(selFeatureValueWithArray, arr)
			if values[i] == 0 {
				return nilResult("+[MLFeatureValue featureValueWithMultiArray:] for " + in.name)
			}
		}
		dict := classNSDictionary.Send(selDictionaryWithObjects, unsafe.Pointer(&values[0]), unsafe.Pointer(&keys[0]), len(keys))
		// A fresh NSError out-parameter for every call: a stale one from an earlier call
		// would be reported for a later call that returned nil without setting it.
		nsErr := new(objc.ID)
		const initName = "-[MLDictionaryFeatureProvider initWithDictionary:error:]"
		done := call(initName)
		provider := classMLDictionaryFeatureProvider.Send(selAlloc).Send(selInitWithDictionary, dict, unsafe.Pointer(nsErr))
		done()
		if provider == 0 {
			return errorOf(initName, *nsErr)
		}
		defer provider.Send(selRelease)
		name := "-[MLModel predictionFromFeatures:usingState:error:] (" + m.function + ")"
		predErr := new(objc.ID)
		done = call(name)
		result := m.id.Send(selPredictUsingState, provider, s.id, unsafe.Pointer(predErr))
		done()
		if result == 0 {
			return errorOf(name, *predErr)
		}
		for _, o := range outputs {
			fv := result.Send(selFeatureValueForName, nsString(o))
			if fv == 0 {
				return nilResult(fmt.Sprintf("-[MLFeatureProvider featureValueForName:] for %q", o))
			}
			arr := fv.Send(selMultiArrayValue)
			if arr == 0 {
				return nilResult(fmt.Sprintf("-[MLFeatureValue multiArrayValue] for %q", o))
			}
			a, err := readMultiArray(arr)
			if err != nil {
				return fmt.Errorf("output %s: %w", o, err)
			}
			out[o] = a
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// newMultiArray lets Core ML allocate an array of a's type and shape and copies a into it
// at the strides Core ML reports (Apple's MLMultiArray documentation: memory handed to
// initWithDataPointer: must outlive the array, so Go memory is not lent to it). The result
// is owned (+1).
func newMultiArray(a *Array) (objc.ID, error) {
	const name = "-[MLMultiArray initWithShape:dataType:error:]"
	defer call(name)()
	nsErr := new(objc.ID)
	arr := classMLMultiArray.Send(selAlloc).Send(selInitWithShape, nsNumbers(a.Shape), int(a.Type), unsafe.Pointer(nsErr))
	if arr == 0 {
		return 0, errorOf(name, *nsErr)
	}
	var copyErr error
	// The handler runs before getMutableBytesWithHandler: returns.
	block := objc.NewBlock(func(_ objc.Block, p *byte, size int, strides objc.ID) {
		st, err := goInts(strides, "strides")
		if err != nil {
			copyErr = err
			return
		}
		if p == nil || size < 0 || size > maxElements*8 {
			copyErr = fmt.Errorf("mutable bytes handler gave %d bytes at %p", size, p)
			return
		}
		dst := &Array{Type: a.Type, Shape: a.Shape, Strides: st, Data: unsafe.Slice(p, size)}
		copyErr = a.CopyTo(dst)
	})
	defer block.Release()
	done := call("-[MLMultiArray getMutableBytesWithHandler:]")
	arr.Send(selGetMutableBytes, block)
	done()
	if copyErr != nil {
		arr.Send(selRelease)
		return 0, fmt.Errorf("-[MLMultiArray getMutableBytesWithHandler:]: %w", copyErr)
	}
	return arr, nil
}

// readMultiArray copies an output MLMultiArray into Go memory with its type, shape and
// strides; the strides may be padded (Apple's MLMultiArray documentation).
func readMultiArray(arr objc.ID) (*Array, error) {
	shape, err := goInts(arr.Send(selShape), "shape")
	if err != nil {
		return nil, err
	}
	strides, err := goInts(arr.Send(selStrides), "strides")
	if err != nil {
		return nil, err
	}
	a := &Array{Type: DataType(sendInt(arr, selDataType)), Shape: shape, Strides: strides}
	if a.Type.Size() == 0 {
		return nil, fmt.Errorf("MLMultiArray data type %v is not one lilims reads", a.Type)
	}
	var readErr error
	block := objc.NewBlock(func(_ objc.Block, p *byte, size int) {
		if p == nil || size < 0 || size > maxElements*8 {
			readErr = fmt.Errorf("bytes handler gave %d bytes at %p", size, p)
			return
		}
		a.Data = append([]byte(nil), unsafe.Slice(p, size)...)
	})
	defer block.Release()
	done := call("-[MLMultiArray getBytesWithHandler:]")
	arr.Send(selGetBytes, block)
	done()
	if readErr != nil {
		return nil, fmt.Errorf("-[MLMultiArray getBytesWithHandler:]: %w", readErr)
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	return a, nil
}
