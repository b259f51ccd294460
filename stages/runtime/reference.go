package runtime

import (
	"errors"
	"fmt"
	"slices"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// ReferenceBackend runs an exported package — or the packages of a chunked export, in order,
// each owning the KV states of its layers — with the pure-Go reference runtime.
//
// It keeps the input and output tensors of each function between calls and runs the models
// through PredictInto, so a steady decode loop allocates nothing; in exchange it is not safe
// for concurrent use, and the logits Predict returns are overwritten by its next call.
type ReferenceBackend struct {
	ms     []*reference.Model
	c      int              // context length, for the causal mask's shape
	logits []string         // the last package's logits outputs (contract.LogitsOutputs)
	calls  map[string]*call // by function name
}

// call holds the tensors of one function's calls: the contract's inputs, and per package
// the input map (the contract's inputs, or hidden_states for a later chunk) and the outputs
// PredictInto overwrites.
type call struct {
	n                   int // tokens per call
	ids, pos, cur, mask *reference.Tensor
	maskSrc             []float32 // the caller's mask values that mask views
	ins, outs           []map[string]*reference.Tensor
	joined              []float32 // the logits joined from their parts, when split
}

// newCall allocates the tensors of fn's calls with n tokens over nm packages.
func newCall(n, c, nm int) *call {
	cl := &call{n: n,
		ids: reference.NewTensor(reference.Int32, 1, n),
		pos: reference.NewTensor(reference.Int32, n),
		cur: reference.NewTensor(reference.Int32, 1),
	}
	for i := 0; i < nm; i++ {
		in := map[string]*reference.Tensor{contract.PositionIDs: cl.pos, contract.CurrentPos: cl.cur} // causal_mask: set by Predict
		if i == 0 {
			in[contract.InputIDs] = cl.ids
		} else {
			in[contract.HiddenStates] = nil // set to the previous package's output at each call
		}
		cl.ins = append(cl.ins, in)
		cl.outs = append(cl.outs, map[string]*reference.Tensor{})
	}
	return cl
}

// NewReferenceBackend wraps opened packages (one, or the chunks of a chunked export in
// order) after checking them against the program contract (contract.Check), which also
// gives their Meta.
func NewReferenceBackend(ms ...*reference.Model) (*ReferenceBackend, Meta, error) {
	if len(ms) == 0 {
		return nil, Meta{}, errors.New("runtime: no package")
	}
	descs := make([]contract.Description, len(ms))
	for i, m := range ms {
		descs[i] = describe(m)
	}
	meta, err := contract.CheckOne(descs)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("runtime: %w", err)
	}
	return &ReferenceBackend{ms: ms, c: meta.ContextLength, logits: meta.Logits(), calls: map[string]*call{}}, meta, nil
}

// describe reads the contract's view of a reference model: its metadata and the interface
// of each of its functions.
func describe(m *reference.Model) contract.Description {
	d := contract.Description{Metadata: m.Metadata()}
	features := func(fs []reference.Feature) []contract.Feature {
		out := make([]contract.Feature, len(fs))
		for i, f := range fs {
			out[i] = contract.Feature{Name: f.Name, Type: dtypes[f.DType], Shape: f.Shape}
		}
		return out
	}
	for _, name := range m.Functions() {
		fd, err := m.Describe(name)
		if err != nil {
			continue
		}
		d.Functions = append(d.Functions, contract.Function{Name: name,
			Inputs: features(fd.Inputs), Outputs: features(fd.Outputs), States: features(fd.States)})
	}
	return d
}

var dtypes = map[reference.DType]contract.DType{
	reference.Int32:   contract.Int32,
	reference.Float16: contract.Float16,
	reference.Float32: contract.Float32,
}

// OpenReference opens path with the reference runtime (default options, fp16-faithful) and
// returns a session that owns it. path is a .mlpackage or the directory of a chunked export
// (one holding mlpackage.ChunkIndexFile).
func OpenReference(path string) (*Session, error) {
	return OpenReferenceOptions(path, reference.Options{})
}

// OpenReferenceOptions is OpenReference with explicit reference-runtime options (for
// example reference.FP32 precision).
func OpenReferenceOptions(path string, opts reference.Options) (*Session, error) {
	pkgs, err := mlpackage.PackagesAt(path)
	if err != nil {
		return nil, err
	}
	var ms models
	for _, p := range pkgs {
		m, err := reference.Open(p, opts)
		if err != nil {
			ms.Close()
			return nil, err
		}
		ms = append(ms, m)
	}
	b, meta, err := NewReferenceBackend(ms...)
	if err != nil {
		ms.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := NewSession(b, meta)
	s.close = ms
	return s, nil
}

// models closes every model it holds.
type models []*reference.Model

func (ms models) Close() error {
	var errs []error
	for _, m := range ms {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// chunkStates is the state of a chunked backend: one per package.
type chunkStates []*reference.State

// NewState implements Backend.
func (b *ReferenceBackend) NewState() (State, error) {
	st := make(chunkStates, len(b.ms))
	for i, m := range b.ms {
		s, err := m.NewState(DecodeFunction)
		if err != nil {
			return nil, err
		}
		st[i] = s
	}
	return st, nil
}

// Predict implements Backend: it runs fn of every package in order, handing each the
// previous one's hidden_states. The returned logits stay valid until the next call.
func (b *ReferenceBackend) Predict(fn string, in Inputs, st State) ([]float32, error) {
	rs, ok := st.(chunkStates)
	if !ok || len(rs) != len(b.ms) {
		return nil, fmt.Errorf("runtime: state %T is not a reference state of this backend", st)
	}
	n := len(in.InputIDs)
	if n < 1 || len(in.PositionIDs) != n || len(in.CausalMask) != n*b.c {
		return nil, fmt.Errorf("runtime: %s: %d input ids, %d positions and %d mask values; want N ≥ 1, N and N·%d",
			fn, n, len(in.PositionIDs), len(in.CausalMask), b.c)
	}
	cl := b.calls[fn]
	if cl == nil || cl.n != n {
		cl = newCall(n, b.c, len(b.ms))
		b.calls[fn] = cl
	}
	copy(cl.ids.Int32s(), in.InputIDs)
	copy(cl.pos.Int32s(), in.PositionIDs)
	cl.cur.Int32s()[0] = in.CurrentPos
	// The mask goes in as the caller's values, unconverted: PredictInto reads (and rounds to
	// fp16) only the keys the call covers, so the N·C values are not copied on every call.
	// The view is remade only when the caller hands another buffer (a Session reuses its own).
	if len(cl.maskSrc) == 0 || &cl.maskSrc[0] != &in.CausalMask[0] {
		m, err := reference.FromFloat32(reference.Float32, []int{1, 1, n, b.c}, in.CausalMask)
		if err != nil {
			return nil, fmt.Errorf("runtime: %s: causal mask: %w", fn, err)
		}
		cl.mask, cl.maskSrc = m, in.CausalMask
		for _, ins := range cl.ins {
			ins[contract.CausalMask] = m
		}
	}
	for i, m := range b.ms {
		if err := m.PredictInto(fn, cl.ins[i], rs[i], cl.outs[i]); err != nil {
			if len(b.ms) > 1 {
				return nil, fmt.Errorf("chunk %d: %w", i, err)
			}
			return nil, err
		}
		if i == len(b.ms)-1 {
			return b.joinLogits(fn, cl, cl.outs[i])
		}
		h, ok := cl.outs[i][contract.HiddenStatesOut]
		if !ok {
			return nil, fmt.Errorf("runtime: chunk %d %s produced no %s", i, fn, contract.HiddenStatesOut)
		}
		cl.ins[i+1][contract.HiddenStates] = h
	}
	return nil, errors.New("runtime: backend holds no package")
}

// joinLogits returns the logits of a call: the one logits output, or its parts joined on
// the last axis (contract.JoinLogits) into a buffer the call keeps.
func (b *ReferenceBackend) joinLogits(fn string, cl *call, out map[string]*reference.Tensor) ([]float32, error) {
	parts := make([][]float32, len(b.logits))
	total := 0
	for k, name := range b.logits {
		t, ok := out[name]
		if !ok {
			return nil, fmt.Errorf("runtime: %s produced no %s", fn, name)
		}
		parts[k] = t.Float32s()
		total += len(parts[k])
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	if len(cl.joined) != total {
		cl.joined = make([]float32, total)
	}
	contract.JoinLogits(cl.joined, cl.n, parts)
	return cl.joined, nil
}

// Models returns the underlying reference models, in run order.
func (b *ReferenceBackend) Models() []*reference.Model { return slices.Clone(b.ms) }
