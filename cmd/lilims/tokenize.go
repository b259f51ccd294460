package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func newTokenizeCmd() *cobra.Command {
	var (
		text                 string
		special, bos, asJSON bool
		textSet              bool
	)
	cmd := &cobra.Command{
		Use:   "tokenize MODEL.gguf [--text TEXT]",
		Short: "Print the token ids of a text as llama.cpp tokenizes it",
		Long: `Tokenize a text with the model's own tokenizer (read from the GGUF metadata), exactly as
llama.cpp does. Without --text the text is read from standard input. No BOS is added unless
--bos is given; --special parses special/control tokens written in the text.`,
		Example: `  lilims tokenize model.gguf --text "Hello world"
  lilims tokenize model.gguf --text "<s>Hi" --special --json
  echo -n "Hello" | lilims tokenize model.gguf`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			tok, err := modelTokenizer(a[0])
			if err != nil {
				return err
			}
			textSet = cmd.Flags().Changed("text")
			if !textSet {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("reading standard input: %w", err)
				}
				text = string(b)
			}
			ids := tok.Encode(text, bos, special)
			if ids == nil {
				ids = []int32{}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"tokens": ids})
			}
			parts := make([]string, len(ids))
			for i, id := range ids {
				parts[i] = strconv.Itoa(int(id))
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), strings.Join(parts, " "))
			return err
		},
	}
	cmd.Flags().StringVar(&text, "text", "", "text to tokenize (default: standard input)")
	cmd.Flags().BoolVar(&special, "special", false, "parse special/control tokens in the text")
	cmd.Flags().BoolVar(&bos, "bos", false, "add BOS (and EOS where the model adds one), as llama.cpp's add_special")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"tokens": [ids]}`)
	return cmd
}

func newDetokenizeCmd() *cobra.Command {
	var special bool
	cmd := &cobra.Command{
		Use:   "detokenize MODEL.gguf ID...",
		Short: "Print the text of token ids",
		Example: `  lilims detokenize model.gguf 15496 995
  lilims detokenize model.gguf 1 450 --special`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if strings.TrimSpace(strings.ReplaceAll(strings.Join(a[1:], ""), ",", "")) == "" {
				return usagef("detokenize: no token ids (e.g. lilims detokenize %s 15496 995)", a[0])
			}
			tok, err := modelTokenizer(a[0])
			if err != nil {
				return err
			}
			ids, err := parseIDs(a[1:], tok.VocabSize())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok.Decode(ids, false, special))
			return err
		},
	}
	cmd.Flags().BoolVar(&special, "special", false, "render special/control tokens as text")
	return cmd
}

// parseIDs reads token ids given as separate arguments or comma-separated lists.
func parseIDs(a []string, vocab int) ([]int32, error) {
	var ids []int32
	for _, arg := range a {
		for _, s := range strings.Split(arg, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			n, err := strconv.ParseInt(s, 10, 32)
			if err != nil {
				return nil, usagef("token id %q is not an integer", s)
			}
			if n < 0 || int(n) >= vocab {
				return nil, fmt.Errorf("token id %d is outside the vocabulary (0..%d)", n, vocab-1)
			}
			ids = append(ids, int32(n))
		}
	}
	return ids, nil
}
