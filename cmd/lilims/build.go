package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/stages/export"
)

func newBuildCmd() *cobra.Command {
	var (
		pf     pipelineFlags
		outDir string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "build MODEL.gguf|PIPELINE.yaml -o DIR",
		Short: "Run the build stages and write their artifacts (the .mlpackage …) into DIR",
		Example: `  lilims build testdata/oracle/models/stories260K.gguf -o out/
  lilims build pipelines/stories.yaml -o out/ --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if outDir == "" {
				return usagef("build needs an output directory (-o DIR)")
			}
			plan, err := loadPlan(a[0], pf.sets)
			if err != nil {
				return err
			}
			abs, err := filepath.Abs(outDir)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(abs, 0o755); err != nil {
				return err
			}
			// Stages write into DIR/<stage id>, each renamed into place only when it succeeded.
			b, err := buildPlan(cmd.Context(), plan, abs, pf.verbose)
			if err != nil {
				return err
			}
			arts := map[string]string{}
			for _, x := range b.artifacts {
				arts[x.ID] = x.Artifact.Path
			}
			// The KV state the exported package declares (what Core ML allocates for it).
			var kvBytes int64
			var kvContext int
			for _, x := range b.artifacts {
				if x.Artifact.Kind == "mlpackage" {
					kvBytes, kvContext, _ = export.PackageKVState(x.Artifact.Path)
				}
			}
			if asJSON {
				doc := map[string]any{"artifacts": arts}
				if kvContext > 0 {
					doc["kv_state"] = map[string]any{"context": kvContext, "bytes": kvBytes}
				}
				return writeJSON(cmd.OutOrStdout(), doc)
			}
			for _, x := range b.artifacts {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", x.ID, x.Artifact.Kind, x.Artifact.Path)
			}
			if kvContext > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "KV state: %s fp16 at the exported context %d\n", humanBytes(kvBytes), kvContext)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&outDir, "output", "o", "", "directory that receives the artifacts")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"artifacts": {"<stage id>": "<path>"}}`)
	pf.register(cmd)
	return cmd
}
