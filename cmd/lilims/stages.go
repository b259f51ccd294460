package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/plugin"
	"github.com/lilims/lilims/pipeline/stage"
)

func newStagesCmd() *cobra.Command {
	var asJSON, markdown bool
	cmd := &cobra.Command{
		Use:   "stages [USES]",
		Short: "List the stages a pipeline can use, built-in and plugin, with their parameters",
		Long: `List the built-in stages and the plugins installed in the plugin directories, with their
parameters. USES narrows the list to one stage: a built-in name (sampler/default), or
plugin:PATH for a plugin executable or a plugin's Go package directory, which is built first
(with the go command) and asked what it serves.`,
		Example: `  lilims stages
  lilims stages sampler/default
  lilims stages plugin:./plugins/arch-qwen2
  lilims stages --json`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cmdNotes.to(cmd.ErrOrStderr(), asJSON)
			if len(a) == 1 && strings.HasPrefix(a[0], "plugin:") {
				// The same start-and-describe a pipeline's `uses: plugin:PATH` goes through.
				specs, err := pluginHost().Describe(cmd.Context(), plugin.Ref{Path: strings.TrimPrefix(a[0], "plugin:")})
				if err != nil {
					return err
				}
				for i := range specs {
					specs[i].Uses = a[0]
				}
				return printStages(cmd, specs, asJSON, markdown)
			}
			specs, err := listStages(cmd, withPlugins(builtin.Registry()))
			if err != nil {
				return err
			}
			if len(a) == 1 {
				var one []stage.Spec
				for _, s := range specs {
					if s.Uses == a[0] {
						one = append(one, s)
					}
				}
				if len(one) == 0 {
					return fmt.Errorf("no stage %q (run 'lilims stages' for the list; a plugin is plugin:PATH)", a[0])
				}
				specs = one
			}
			return printStages(cmd, specs, asJSON, markdown)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"stages": [{"uses", "kind", "doc", "params": [...]}]}`)
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print Markdown tables (as in docs/pipelines.md)")
	return cmd
}

// listStages returns the built-in stages, then the plugin stages the registry's Discover hook
// finds (if the plugin glue installed one). A failing discovery is reported, not fatal: the
// built-ins are still worth listing.
func listStages(cmd *cobra.Command, reg *pipeline.Registry) ([]stage.Spec, error) {
	specs := reg.Specs()
	if reg.Discover != nil {
		plugins, err := reg.Discover(cmd.Context())
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "lilims: discovering plugins: %v\n", err)
		}
		specs = append(specs, plugins...)
	}
	return specs, nil
}

func printStages(cmd *cobra.Command, specs []stage.Spec, asJSON, markdown bool) error {
	switch {
	case asJSON:
		return writeJSON(cmd.OutOrStdout(), map[string]any{"stages": specs})
	case markdown:
		_, err := io.WriteString(cmd.OutOrStdout(), pipeline.MarkdownStages(specs))
		return err
	}
	return writeStages(cmd.OutOrStdout(), specs)
}

func writeStages(w io.Writer, specs []stage.Spec) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, s := range specs {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s\t(%s)\t%s\n", s.Uses, s.Kind, s.Doc)
		for _, p := range s.Params {
			def := ""
			switch {
			case p.Required:
				def = "required"
			case p.Default != nil:
				def = fmt.Sprintf("default %v", p.Default)
			}
			doc := p.Doc
			if len(p.Enum) > 0 {
				doc += " [" + strings.Join(p.Enum, "|") + "]"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, p.Type, def, doc)
		}
	}
	return tw.Flush()
}
