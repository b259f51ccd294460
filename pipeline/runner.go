package pipeline

import (
	"context"
	"fmt"
	"maps"
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
	// Version identifies the implementation for the build cache: a build stage's output is
	// reused only when Spec.Uses, Version, its parameters and its inputs are all unchanged.
	// Empty means "this lilims binary" (see Cache), right for built-ins; a plugin entry sets
	// it to its binary's digest.
	Version string
	// DefaultIsolation is the isolation used when the pipeline names none: "process" keeps a
	// stage whose crash could take the host down (Core ML through purego) out of process.
	DefaultIsolation string
}

// Registry maps `uses:` names to implementations.
type Registry struct {
	entries map[string]Entry
	// External, when set, resolves the stages that run out of process: `uses: plugin:PATH`
	// (builtin is nil) and built-ins with `isolation: process` (builtin is the in-process
	// entry). The plugin glue installs it; without it such stages are an error.
	External func(st *StageSpec, builtin *Entry) (Entry, error)
	// Discover, when set, lists the plugin stages installed on this machine, each Spec with
	// its `uses:` name as a pipeline writes it (e.g. "plugin:NAME"); `lilims stages` shows
	// them beside the built-ins. The plugin glue installs it.
	Discover func(ctx context.Context) ([]stage.Spec, error)
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
	// InputIDs are the ids of the build stages whose artifacts this stage receives, in order:
	// its `inputs:` list, or by default every earlier build stage.
	InputIDs []string
}

// Kind is the stage's kind.
func (s *Step) Kind() stage.Kind { return s.Entry.Spec.Kind }

// Plan is a validated pipeline, ready to run.
type Plan struct {
	Spec  *Spec
	Steps []*Step
}

// Resolve checks every stage against the registry and reports every problem at once. The
// returned Plan holds the stages that resolved, also when there are errors.
func Resolve(spec *Spec, reg *Registry) (*Plan, error) {
	var errs Errors
	at := func(p Pos, format string, args ...any) {
		errs = append(errs, &PosError{Path: spec.Path, Pos: p, Msg: fmt.Sprintf(format, args...)})
	}
	plan := &Plan{Spec: spec}
	last := -1
	seen := map[stage.Kind]string{}
	kinds := map[string]stage.Kind{} // stage id → kind, for the inputs check
	for _, st := range spec.Stages {
		e, ok := reg.Lookup(st.Uses)
		iso := st.Isolation
		if iso == "" && ok {
			iso = e.DefaultIsolation
		}
		external := strings.HasPrefix(st.Uses, "plugin:") || (ok && iso == "process")
		if !ok && !external {
			if st.Uses != "" {
				errs = append(errs, &PosError{Path: spec.Path, Pos: st.Pos, Err: ErrUnknownStage,
					Msg: fmt.Sprintf("stage %q: unknown stage %q (run 'lilims stages' for the list)", st.ID, st.Uses)})
			}
			continue
		}
		if external {
			if reg.External == nil {
				errs = append(errs, &PosError{Path: spec.Path, Pos: st.Pos, Err: ErrNoPluginSupport,
					Msg: fmt.Sprintf("stage %q: %s needs plugin support, which this build lacks", st.ID, st.Uses)})
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
		kinds[st.ID] = k
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
		params := resolveParams(&e.Spec, st, func(p Pos, msg string) { at(p, "stage %q: %s", st.ID, msg) },
			func(err error) { errs = append(errs, err) })
		plan.Steps = append(plan.Steps, &Step{StageSpec: st, Entry: e, Params: params})
	}
	if _, ok := seen[stage.KindLoader]; !ok && len(spec.Stages) > 0 {
		at(Pos{}, "the pipeline has no loader stage (uses: loader/gguf)")
	}
	errs = append(errs, checkInputs(spec, plan, kinds)...)
	errs = append(errs, checkSweep(spec, plan)...)
	return plan, errs.orNil()
}

// resolveParams validates a stage's `with:` against its Spec, reporting each problem at the
// parameter it concerns, and returns the parameters with defaults filled in. A value from the
// command line (--set) that the stage refuses is reported through flagFail as an ErrOverride
// naming the --set, not at a place in the file.
func resolveParams(spec *stage.Spec, st *StageSpec, fail func(Pos, string), flagFail func(error)) stage.Params {
	where := func(name string) Pos {
		if p, ok := st.WithPos[name]; ok && p.Line > 0 {
			return p
		}
		return st.Pos // a missing parameter: the stage is the place
	}
	var fromFlags []string // the --set overrides of this stage, as typed
	for name, p := range st.WithPos {
		if p.Line == 0 {
			fromFlags = append(fromFlags, fmt.Sprintf("--set %s.%s=%v", st.ID, name, st.With[name]))
		}
	}
	sort.Strings(fromFlags)
	bad := false
	report := func(name, msg string) {
		bad = true
		if p, ok := st.WithPos[name]; ok && p.Line == 0 {
			flagFail(&PosError{Err: ErrOverride, Msg: fmt.Sprintf("--set %s.%s=%v: %s", st.ID, name, st.With[name], msg)})
			return
		}
		fail(where(name), msg)
	}
	names := make([]string, 0, len(st.With))
	for k := range st.With {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		pi, pj := st.WithPos[names[i]], st.WithPos[names[j]]
		if pi.Line != pj.Line {
			return pi.Line < pj.Line
		}
		return names[i] < names[j]
	})
	valid := map[string]any{}
	for _, name := range names {
		ps, ok := spec.Param(name)
		if !ok {
			report(name, fmt.Sprintf("%s has no parameter %q (it has: %s)", spec.Uses, name, paramNames(spec)))
			continue
		}
		if _, err := ps.Coerce(st.With[name]); err != nil {
			report(name, err.Error())
			continue
		}
		valid[name] = st.With[name]
	}
	// What remains are missing required parameters and defaults; stage.Spec.Resolve owns those
	// rules (and the coercion, done again here on values already known to be good).
	params, errs := spec.Resolve(valid)
	for _, err := range errs {
		bad = true
		fail(st.Pos, err.Error())
	}
	// The stage's own checks (ranges, combinations), once every value has its type, so that
	// what the build would refuse is refused now.
	if spec.Check != nil && !bad {
		if err := spec.Check(params); err != nil {
			if len(fromFlags) > 0 {
				flagFail(&PosError{Err: ErrOverride, Msg: fmt.Sprintf("%s: stage %q: %v", strings.Join(fromFlags, " "), st.ID, err)})
			} else {
				fail(st.Pos, err.Error())
			}
		}
	}
	return params
}

func paramNames(s *stage.Spec) string {
	if len(s.Params) == 0 {
		return "none"
	}
	names := make([]string, len(s.Params))
	for i, p := range s.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// checkInputs validates the `inputs:` lists: every id names a build stage that comes earlier,
// and the references form no cycle. It also fills in each step's InputIDs.
func checkInputs(spec *Spec, plan *Plan, kinds map[string]stage.Kind) Errors {
	var errs Errors
	at := func(p Pos, format string, args ...any) {
		errs = append(errs, &PosError{Path: spec.Path, Pos: p, Msg: fmt.Sprintf(format, args...)})
	}
	index := map[string]int{}
	for i, st := range spec.Stages {
		index[st.ID] = i
	}
	// Cycles first: an edge that closes one is reported as the cycle, not as a forward
	// reference. Depth-first search over stage → input edges, in file order.
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(spec.Stages))
	inCycle := map[[2]int]bool{}
	reported := map[string]bool{}
	var path []int
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		path = append(path, i)
		st := spec.Stages[i]
		for k, ref := range st.Inputs {
			j, ok := index[ref]
			if !ok || j == i {
				continue
			}
			switch color[j] {
			case grey:
				// path from j to i, then back to j
				var cyc []string
				var members []int
				for p := len(path) - 1; p >= 0; p-- {
					cyc = append([]string{spec.Stages[path[p]].ID}, cyc...)
					members = append(members, path[p])
					if path[p] == j {
						break
					}
				}
				for m := range members {
					from := members[m]
					to := members[(m+len(members)-1)%len(members)]
					inCycle[[2]int{from, to}] = true
				}
				inCycle[[2]int{i, j}] = true
				sorted := append([]string{}, cyc...)
				sort.Strings(sorted)
				if key := strings.Join(sorted, "\x00"); !reported[key] {
					reported[key] = true
					at(st.InputsPos[k], "stage %q: inputs form a cycle: %s → %s", st.ID, strings.Join(cyc, " → "), spec.Stages[j].ID)
				}
			case white:
				visit(j)
			}
		}
		path = path[:len(path)-1]
		color[i] = black
	}
	for i := range spec.Stages {
		if color[i] == white {
			visit(i)
		}
	}
	for i, st := range spec.Stages {
		if st.Inputs == nil {
			continue
		}
		if k, ok := kinds[st.ID]; ok && k == stage.KindSampler && len(st.Inputs) > 0 {
			at(st.InputsPos[0], "stage %q: a sampler stage takes no inputs", st.ID)
			continue
		}
		if k, ok := kinds[st.ID]; ok && k == stage.KindRuntime && len(st.Inputs) != 1 {
			at(st.Pos, "stage %q: a runtime stage opens exactly one artifact; give one input, not %d", st.ID, len(st.Inputs))
		}
		dup := map[string]bool{}
		for k, ref := range st.Inputs {
			pos := st.InputsPos[k]
			j, ok := index[ref]
			switch {
			case !ok:
				at(pos, "stage %q: input %q is not a stage of this pipeline (stages: %s)", st.ID, ref, strings.Join(spec.ids(), ", "))
			case j == i:
				at(pos, "stage %q lists itself as an input", st.ID)
			case dup[ref]:
				at(pos, "stage %q: input %q is listed twice", st.ID, ref)
			case inCycle[[2]int{i, j}]:
				// reported above
			case j > i:
				at(pos, "stage %q: input %q comes later in the pipeline; stages run in file order, so move %q before %q",
					st.ID, ref, ref, st.ID)
			default:
				if k, known := kinds[ref]; known && !k.IsBuild() {
					at(pos, "stage %q: input %q is a %s stage, which produces no artifact", st.ID, ref, k)
				}
			}
			dup[ref] = true
		}
	}
	// Fill in the resolved inputs: explicit lists as written, otherwise every earlier build stage.
	var earlier []string
	for _, s := range plan.Steps {
		if s.Inputs != nil {
			s.InputIDs = append([]string{}, s.Inputs...)
		} else {
			s.InputIDs = append([]string{}, earlier...)
		}
		if s.Kind().IsBuild() {
			earlier = append(earlier, s.ID)
		}
	}
	return errs
}

// checkSweep validates `sweep:` entries against the stages they vary.
func checkSweep(spec *Spec, plan *Plan) Errors {
	var errs Errors
	for _, ax := range spec.Sweep {
		at := func(format string, args ...any) {
			errs = append(errs, &PosError{Path: spec.Path, Pos: ax.Pos, Msg: fmt.Sprintf(format, args...)})
		}
		if spec.Stage(ax.Stage) == nil {
			at("sweep: no stage with id %q (stages: %s)", ax.Stage, strings.Join(spec.ids(), ", "))
			continue
		}
		var step *Step
		for _, s := range plan.Steps {
			if s.ID == ax.Stage {
				step = s
			}
		}
		if step == nil {
			continue // the stage itself failed to resolve and was reported
		}
		ps, ok := step.Entry.Spec.Param(ax.Param)
		if !ok {
			at("sweep: %s has no parameter %q (it has: %s)", step.Uses, ax.Param, paramNames(&step.Entry.Spec))
			continue
		}
		for _, v := range ax.Values {
			if _, err := ps.Coerce(v); err != nil {
				at("sweep %s.%s: %v", ax.Stage, ax.Param, err)
			}
		}
	}
	return errs
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
	Cached   bool           `json:"cached,omitempty"` // taken from the cache, not run
	Key      string         `json:"key,omitempty"`    // the cache key ("" without a cache)
}

// BuildOptions says where build stages write.
type BuildOptions struct {
	WorkDir string // each stage's output lands in WorkDir/<id>
	Report  stage.Reporter
	// Cache, when set, supplies the outputs of stages it already holds (reported as a "cached"
	// event) and keeps the outputs of the stages that run. Without one every stage runs.
	Cache *Cache
}

// Build runs the build stages in order. Each writes into a fresh temporary directory that is
// renamed into place only when the stage succeeded, so a failed or interrupted stage never
// leaves a partial artifact where a later run would take it for a finished one. With a cache
// that directory is the cache's, and WorkDir/<id> receives hard links (or copies) of the entry.
func (p *Plan) Build(ctx context.Context, opts BuildOptions) ([]Built, error) {
	if p.Spec.Model == "" {
		return nil, ErrNoModel
	}
	report := opts.Report
	if report == nil {
		report = func(stage.Event) {}
	}
	workDir, err := filepath.Abs(opts.WorkDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, err
	}
	var modelDigest string
	if opts.Cache != nil {
		var first string
		for _, s := range p.Steps {
			if s.Kind().IsBuild() {
				first = s.ID
				break
			}
		}
		modelDigest, err = opts.Cache.FileDigest(p.Spec.Model, func(done, total int64) {
			report(stage.Event{Stage: first, Event: "progress", Done: done, Total: total, Unit: "bytes",
				Msg: "hashing " + filepath.Base(p.Spec.Model)})
		})
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
	}
	done := map[string]Built{}
	var out []Built
	for _, s := range p.Steps {
		if !s.Kind().IsBuild() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		inputs := make([]stage.Artifact, 0, len(s.InputIDs))
		roots := make([]string, 0, len(s.InputIDs))
		inKeys := make([]string, 0, len(s.InputIDs))
		for _, id := range s.InputIDs {
			b, ok := done[id]
			if !ok {
				return out, fmt.Errorf("stage %q: input %q has not been built (is it a build stage before %q?)", s.ID, id, s.ID)
			}
			inputs = append(inputs, b.Artifact)
			roots = append(roots, filepath.Join(workDir, id))
			inKeys = append(inKeys, b.Key)
		}
		req := stage.BuildRequest{ID: s.ID, Params: s.Params, Source: p.Spec.Model, Inputs: inputs,
			Report: func(e stage.Event) { e.Stage = s.ID; report(e) }}
		final := filepath.Join(workDir, s.ID)
		start := time.Now()
		var b Built
		if opts.Cache != nil {
			b, err = opts.Cache.build(ctx, cacheJob{step: s, req: req, roots: roots, final: final,
				model: modelDigest, inputKeys: inKeys, pipeline: p.Spec.Name, report: report})
		} else {
			report(stage.Event{Stage: s.ID, Event: "start", Msg: s.Uses})
			b.Artifact, err = buildInPlace(ctx, s, req, workDir, final)
			if err == nil {
				report(stage.Event{Stage: s.ID, Event: "done", Msg: b.Artifact.Path})
			}
		}
		if err != nil {
			return out, fmt.Errorf("stage %q (%s): %w", s.ID, s.Uses, err)
		}
		b.ID, b.Seconds = s.ID, time.Since(start).Seconds()
		done[s.ID] = b
		out = append(out, b)
	}
	return out, nil
}

// buildInPlace runs one stage into a temporary directory under workDir and renames it to final.
func buildInPlace(ctx context.Context, s *Step, req stage.BuildRequest, workDir, final string) (stage.Artifact, error) {
	b, ok := s.Entry.New().(stage.Builder)
	if !ok {
		return stage.Artifact{}, fmt.Errorf("%s does not implement a build stage", s.Uses)
	}
	tmp, err := os.MkdirTemp(workDir, "."+s.ID+".tmp-")
	if err != nil {
		return stage.Artifact{}, err
	}
	req.OutDir = tmp
	art, err := b.Build(ctx, req)
	if err == nil {
		err = replaceDir(tmp, final)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return stage.Artifact{}, err
	}
	art.Path = relocate(art.Path, tmp, final)
	for k, v := range art.Meta {
		art.Meta[k] = relocate(v, tmp, final)
	}
	return art, nil
}

// replaceDir renames the finished directory tmp to final, replacing what was there.
func replaceDir(tmp, final string) error {
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// relocate rewrites a path inside the temporary directory to its final place.
func relocate(path, tmp, final string) string {
	if rel, ok := within(path, tmp); ok {
		return filepath.Join(final, rel)
	}
	return path
}

// within reports whether path lies inside dir, and where.
func within(path, dir string) (string, bool) {
	if !filepath.IsAbs(path) {
		return "", false
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
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
	art := built[len(built)-1].Artifact
	if s.Inputs != nil && len(s.Inputs) == 1 {
		found := false
		for _, b := range built {
			if b.ID == s.Inputs[0] {
				art, found = b.Artifact, true
			}
		}
		if !found {
			return nil, fmt.Errorf("stage %q: input %q was not built", s.ID, s.Inputs[0])
		}
	}
	rt, ok := s.Entry.New().(stage.Runtime)
	if !ok {
		return nil, fmt.Errorf("stage %q (%s) is not a runtime", s.ID, s.Uses)
	}
	sess, err := rt.Open(ctx, art, s.Params)
	if err != nil {
		return nil, fmt.Errorf("stage %q (%s): %w", s.ID, s.Uses, err)
	}
	return sess, nil
}

// NewSampler makes the sampler stage's token sampler.
func (p *Plan) NewSampler(vocab int) (stage.TokenSampler, error) {
	return p.NewSamplerWith(vocab, nil)
}

// NewSamplerWith is NewSampler with some of the sampler stage's parameters replaced (a
// server's per-request temperature, seed …).
func (p *Plan) NewSamplerWith(vocab int, overrides map[string]any) (stage.TokenSampler, error) {
	s := p.Step(stage.KindSampler)
	if s == nil {
		return nil, fmt.Errorf("%s: the pipeline has no sampler stage", p.name())
	}
	sm, ok := s.Entry.New().(stage.Sampler)
	if !ok {
		return nil, fmt.Errorf("stage %q (%s) is not a sampler", s.ID, s.Uses)
	}
	params := s.Params
	if len(overrides) > 0 {
		params = maps.Clone(s.Params)
		maps.Copy(params, overrides)
	}
	ts, err := sm.New(params, vocab)
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

// Default is the pipeline used for a bare GGUF path: load → quantize (auto: a quantized GGUF's
// blocks transcoded, f16/f32 weights kept fp16) → export → compile (validate; coremlcompiler on
// macOS) → runtime → sample.
func Default(model string) *Spec {
	mk := func(id, uses string) *StageSpec {
		return &StageSpec{ID: id, Uses: uses, With: map[string]any{}, WithPos: map[string]Pos{}}
	}
	// A quantized GGUF stays quantized (no second rounding) and an f16/f32 one fp16, unless
	// asked: --set quantize.scheme=lut4 (or block, …).
	quantize := mk("quantize", "quantize/int4")
	quantize.With["scheme"] = "auto"
	return &Spec{Name: "default", Model: model, Stages: []*StageSpec{
		mk("load", "loader/gguf"),
		quantize,
		mk("export", "export/mil"),
		mk("compile", "compile/coreml"),
		mk("runtime", "runtime/auto"),
		mk("sample", "sampler/default"),
	}}
}
