package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lilims/lilims/pipeline/stage"
)

// Entry is a registered stage implementation.
type Entry struct {
	Spec stage.Spec
	// New returns a stage.Builder, stage.Runtime or stage.Sampler according to Spec.Kind.
	New func() any
}

// Registry maps `uses:` names to implementations.
type Registry struct {
	entries map[string]Entry
	// External, when set, resolves the stages that run out of process: `uses: plugin:PATH`
	// (builtin is nil) and built-ins with `isolation: process` (builtin is the in-process
	// entry). The plugin glue installs it; without it such stages are an error.
	External func(st *StageSpec, builtin *Entry) (Entry, error)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{entries: map[string]Entry{}} }

// Register adds an implementation; its Spec.Kind must match the prefix of Spec.Uses.
func (r *Registry) Register(e Entry) {
	if !strings.HasPrefix(e.Spec.Uses, string(e.Spec.Kind)+"/") {
		panic(fmt.Sprintf("pipeline: stage %q registered with kind %q", e.Spec.Uses, e.Spec.Kind))
	}
	r.entries[e.Spec.Uses] = e
}

// Lookup finds an implementation.
func (r *Registry) Lookup(uses string) (Entry, bool) { e, ok := r.entries[uses]; return e, ok }

// Specs lists every registered stage, sorted by name.
func (r *Registry) Specs() []stage.Spec {
	out := make([]stage.Spec, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e.Spec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Uses < out[j].Uses })
	return out
}

// kindOrder is the order stages take in a pipeline.
var kindOrder = []stage.Kind{stage.KindLoader, stage.KindQuantize, stage.KindExport,
	stage.KindCompile, stage.KindRuntime, stage.KindSampler}

func kindRank(k stage.Kind) int {
	for i, o := range kindOrder {
		if o == k {
			return i
		}
	}
	return -1
}

// Step is a resolved stage: its implementation and validated parameters.
type Step struct {
	*StageSpec
	Entry  Entry
	Params stage.Params
}

// Kind is the stage's kind.
func (s *Step) Kind() stage.Kind { return s.Entry.Spec.Kind }

// Plan is a validated pipeline, ready to run.
type Plan struct {
	Spec  *Spec
	Steps []*Step
}

// Resolve checks every stage against the registry and reports every problem at once.
func Resolve(spec *Spec, reg *Registry) (*Plan, error) {
	var errs Errors
	at := func(p Pos, format string, args ...any) {
		errs = append(errs, &PosError{spec.Path, p, fmt.Sprintf(format, args...)})
	}
	plan := &Plan{Spec: spec}
	last := -1
	seen := map[stage.Kind]string{}
	for _, st := range spec.Stages {
		e, ok := reg.Lookup(st.Uses)
		external := strings.HasPrefix(st.Uses, "plugin:") || (ok && st.Isolation == "process")
		if !ok && !external {
			at(st.Pos, "stage %q: unknown stage %q (run 'lilims stages' for the list)", st.ID, st.Uses)
			continue
		}
		if external {
			if reg.External == nil {
				at(st.Pos, "stage %q: %s needs plugin support, which this build lacks", st.ID, st.Uses)
				continue
			}
			var builtin *Entry
			if ok {
				builtin = &e
			}
			ext, err := reg.External(st, builtin)
			if err != nil {
				at(st.Pos, "stage %q: %v", st.ID, err)
				continue
			}
			e = ext
		}
		if st.Isolation != "" && st.Isolation != "inprocess" && st.Isolation != "process" {
			at(st.Pos, "stage %q: isolation must be inprocess or process, not %q", st.ID, st.Isolation)
		}
		k := e.Spec.Kind
		if prev, dup := seen[k]; dup {
			at(st.Pos, "stage %q: a pipeline has one %s stage (already %q)", st.ID, k, prev)
		}
		seen[k] = st.ID
		if r := kindRank(k); r < last {
			at(st.Pos, "stage %q: a %s stage cannot come after a %s stage (order: loader, quantize, export, compile, runtime, sampler)",
				st.ID, k, kindOrder[last])
		} else {
			last = r
		}
		params, perrs := e.Spec.Resolve(st.With)
		for _, pe := range perrs {
			pos := st.Pos
			for name, p := range st.WithPos {
				if strings.Contains(pe.Error(), fmt.Sprintf("%q", name)) || strings.HasPrefix(pe.Error(), "parameter "+name+":") {
					pos = p
				}
			}
			at(pos, "stage %q: %v", st.ID, pe)
		}
		plan.Steps = append(plan.Steps, &Step{StageSpec: st, Entry: e, Params: params})
	}
	if _, ok := seen[stage.KindLoader]; !ok && len(spec.Stages) > 0 {
		at(Pos{}, "the pipeline has no loader stage (uses: loader/gguf)")
	}
	return plan, errs.orNil()
}

// Step returns the step with the given kind, or nil.
func (p *Plan) Step(k stage.Kind) *Step {
	for _, s := range p.Steps {
		if s.Kind() == k {
			return s
		}
	}
	return nil
}

// Built is the output of one build stage.
type Built struct {
	ID       string         `json:"id"`
	Artifact stage.Artifact `json:"artifact"`
	Seconds  float64        `json:"seconds"`
}

// BuildOptions says where build stages write.
type BuildOptions struct {
	WorkDir string // each stage's output lands in WorkDir/<id>
	Report  stage.Reporter
}

// Build runs the build stages in order. Each writes into a fresh temporary directory that is
// renamed to WorkDir/<id> only when the stage succeeded, so a failed or interrupted stage
// never leaves a partial artifact where a later run would take it for a finished one.
func (p *Plan) Build(ctx context.Context, opts BuildOptions) ([]Built, error) {
	if p.Spec.Model == "" {
		return nil, ErrNoModel
	}
	report := opts.Report
	if report == nil {
		report = func(stage.Event) {}
	}
	if err := os.MkdirAll(opts.WorkDir, 0o755); err != nil {
		return nil, err
	}
	var inputs []stage.Artifact
	var out []Built
	for _, s := range p.Steps {
		if !s.Kind().IsBuild() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		b, ok := s.Entry.New().(stage.Builder)
		if !ok {
			return out, fmt.Errorf("stage %q (%s) does not implement a build stage", s.ID, s.Uses)
		}
		tmp, err := os.MkdirTemp(opts.WorkDir, "."+s.ID+".tmp-")
		if err != nil {
			return out, err
		}
		start := time.Now()
		report(stage.Event{Stage: s.ID, Event: "start", Msg: s.Uses})
		art, err := b.Build(ctx, stage.BuildRequest{ID: s.ID, Params: s.Params, Source: p.Spec.Model,
			Inputs: inputs, OutDir: tmp,
			Report: func(e stage.Event) { e.Stage = s.ID; report(e) }})
		if err != nil {
			os.RemoveAll(tmp)
			return out, fmt.Errorf("stage %q (%s): %w", s.ID, s.Uses, err)
		}
		final := filepath.Join(opts.WorkDir, s.ID)
		if err := os.RemoveAll(final); err != nil {
			os.RemoveAll(tmp)
			return out, err
		}
		if err := os.Rename(tmp, final); err != nil {
			os.RemoveAll(tmp)
			return out, err
		}
		art.Path = relocate(art.Path, tmp, final)
		for k, v := range art.Meta {
			art.Meta[k] = relocate(v, tmp, final)
		}
		secs := time.Since(start).Seconds()
		report(stage.Event{Stage: s.ID, Event: "done", Msg: art.Path})
		inputs = append(inputs, art)
		out = append(out, Built{ID: s.ID, Artifact: art, Seconds: secs})
	}
	return out, nil
}

// relocate rewrites a path inside the temporary directory to its final place.
func relocate(path, tmp, final string) string {
	if rel, err := filepath.Rel(tmp, path); err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.Join(final, rel)
	}
	return path
}

// OpenSession opens the runtime stage on the last build artifact.
func (p *Plan) OpenSession(ctx context.Context, built []Built) (stage.Session, error) {
	s := p.Step(stage.KindRuntime)
	if s == nil {
		return nil, fmt.Errorf("%s: the pipeline has no runtime stage", p.name())
	}
	if len(built) == 0 {
		return nil, fmt.Errorf("%s: nothing was built for the runtime to open", p.name())
	}
	rt, ok := s.Entry.New().(stage.Runtime)
	if !ok {
		return nil, fmt.Errorf("stage %q (%s) is not a runtime", s.ID, s.Uses)
	}
	sess, err := rt.Open(ctx, built[len(built)-1].Artifact, s.Params)
	if err != nil {
		return nil, fmt.Errorf("stage %q (%s): %w", s.ID, s.Uses, err)
	}
	return sess, nil
}

// NewSampler makes the sampler stage's token sampler.
func (p *Plan) NewSampler(vocab int) (stage.TokenSampler, error) {
	s := p.Step(stage.KindSampler)
	if s == nil {
		return nil, fmt.Errorf("%s: the pipeline has no sampler stage", p.name())
	}
	sm, ok := s.Entry.New().(stage.Sampler)
	if !ok {
		return nil, fmt.Errorf("stage %q (%s) is not a sampler", s.ID, s.Uses)
	}
	ts, err := sm.New(s.Params, vocab)
	if err != nil {
		return nil, fmt.Errorf("stage %q (%s): %w", s.ID, s.Uses, err)
	}
	return ts, nil
}

func (p *Plan) name() string {
	if p.Spec.Path != "" {
		return p.Spec.Path
	}
	return "pipeline " + p.Spec.Name
}

// Default is the pipeline used for a bare GGUF path: load → export (fp16) → compile
// (validate; coremlcompiler on macOS) → runtime → sample.
func Default(model string) *Spec {
	mk := func(id, uses string) *StageSpec {
		return &StageSpec{ID: id, Uses: uses, With: map[string]any{}, WithPos: map[string]Pos{}}
	}
	return &Spec{Name: "default", Model: model, Stages: []*StageSpec{
		mk("load", "loader/gguf"),
		mk("export", "export/mil"),
		mk("compile", "compile/coreml"),
		mk("runtime", "runtime/auto"),
		mk("sample", "sampler/default"),
	}}
}
