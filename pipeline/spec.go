// Package pipeline reads pipeline files, resolves their stages against a registry of stage
// implementations, and runs them: build stages in order, each into a fresh directory that is
// renamed into place only on success, then the runtime and sampler that serve generation.
//
// The stage interfaces live in the leaf package pipeline/stage; the built-in stages are
// registered by package pipeline/builtin.
package pipeline

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spec is a parsed pipeline file.
type Spec struct {
	Path   string // file it was read from ("" for built-in pipelines)
	Name   string
	Model  string
	Stages []*StageSpec
}

// StageSpec is one entry of `stages:`.
type StageSpec struct {
	ID        string
	Uses      string
	With      map[string]any
	Isolation string // "", "process"
	Pos       Pos
	WithPos   map[string]Pos
}

// Pos is a position in the pipeline file.
type Pos struct{ Line, Col int }

// PosError is an error at a place in a pipeline file, printed as file:line:col: message.
type PosError struct {
	Path string
	Pos  Pos
	Msg  string
}

func (e *PosError) Error() string {
	if e.Pos.Line == 0 {
		return fmt.Sprintf("%s: %s", e.Path, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.Path, e.Pos.Line, e.Pos.Col, e.Msg)
}

// Errors collects every problem of a pipeline so that all are reported at once.
type Errors []error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

func (e Errors) orNil() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// maxSpecBytes bounds what we read as YAML: pipeline files are small.
const maxSpecBytes = 1 << 20

// LoadFile reads and parses a pipeline file, expanding ${VAR} and ${VAR:-default} from the
// environment.
func LoadFile(path string) (*Spec, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxSpecBytes {
		return nil, fmt.Errorf("%s: %d bytes is too large for a pipeline file (limit %d)", path, st.Size(), maxSpecBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse parses pipeline YAML.
func Parse(path string, data []byte, env func(string) (string, bool)) (*Spec, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, &PosError{path, Pos{}, "empty pipeline file"}
	}
	root := doc.Content[0]
	var errs Errors
	fail := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, &PosError{path, Pos{n.Line, n.Column}, fmt.Sprintf(format, args...)})
	}
	if root.Kind != yaml.MappingNode {
		fail(root, "a pipeline is a mapping with name, model and stages")
		return nil, errs
	}
	s := &Spec{Path: path}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			fail(k, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "name":
			s.Name = scalar(v, fail, env)
		case "model":
			s.Model = scalar(v, fail, env)
		case "stages":
			if v.Kind != yaml.SequenceNode {
				fail(v, "stages must be a list")
				continue
			}
			for _, item := range v.Content {
				if st := parseStage(item, fail, env); st != nil {
					s.Stages = append(s.Stages, st)
				}
			}
		default:
			fail(k, "unknown key %q (a pipeline has name, model, stages)", k.Value)
		}
	}
	if len(s.Stages) == 0 && seen["stages"] {
		fail(root, "pipeline has no stages")
	} else if !seen["stages"] {
		fail(root, "missing key \"stages\"")
	}
	ids := map[string]bool{}
	for _, st := range s.Stages {
		if ids[st.ID] {
			errs = append(errs, &PosError{path, st.Pos, fmt.Sprintf("duplicate stage id %q", st.ID)})
		}
		ids[st.ID] = true
	}
	return s, errs.orNil()
}

func parseStage(n *yaml.Node, fail func(*yaml.Node, string, ...any), env func(string) (string, bool)) *StageSpec {
	if n.Kind != yaml.MappingNode {
		fail(n, "a stage is a mapping with id, uses and optional with")
		return nil
	}
	st := &StageSpec{Pos: Pos{n.Line, n.Column}, With: map[string]any{}, WithPos: map[string]Pos{}}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			fail(k, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "id":
			st.ID = scalar(v, fail, env)
		case "uses":
			st.Uses = scalar(v, fail, env)
		case "isolation":
			st.Isolation = scalar(v, fail, env)
		case "with":
			if v.Kind != yaml.MappingNode {
				fail(v, "with must be a mapping of parameters")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				pk, pv := v.Content[j], v.Content[j+1]
				if _, dup := st.With[pk.Value]; dup {
					fail(pk, "duplicate parameter %q", pk.Value)
					continue
				}
				st.With[pk.Value] = value(pv, fail, env)
				st.WithPos[pk.Value] = Pos{pk.Line, pk.Column}
			}
		default:
			fail(k, "unknown stage key %q (a stage has id, uses, with, isolation)", k.Value)
		}
	}
	if st.ID == "" {
		fail(n, "stage without an id")
	}
	if st.Uses == "" {
		fail(n, "stage %q without uses", st.ID)
	}
	return st
}

func scalar(n *yaml.Node, fail func(*yaml.Node, string, ...any), env func(string) (string, bool)) string {
	if n.Kind != yaml.ScalarNode {
		fail(n, "expected a single value")
		return ""
	}
	s, err := expand(n.Value, env)
	if err != nil {
		fail(n, "%v", err)
	}
	return s
}

// value decodes a parameter value: scalars typed as YAML types them (after ${VAR}
// expansion, a string that expanded is re-read as a YAML scalar), lists of scalars.
func value(n *yaml.Node, fail func(*yaml.Node, string, ...any), env func(string) (string, bool)) any {
	switch n.Kind {
	case yaml.ScalarNode:
		raw := n.Value
		s, err := expand(raw, env)
		if err != nil {
			fail(n, "%v", err)
			return nil
		}
		if s != raw || n.Tag == "!!str" {
			if n.Tag == "!!str" && s == raw {
				return s
			}
			var v any
			if yaml.Unmarshal([]byte(s), &v) == nil {
				if _, isMap := v.(map[string]any); !isMap {
					return normalise(v)
				}
			}
			return s
		}
		var v any
		if err := n.Decode(&v); err != nil {
			fail(n, "%v", err)
			return nil
		}
		return normalise(v)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			out = append(out, value(c, fail, env))
		}
		return out
	case yaml.AliasNode:
		fail(n, "YAML aliases are not allowed in pipeline files")
		return nil
	}
	fail(n, "a parameter value must be a scalar or a list")
	return nil
}

func normalise(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case []any:
		for i := range x {
			x[i] = normalise(x[i])
		}
	}
	return v
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${VAR} and ${VAR:-default}; an unset ${VAR} without default is an error.
func expand(s string, env func(string) (string, bool)) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		g := varRef.FindStringSubmatch(m)
		if v, ok := env(g[1]); ok && v != "" {
			return v
		}
		if g[2] != "" {
			return g[3]
		}
		missing = append(missing, g[1])
		return ""
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set and has no default (write ${%s:-value})", missing[0], missing[0])
	}
	return out, nil
}

// Set applies a command-line override "id.param=value". The value is read as a YAML scalar
// (so 0.7 is a float and true a bool) and coerced to the parameter's type at resolution.
func (s *Spec) Set(assign string) error {
	eq := strings.IndexByte(assign, '=')
	dot := strings.IndexByte(assign, '.')
	if eq < 0 || dot < 0 || dot > eq {
		return fmt.Errorf("--set %q: want STAGE.PARAM=VALUE (e.g. sample.temperature=0)", assign)
	}
	id, param, raw := assign[:dot], assign[dot+1:eq], assign[eq+1:]
	for _, st := range s.Stages {
		if st.ID == id {
			var v any = raw
			var parsed any
			if yaml.Unmarshal([]byte(raw), &parsed) == nil && parsed != nil {
				if _, isMap := parsed.(map[string]any); !isMap {
					v = normalise(parsed)
				}
			}
			st.With[param] = v
			st.WithPos[param] = Pos{}
			return nil
		}
	}
	ids := make([]string, len(s.Stages))
	for i, st := range s.Stages {
		ids[i] = st.ID
	}
	return fmt.Errorf("--set %q: no stage with id %q (stages: %s)", assign, id, strings.Join(ids, ", "))
}

// Stage returns the stage with the given id.
func (s *Spec) Stage(id string) *StageSpec {
	for _, st := range s.Stages {
		if st.ID == id {
			return st
		}
	}
	return nil
}

// ErrNoModel is returned when neither the pipeline nor the command line names a model.
var ErrNoModel = errors.New("the pipeline names no model (set model: or pass one)")
