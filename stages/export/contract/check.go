package contract

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// DType is the element type of a feature, as the model description declares it.
type DType int

// The element types of the contract's features; Other is any other.
const (
	Other DType = iota
	Int32
	Float16
	Float32
)

func (d DType) String() string {
	switch d {
	case Int32:
		return "int32"
	case Float16:
		return "float16"
	case Float32:
		return "float32"
	}
	return "other"
}

// Feature is one input, output or state of a function.
type Feature struct {
	Name  string
	Type  DType
	Shape []int
}

func (f Feature) String() string { return fmt.Sprintf("%s %v", f.Type, f.Shape) }

// Function is the interface of one function.
type Function struct {
	Name                    string
	Inputs, Outputs, States []Feature
}

func find(fs []Feature, name string) (Feature, bool) {
	i := slices.IndexFunc(fs, func(f Feature) bool { return f.Name == name })
	if i < 0 {
		return Feature{}, false
	}
	return fs[i], true
}

// Description is what one package declares: its user-defined metadata and its functions.
type Description struct {
	Metadata  map[string]string
	Functions []Function
}

// Meta is what a host needs to build the inputs of a package's calls.
type Meta struct {
	ContextLength int `json:"context_length"` // C: rows of the KV states, the longest sequence the package holds
	PrefillChunk  int `json:"prefill_chunk"`  // N of the prefill function
	VocabSize     int `json:"vocab_size"`     // V: logits per token
	// LogitsParts is 0 when the last package outputs Logits, else the number K of the
	// parts logits_0 … logits_{K−1} a host joins (LogitsOutputs; see Meta.Logits).
	LogitsParts int `json:"logits_parts,omitempty"`
}

// Logits names the last package's logits outputs in vocabulary order.
func (m Meta) Logits() []string { return logitsNames(m.LogitsParts) }

// VersionError is a package written for another contract version.
type VersionError struct {
	Have string // the package's KeyVersion ("" when absent)
}

func (e *VersionError) Error() string {
	if e.Have == "" {
		return fmt.Sprintf("not a lilims package: no %s metadata (this lilims runs contract version %d)", KeyVersion, Version)
	}
	return fmt.Sprintf("package follows lilims contract version %s, this lilims runs version %d: re-export it from its GGUF", e.Have, Version)
}

// CheckVersion checks a package's metadata for this contract's version.
func CheckVersion(md map[string]string) error {
	if have := md[KeyVersion]; have != strconv.Itoa(Version) {
		return &VersionError{Have: have}
	}
	return nil
}

// Check checks the packages of an export in run order (one package, or the chunks of a
// chunked export) against the contract and returns the Meta they share. Every problem is
// reported, each naming the chunk (when there are several), function and feature; a
// package of another contract version is reported alone, in one line naming both versions.
func Check(pkgs []Description) (Meta, []error) {
	if len(pkgs) == 0 {
		return Meta{}, []error{errors.New("no package")}
	}
	c := &checker{n: len(pkgs)}
	for i := range pkgs {
		if err := CheckVersion(pkgs[i].Metadata); err != nil {
			return Meta{}, []error{c.where(i, "", err)}
		}
	}
	var prevHidden map[string]Feature
	for i, p := range pkgs {
		prevHidden = c.pkg(i, p, prevHidden)
	}
	return c.meta, c.errs
}

// CheckOne is Check for hosts that stop at the first problem.
func CheckOne(pkgs []Description) (Meta, error) {
	meta, errs := Check(pkgs)
	if len(errs) > 0 {
		return Meta{}, errs[0]
	}
	return meta, nil
}

type checker struct {
	n    int // packages
	meta Meta
	errs []error
}

func (c *checker) where(i int, fn string, err error) error {
	var parts []string
	if c.n > 1 {
		parts = append(parts, "chunk "+strconv.Itoa(i))
	}
	if fn != "" {
		parts = append(parts, "function "+fn)
	}
	if len(parts) == 0 {
		return err
	}
	return fmt.Errorf("%s: %w", strings.Join(parts, " "), err)
}

func (c *checker) failf(i int, fn, format string, args ...any) {
	c.errs = append(c.errs, c.where(i, fn, fmt.Errorf(format, args...)))
}

// setMeta records one of C, N or V, reporting a disagreement with what an earlier function
// or package declared.
func (c *checker) setMeta(i int, fn string, dst *int, v int, what string) {
	if *dst != 0 && *dst != v {
		c.failf(i, fn, "%s is %d, another function declares %d", what, v, *dst)
		return
	}
	*dst = v
}

// pkg checks package i and returns its hidden_states_out per function.
func (c *checker) pkg(i int, p Description, prevHidden map[string]Feature) map[string]Feature {
	first, last := i == 0, i == c.n-1
	hidden := map[string]Feature{}
	var states []Feature
	for _, name := range Functions {
		j := slices.IndexFunc(p.Functions, func(f Function) bool { return f.Name == name })
		if j < 0 {
			have := make([]string, len(p.Functions))
			for k, f := range p.Functions {
				have[k] = f.Name
			}
			c.failf(i, "", "no function %q (have %v; a lilims package has %s and %s)", name, have, Prefill, Decode)
			continue
		}
		f := p.Functions[j]
		if !c.dims(i, f) {
			continue
		}
		n := c.inputs(i, f, first, prevHidden)
		if name == Decode && n != 1 && n != 0 {
			c.failf(i, name, "takes %d tokens, want 1", n)
		}
		if name == Prefill && n > 0 {
			c.setMeta(i, name, &c.meta.PrefillChunk, n, "the prefill chunk")
		}
		if h, ok := c.outputs(i, f, n, last, p.Metadata); ok {
			hidden[name] = h
		}
		c.states(i, f)
		if states == nil {
			states = f.States
		} else if !slices.EqualFunc(states, f.States, sameFeature) {
			c.failf(i, "", "%s and %s declare different states; one state must serve both", Prefill, Decode)
		}
	}
	return hidden
}

// dims reports whether every dimension f declares is positive.
func (c *checker) dims(i int, f Function) bool {
	ok := true
	for _, list := range []struct {
		kind string
		fs   []Feature
	}{{"input", f.Inputs}, {"output", f.Outputs}, {"state", f.States}} {
		for _, x := range list.fs {
			for k, d := range x.Shape {
				if d < 1 {
					c.failf(i, f.Name, "%s %q: dimension %d is %d", list.kind, x.Name, k, d)
					ok = false
				}
			}
		}
	}
	return ok
}

// inputs checks f's inputs and returns its N (0 when it cannot be read).
func (c *checker) inputs(i int, f Function, first bool, prevHidden map[string]Feature) int {
	fail := func(format string, args ...any) { c.failf(i, f.Name, format, args...) }
	get := func(name string, dt DType, rank int) (Feature, bool) {
		in, ok := find(f.Inputs, name)
		switch {
		case !ok:
			fail("no input %q", name)
		case in.Type != dt:
			fail("input %q is %v, want %v", name, in.Type, dt)
		case len(in.Shape) != rank:
			fail("input %q has shape %v, want rank %d", name, in.Shape, rank)
		default:
			return in, true
		}
		return in, false
	}
	n := 0
	lead := InputIDs
	if first {
		if ids, ok := get(InputIDs, Int32, 2); ok {
			if ids.Shape[0] != 1 || ids.Shape[1] < 1 {
				fail("%s has shape %v, want [1, N]", InputIDs, ids.Shape)
			} else {
				n = ids.Shape[1]
			}
		}
	} else {
		lead = HiddenStates
		if _, ok := find(f.Inputs, InputIDs); ok {
			fail("input %q belongs to the first chunk only", InputIDs)
		}
		if h, ok := find(f.Inputs, HiddenStates); !ok {
			fail("no input %q: every chunk but the first takes the previous one's %s", HiddenStates, HiddenStatesOut)
		} else if prev, ok := prevHidden[f.Name]; ok && (h.Type != prev.Type || !slices.Equal(h.Shape, prev.Shape)) {
			fail("%s is %v, the previous chunk outputs %v", HiddenStates, h, prev)
		}
	}
	if pos, ok := get(PositionIDs, Int32, 1); ok {
		if n == 0 {
			n = pos.Shape[0]
		} else if pos.Shape[0] != n {
			fail("%s has shape %v, want [%d]", PositionIDs, pos.Shape, n)
		}
	}
	if mask, ok := get(CausalMask, Float16, 4); ok {
		s := mask.Shape
		if s[0] != 1 || s[1] != 1 || s[2] != n || s[3] < n {
			fail("%s has shape %v, want [1, 1, %d, C] with C ≥ %d", CausalMask, s, n, n)
		} else {
			c.setMeta(i, f.Name, &c.meta.ContextLength, s[3], "the context (causal_mask's last dimension)")
		}
	}
	if cur, ok := get(CurrentPos, Int32, 1); ok && cur.Shape[0] != 1 {
		fail("%s has shape %v, want [1]", CurrentPos, cur.Shape)
	}
	if len(f.Inputs) != 4 {
		fail("has %d inputs, want %s, %s, %s and %s", len(f.Inputs), lead, PositionIDs, CausalMask, CurrentPos)
	}
	return n
}

// outputs checks f's outputs: logits fp32 [1, N, n_vocab] from the last package,
// hidden_states_out fp16 from the others. It returns hidden_states_out.
func (c *checker) outputs(i int, f Function, n int, last bool, md map[string]string) (Feature, bool) {
	fail := func(format string, args ...any) { c.failf(i, f.Name, format, args...) }
	if !last {
		if len(f.Outputs) != 1 {
			fail("has %d outputs, want only %s", len(f.Outputs), HiddenStatesOut)
		}
		if _, ok := find(f.Outputs, Logits); ok {
			fail("output %q belongs to the last chunk only", Logits)
		}
		h, ok := find(f.Outputs, HiddenStatesOut)
		switch {
		case !ok:
			fail("no output %q: every chunk but the last hands its hidden state on", HiddenStatesOut)
		case h.Type != Float16:
			fail("output %q is %v, want float16", HiddenStatesOut, h.Type)
		}
		return h, ok
	}
	v, err := strconv.Atoi(md[KeyVocabSize])
	if err != nil || v < 1 {
		fail("metadata %s is %q, want n_vocab", KeyVocabSize, md[KeyVocabSize])
		return Feature{}, false
	}
	names := LogitsOutputs(md[KeyLayout], v)
	bounds := VocabParts(v)
	if len(names) == 1 {
		bounds = []int{0, v}
	}
	if len(names) > 1 {
		if _, ok := find(f.Outputs, Logits); ok {
			fail("output %q has %d entries per token; the ane layout keeps every dimension ≤ %d and splits the logits into %s … %s",
				Logits, v, MaxDimension, names[0], names[len(names)-1])
		}
	}
	declared, shaped := 0, true // the vocabulary the outputs declare; all are [1, N, ·]
	for k, name := range names {
		lg, ok := find(f.Outputs, name)
		if !ok {
			fail("no output %q", name)
			shaped = false
			continue
		}
		if lg.Type != Float32 {
			fail("output %q is %v, want float32", name, lg.Type)
		}
		w := bounds[k+1] - bounds[k]
		if len(lg.Shape) == 3 {
			declared += lg.Shape[2]
		}
		switch {
		case len(lg.Shape) != 3 || lg.Shape[0] != 1 || lg.Shape[1] != n || lg.Shape[2] < 1:
			fail("%s have shape %v, want [1, %d, V]", name, lg.Shape, n)
			shaped = false
		case lg.Shape[2] != w && len(names) == 1:
			fail("%s have %d entries per token, the model's vocabulary (%s) has %d", name, lg.Shape[2], KeyVocabSize, v)
		case lg.Shape[2] != w:
			fail("%s have %d entries per token, part %d of the model's vocabulary (%s %d) has %d", name, lg.Shape[2], k, KeyVocabSize, v, w)
		}
	}
	if len(f.Outputs) != len(names) {
		fail("has %d outputs, want %s", len(f.Outputs), strings.Join(names, ", "))
	}
	if len(names) > 1 {
		c.meta.LogitsParts = len(names)
	}
	if shaped {
		c.setMeta(i, f.Name, &c.meta.VocabSize, declared, "the logits' last dimension")
	}
	return Feature{}, false
}

// states checks f's KV states: fp16 [1, H, C, D], named k_cache_<l> or v_cache_<l>.
func (c *checker) states(i int, f Function) {
	if len(f.States) == 0 {
		c.failf(i, f.Name, "declares no KV state")
	}
	for _, s := range f.States {
		var l int
		if _, err := fmt.Sscanf(s.Name, "k_cache_%d", &l); err != nil || KCache(l) != s.Name {
			if _, err := fmt.Sscanf(s.Name, "v_cache_%d", &l); err != nil || VCache(l) != s.Name {
				c.failf(i, f.Name, "state %q is not named k_cache_<layer> or v_cache_<layer>", s.Name)
			}
		}
		if s.Type != Float16 || len(s.Shape) != 4 || s.Shape[0] != 1 {
			c.failf(i, f.Name, "state %q is %v, want float16 [1, H, C, D]", s.Name, s)
			continue
		}
		c.setMeta(i, f.Name, &c.meta.ContextLength, s.Shape[2], "the context (state "+s.Name+"'s third dimension)")
	}
}

func sameFeature(a, b Feature) bool {
	return a.Name == b.Name && a.Type == b.Type && slices.Equal(a.Shape, b.Shape)
}

// Describe reads the Description of a model from its model description (each function's
// FunctionDescription, Core ML's spec 9 multifunction models) and its user-defined metadata.
// Features that are not multi-arrays get Type Other and no shape.
func Describe(m *milpb.Model) Description {
	desc := m.GetDescription()
	d := Description{Metadata: desc.GetMetadata().GetUserDefined()}
	for _, fd := range desc.GetFunctions() {
		d.Functions = append(d.Functions, Function{
			Name:    fd.GetName(),
			Inputs:  features(fd.GetInput(), false),
			Outputs: features(fd.GetOutput(), false),
			States:  features(fd.GetState(), true),
		})
	}
	return d
}

var dtypes = map[milpb.ArrayFeatureType_ArrayDataType]DType{
	milpb.ArrayFeatureType_INT32:   Int32,
	milpb.ArrayFeatureType_FLOAT16: Float16,
	milpb.ArrayFeatureType_FLOAT32: Float32,
}

func features(fds []*milpb.FeatureDescription, state bool) []Feature {
	out := make([]Feature, 0, len(fds))
	for _, fd := range fds {
		arr := fd.GetType().GetMultiArrayType()
		if state {
			arr = fd.GetType().GetStateType().GetArrayType()
		}
		f := Feature{Name: fd.GetName(), Type: dtypes[arr.GetDataType()]}
		for _, d := range arr.GetShape() {
			f.Shape = append(f.Shape, int(d))
		}
		if arr == nil {
			f.Type = Other
		}
		out = append(out, f)
	}
	return out
}
