package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/tokenizer"
	"github.com/lilims/lilims/stages/sampler"
)

// samplerFlags map command-line sampling options onto the pipeline's sampler stage.
var samplerFlags = []struct{ flag, param, usage string }{
	{"temperature", "temperature", "sampling temperature (≤ 0: greedy)"},
	{"top-k", "top_k", "keep the K most likely tokens (≤ 0: off)"},
	{"top-p", "top_p", "nucleus sampling threshold (1: off)"},
	{"min-p", "min_p", "drop tokens below MIN_P × the top probability (0: off)"},
	{"repeat-penalty", "repeat_penalty", "penalise repeated tokens (1: off)"},
	{"frequency-penalty", "frequency_penalty", "subtract count × this from repeated tokens' logits"},
	{"presence-penalty", "presence_penalty", "subtract this from tokens already present"},
	{"seed", "seed", "random seed (reproducible; default random)"},
}

func newRunCmd() *cobra.Command {
	var (
		pf        pipelineFlags
		prompt    string
		maxTokens int
		stops     []string
		raw       = map[string]*string{}
	)
	cmd := &cobra.Command{
		Use:   "run MODEL.gguf|PIPELINE.yaml|PACKAGE.mlpackage [--prompt TEXT]",
		Short: "Generate text: build the pipeline, then stream tokens from the runtime",
		Long: `Build the pipeline (a bare GGUF path uses the default one: load → export fp16 →
compile/validate → runtime → sample), open the exported package on the runtime and stream
generated text to stdout. An exported package (or chunked export directory) runs as it is,
without its GGUF: the tokenizer comes from the host file it carries. Progress and a tokens/s
summary go to stderr. Without --prompt on a terminal it is an interactive prompt loop;
otherwise the prompt is read from stdin.`,
		Example: `  lilims run testdata/oracle/models/stories260K.gguf --prompt "Once upon a time" --max-tokens 64
  lilims run model.gguf --prompt "Hi" --temperature 0
  lilims run pipelines/stories.yaml --prompt "Once" --set sample.top_k=10
  lilims run out/export/model.mlpackage --prompt "Once upon a time"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if maxTokens < 0 {
				return usagef("--max-tokens must not be negative")
			}
			plan, err := withSamplerFlags(cmd, a[0], pf.sets, raw, stops)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			start := time.Now()
			b, err := buildPlan(ctx, plan, pf.workDir, pf.verbose)
			if err != nil {
				return err
			}
			defer b.cleanup()
			tok, err := modelTokenizer(b.model())
			if err != nil {
				return err
			}
			sess, err := plan.OpenSession(ctx, b.artifacts)
			if err != nil {
				return err
			}
			defer sess.Close()
			smp, err := plan.NewSampler(sess.VocabSize())
			if err != nil {
				return err
			}
			var stopStrings []string
			if st := plan.Step(stage.KindSampler); st != nil {
				stopStrings = st.Params.Strings("stop")
			}
			if pf.verbose {
				fmt.Fprintf(os.Stderr, "lilims: ready in %.2fs\n", time.Since(start).Seconds())
			}
			g := &generator{sess: sess, tok: tok, smp: smp, stops: stopStrings, maxTokens: maxTokens,
				out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr()}
			if cmd.Flags().Changed("prompt") {
				return g.generate(ctx, prompt)
			}
			if isTerminal(os.Stdin) {
				return g.interactive(ctx, cmd.InOrStdin())
			}
			in, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return err
			}
			return g.generate(ctx, string(in))
		},
	}
	cmd.Flags().StringVarP(&prompt, "prompt", "p", "", "prompt text")
	cmd.Flags().IntVarP(&maxTokens, "max-tokens", "n", 128, "tokens to generate at most")
	cmd.Flags().StringArrayVar(&stops, "stop", nil, "stop when this string is generated (repeatable)")
	for _, sf := range samplerFlags {
		raw[sf.flag] = cmd.Flags().String(sf.flag, "", sf.usage)
	}
	pf.register(cmd)
	return cmd
}

// withSamplerFlags loads the pipeline and applies the sampling flags to its sampler stage,
// whatever that stage's id. Repeated --stop flags add up to one list.
func withSamplerFlags(cmd *cobra.Command, arg string, sets []string, raw map[string]*string, stops []string) (*pipeline.Plan, error) {
	plan, err := loadPlan(arg, sets)
	if err != nil {
		return nil, err
	}
	var extra []string
	for _, sf := range samplerFlags {
		if cmd.Flags().Changed(sf.flag) {
			extra = append(extra, sf.param+"="+*raw[sf.flag])
		}
	}
	if len(extra) == 0 && len(stops) == 0 {
		return plan, nil
	}
	smp := plan.Step(stage.KindSampler)
	if smp == nil {
		return nil, fmt.Errorf("%s: sampling flags given, but the pipeline has no sampler stage", arg)
	}
	if len(extra) > 0 {
		all := append([]string(nil), sets...)
		for _, e := range extra {
			all = append(all, smp.ID+"."+e)
		}
		if plan, err = loadPlan(arg, all); err != nil {
			return nil, err
		}
		smp = plan.Step(stage.KindSampler)
	}
	smp.Params["stop"] = append(append([]string(nil), smp.Params.Strings("stop")...), stops...)
	return plan, nil
}

func isTerminal(f *os.File) bool { return isTerminalWriter(f) }

// generator runs the generation loop on an open session.
type generator struct {
	sess      stage.Session
	tok       *tokenizer.Tokenizer
	smp       stage.TokenSampler
	stops     []string
	maxTokens int
	out       io.Writer
	errOut    io.Writer
}

// generate streams the continuation of prompt, starting a fresh conversation.
func (g *generator) generate(ctx context.Context, prompt string) error {
	g.sess.Reset()
	g.smp.Reset()
	// llama-cli tokenizes with add_special and parse_special both on.
	ids := g.tok.Encode(prompt, true, true)
	if len(ids) == 0 {
		return fmt.Errorf("the prompt is empty and the model adds no BOS token: nothing to continue")
	}
	if len(ids) >= g.sess.ContextLength() {
		return fmt.Errorf("prompt of %d tokens does not fit the exported context of %d tokens; re-export with a larger context (--set export.context=N)",
			len(ids), g.sess.ContextLength())
	}
	t0 := time.Now()
	all, err := g.sess.Prefill(ctx, ids)
	if err != nil {
		return err
	}
	logits := all[len(all)-1]
	for _, id := range ids {
		g.smp.Accept(id)
	}
	tPrompt := time.Since(t0)
	sd := sampler.NewStopDetector(g.stops)
	w := bufio.NewWriter(g.out)
	defer w.Flush()
	t1 := time.Now()
	n := 0
	reason := "max tokens"
	for n < g.maxTokens {
		if err := ctx.Err(); err != nil {
			w.Flush()
			return err
		}
		next := g.smp.Sample(logits)
		if next < 0 {
			// A sampler running as a plugin reports its failure through Err.
			if e, ok := g.smp.(interface{ Err() error }); ok && e.Err() != nil {
				return fmt.Errorf("sampler: %w", e.Err())
			}
			return fmt.Errorf("the sampler returned no token (logits of length %d)", len(logits))
		}
		g.smp.Accept(next)
		n++
		if g.tok.IsEOG(next) {
			reason = "end of text"
			break
		}
		text, stopped := sd.Feed(string(g.tok.Piece(next, false)))
		w.WriteString(text)
		w.Flush()
		if stopped {
			reason = "stop string"
			break
		}
		if n == g.maxTokens {
			break
		}
		if g.sess.Pos() >= g.sess.ContextLength() {
			reason = "context full"
			break
		}
		if logits, err = g.sess.Decode(ctx, next); err != nil {
			return err
		}
	}
	w.WriteString(sd.Flush())
	w.WriteString("\n")
	w.Flush()
	gen := time.Since(t1)
	fmt.Fprintf(g.errOut, "lilims: prompt %d tokens in %.2fs (%.1f tok/s), generated %d tokens in %.2fs (%.1f tok/s), stopped: %s\n",
		len(ids), tPrompt.Seconds(), rate(len(ids), tPrompt), n, gen.Seconds(), rate(n, gen), reason)
	return nil
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// interactive reads prompts line by line until EOF or Ctrl-C.
func (g *generator) interactive(ctx context.Context, in io.Reader) error {
	sc := bufio.NewScanner(in)
	for {
		fmt.Fprint(g.errOut, "> ")
		if !sc.Scan() {
			fmt.Fprintln(g.errOut)
			return sc.Err()
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := g.generate(ctx, line); err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Fprintln(g.errOut, "lilims:", err)
		}
	}
}
