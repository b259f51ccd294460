package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/lilims/lilims/internal/hub"
	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/loader/tokenizer"
)

// pipelineFlags are shared by every command that takes MODEL.gguf|PIPELINE.yaml.
type pipelineFlags struct {
	sets     []string
	workDir  string
	verbose  bool
	cacheDir string
	noCache  bool
	json     bool      // --json: progress as NDJSON on stderr
	stderr   io.Writer // the command's stderr, where progress goes
}

func (pf *pipelineFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&pf.sets, "set", nil, "override a stage parameter: STAGE.PARAM=VALUE (repeatable)")
	cmd.Flags().StringVar(&pf.workDir, "work-dir", "", "directory for build artifacts (default: a temporary directory)")
	cmd.Flags().BoolVarP(&pf.verbose, "verbose", "v", false, "report each stage on stderr")
	cmd.Flags().StringVar(&pf.cacheDir, "cache-dir", "", "build cache directory (default: $LILIMS_CACHE_DIR, else lilims under the user cache directory)")
	cmd.Flags().BoolVar(&pf.noCache, "no-cache", false, "run every build stage, neither reading nor filling the cache")
	// A command whose --json already formats its result (build, score) also gets NDJSON
	// progress events from it: machines asked for machine output.
	if cmd.Flags().Lookup("json") == nil {
		cmd.Flags().BoolVar(&pf.json, "json", false, "report progress as NDJSON events on stderr")
	}
	// The commands hand buildPlan only (ctx, plan, workDir, verbose); the other settings ride
	// in the command's context, put there before RunE.
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, a []string) error {
		if prev != nil {
			if err := prev(c, a); err != nil {
				return err
			}
		}
		if f := c.Flags().Lookup("json"); f != nil && f.Value.String() == "true" {
			pf.json = true
		}
		pf.stderr = c.ErrOrStderr()
		cmdNotes.to(pf.stderr, pf.json)
		c.SetContext(context.WithValue(c.Context(), pipelineFlagsKey{}, pf))
		return nil
	}
}

type pipelineFlagsKey struct{}

// errOut is the command's stderr.
func (pf *pipelineFlags) errOut() io.Writer {
	if pf.stderr == nil {
		return os.Stderr
	}
	return pf.stderr
}

// openCache opens the build cache the flags select, or returns nil with --no-cache.
func (pf *pipelineFlags) openCache() (*pipeline.Cache, error) {
	if pf.noCache {
		return nil, nil
	}
	dir := pf.cacheDir
	if dir == "" {
		d, err := pipeline.DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	return pipeline.OpenCache(dir)
}

// isPipelineFile tells a pipeline YAML from a model path.
func isPipelineFile(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}

// loadPlan reads a pipeline file, or builds the default pipeline for a bare GGUF path, applies
// --set overrides (and extra ones from the command's own flags) and validates it.
func loadPlan(arg string, sets []string) (*pipeline.Plan, error) {
	plan, errs, err := checkPipeline(arg, sets)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if err := resolveModel(plan, cmdNotes.writer()); err != nil {
		return nil, err
	}
	return plan, nil
}

// checkPipeline loads and resolves a pipeline, collecting every problem of the file (syntax,
// schema, stages, parameters, inputs) as errs; err is for what is not the file's fault (it
// cannot be read, a malformed --set).
func checkPipeline(arg string, sets []string) (*pipeline.Plan, pipeline.Errors, error) {
	var spec *pipeline.Spec
	var errs pipeline.Errors
	if isPipelineFile(arg) {
		s, err := pipeline.LoadFile(arg)
		if s == nil {
			if err == nil {
				return nil, nil, fmt.Errorf("%s: no pipeline", arg)
			}
			var pe *pipeline.PosError
			if errors.As(err, &pe) {
				return nil, pipeline.Errors{err}, nil
			}
			var list pipeline.Errors
			if errors.As(err, &list) {
				return nil, list, nil
			}
			return nil, nil, err
		}
		errs = append(errs, asErrors(err)...)
		spec = s
	} else {
		// A Hub name (OWNER/REPO[:QUANT]) is resolved by loadPlan, which may pull it.
		if _, err := os.Stat(arg); err != nil && !hub.LooksLikeRef(arg) {
			return nil, nil, missingModel(arg, err)
		}
		spec = pipeline.Default(arg)
		if isExport(arg) {
			if err := packageSets(arg, spec, sets); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, s := range sets {
		if err := spec.Set(s); err != nil {
			return nil, nil, usageError{err}
		}
	}
	plan, err := pipeline.Resolve(isolate(spec), withPlugins(builtin.Registry()))
	// A --set the stage refuses is a command-line mistake (exit 2), as an unknown stage id is.
	var flagErrs pipeline.Errors
	for _, e := range asErrors(err) {
		if errors.Is(e, pipeline.ErrOverride) {
			flagErrs = append(flagErrs, e)
		} else {
			errs = append(errs, e)
		}
	}
	if len(flagErrs) > 0 {
		return nil, nil, usageError{flagErrs}
	}
	return plan, errs.Sorted(), nil
}

func asErrors(err error) pipeline.Errors {
	var list pipeline.Errors
	switch {
	case err == nil:
		return nil
	case errors.As(err, &list):
		return list
	}
	return pipeline.Errors{err}
}

// isExport reports whether path is an exported model: a .mlpackage, or the directory of a
// chunked export.
func isExport(path string) bool {
	if mlpackage.IsChunked(path) {
		return true
	}
	fi, err := os.Stat(filepath.Join(path, mlpackage.ManifestFile))
	return err == nil && fi.Mode().IsRegular()
}

// packageSets refuses --set overrides of build stages for an exported model: its build
// stages ran when it was exported, so they would be silently ignored.
func packageSets(arg string, spec *pipeline.Spec, sets []string) error {
	for _, set := range sets {
		id, _, _ := strings.Cut(set, ".")
		for _, st := range spec.Stages {
			if st.ID == id && !strings.HasPrefix(st.Uses, "runtime/") && !strings.HasPrefix(st.Uses, "sampler/") {
				return usagef("--set %s: %s is already built (an exported package); only runtime and sampler settings apply", set, arg)
			}
		}
	}
	return nil
}

// built is a pipeline whose build stages have run.
type built struct {
	plan      *pipeline.Plan
	artifacts []pipeline.Built
	cleanup   func()
}

func (b *built) model() string { return b.plan.Spec.Model }

// buildPlan runs the build stages into workDir (a temporary directory when empty), through
// the build cache unless --no-cache. Progress goes to stderr: bars on a terminal, NDJSON with
// --json, nothing otherwise (besides -v's one line per stage).
func buildPlan(ctx context.Context, plan *pipeline.Plan, workDir string, verbose bool) (*built, error) {
	if isExport(plan.Spec.Model) {
		// An exported package is already built: the runtime opens it as it is.
		art := stage.Artifact{Kind: "mlpackage", Path: plan.Spec.Model}
		return &built{plan: plan, artifacts: []pipeline.Built{{ID: "package", Artifact: art}}, cleanup: func() {}}, nil
	}
	pf, _ := ctx.Value(pipelineFlagsKey{}).(*pipelineFlags)
	if pf == nil {
		pf = &pipelineFlags{verbose: verbose}
	}
	stderr := pf.stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	var reporters []stage.Reporter
	if verbose && !pf.json { // --json: the NDJSON events carry the same, and stay clean
		reporters = append(reporters, func(e stage.Event) {
			if e.Event == "start" || e.Event == "done" || e.Event == "cached" {
				fmt.Fprintf(stderr, "lilims: %s: %s %s\n", e.Stage, e.Event, e.Msg)
			}
		})
	}
	finish := func() {}
	switch {
	case pf.json:
		reporters = append(reporters, pipeline.NDJSON(stderr))
	case isTerminalWriter(stderr) && !verbose:
		var bars stage.Reporter
		bars, finish = pipeline.ProgressBars(stderr)
		reporters = append(reporters, bars)
	}
	cache, err := pf.openCache()
	if err != nil {
		// A cache that cannot be opened (a read-only home …) costs time, not correctness.
		if pf.json {
			pipeline.NDJSON(stderr)(stage.Event{Stage: "cache", Event: "log", Msg: "building without a cache: " + err.Error()})
		} else {
			fmt.Fprintf(stderr, "lilims: building without a cache: %v\n", err)
		}
		cache = nil
	}
	cleanup := func() {}
	if workDir == "" {
		dir, err := os.MkdirTemp("", "lilims-")
		if err != nil {
			return nil, err
		}
		workDir, cleanup = dir, func() { os.RemoveAll(dir) }
	}
	report := func(e stage.Event) {
		for _, r := range reporters {
			r(e)
		}
	}
	arts, err := plan.Build(ctx, pipeline.BuildOptions{WorkDir: workDir, Report: report, Cache: cache})
	finish()
	if err != nil {
		cleanup()
		return nil, err
	}
	for _, a := range arts {
		// What the quantize stage did to the weights, which no other output shows.
		if w := a.Artifact.Meta["weights"]; w != "" && !pf.json {
			fmt.Fprintf(stderr, "lilims: %s: %s\n", a.ID, w)
		}
	}
	return &built{plan: plan, artifacts: arts, cleanup: cleanup}, nil
}

// isTerminalWriter reports whether w is a terminal (a character device is not enough:
// /dev/null is one).
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// modelTokenizer reads the tokenizer of the pipeline's model: a GGUF, or the host file of an
// exported package.
func modelTokenizer(model string) (*tokenizer.Tokenizer, error) {
	f, err := openModelMetadata(model)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return tokenizer.FromGGUF(f)
}

// openModelMetadata opens what holds the model's metadata (tokenizer, chat template): the
// GGUF itself, or the host file an exported package carries.
func openModelMetadata(model string) (*gguf.File, error) {
	if isExport(model) {
		return contract.OpenHost(model)
	}
	return gguf.Open(model)
}
