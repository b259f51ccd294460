// Package stage defines the interfaces every lilims stage implements, built-in or plugin.
//
// It is a leaf package: the pipeline runner and the plugin glue both import it (Go forbids the
// cycle runner → plugin glue → interfaces → runner). Stages exchange artifacts as paths on
// disk, never tensors.
package stage

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kind is what a stage does; the prefix of its `uses:` name ("export/mil" is an export stage).
type Kind string

const (
	KindLoader   Kind = "loader"
	KindQuantize Kind = "quantize"
	KindExport   Kind = "export"
	KindCompile  Kind = "compile"
	KindRuntime  Kind = "runtime"
	KindSampler  Kind = "sampler"
)

// IsBuild reports whether stages of this kind turn artifacts into artifacts (and are cached);
// the others serve the generation loop.
func (k Kind) IsBuild() bool {
	return k == KindLoader || k == KindQuantize || k == KindExport || k == KindCompile
}

// Artifact is a file or directory written by a build stage.
type Artifact struct {
	Kind string            `json:"kind"` // "gguf", "quantized", "mlpackage", "mlmodelc"
	Path string            `json:"path"`
	Meta map[string]string `json:"meta,omitempty"` // small typed facts (e.g. "package" beside a compiled model)
}

// Event is one progress report.
type Event struct {
	Stage string `json:"stage"`
	Event string `json:"event"` // "start", "progress", "done", "cached", "log"
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
	Unit  string `json:"unit,omitempty"` // "bytes", "tensors"
	Msg   string `json:"msg,omitempty"`
}

// Reporter receives progress events; it must be safe to call from any goroutine.
type Reporter func(Event)

// BuildRequest is everything a build stage gets.
type BuildRequest struct {
	ID     string     // the stage id in the pipeline
	Params Params     // its `with:` parameters, validated against its Spec
	Source string     // the pipeline's model path (a GGUF file)
	Inputs []Artifact // outputs of the earlier build stages, in order
	OutDir string     // an empty directory the stage writes into; renamed into place on success
	Report Reporter
}

// Input returns the most recent input artifact of the given kind.
func (r BuildRequest) Input(kind string) (Artifact, bool) {
	for i := len(r.Inputs) - 1; i >= 0; i-- {
		if r.Inputs[i].Kind == kind {
			return r.Inputs[i], true
		}
	}
	return Artifact{}, false
}

// Builder is a build stage: loader, quantize, export or compile.
type Builder interface {
	Build(ctx context.Context, req BuildRequest) (Artifact, error)
}

// Session is an open model: it consumes tokens and returns next-token logits, owning the KV
// state.
type Session interface {
	// Prefill consumes tokens and returns the logits after each of them.
	Prefill(ctx context.Context, tokens []int32) ([][]float32, error)
	// Decode consumes one token and returns the logits after it. The slice may be reused by
	// the session: it is valid until the session's next call (copy it to keep it).
	Decode(ctx context.Context, token int32) ([]float32, error)
	Pos() int
	ContextLength() int
	VocabSize() int
	Reset()
	Close() error
}

// Runtime opens the final build artifact as a Session.
type Runtime interface {
	Open(ctx context.Context, art Artifact, params Params) (Session, error)
}

// TokenSampler picks the next token from logits.
type TokenSampler interface {
	Accept(token int32)
	Sample(logits []float32) int32
	Reset()
}

// Sampler makes token samplers.
type Sampler interface {
	New(params Params, vocabSize int) (TokenSampler, error)
}

// ParamType is the type of a stage parameter.
type ParamType string

const (
	Int    ParamType = "int"
	Float  ParamType = "float"
	Bool   ParamType = "bool"
	String ParamType = "string"
	// Path is a string naming a file whose contents matter to the result (a calibration
	// text, …): the build cache keys the stage on the file's digest, not only its name.
	Path    ParamType = "path"
	Strings ParamType = "[]string"
)

// ParamSpec documents and types one parameter.
type ParamSpec struct {
	Name     string    `json:"name"`
	Type     ParamType `json:"type"`
	Default  any       `json:"default,omitempty"`
	Required bool      `json:"required,omitempty"`
	Enum     []string  `json:"enum,omitempty"`
	Doc      string    `json:"doc"`
}

// Spec describes a stage implementation: its `uses:` name, kind and parameters.
type Spec struct {
	Uses   string      `json:"uses"`
	Kind   Kind        `json:"kind"`
	Doc    string      `json:"doc"`
	Params []ParamSpec `json:"params"`
	// Check, when set, is the stage's own check of values that types and enums do not capture
	// (a combination of parameters, a range): the check its Build or Open makes first, run
	// again when a pipeline is resolved so that validate rejects what the build would.
	Check func(Params) error `json:"-"`
}

// Param looks a parameter up.
func (s *Spec) Param(name string) (ParamSpec, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p, true
		}
	}
	return ParamSpec{}, false
}

// Params are a stage's parameters after validation: int64, float64, bool, string or []string.
type Params map[string]any

// Int returns an int parameter (validated earlier, so a wrong type is a programming error
// reported as the zero value).
func (p Params) Int(name string) int {
	switch v := p[name].(type) {
	case int64:
		return int(v)
	case int:
		return v
	case float64:
		return int(v)
	}
	return 0
}

func (p Params) Float(name string) float64 {
	switch v := p[name].(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	case int:
		return float64(v)
	}
	return 0
}

func (p Params) Bool(name string) bool     { b, _ := p[name].(bool); return b }
func (p Params) String(name string) string { s, _ := p[name].(string); return s }

func (p Params) Strings(name string) []string { s, _ := p[name].([]string); return s }

// Coerce converts a raw value (from YAML or a --set string) to the parameter's type.
func (ps ParamSpec) Coerce(v any) (any, error) {
	switch ps.Type {
	case Int:
		switch x := v.(type) {
		case int:
			return ps.checkEnum(int64(x))
		case int64:
			return ps.checkEnum(x)
		case float64:
			if x == float64(int64(x)) {
				return ps.checkEnum(int64(x))
			}
		case string:
			var n int64
			if _, err := fmt.Sscan(x, &n); err == nil && fmt.Sprint(n) == strings.TrimSpace(x) {
				return ps.checkEnum(n)
			}
		}
	case Float:
		switch x := v.(type) {
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case float64:
			return x, nil
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return f, nil
			}
		}
	case Bool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(x) {
			case "true", "yes", "on", "1":
				return true, nil
			case "false", "no", "off", "0":
				return false, nil
			}
		}
	case String, Path:
		switch x := v.(type) {
		case string:
			if len(ps.Enum) > 0 && !contains(ps.Enum, x) {
				return nil, fmt.Errorf("parameter %s: %q is not one of %s", ps.Name, x, strings.Join(ps.Enum, ", "))
			}
			return x, nil
		case int, int64, float64, bool:
			return ps.Coerce(fmt.Sprint(x))
		}
	case Strings:
		switch x := v.(type) {
		case []string:
			return x, nil
		case string:
			return []string{x}, nil
		case []any:
			out := make([]string, len(x))
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("parameter %s: element %d is %T, want a string", ps.Name, i, e)
				}
				out[i] = s
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("parameter %s: %s is not %s", ps.Name, quoted(v), typeNoun[ps.Type])
}

// typeNoun names what a value of each type is, for errors a person reads.
var typeNoun = map[ParamType]string{Int: "a whole number", Float: "a number", Bool: "true or false",
	String: "a string", Path: "a file path", Strings: "a list of strings"}

// quoted prints a rejected value as the user wrote it: strings in quotes, numbers bare.
func quoted(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// checkEnum refuses an int outside a parameter's listed values (block_size: 32, 64, 128).
func (ps ParamSpec) checkEnum(n int64) (any, error) {
	if len(ps.Enum) > 0 && !contains(ps.Enum, strconv.FormatInt(n, 10)) {
		return nil, fmt.Errorf("parameter %s: %d is not one of %s", ps.Name, n, strings.Join(ps.Enum, ", "))
	}
	return n, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Resolve validates raw parameters against the spec: unknown names, wrong types and missing
// required ones are errors; defaults fill the rest.
func (s *Spec) Resolve(raw map[string]any) (Params, []error) {
	out := Params{}
	var errs []error
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		ps, ok := s.Param(k)
		if !ok {
			errs = append(errs, fmt.Errorf("%s has no parameter %q (it has: %s)", s.Uses, k, s.paramNames()))
			continue
		}
		v, err := ps.Coerce(raw[k])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[k] = v
	}
	for _, ps := range s.Params {
		if _, set := out[ps.Name]; set {
			continue
		}
		if ps.Required {
			errs = append(errs, fmt.Errorf("%s needs parameter %q", s.Uses, ps.Name))
		} else if ps.Default != nil {
			v, err := ps.Coerce(ps.Default)
			if err != nil {
				errs = append(errs, err)
			}
			out[ps.Name] = v
		}
	}
	return out, errs
}

func (s *Spec) paramNames() string {
	if len(s.Params) == 0 {
		return "none"
	}
	names := make([]string, len(s.Params))
	for i, p := range s.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}
