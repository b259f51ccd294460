package runtime

import (
	"fmt"

	"github.com/lilims/lilims/stages/runtime/reference"
)

// ReferenceBackend runs an exported package with the pure-Go reference runtime.
type ReferenceBackend struct {
	m *reference.Model
	c int // context length, for the causal mask's shape
}

// NewReferenceBackend wraps an opened package and reads its Meta from the function
// interfaces the contract fixes: C from the KV states' third dimension, N from prefill's
// input_ids [1, N], V from logits [1, N, V].
func NewReferenceBackend(m *reference.Model) (*ReferenceBackend, Meta, error) {
	pre, err := m.Describe(PrefillFunction)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("runtime: not a lilims package: %w", err)
	}
	dec, err := m.Describe(DecodeFunction)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("runtime: not a lilims package: %w", err)
	}
	var meta Meta
	for _, in := range pre.Inputs {
		if in.Name == "input_ids" && len(in.Shape) == 2 {
			meta.PrefillChunk = in.Shape[1]
		}
	}
	for _, o := range dec.Outputs {
		if o.Name == "logits" && len(o.Shape) == 3 {
			meta.VocabSize = o.Shape[2]
		}
	}
	for _, s := range dec.States {
		if len(s.Shape) == 4 {
			meta.ContextLength = s.Shape[2]
		}
	}
	if meta.PrefillChunk < 1 || meta.VocabSize < 1 || meta.ContextLength < 1 {
		return nil, Meta{}, fmt.Errorf("runtime: package does not follow the prefill/decode contract (input_ids, logits or KV states missing): %+v", meta)
	}
	return &ReferenceBackend{m: m, c: meta.ContextLength}, meta, nil
}

// OpenReference opens the package at pkgDir with the reference runtime (default options,
// fp16-faithful) and returns a session that owns it.
func OpenReference(pkgDir string) (*Session, error) {
	return OpenReferenceOptions(pkgDir, reference.Options{})
}

// OpenReferenceOptions is OpenReference with explicit reference-runtime options (for
// example reference.FP32 precision).
func OpenReferenceOptions(pkgDir string, opts reference.Options) (*Session, error) {
	m, err := reference.Open(pkgDir, opts)
	if err != nil {
		return nil, err
	}
	b, meta, err := NewReferenceBackend(m)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", pkgDir, err)
	}
	s := NewSession(b, meta)
	s.close = m
	return s, nil
}

// NewState implements Backend.
func (b *ReferenceBackend) NewState() (State, error) { return b.m.NewState(DecodeFunction) }

// Predict implements Backend.
func (b *ReferenceBackend) Predict(fn string, in Inputs, st State) ([]float32, error) {
	rs, ok := st.(*reference.State)
	if !ok {
		return nil, fmt.Errorf("runtime: state %T is not a reference state", st)
	}
	n := len(in.InputIDs)
	ids, err := reference.FromInt32([]int{1, n}, in.InputIDs)
	if err != nil {
		return nil, err
	}
	pos, err := reference.FromInt32([]int{n}, in.PositionIDs)
	if err != nil {
		return nil, err
	}
	cur, err := reference.FromInt32([]int{1}, []int32{in.CurrentPos})
	if err != nil {
		return nil, err
	}
	// FromFloat32 rounds fp16 in place and keeps the slice: hand it a copy so the caller's
	// mask stays as built (its values are exact in fp16 anyway).
	mask, err := reference.FromFloat32(reference.Float16, []int{1, 1, n, b.c}, append([]float32(nil), in.CausalMask...))
	if err != nil {
		return nil, err
	}
	out, err := b.m.Predict(fn, map[string]*reference.Tensor{
		"input_ids": ids, "position_ids": pos, "causal_mask": mask, "current_pos": cur,
	}, rs)
	if err != nil {
		return nil, err
	}
	logits, ok := out["logits"]
	if !ok {
		return nil, fmt.Errorf("runtime: %s produced no logits", fn)
	}
	return logits.Float32s(), nil
}

// Model returns the underlying reference model.
func (b *ReferenceBackend) Model() *reference.Model { return b.m }
