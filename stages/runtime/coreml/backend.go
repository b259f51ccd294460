package coreml

import (
	"errors"
	"fmt"
	"sync"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/runtime"
)

// Backend runs the prefill and decode functions of a compiled lilims package through Core
// ML. It implements runtime.Backend. One MLState serves both functions (Apple's
// MLModel.newState for stateful multifunction models, macOS 15).
type Backend struct {
	it     *Interface
	models map[string]model // by contract function name

	mu     sync.Mutex
	states []*State // every state handed out, released by Close
	closed bool
}

// State is the Core ML KV state of one conversation (an MLState).
type State struct {
	s     state
	owner *Backend
}

// newBackend loads both functions of the compiled model.
func newBackend(fw framework, compiled string, it *Interface, units ComputeUnits) (*Backend, error) {
	b := &Backend{it: it, models: map[string]model{}}
	for _, fn := range []string{runtime.PrefillFunction, runtime.DecodeFunction} {
		m, err := fw.loadModel(compiled, fn, units)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("coreml: load function %s of %s (%v): %w", fn, compiled, units, err)
		}
		if m == nil {
			b.Close()
			return nil, fmt.Errorf("coreml: load function %s of %s: %w", fn, compiled, nilResult("+[MLModel modelWithContentsOfURL:configuration:error:]"))
		}
		b.models[fn] = m
	}
	return b, nil
}

// Interface returns the package interface the backend was opened with.
func (b *Backend) Interface() *Interface { return b.it }

// NewState implements runtime.Backend: a zeroed MLState from the decode function.
func (b *Backend) NewState() (runtime.State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	s, err := b.models[runtime.DecodeFunction].newState()
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, nilResult("-[MLModel newState]")
	}
	st := &State{s: s, owner: b}
	b.states = append(b.states, st)
	return st, nil
}

var errClosed = errors.New("coreml: backend is closed")

// Predict implements runtime.Backend: it marshals in into MLMultiArrays of the declared
// types and shapes, runs function fn with st and returns the logits as float32.
func (b *Backend) Predict(fn string, in runtime.Inputs, st runtime.State) ([]float32, error) {
	f, err := b.it.Function(fn)
	if err != nil {
		return nil, err
	}
	cs, ok := st.(*State)
	if !ok || cs == nil || cs.owner != b {
		return nil, fmt.Errorf("coreml: state %T was not made by this backend", st)
	}
	inputs, err := buildInputs(f, in)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	out, err := b.models[fn].predict(inputs, []string{contract.Logits}, cs.s)
	if err != nil {
		return nil, err
	}
	return readLogits(f, out)
}

// buildInputs marshals the contract inputs of one call into arrays of the types and
// shapes function f declares; a length that does not match the declared shape is an error,
// never a silent truncation.
func buildInputs(f *Function, in runtime.Inputs) ([]*namedArray, error) {
	var out []*namedArray
	for _, feat := range f.Inputs {
		a, err := NewArray(feat.Type, feat.Shape)
		if err != nil {
			return nil, fmt.Errorf("coreml: function %s: input %s: %w", f.Name, feat.Name, err)
		}
		switch feat.Name {
		case contract.InputIDs:
			err = a.SetInt32s(in.InputIDs)
		case contract.PositionIDs:
			err = a.SetInt32s(in.PositionIDs)
		case contract.CurrentPos:
			err = a.SetInt32s([]int32{in.CurrentPos})
		case contract.CausalMask:
			// −1e4 and 0 are exact in fp16 (contract.MaskedScore), so the rounding in
			// SetFloat32s changes nothing.
			err = a.SetFloat32s(in.CausalMask)
		default:
			err = fmt.Errorf("not an input of the contract")
		}
		if err != nil {
			return nil, fmt.Errorf("coreml: function %s: input %s: %w", f.Name, feat.Name, err)
		}
		out = append(out, &namedArray{feat.Name, a})
	}
	return out, nil
}

// readLogits checks the logits array against the declared output and converts it.
func readLogits(f *Function, out map[string]*Array) ([]float32, error) {
	want, _ := f.Output(contract.Logits)
	a := out[contract.Logits]
	if a == nil {
		return nil, fmt.Errorf("coreml: function %s: %w", f.Name, nilResult(`-[MLFeatureProvider featureValueForName:] for "`+contract.Logits+`"`))
	}
	// An ML Program's outputs keep their declared shape; another shape means the compiled
	// model was not built from this package.
	if !sameShape(a.Shape, want.Shape) {
		return nil, fmt.Errorf("coreml: function %s: logits have shape %v, the package declares %v (is the compiled model built from this package?)", f.Name, a.Shape, want.Shape)
	}
	v, err := a.Float32s()
	if err != nil {
		return nil, fmt.Errorf("coreml: function %s: logits: %w", f.Name, err)
	}
	return v, nil
}

// Close releases every state and both loaded functions. Sessions over the backend must not
// be used afterwards.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for _, st := range b.states {
		st.s.release()
	}
	b.states = nil
	for _, m := range b.models {
		m.release()
	}
	return nil
}

// Session is a runtime session over a Core ML backend that owns it: Close releases the
// loaded model. (runtime.Session's own closer is unexported; this wrapper is how a
// session from another package can own its backend.)
type Session struct {
	*runtime.Session
	Backend *Backend
	cleanup func() error // removes a temporary compiled model
}

// Close releases the backend and any temporary compiled model.
func (s *Session) Close() error {
	err := s.Backend.Close()
	if s.cleanup != nil {
		if cerr := s.cleanup(); err == nil {
			err = cerr
		}
	}
	return err
}

// newSession opens a session over b and checks, with one prediction of each function on a
// throwaway state, that the compiled model takes the inputs and returns the logits the
// package declares — so a mismatched .mlmodelc fails here, before generation starts.
func newSession(b *Backend) (*Session, error) {
	if err := probe(b); err != nil {
		b.Close()
		return nil, err
	}
	return &Session{Session: runtime.NewSession(b, b.it.Meta), Backend: b}, nil
}

func probe(b *Backend) error {
	meta := b.it.Meta
	for _, fn := range []struct {
		name string
		n    int
	}{{contract.Decode, 1}, {contract.Prefill, meta.PrefillChunk}} {
		st, err := b.NewState()
		if err != nil {
			return fmt.Errorf("coreml: check of %s: %w", fn.name, err)
		}
		in := runtime.Inputs{
			InputIDs:    make([]int32, fn.n),
			PositionIDs: make([]int32, fn.n),
			CausalMask:  make([]float32, fn.n*meta.ContextLength),
		}
		for i := range fn.n {
			in.PositionIDs[i] = int32(i)
			for j := range meta.ContextLength {
				if j > i {
					in.CausalMask[i*meta.ContextLength+j] = contract.MaskedScore
				}
			}
		}
		_, err = b.Predict(fn.name, in, st)
		b.releaseState(st.(*State))
		if err != nil {
			return fmt.Errorf("coreml: check of %s: %w", fn.name, err)
		}
	}
	return nil
}

// releaseState releases one state early (the probe's).
func (b *Backend) releaseState(st *State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, s := range b.states {
		if s == st {
			b.states = append(b.states[:i], b.states[i+1:]...)
			st.s.release()
			return
		}
	}
}
