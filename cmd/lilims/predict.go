package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/stages/runtime/reference"
)

func newPredictCmd() *cobra.Command {
	var (
		function          string
		inputs            []string
		stateIn, stateOut string
		outDir            string
	)
	cmd := &cobra.Command{
		Use:   "predict PACKAGE.mlpackage --input NAME=FILE.npy ... -o OUTDIR",
		Short: "Run any supported .mlpackage on the reference runtime (Core ML's predict, on any OS)",
		Long: `Run one function of an ML Program package — ours or one written by coremltools — on the
pure-Go reference runtime. Inputs are numpy .npy files; each output is written to OUTDIR/NAME.npy.
A stateful function starts from --state-in DIR (one NAME.npy per state; zeros when absent) and
writes its final states to --state-out DIR.`,
		Example: `  lilims predict model.mlpackage --function decode --input input_ids=ids.npy --input position_ids=pos.npy \
      --input causal_mask=mask.npy --input current_pos=cur.npy --state-out state/ -o out/`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if outDir == "" {
				return usagef("predict needs an output directory (-o OUTDIR)")
			}
			in := map[string]string{}
			for _, s := range inputs {
				name, file, ok := strings.Cut(s, "=")
				if !ok || name == "" || file == "" {
					return usagef("--input %q: want NAME=FILE.npy", s)
				}
				if _, dup := in[name]; dup {
					return usagef("--input %s given twice", name)
				}
				in[name] = file
			}
			if err := reference.PredictFiles(a[0], function, in, stateIn, stateOut, outDir); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "lilims: outputs written to", outDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&function, "function", "", "function to run (default: the package's default function)")
	cmd.Flags().StringArrayVar(&inputs, "input", nil, "an input as NAME=FILE.npy (repeatable)")
	cmd.Flags().StringVar(&stateIn, "state-in", "", "directory of NAME.npy initial states")
	cmd.Flags().StringVar(&stateOut, "state-out", "", "directory receiving the final states")
	cmd.Flags().StringVarP(&outDir, "output", "o", "", "directory receiving the outputs")
	return cmd
}
