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

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/stage"
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
		c.SetContext(context.WithValue(c.Context(), pipelineFlagsKey{}, pf))
		return nil
	}
}

type pipelineFlagsKey struct{}

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
		if _, err := os.Stat(arg); err != nil {
			return nil, nil, err
		}
		spec = pipeline.Default(arg)
	}
	for _, s := range sets {
		if err := spec.Set(s); err != nil {
			return nil, nil, usageError{err}
		}
	}
	plan, err := pipeline.Resolve(isolate(spec), withPlugins(builtin.Registry()))
	errs = append(errs, asErrors(err)...)
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
	pf, _ := ctx.Value(pipelineFlagsKey{}).(*pipelineFlags)
	if pf == nil {
		pf = &pipelineFlags{verbose: verbose}
	}
	stderr := pf.stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	var reporters []stage.Reporter
	if verbose {
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
		fmt.Fprintf(stderr, "lilims: building without a cache: %v\n", err)
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

// modelTokenizer reads the tokenizer of the pipeline's GGUF model.
func modelTokenizer(model string) (*tokenizer.Tokenizer, error) {
	f, err := gguf.Open(model)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return tokenizer.FromGGUF(f)
}
