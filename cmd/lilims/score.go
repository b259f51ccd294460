package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/stages/sampler"
)

func newScoreCmd() *cobra.Command {
	var (
		pf     pipelineFlags
		prompt string
		tokens string
		top    int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "score MODEL.gguf|PIPELINE.yaml|PACKAGE.mlpackage (--prompt TEXT | --tokens 1,2,3) [--top K]",
		Short: "Print the next-token distribution after every position (to check numerics against llama.cpp)",
		Long: `Feed tokens through the exported package on the runtime and print, for every position i,
the K most likely next tokens with their probabilities (softmax of the logits at temperature 1)
after consuming tokens[0..i]. With --prompt the model's BOS rule applies as llama.cpp applies it.`,
		Example: `  lilims score testdata/oracle/models/stories260K.gguf --prompt "Once upon a time" --top 5 --json
  lilims score model.gguf --tokens 1,403,407 --top 20`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			hasPrompt, hasTokens := cmd.Flags().Changed("prompt"), cmd.Flags().Changed("tokens")
			if hasPrompt == hasTokens {
				return usagef("give exactly one of --prompt and --tokens")
			}
			if top < 1 {
				return usagef("--top must be at least 1")
			}
			plan, err := loadPlan(a[0], pf.sets)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			b, err := buildPlan(ctx, plan, pf.workDir, pf.verbose)
			if err != nil {
				return err
			}
			defer b.cleanup()
			sess, err := plan.OpenSession(ctx, b.artifacts)
			if err != nil {
				return err
			}
			defer sess.Close()
			tok, err := modelTokenizer(b.model())
			if err != nil {
				return err
			}
			var ids []int32
			if hasPrompt {
				ids = tok.Encode(prompt, true, true)
			} else if ids, err = parseIDs([]string{tokens}, sess.VocabSize()); err != nil {
				return err
			}
			// A token's text as llama.cpp's tools print it (common_token_to_piece, special
			// tokens rendered).
			piece := func(id int) string { return string(tok.Piece(int32(id), true)) }
			if len(ids) == 0 {
				return fmt.Errorf("no tokens to score")
			}
			if len(ids) > sess.ContextLength() {
				return fmt.Errorf("%d tokens exceed the exported context of %d (--set export.context=N)", len(ids), sess.ContextLength())
			}
			all, err := sess.Prefill(ctx, ids)
			if err != nil {
				return err
			}
			type step struct {
				Pos       int          `json:"pos"`
				Piece     string       `json:"piece"` // the text of tokens[pos]
				Top       [][2]float64 `json:"top"`
				TopPieces []string     `json:"top_pieces"` // the text of each top token
			}
			steps := make([]step, len(all))
			probs := make([]float32, sess.VocabSize())
			order := make([]int, sess.VocabSize())
			k := min(top, sess.VocabSize())
			for i, logits := range all {
				sampler.Softmax(logits, probs)
				for j := range order {
					order[j] = j
				}
				sort.SliceStable(order, func(x, y int) bool { return probs[order[x]] > probs[order[y]] })
				st := step{Pos: i, Piece: piece(int(ids[i])), Top: make([][2]float64, k), TopPieces: make([]string, k)}
				for j := 0; j < k; j++ {
					st.Top[j] = [2]float64{float64(order[j]), float64(probs[order[j]])}
					st.TopPieces[j] = piece(order[j])
				}
				steps[i] = st
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"tokens": ids, "steps": steps})
			}
			w := cmd.OutOrStdout()
			fmt.Fprint(w, "tokens:")
			for _, id := range ids {
				fmt.Fprintf(w, " %d %q", id, piece(int(id)))
			}
			fmt.Fprintln(w)
			for _, st := range steps {
				fmt.Fprintf(w, "pos %d (after %d %q):", st.Pos, ids[st.Pos], st.Piece)
				for j, p := range st.Top {
					fmt.Fprintf(w, "  %d %q %.4f", int(p[0]), st.TopPieces[j], p[1])
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&prompt, "prompt", "", "text to score (tokenized with the model's BOS rule)")
	cmd.Flags().StringVar(&tokens, "tokens", "", "comma-separated token ids to score (no BOS added)")
	cmd.Flags().IntVar(&top, "top", 20, "tokens listed per position")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"tokens": [...], "steps": [{"pos": i, "piece": text, "top": [[id, prob], ...], "top_pieces": [text, ...]}]}`)
	pf.register(cmd)
	return cmd
}
