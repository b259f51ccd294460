package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/loader/tokenizer"
)

// pipelineFlags are shared by every command that takes MODEL.gguf|PIPELINE.yaml.
type pipelineFlags struct {
	sets    []string
	workDir string
	verbose bool
}

func (pf *pipelineFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&pf.sets, "set", nil, "override a stage parameter: STAGE.PARAM=VALUE (repeatable)")
	cmd.Flags().StringVar(&pf.workDir, "work-dir", "", "directory for build artifacts (default: a temporary directory)")
	cmd.Flags().BoolVarP(&pf.verbose, "verbose", "v", false, "report each stage on stderr")
}

// isPipelineFile tells a pipeline YAML from a model path.
func isPipelineFile(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}

// loadPlan reads a pipeline file, or builds the default pipeline for a bare GGUF path, applies
// --set overrides (and extra ones from the command's own flags) and validates it.
func loadPlan(arg string, sets []string) (*pipeline.Plan, error) {
	var spec *pipeline.Spec
	if isPipelineFile(arg) {
		s, err := pipeline.LoadFile(arg)
		if err != nil {
			return nil, err
		}
		spec = s
	} else {
		if _, err := os.Stat(arg); err != nil {
			return nil, err
		}
		spec = pipeline.Default(arg)
	}
	for _, s := range sets {
		if err := spec.Set(s); err != nil {
			return nil, usageError{err}
		}
	}
	return pipeline.Resolve(spec, builtin.Registry())
}

// built is a pipeline whose build stages have run.
type built struct {
	plan      *pipeline.Plan
	artifacts []pipeline.Built
	cleanup   func()
}

func (b *built) model() string { return b.plan.Spec.Model }

// buildPlan runs the build stages into workDir (a temporary directory when empty).
func buildPlan(ctx context.Context, plan *pipeline.Plan, workDir string, verbose bool) (*built, error) {
	cleanup := func() {}
	if workDir == "" {
		dir, err := os.MkdirTemp("", "lilims-")
		if err != nil {
			return nil, err
		}
		workDir, cleanup = dir, func() { os.RemoveAll(dir) }
	}
	report := func(e stage.Event) {
		if verbose && (e.Event == "start" || e.Event == "done") {
			fmt.Fprintf(os.Stderr, "lilims: %s: %s %s\n", e.Stage, e.Event, e.Msg)
		}
	}
	arts, err := plan.Build(ctx, pipeline.BuildOptions{WorkDir: workDir, Report: report})
	if err != nil {
		cleanup()
		return nil, err
	}
	return &built{plan: plan, artifacts: arts, cleanup: cleanup}, nil
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
