package runtime

import (
	"errors"
	"fmt"
	"slices"

	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// The tensors that chain the packages of a chunked export: every package but the last
// outputs HiddenStatesOut (fp16), which the next package takes as its input HiddenStates
// (the first takes input_ids instead).
const (
	HiddenStates    = "hidden_states"
	HiddenStatesOut = "hidden_states_out"
)

// ReferenceBackend runs an exported package — or the packages of a chunked export, in order,
// each owning the KV states of its layers — with the pure-Go reference runtime.
//
// It keeps the input and output tensors of each function between calls and runs the models
// through PredictInto, so a steady decode loop allocates nothing; in exchange it is not safe
// for concurrent use, and the logits Predict returns are overwritten by its next call.
type ReferenceBackend struct {
	ms    []*reference.Model
	c     int              // context length, for the causal mask's shape
	calls map[string]*call // by function name
}

// call holds the tensors of one function's calls: the contract's inputs, and per package
// the input map (the contract's inputs, or hidden_states for a later chunk) and the outputs
// PredictInto overwrites.
type call struct {
	n                   int // tokens per call
	ids, pos, cur, mask *reference.Tensor
	maskSrc             []float32 // the caller's mask values that mask views
	ins, outs           []map[string]*reference.Tensor
}

// newCall allocates the tensors of fn's calls with n tokens over nm packages.
func newCall(n, c, nm int) *call {
	cl := &call{n: n,
		ids: reference.NewTensor(reference.Int32, 1, n),
		pos: reference.NewTensor(reference.Int32, n),
		cur: reference.NewTensor(reference.Int32, 1),
	}
	for i := 0; i < nm; i++ {
		in := map[string]*reference.Tensor{"position_ids": cl.pos, "current_pos": cl.cur} // causal_mask: set by Predict
		if i == 0 {
			in["input_ids"] = cl.ids
		} else {
			in[HiddenStates] = nil // set to the previous package's output at each call
		}
		cl.ins = append(cl.ins, in)
		cl.outs = append(cl.outs, map[string]*reference.Tensor{})
	}
	return cl
}

// NewReferenceBackend wraps opened packages (one, or the chunks of a chunked export in
// order) and reads its Meta from the function interfaces the contract fixes: C from the KV
// states' third dimension, N from prefill's position_ids [N], V from logits [1, N, V]. It
// checks that each chunk's hidden_states input has the shape of the previous chunk's
// hidden_states_out.
func NewReferenceBackend(ms ...*reference.Model) (*ReferenceBackend, Meta, error) {
	if len(ms) == 0 {
		return nil, Meta{}, errors.New("runtime: no package")
	}
	var meta Meta
	var prevHidden map[string][]int // function → shape of the previous chunk's hidden_states
	for i, m := range ms {
		hidden := map[string][]int{}
		for _, fn := range []string{PrefillFunction, DecodeFunction} {
			d, err := m.Describe(fn)
			if err != nil {
				return nil, Meta{}, fmt.Errorf("runtime: chunk %d: not a lilims package: %w", i, err)
			}
			want := "input_ids"
			if i > 0 {
				want = HiddenStates
			}
			found := false
			for _, in := range d.Inputs {
				switch {
				case in.Name == "position_ids" && len(in.Shape) == 1 && fn == PrefillFunction && i == 0:
					meta.PrefillChunk = in.Shape[0]
				case in.Name == want && i > 0:
					if !slices.Equal(in.Shape, prevHidden[fn]) {
						return nil, Meta{}, fmt.Errorf("runtime: chunk %d %s: input %s %v, the previous chunk outputs %v", i, fn, HiddenStates, in.Shape, prevHidden[fn])
					}
				}
				found = found || in.Name == want
			}
			if !found {
				return nil, Meta{}, fmt.Errorf("runtime: chunk %d %s: no %s input", i, fn, want)
			}
			want = "logits"
			if i < len(ms)-1 {
				want = HiddenStatesOut
			}
			found = false
			for _, o := range d.Outputs {
				if o.Name != want {
					continue
				}
				found = true
				if want == HiddenStatesOut {
					hidden[fn] = o.Shape
				} else if len(o.Shape) == 3 && fn == DecodeFunction {
					meta.VocabSize = o.Shape[2]
				}
			}
			if !found {
				return nil, Meta{}, fmt.Errorf("runtime: chunk %d %s: no %s output", i, fn, want)
			}
			for _, s := range d.States {
				if len(s.Shape) == 4 {
					if meta.ContextLength != 0 && meta.ContextLength != s.Shape[2] {
						return nil, Meta{}, fmt.Errorf("runtime: chunk %d: state %s holds %d positions, another %d", i, s.Name, s.Shape[2], meta.ContextLength)
					}
					meta.ContextLength = s.Shape[2]
				}
			}
		}
		prevHidden = hidden
	}
	if meta.PrefillChunk < 1 || meta.VocabSize < 1 || meta.ContextLength < 1 {
		return nil, Meta{}, fmt.Errorf("runtime: package does not follow the prefill/decode contract (position_ids, logits or KV states missing): %+v", meta)
	}
	return &ReferenceBackend{ms: ms, c: meta.ContextLength, calls: map[string]*call{}}, meta, nil
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
			ins["causal_mask"] = m
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
			logits, ok := cl.outs[i]["logits"]
			if !ok {
				return nil, fmt.Errorf("runtime: %s produced no logits", fn)
			}
			return logits.Float32s(), nil
		}
		h, ok := cl.outs[i][HiddenStatesOut]
		if !ok {
			return nil, fmt.Errorf("runtime: chunk %d %s produced no %s", i, fn, HiddenStatesOut)
		}
		cl.ins[i+1][HiddenStates] = h
	}
	return nil, errors.New("runtime: backend holds no package")
}

// Models returns the underlying reference models, in run order.
func (b *ReferenceBackend) Models() []*reference.Model { return slices.Clone(b.ms) }
