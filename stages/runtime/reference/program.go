package reference

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// Precision selects how float results are rounded between ops.
type Precision int

const (
	// FP16Faithful rounds the result of every op whose declared output dtype is fp16 to
	// fp16, as Core ML's fp16 execution does. It is the default.
	FP16Faithful Precision = iota
	// FP32 keeps every float result in float32, whatever the declared dtype.
	FP32
)

// Options configure a Model.
type Options struct {
	Precision Precision
	// Threads is the number of goroutines matmul-like kernels use; 0 means runtime.NumCPU().
	Threads int

	// HalfWeights materialises every weight a constexpr decompression op declares fp16 as
	// an fp16 tensor at Open, computed as coremltools' decompress does (mil/ops/defs/iOS18/
	// compression.py: the data cast to the scale's dtype, then data − offset and
	// scale·(data − offset) each rounded to it), so a compressed weight is what Core ML
	// holds once it has decompressed it. By default the fused kernels compute with the
	// exact products s·(q − o) and the model takes about its package's size in memory;
	// this takes 2 bytes a weight. Tests compare packages weight for weight with it.
	HalfWeights bool

	// Observe, when set, is called after every op of every Predict call with the op and
	// its inputs (see ObservedOp), from the goroutine running Predict. Nil costs nothing.
	Observe func(op *ObservedOp)

	// copyStates turns off in-place state updates (stateAliases), for tests that check
	// that both ways compute the same.
	copyStates bool
	// copyViews makes reshapes and contiguous slices copy (compiler.mayView), likewise.
	copyViews bool
	// allKeys makes every call run over all C keys of the KV states (keys.go), likewise.
	allKeys bool
}

// Feature describes one input, output or state of a function.
type Feature struct {
	Name  string
	DType DType
	Shape []int // -1 for a dimension that is only known at run time
}

// FunctionDescription is the interface of one function of the program.
type FunctionDescription struct {
	Name    string
	Inputs  []Feature
	Outputs []Feature
	States  []Feature
}

// Model is an opened ML Program, ready to run. Predict calls on one function are serialised;
// calls on different functions may run concurrently.
type Model struct {
	opts     Options
	pool     *workerPool
	funcs    map[string]*function
	names    []string
	deflt    string
	metadata map[string]string
	closers  []func() error
	closeErr error
	once     sync.Once
}

// function is one compiled MIL function: its buffers and its steps in program order.
type function struct {
	desc    FunctionDescription
	mu      sync.Mutex
	inputs  []*Tensor // one per desc.Inputs, filled by Predict
	outputs []*Tensor // the block's output values
	steps   []step
	state   *State // the state of the running Predict call
	// Keys (see keys.go): keys is R, the key positions the running call covers; C when
	// the function does not follow its key axis (dynKeys false), else set per call from
	// the causal mask, input maskIn.
	keys, keyExtent int
	dynKeys         bool
	maskIn          int
	finish          []func() // run at the end of every call (see stateAliases)
	rounder         roundTask
}

// roundTask rounds v to fp16, split over workers for large outputs (attention scores).
type roundTask struct{ v []float32 }

func (t *roundTask) runRange(_, lo, hi int) { roundSliceFP16(t.v[lo:hi]) }

// step is one compiled op.
type step struct {
	typ, name string
	run       func() error
	outs      []*Tensor
	declared  [][]int     // declared output shapes (-1 = unknown), checked after run
	round     []bool      // whether output i is rounded to fp16 after run
	observed  *ObservedOp // what Options.Observe is shown after run (nil: no observer)
}

// Metadata returns a copy of the user-defined metadata of the model description (for a
// lilims package: lilims.contract, lilims.arch, lilims.context_length, …).
func (m *Model) Metadata() map[string]string {
	if m.metadata == nil {
		return map[string]string{}
	}
	return maps.Clone(m.metadata)
}

// Functions returns the names of the program's functions, sorted.
func (m *Model) Functions() []string { return slices.Clone(m.names) }

// DefaultFunction returns the function Predict runs when given the empty name: the model's
// defaultFunctionName, or the only function, or "main".
func (m *Model) DefaultFunction() string { return m.deflt }

// Describe returns the inputs, outputs and states of function fn ("" = default).
func (m *Model) Describe(fn string) (FunctionDescription, error) {
	f, err := m.function(fn)
	if err != nil {
		return FunctionDescription{}, err
	}
	return f.desc, nil
}

func (m *Model) function(fn string) (*function, error) {
	if fn == "" {
		fn = m.deflt
	}
	f, ok := m.funcs[fn]
	if !ok {
		return nil, fmt.Errorf("reference: no function %q (have %v)", fn, m.names)
	}
	return f, nil
}

// Close releases the workers and the mapped weight files. Tensors returned by Predict stay valid.
func (m *Model) Close() error {
	m.once.Do(func() {
		m.pool.close()
		for _, c := range m.closers {
			if err := c(); err != nil && m.closeErr == nil {
				m.closeErr = err
			}
		}
	})
	return m.closeErr
}

// State holds the state tensors of one conversation (the KV cache), zero-initialised. States
// are declared fp16 and every value they hold is rounded to fp16; the values are kept as
// float32 so that read_state, slice_update and write_state on the same state can work in
// place (see stateAliases) instead of converting the whole cache on every call. A State must
// not be used by two Predict calls at the same time.
type State struct {
	names []string
	vals  map[string]*stateTensor
}

type stateTensor struct {
	shape []int     // as declared
	rows  int       // rank 4 ([1, n_head_kv, C, head_dim]): positions held, the rest being zero
	v     []float32 // fp16-exact values: rank 4 as [shape[0], shape[1], rows, shape[3]]
}

// newStateTensor returns a zero state of the declared shape. A rank-4 (KV) state holds no
// position yet: its storage grows as calls write positions (see grow).
func newStateTensor(shape []int) *stateTensor {
	t := &stateTensor{shape: slices.Clone(shape)}
	if len(shape) != 4 {
		t.v = make([]float32, numElements(shape))
	}
	return t
}

// viewShape is the shape of the storage: the declared one with rows positions.
func (t *stateTensor) viewShape(dst []int) []int {
	dst = append(dst[:0], t.shape...)
	if len(t.shape) == 4 {
		dst[2] = t.rows
	}
	return dst
}

// grow makes a KV state hold at least rows positions (at most its declared C), moving each
// head's rows to the larger storage; the new rows are zero, as they were.
func (t *stateTensor) grow(rows int) {
	if len(t.shape) != 4 || rows <= t.rows {
		return
	}
	rows = min(rows, t.shape[2])
	heads, d := t.shape[0]*t.shape[1], t.shape[3]
	v := make([]float32, heads*rows*d)
	for h := range heads {
		copy(v[h*rows*d:], t.v[h*t.rows*d:(h+1)*t.rows*d])
	}
	t.v, t.rows = v, rows
}

// full returns the state's values in the declared shape.
func (t *stateTensor) full() []float32 {
	if len(t.shape) != 4 || t.rows == t.shape[2] {
		return t.v
	}
	out := make([]float32, numElements(t.shape))
	heads, c, d := t.shape[0]*t.shape[1], t.shape[2], t.shape[3]
	for h := range heads {
		copy(out[h*c*d:], t.v[h*t.rows*d:(h+1)*t.rows*d])
	}
	return out
}

// Bytes returns the memory the state's values take (float32 per value): a KV state's grows
// with the positions its calls have written, not with the exported context.
func (s *State) Bytes() int64 {
	var n int64
	for _, t := range s.vals {
		n += int64(len(t.v)) * 4
	}
	return n
}

// NewState returns zero-initialised state for function fn ("" = default).
func (m *Model) NewState(fn string) (*State, error) {
	f, err := m.function(fn)
	if err != nil {
		return nil, err
	}
	st := &State{vals: map[string]*stateTensor{}}
	for _, s := range f.desc.States {
		st.names = append(st.names, s.Name)
		st.vals[s.Name] = newStateTensor(s.Shape)
	}
	return st, nil
}

// Names returns the state names in declaration order.
func (s *State) Names() []string { return slices.Clone(s.names) }

// Get returns a copy of state name as a Float16 tensor.
func (s *State) Get(name string) (*Tensor, error) {
	v, ok := s.vals[name]
	if !ok {
		return nil, fmt.Errorf("reference: no state %q", name)
	}
	t := NewTensor(Float16, v.shape...)
	copy(t.f32, v.full())
	return t, nil
}

// Set replaces the contents of state name with t (rounded to fp16); shapes must match.
func (s *State) Set(name string, t *Tensor) error {
	v, ok := s.vals[name]
	if !ok {
		return fmt.Errorf("reference: no state %q", name)
	}
	if !sameShape(v.shape, t.Shape) || !t.DType.IsFloat() {
		return fmt.Errorf("reference: state %q is fp16%v, got %v", name, v.shape, t)
	}
	if len(v.shape) == 4 {
		v.grow(v.shape[2])
	}
	for i, f := range t.Float32s() {
		v.v[i] = roundFP16(f)
	}
	return nil
}

// Predict runs function fn ("" = default) on inputs, reading and updating st (which may be
// nil for a function without states). It returns fresh output tensors.
func (m *Model) Predict(fn string, inputs map[string]*Tensor, st *State) (map[string]*Tensor, error) {
	out := map[string]*Tensor{}
	if err := m.PredictInto(fn, inputs, st, out); err != nil {
		return nil, err
	}
	return out, nil
}

// PredictInto is Predict writing into outputs: a tensor already there under an output's
// name and with its dtype is resized and overwritten, reusing its storage; any other entry
// is replaced by a new tensor. A caller that passes the same map on every call (a decode
// loop) makes steady-state calls allocate nothing.
func (m *Model) PredictInto(fn string, inputs map[string]*Tensor, st *State, outputs map[string]*Tensor) error {
	f, err := m.function(fn)
	if err != nil {
		return err
	}
	if err := f.checkInputs(inputs, st); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, in := range f.desc.Inputs {
		t := inputs[in.Name]
		if f.dynKeys && i == f.maskIn {
			continue // coverKeys copies the keys the call covers
		}
		buf := f.inputs[i]
		buf.setShape(t.Shape)
		switch buf.DType {
		case Float16:
			for j, v := range t.Float32s() {
				buf.f32[j] = roundFP16(v)
			}
		case Float32:
			copy(buf.f32, t.Float32s())
		case Int32:
			copy(buf.i32, t.i32)
		case Bool:
			copy(buf.b, t.b)
		}
	}
	f.state = st
	f.coverKeys(inputs)
	defer func() {
		// Writes to an aliased state are rounded to fp16 last, after the function's other
		// ops have read the unrounded values, as write_state's copy would have left them.
		for _, fin := range f.finish {
			fin()
		}
		f.state = nil
	}()
	for i := range f.steps {
		s := &f.steps[i]
		if err := s.run(); err != nil {
			return fmt.Errorf("reference: function %s: op %s (%s): %w", f.desc.Name, s.name, s.typ, err)
		}
		for j, o := range s.outs {
			if d := s.declared[j]; d != nil && !shapeMatches(o.Shape, d) {
				return fmt.Errorf("reference: function %s: op %s (%s): output %d has shape %v, declared %v",
					f.desc.Name, s.name, s.typ, j, o.Shape, d)
			}
			if s.round[j] && m.opts.Precision == FP16Faithful {
				f.rounder.v = o.f32
				m.pool.parallel(len(o.f32), minParallelWork, &f.rounder)
			}
		}
		if s.observed != nil {
			m.opts.Observe(s.observed)
		}
	}
	for i, o := range f.desc.Outputs {
		dst := outputs[o.Name]
		if dst == nil || dst.DType != f.outputs[i].DType {
			outputs[o.Name] = f.outputs[i].clone()
			continue
		}
		dst.setShape(f.outputs[i].Shape)
		copyElems(dst, 0, f.outputs[i], 0, dst.Len())
	}
	return nil
}

func shapeMatches(got, declared []int) bool {
	if len(got) != len(declared) {
		return false
	}
	for i, d := range declared {
		if d >= 0 && got[i] != d {
			return false
		}
	}
	return true
}

// ErrInput is wrapped by errors about the inputs or state passed to Predict.
var ErrInput = errors.New("invalid input")

func (f *function) checkInputs(inputs map[string]*Tensor, st *State) error {
	known := map[string]bool{}
	for _, in := range f.desc.Inputs {
		known[in.Name] = true
		t, ok := inputs[in.Name]
		if !ok || t == nil {
			return fmt.Errorf("reference: function %s: %w: missing input %q (%v%v)", f.desc.Name, ErrInput, in.Name, in.DType, in.Shape)
		}
		okType := t.DType == in.DType || (in.DType.IsFloat() && t.DType.IsFloat())
		if !okType || !shapeMatches(t.Shape, in.Shape) {
			return fmt.Errorf("reference: function %s: %w: input %q is %v, want %v%v", f.desc.Name, ErrInput, in.Name, t, in.DType, in.Shape)
		}
		if n := t.Len(); (t.DType.IsFloat() && len(t.Float32s()) != n) || (t.DType == Int32 && len(t.i32) != n) || (t.DType == Bool && len(t.b) != n) {
			return fmt.Errorf("reference: function %s: %w: input %q has shape %v but %d values", f.desc.Name, ErrInput, in.Name, t.Shape, n)
		}
	}
	for name := range inputs {
		if !known[name] {
			return fmt.Errorf("reference: function %s: %w: unknown input %q", f.desc.Name, ErrInput, name)
		}
	}
	if len(f.desc.States) > 0 {
		if st == nil {
			return fmt.Errorf("reference: function %s: %w: needs a State (see NewState)", f.desc.Name, ErrInput)
		}
		for _, s := range f.desc.States {
			v, ok := st.vals[s.Name]
			if !ok || !sameShape(v.shape, s.Shape) {
				return fmt.Errorf("reference: function %s: %w: state %q missing or not fp16%v", f.desc.Name, ErrInput, s.Name, s.Shape)
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// dtypeOf maps a MIL DataType to the runtime's dtype. Wider integer constants are held as
// Int32 (the runtime's only full integer type).
func dtypeOf(d milpb.DataType) (DType, bool) {
	switch d {
	case milpb.DataType_FLOAT16:
		return Float16, true
	case milpb.DataType_FLOAT32, milpb.DataType_FLOAT64:
		return Float32, true
	case milpb.DataType_INT32, milpb.DataType_INT64, milpb.DataType_INT16, milpb.DataType_UINT16, milpb.DataType_UINT32:
		return Int32, true
	case milpb.DataType_BOOL:
		return Bool, true
	case milpb.DataType_INT8:
		return Int8, true
	case milpb.DataType_UINT8:
		return Uint8, true
	case milpb.DataType_INT4:
		return Int4, true
	case milpb.DataType_UINT4:
		return Uint4, true
	}
	return Invalid, false
}
