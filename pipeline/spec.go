// Package pipeline reads pipeline files, resolves their stages against a registry of stage
// implementations, and runs them: build stages in order, each into a fresh directory that is
// renamed into place only on success (and, given a Cache, skipped when an earlier run already
// built the same thing), then the runtime and sampler that serve generation.
//
// The stage interfaces live in the leaf package pipeline/stage; the built-in stages are
// registered by package pipeline/builtin. Rendering progress is the caller's business: the
// runner only forwards stage.Events, and ProgressBars and NDJSON turn them into output.
package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spec is a parsed pipeline file.
type Spec struct {
	Path   string // file it was read from ("" for built-in pipelines)
	Name   string
	Model  string
	Stages []*StageSpec
	// Sweep lists the parameter values a comparison (lilims compare) tries; running the
	// pipeline ignores it. See Variants.
	Sweep []SweepAxis
}

// StageSpec is one entry of `stages:`.
type StageSpec struct {
	ID        string
	Uses      string
	With      map[string]any
	Isolation string // "", "inprocess", "process"
	// SHA256 pins a plugin binary (`sha256:`): 64 hex digits, stored lower-case.
	SHA256 string
	// Inputs names the stages whose artifacts this one consumes (`inputs: [id, ...]`). Nil
	// means the default: every earlier build stage, in order.
	Inputs    []string
	InputsPos []Pos
	Pos       Pos
	WithPos   map[string]Pos
}

// Pos is a position in the pipeline file; the zero Pos means "not from the file" (a --set).
type Pos struct{ Line, Col int }

// PosError is an error at a place in a pipeline file, printed as file:line:col: message.
type PosError struct {
	Path string
	Pos  Pos
	Msg  string
	Err  error // a sentinel such as ErrUnknownStage, when the error is of a known class
}

func (e *PosError) Error() string {
	switch {
	case e.Path == "" && e.Pos.Line == 0: // a built-in pipeline, or a --set: no place to name
		return e.Msg
	case e.Path == "":
		return fmt.Sprintf("line %d: %s", e.Pos.Line, e.Msg)
	case e.Pos.Line == 0:
		return fmt.Sprintf("%s: %s", e.Path, e.Msg)
	case e.Pos.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Pos.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.Path, e.Pos.Line, e.Pos.Col, e.Msg)
}

func (e *PosError) Unwrap() error { return e.Err }

// Classes of PosError, for callers that tolerate some (a test of pipelines that name stages a
// build may lack).
var (
	// ErrUnknownStage: a `uses:` name that no registered stage has.
	ErrUnknownStage = errors.New("unknown stage")
	// ErrNoPluginSupport: a plugin stage, resolved without plugin support (Registry.External).
	ErrNoPluginSupport = errors.New("no plugin support")
	// ErrOverride: a command-line value (--set) that the stage refuses; the message names the
	// --set, and the mistake is the command line's, not the file's.
	ErrOverride = errors.New("bad --set value")
)

// Errors collects every problem of a pipeline so that all are reported at once.
type Errors []error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// Sorted returns the errors ordered by file, then line and column; errors without a position
// come after those of their file.
func (e Errors) Sorted() Errors {
	out := append(Errors(nil), e...)
	key := func(err error) (string, int, int) {
		var pe *PosError
		if errors.As(err, &pe) {
			line := pe.Pos.Line
			if line == 0 {
				line = 1 << 30
			}
			return pe.Path, line, pe.Pos.Col
		}
		return "", 1 << 30, 0
	}
	sort.SliceStable(out, func(i, j int) bool {
		pi, li, ci := key(out[i])
		pj, lj, cj := key(out[j])
		if pi != pj {
			return pi < pj
		}
		if li != lj {
			return li < lj
		}
		return ci < cj
	})
	return out
}

func (e Errors) orNil() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// maxSpecBytes bounds what we read as YAML: pipeline files are small, and yaml.v3 builds the
// whole node tree in memory.
const maxSpecBytes = 1 << 20

// maxStages bounds the stage list; a real pipeline has six.
const maxStages = 64

// LoadFile reads and parses a pipeline file, expanding ${VAR} and ${VAR:-default} from the
// environment.
func LoadFile(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Read one byte past the limit rather than trusting Stat (the file may be a pipe).
	data, err := io.ReadAll(io.LimitReader(f, maxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(path, data, os.LookupEnv)
}

// yamlLine matches yaml.v3's syntax errors, which carry a line but no column.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 error into a positioned one, with a plainer message for the
// mistakes people make most (tabs).
func syntaxError(path string, data []byte, err error) error {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return &PosError{Path: path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	pos, msg := Pos{Line: line}, m[2]
	// YAML forbids tabs in indentation (YAML 1.2 §6.1); yaml.v3 says "found character that
	// cannot start any token" and names the line. Point at the tab.
	if strings.Contains(msg, "cannot start any token") {
		lines := bytes.Split(data, []byte("\n"))
		for _, l := range []int{line, line + 1} { // the reported line is sometimes the one before
			if l >= 1 && l <= len(lines) {
				if c := bytes.IndexByte(lines[l-1], '\t'); c >= 0 {
					return &PosError{Path: path, Pos: Pos{l, c + 1},
						Msg: "tab character: YAML indents with spaces only"}
				}
			}
		}
	}
	return &PosError{Path: path, Pos: pos, Msg: msg}
}

// Parse parses pipeline YAML. On errors it returns every problem it found (as Errors) and, when
// the YAML itself was readable, the partial Spec, so that a validator can go on to resolve it.
func Parse(path string, data []byte, env func(string) (string, bool)) (*Spec, error) {
	if len(data) > maxSpecBytes {
		return nil, &PosError{Path: path,
			Msg: fmt.Sprintf("%d bytes or more is too large for a pipeline file (limit %d)", len(data), maxSpecBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, &PosError{Path: path, Msg: "empty pipeline file"}
		}
		return nil, syntaxError(path, data, err)
	}
	var errs Errors
	fail := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, &PosError{Path: path, Pos: Pos{n.Line, n.Column}, Msg: fmt.Sprintf(format, args...)})
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		fail(&second, "a pipeline file holds one YAML document; this is a second one")
	} else if err != io.EOF {
		errs = append(errs, syntaxError(path, data, err))
	}
	if len(doc.Content) == 0 {
		return nil, &PosError{Path: path, Msg: "empty pipeline file"}
	}
	// Aliases are refused everywhere: a pipeline is short enough to write out, and refusing
	// them rules out alias-expansion bombs and merge keys (<<) that hide where a value came from.
	walk(&doc, func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			fail(n, "YAML aliases (*%s) are not supported in pipeline files: write the value out", n.Value)
		}
	})
	root := doc.Content[0]
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
			if len(v.Content) > maxStages {
				fail(v, "%d stages is more than a pipeline can have (limit %d)", len(v.Content), maxStages)
				continue
			}
			for _, item := range v.Content {
				if st := parseStage(item, fail, env); st != nil {
					s.Stages = append(s.Stages, st)
				}
			}
		case "sweep":
			s.Sweep = parseSweep(v, fail, env)
		default:
			fail(k, "unknown key %q (a pipeline has name, model, stages, sweep)", k.Value)
		}
	}
	if len(s.Stages) == 0 && seen["stages"] {
		fail(root, "pipeline has no stages")
	} else if !seen["stages"] {
		fail(root, "missing key \"stages\"")
	}
	ids := map[string]bool{}
	for _, st := range s.Stages {
		if ids[st.ID] && st.ID != "" {
			errs = append(errs, &PosError{Path: path, Pos: st.Pos, Msg: fmt.Sprintf("duplicate stage id %q", st.ID)})
		}
		ids[st.ID] = true
	}
	return s, errs.orNil()
}

func walk(n *yaml.Node, f func(*yaml.Node)) {
	f(n)
	for _, c := range n.Content {
		walk(c, f)
	}
}

// validID is what a stage id may look like: it names a directory and a --set prefix.
var validID = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)

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
			if st.ID != "" && !validID.MatchString(st.ID) {
				fail(v, "stage id %q: use letters, digits, - and _ (it names a directory and a --set prefix)", st.ID)
			}
		case "uses":
			st.Uses = scalar(v, fail, env)
		case "isolation":
			st.Isolation = scalar(v, fail, env)
		case "sha256":
			sum := strings.ToLower(scalar(v, fail, env))
			if !isHex64(sum) {
				fail(v, "sha256 must be 64 hexadecimal digits (the output of sha256sum), got %d characters", len(sum))
			}
			st.SHA256 = sum
		case "inputs":
			if v.Kind != yaml.SequenceNode {
				fail(v, "inputs must be a list of stage ids")
				continue
			}
			st.Inputs = make([]string, 0, len(v.Content))
			for _, c := range v.Content {
				if c.Kind != yaml.ScalarNode {
					fail(c, "inputs must be a list of stage ids")
					continue
				}
				st.Inputs = append(st.Inputs, scalar(c, fail, env))
				st.InputsPos = append(st.InputsPos, Pos{c.Line, c.Column})
			}
		case "with":
			if v.Kind != yaml.MappingNode {
				fail(v, "with must be a mapping of parameters")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				pk, pv := v.Content[j], v.Content[j+1]
				if _, dup := st.WithPos[pk.Value]; dup {
					fail(pk, "duplicate parameter %q", pk.Value)
					continue
				}
				bad := false
				v := value(pv, func(n *yaml.Node, format string, args ...any) { bad = true; fail(n, format, args...) }, env, true)
				st.WithPos[pk.Value] = Pos{pk.Line, pk.Column}
				if !bad { // a value already reported is left out, so that it is not reported twice
					st.With[pk.Value] = v
				}
			}
		default:
			fail(k, "unknown stage key %q (a stage has id, uses, with, inputs, isolation, sha256)", k.Value)
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

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func scalar(n *yaml.Node, fail func(*yaml.Node, string, ...any), env func(string) (string, bool)) string {
	if n.Kind != yaml.ScalarNode {
		if n.Kind != yaml.AliasNode { // aliases are reported once, by the walk in Parse
			fail(n, "expected a single value")
		}
		return ""
	}
	s, err := expand(n.Value, env)
	if err != nil {
		fail(n, "%v", err)
	}
	return s
}

// value decodes a parameter value: scalars typed as YAML types them (after ${VAR}
// expansion, a string that expanded is re-read as a YAML scalar), and flat lists of scalars.
func value(n *yaml.Node, fail func(*yaml.Node, string, ...any), env func(string) (string, bool), listOK bool) any {
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
		if !listOK {
			fail(n, "a list element must be a single value, not a nested list")
			return nil
		}
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			out = append(out, value(c, fail, env, false))
		}
		return out
	case yaml.AliasNode:
		return nil // reported by the walk in Parse
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

// parseOverride reads the value of a --set or a sweep entry as a YAML scalar (so 0.7 is a
// float and true a bool); it is coerced to the parameter's type at resolution.
func parseOverride(raw string) any {
	var parsed any
	if yaml.Unmarshal([]byte(raw), &parsed) == nil && parsed != nil {
		switch parsed.(type) {
		case map[string]any, []any:
		default:
			return normalise(parsed)
		}
	}
	return raw
}

// Set applies a command-line override "id.param=value"; "id.uses=NAME" swaps the stage's
// implementation (e.g. to a plugin) and clears its parameters. The value is read as a YAML scalar
// (so 0.7 is a float and true a bool) and coerced to the parameter's type at resolution.
func (s *Spec) Set(assign string) error {
	eq := strings.IndexByte(assign, '=')
	dot := strings.IndexByte(assign, '.')
	if eq < 0 || dot < 0 || dot > eq {
		return fmt.Errorf("--set %s: want STAGE.PARAM=VALUE (e.g. sample.temperature=0)", assign)
	}
	id, param, raw := assign[:dot], assign[dot+1:eq], assign[eq+1:]
	if st := s.Stage(id); st != nil {
		if param == "uses" {
			// Swapping the implementation drops the parameters written for the old one.
			st.Uses, st.With, st.WithPos = raw, map[string]any{}, map[string]Pos{}
			return nil
		}
		st.With[param] = parseOverride(raw)
		st.WithPos[param] = Pos{}
		return nil
	}
	return fmt.Errorf("--set %s: no stage with id %q (stages: %s)", assign, id, strings.Join(s.ids(), ", "))
}

func (s *Spec) ids() []string {
	ids := make([]string, len(s.Stages))
	for i, st := range s.Stages {
		ids[i] = st.ID
	}
	return ids
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

// Clone returns a deep copy, so that overrides on it leave s alone.
func (s *Spec) Clone() *Spec {
	c := *s
	c.Stages = make([]*StageSpec, len(s.Stages))
	for i, st := range s.Stages {
		cs := *st
		cs.With = make(map[string]any, len(st.With))
		for k, v := range st.With {
			cs.With[k] = v
		}
		cs.WithPos = make(map[string]Pos, len(st.WithPos))
		for k, v := range st.WithPos {
			cs.WithPos[k] = v
		}
		if st.Inputs != nil {
			cs.Inputs = append([]string{}, st.Inputs...)
			cs.InputsPos = append([]Pos{}, st.InputsPos...)
		}
		c.Stages[i] = &cs
	}
	c.Sweep = append([]SweepAxis(nil), s.Sweep...)
	return &c
}

// ErrNoModel is returned when neither the pipeline nor the command line names a model.
var ErrNoModel = errors.New("the pipeline names no model (set model: or pass one)")
