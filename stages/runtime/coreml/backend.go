package coreml

import (
	"errors"
	"fmt"
	"github.com/lilims/lilims/stages/export/contract"
	"sync"

	"github.com/lilims/lilims/stages/runtime"
)

// Backend runs the prefill and decode functions of a compiled lilims package — or of the
// packages of a chunked export, in order, handing each the previous one's hidden states —
// through Core ML. It implements runtime.Backend. One MLState per package, made by its
// decode function, serves both of its functions: Apple does not document that a state
// crosses function instances, community code relies on it, and lilims verify's
// prefill-then-decode sequence checks it (docs/mac.md).
type Backend struct {
	it     *Interface // the model's: the first package's functions, the Meta of all
	chunks []*chunk   // one per package, in run order
	// prefillByDecode: only decode is loaded, and prefill calls run through it
	// (Options.PrefillThroughDecode).
	prefillByDecode bool

	mu     sync.Mutex
	states []*State // every state handed out, released by Close
	closed bool
}

// chunk is one package: its interface and both loaded functions.
type chunk struct {
	it     *Interface
	models map[string]model // by contract function name
}

// State is the Core ML KV state of one conversation: an MLState per package.
type State struct {
	s     []state
	owner *Backend
}

// newBackend loads both functions of every compiled package; its[i] is the interface of
// compiled[i].
func newBackend(fw framework, compiled []string, its []*Interface, units ComputeUnits, prefillByDecode bool) (*Backend, error) {
	b := &Backend{prefillByDecode: prefillByDecode}
	fns := []string{runtime.PrefillFunction, runtime.DecodeFunction}
	if prefillByDecode {
		fns = fns[1:]
	}
	for i, path := range compiled {
		c := &chunk{it: its[i], models: map[string]model{}}
		b.chunks = append(b.chunks, c)
		for _, fn := range fns {
			m, err := fw.loadModel(path, fn, units)
			if err != nil {
				b.Close()
				return nil, fmt.Errorf("coreml: load function %s of %s (%v): %w", fn, path, units, err)
			}
			if m == nil {
				b.Close()
				return nil, fmt.Errorf("coreml: load function %s of %s: %w", fn, path, nilResult("+[MLModel modelWithContentsOfURL:configuration:error:]"))
			}
			c.models[fn] = m
		}
	}
	first, last := its[0], its[len(its)-1]
	b.it = &Interface{Prefill: first.Prefill, Decode: first.Decode, Meta: first.Meta}
	b.it.Meta.VocabSize = last.Meta.VocabSize
	return b, nil
}

// Interface returns the interface of the model the backend was opened with (for a chunked
// export, the first package's functions).
func (b *Backend) Interface() *Interface { return b.it }

// Chunks is the number of packages the backend chains (1 for an unchunked export).
func (b *Backend) Chunks() int { return len(b.chunks) }

// NewState implements runtime.Backend: a zeroed MLState from the decode function of every
// package.
func (b *Backend) NewState() (runtime.State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	st := &State{owner: b}
	for i, c := range b.chunks {
		s, err := c.models[runtime.DecodeFunction].newState()
		if err == nil && s == nil {
			err = nilResult("-[MLModel newState]")
		}
		if err != nil {
			for _, s := range st.s {
				s.release()
			}
			if len(b.chunks) > 1 {
				err = fmt.Errorf("chunk %d: %w", i, err)
			}
			return nil, err
		}
		st.s = append(st.s, s)
	}
	b.states = append(b.states, st)
	return st, nil
}

var errClosed = errors.New("coreml: backend is closed")

// Predict implements runtime.Backend: it marshals in into MLMultiArrays of the declared
// types and shapes, runs function fn of every package in order with its state, and
// returns the last package's logits as float32.
func (b *Backend) Predict(fn string, in runtime.Inputs, st runtime.State) ([]float32, error) {
	if _, err := b.it.Function(fn); err != nil {
		return nil, err
	}
	cs, ok := st.(*State)
	if !ok || cs == nil || cs.owner != b {
		return nil, fmt.Errorf("coreml: state %T was not made by this backend", st)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if fn == runtime.PrefillFunction && b.prefillByDecode {
		return b.prefillThroughDecode(in, cs)
	}
	return b.predict(fn, in, cs)
}

// prefillThroughDecode runs a prefill call as N decode calls, one per token (row i of the
// mask is the mask of token i alone), for a backend that loaded decode only.
func (b *Backend) prefillThroughDecode(in runtime.Inputs, cs *State) ([]float32, error) {
	n, c, v := len(in.InputIDs), b.it.Meta.ContextLength, b.it.Meta.VocabSize
	if len(in.PositionIDs) != n || len(in.CausalMask) != n*c {
		return nil, fmt.Errorf("coreml: prefill: %d ids, %d positions and %d mask values, want N, N and N·%d", n, len(in.PositionIDs), len(in.CausalMask), c)
	}
	out := make([]float32, 0, n*v)
	for i := range n {
		one := runtime.Inputs{InputIDs: in.InputIDs[i : i+1], PositionIDs: in.PositionIDs[i : i+1],
			CausalMask: in.CausalMask[i*c : (i+1)*c], CurrentPos: in.PositionIDs[i]}
		logits, err := b.predict(runtime.DecodeFunction, one, cs)
		if err != nil {
			return nil, fmt.Errorf("prefill token %d through decode: %w", i, err)
		}
		out = append(out, logits...)
	}
	return out, nil
}

// predict runs fn of every package in order; b.mu is held.
func (b *Backend) predict(fn string, in runtime.Inputs, cs *State) ([]float32, error) {
	var hidden *Array
	for i, c := range b.chunks {
		f, _ := c.it.Function(fn)
		logits, h, err := c.predict(f, in, hidden, cs.s[i], i == len(b.chunks)-1)
		if err != nil {
			if len(b.chunks) > 1 {
				err = fmt.Errorf("chunk %d: %w", i, err)
			}
			return nil, err
		}
		if logits != nil {
			return logits, nil
		}
		hidden = h
	}
	return nil, errors.New("coreml: backend holds no package")
}

// predict runs function f of one package: the last returns logits, the others their
// hidden states for the next.
func (c *chunk) predict(f *Function, in runtime.Inputs, hidden *Array, st state, last bool) ([]float32, *Array, error) {
	inputs, err := buildInputs(f, in, hidden)
	if err != nil {
		return nil, nil, err
	}
	if last {
		out, err := c.models[f.Name].predict(inputs, c.it.Meta.Logits(), st)
		if err != nil {
			return nil, nil, err
		}
		logits, err := readLogits(f, out, c.it.Meta.Logits())
		return logits, nil, err
	}
	out, err := c.models[f.Name].predict(inputs, []string{contract.HiddenStatesOut}, st)
	if err != nil {
		return nil, nil, err
	}
	want, _ := f.Output(contract.HiddenStatesOut)
	h := out[contract.HiddenStatesOut]
	if h == nil {
		return nil, nil, fmt.Errorf("coreml: function %s: %w", f.Name, nilResult(`-[MLFeatureProvider featureValueForName:] for "`+contract.HiddenStatesOut+`"`))
	}
	if !sameShape(h.Shape, want.Shape) {
		return nil, nil, fmt.Errorf("coreml: function %s: %s has shape %v, the package declares %v", f.Name, contract.HiddenStatesOut, h.Shape, want.Shape)
	}
	return nil, h, nil
}

// buildInputs marshals the contract inputs of one call into arrays of the types and
// shapes function f declares; a length that does not match the declared shape is an error,
// never a silent truncation.
func buildInputs(f *Function, in runtime.Inputs, hidden *Array) ([]*namedArray, error) {
	var out []*namedArray
	for _, feat := range f.Inputs {
		a, err := NewArray(feat.Type, feat.Shape)
		if err != nil {
			return nil, fmt.Errorf("coreml: function %s: input %s: %w", f.Name, feat.Name, err)
		}
		switch feat.Name {
		case "input_ids":
			err = a.SetInt32s(in.InputIDs)
		case "position_ids":
			err = a.SetInt32s(in.PositionIDs)
		case "current_pos":
			err = a.SetInt32s([]int32{in.CurrentPos})
		case "causal_mask":
			// −1e4 and 0 are exact in fp16 (runtime.MaskedScore), so the rounding in
			// SetFloat32s changes nothing.
			err = a.SetFloat32s(in.CausalMask)
		case contract.HiddenStates:
			err = copyValues(a, hidden)
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

// copyValues copies src into dst, an array of the same shape, converting the element type
// when they differ (Core ML may hand an fp16 tensor back as fp32, and the reverse).
func copyValues(dst, src *Array) error {
	if src == nil {
		return fmt.Errorf("no hidden states from the previous package")
	}
	if src.Type == dst.Type {
		return src.CopyTo(dst)
	}
	if !sameShape(src.Shape, dst.Shape) {
		return fmt.Errorf("shape %v, want %v", src.Shape, dst.Shape)
	}
	v, err := src.Float32s()
	if err != nil {
		return err
	}
	return dst.SetFloat32s(v)
}

// readLogits checks the logits arrays (names: contract.LogitsOutputs) against the declared
// outputs, converts them and joins split logits on the last axis.
func readLogits(f *Function, out map[string]*Array, names []string) ([]float32, error) {
	parts := make([][]float32, len(names))
	total, n := 0, 1
	for k, name := range names {
		want, _ := f.Output(name)
		a := out[name]
		if a == nil {
			return nil, fmt.Errorf("coreml: function %s: %w", f.Name, nilResult(`-[MLFeatureProvider featureValueForName:] for "`+name+`"`))
		}
		// An ML Program's outputs keep their declared shape; another shape means the compiled
		// model was not built from this package.
		if !sameShape(a.Shape, want.Shape) {
			return nil, fmt.Errorf("coreml: function %s: %s have shape %v, the package declares %v (is the compiled model built from this package?)", f.Name, name, a.Shape, want.Shape)
		}
		v, err := a.Float32s()
		if err != nil {
			return nil, fmt.Errorf("coreml: function %s: %s: %w", f.Name, name, err)
		}
		parts[k] = v
		total += len(v)
		if len(want.Shape) == 3 { // [1, N, part]
			n = int(want.Shape[1])
		}
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	joined := make([]float32, total)
	contract.JoinLogits(joined, n, parts)
	return joined, nil
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
		for _, s := range st.s {
			s.release()
		}
	}
	b.states = nil
	for _, c := range b.chunks {
		for _, m := range c.models {
			m.release()
		}
	}
	return nil
}

// Session is a runtime session over a Core ML backend that owns it: Close releases the
// loaded model. (runtime.Session's own closer is unexported; this wrapper is how a
// session from another package can own its backend.)
type Session struct {
	*runtime.Session
	Backend *Backend
	Report  OpenReport
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
	}{{runtime.DecodeFunction, 1}, {runtime.PrefillFunction, meta.PrefillChunk}} {
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
					in.CausalMask[i*meta.ContextLength+j] = runtime.MaskedScore
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
			for _, s := range st.s {
				s.release()
			}
			return
		}
	}
}
