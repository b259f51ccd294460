package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/internal/hub"
	"github.com/lilims/lilims/pipeline"
)

func newValidateCmd() *cobra.Command {
	var (
		sets   []string
		asJSON bool
		strict bool
	)
	cmd := &cobra.Command{
		Use:   "validate PIPELINE.yaml...",
		Short: "Check pipeline files without running them, reporting every problem as file:line:col: message",
		Long: `Check each pipeline file: YAML syntax, the schema (name, model, stages, sweep), every stage
against the registered stages (unknown stages, unknown, mistyped or missing parameters), the
inputs between stages (unknown ids, forward references, cycles) and ${VAR} references. Every
problem is reported at once, one per line on stderr, sorted by position; nothing is printed
when the files are valid. Exit status 1 when any file has a problem.

A model file that is not there (a pipeline written for a model you have not downloaded yet)
is a warning, with the ways to get one; --strict makes it a problem.`,
		Example: `  lilims validate pipelines/*.yaml
  lilims validate pipelines/phi2-ane.yaml --set quantize.scheme=lut4
  lilims validate my.yaml --json`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			type problem struct {
				File    string `json:"file"`
				Line    int    `json:"line,omitempty"`
				Col     int    `json:"col,omitempty"`
				Message string `json:"message"`
			}
			cmdNotes.to(cmd.ErrOrStderr(), asJSON)
			problems, warnings := []problem{}, []problem{}
			for _, path := range a {
				if !isPipelineFile(path) {
					return usagef("%s: validate takes pipeline files (.yaml, .yml)", path)
				}
				plan, errs, err := checkPipeline(path, sets)
				if err != nil {
					return err
				}
				if err := modelMissing(plan); err != nil {
					p := problem{File: path, Message: err.Error()}
					if strict {
						problems = append(problems, p)
					} else {
						warnings = append(warnings, p)
					}
					if !asJSON {
						kind := "warning: "
						if strict {
							kind = ""
						}
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s%v\n", path, kind, err)
					}
				}
				for _, e := range errs {
					p := problem{File: path, Message: e.Error()}
					var pe *pipeline.PosError
					if errors.As(e, &pe) {
						p = problem{File: pe.Path, Line: pe.Pos.Line, Col: pe.Pos.Col, Message: pe.Msg}
					}
					problems = append(problems, p)
					if !asJSON {
						fmt.Fprintln(cmd.ErrOrStderr(), e)
					}
				}
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), map[string]any{"problems": problems, "warnings": warnings}); err != nil {
					return err
				}
			}
			switch n := len(problems); n {
			case 0:
				return nil
			case 1:
				return errors.New("1 problem")
			default:
				return fmt.Errorf("%d problems", n)
			}
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a stage parameter before checking: STAGE.PARAM=VALUE (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"problems": [{"file", "line", "col", "message"}], "warnings": [...]} on stdout`)
	cmd.Flags().BoolVar(&strict, "strict", false, "a missing model file is a problem, not a warning")
	return cmd
}

// modelMissing explains a pipeline's model that is not on disk (nil when it is there, or
// when it is a Hub name that run would pull).
func modelMissing(plan *pipeline.Plan) error {
	if plan == nil || plan.Spec.Model == "" {
		return nil
	}
	m := plan.Spec.Model
	_, err := os.Stat(m)
	if err == nil || hub.LooksLikeRef(m) {
		return nil
	}
	return missingModel(m, err)
}
