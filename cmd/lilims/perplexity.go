package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/eval"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/loader/tokenizer"
)

// maxEvalText bounds the text file read into memory (llama-perplexity's inputs, e.g.
// wikitext-2's test set, are about 1.3 MB).
const maxEvalText = 256 << 20

func newPerplexityCmd() *cobra.Command {
	var (
		pf     pipelineFlags
		ef     evalFlags
		klBase string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "perplexity MODEL.gguf|PIPELINE.yaml --file TEXT [--ctx N] [--kl-base PIPELINE|MODEL]",
		Short: "Measure perplexity on a text as llama-perplexity does, and the KL divergence from a base pipeline",
		Long: `Build the pipeline, open the exported package on the runtime and compute the model's
perplexity on a text exactly as llama.cpp's llama-perplexity does: the text is tokenized once
with BOS, cut into chunks of --ctx tokens (a partial tail is dropped), the first token of each
chunk is replaced by BOS, and the second half of each chunk is scored. The running estimate
after each chunk goes to stderr on a terminal (and with -v).

With --kl-base the same chunks also go through a base pipeline (a YAML file, or a GGUF path
for the default fp16 pipeline) and the mean KL divergence KL(base ‖ model) per scored token and
the share of scored tokens on which both models' most likely token agrees are reported, as
llama-perplexity's --kl-divergence mode does.`,
		Example: `  lilims perplexity testdata/oracle/models/stories260K.gguf --file testdata/oracle/eval/little-stories.txt --ctx 128
  lilims perplexity model.gguf --set quantize.scheme=lut4 --file wiki.test.raw --ctx 512 --kl-base model.gguf --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := ef.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			// Validate both pipelines, and the text's length against the chunk size, before
			// the (long) builds.
			plan, err := loadPlan(a[0], pf.sets)
			if err != nil {
				return err
			}
			chunkPlan := plan // the plan whose context sets the chunks when --ctx is not given
			if klBase != "" {
				if chunkPlan, err = loadPlan(klBase, nil); err != nil {
					return fmt.Errorf("--kl-base: %w", err)
				}
			}
			if err := ef.checkLength(plan, chunkPlan, cmd.ErrOrStderr(), !asJSON); err != nil {
				return err
			}
			ws, err := newWorkspace(pf.workDir)
			if err != nil {
				return err
			}
			defer ws.cleanup()
			progress := ef.progress(cmd.ErrOrStderr(), pf.verbose, asJSON)

			var (
				base   *eval.Result
				tokens []int32 // tokenized once: KL compares the same positions of the same tokens
			)
			if klBase != "" {
				t, err := openEvalTarget(ctx, klBase, nil, ws.dir("base"), pf.verbose)
				if err != nil {
					return fmt.Errorf("--kl-base: %w", err)
				}
				tokens, err = ef.tokens(t.tok)
				if err == nil {
					base, err = ef.run(ctx, t, tokens, nil, true, progress("base"))
				}
				t.close()
				if err != nil {
					return fmt.Errorf("--kl-base %s: %w", klBase, err)
				}
			}
			t, err := openEvalTarget(ctx, a[0], pf.sets, ws.dir("model"), pf.verbose)
			if err != nil {
				return err
			}
			defer t.close()
			if tokens == nil {
				if tokens, err = ef.tokens(t.tok); err != nil {
					return err
				}
			}
			r, err := ef.run(ctx, t, tokens, base, false, progress(""))
			if err != nil {
				return err
			}
			out := perplexityReport{Model: a[0], File: ef.file, Context: r.Context, Tokens: len(tokens),
				Chunks: r.Chunks, Scored: r.Scored, Perplexity: r.PPL, PerplexityError: r.PPLError,
				ChunkPerplexity: r.Running}
			if base != nil {
				out.Base, out.BasePerplexity = klBase, &base.PPL
				out.KL, out.KLError = &r.KL.Mean, &r.KL.MeanError
				out.Top1, out.Top1Error = &r.KL.Top1, &r.KL.Top1Error
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			return out.write(cmd.OutOrStdout())
		},
	}
	ef.register(cmd)
	cmd.Flags().StringVar(&klBase, "kl-base", "", "also report KL divergence and top-1 agreement against this pipeline (YAML) or model (GGUF, default pipeline)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	pf.register(cmd)
	return cmd
}

// perplexityReport is what `lilims perplexity` prints.
type perplexityReport struct {
	Model           string    `json:"model"`
	File            string    `json:"file"`
	Context         int       `json:"ctx"`
	Tokens          int       `json:"tokens"`
	Chunks          int       `json:"chunks"`
	Scored          int       `json:"tokens_scored"`
	Perplexity      float64   `json:"perplexity"`
	PerplexityError float64   `json:"perplexity_error"`
	ChunkPerplexity []float64 `json:"chunk_perplexity"` // running estimate after each chunk
	Base            string    `json:"base,omitempty"`
	BasePerplexity  *float64  `json:"base_perplexity,omitempty"`
	KL              *float64  `json:"kl,omitempty"`
	KLError         *float64  `json:"kl_error,omitempty"`
	Top1            *float64  `json:"top1_agreement,omitempty"`
	Top1Error       *float64  `json:"top1_agreement_error,omitempty"`
}

func (r *perplexityReport) write(w io.Writer) error {
	fmt.Fprintf(w, "%d tokens: %d chunks of %d, %d scored\n", r.Tokens, r.Chunks, r.Context, r.Scored)
	fmt.Fprintf(w, "perplexity: %.4f ± %.4f\n", r.Perplexity, r.PerplexityError)
	if r.KL != nil {
		fmt.Fprintf(w, "base perplexity: %.4f (%s)\n", *r.BasePerplexity, r.Base)
		fmt.Fprintf(w, "mean KL divergence: %.6f ± %.6f nats\n", *r.KL, *r.KLError)
		fmt.Fprintf(w, "top-1 agreement: %.2f%% ± %.2f%%\n", 100**r.Top1, 100**r.Top1Error)
	}
	return nil
}

// evalFlags are the text and chunking options shared by perplexity and compare.
type evalFlags struct {
	file   string
	ctx    int
	chunks int
	text   string // the file's contents, read by check
}

func (ef *evalFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&ef.file, "file", "f", "", "text to score (required)")
	cmd.Flags().IntVarP(&ef.ctx, "ctx", "c", 0, "tokens per chunk (0: the exported context length)")
	cmd.Flags().IntVar(&ef.chunks, "chunks", 0, "score at most this many chunks (0: all)")
}

// check validates the flags and reads the text, so that a bad path fails before any build.
func (ef *evalFlags) check() error {
	if ef.file == "" {
		return usagef("--file is required")
	}
	if ef.ctx < 0 || ef.ctx == 1 || ef.ctx == 2 {
		return usagef("--ctx %d: a chunk needs at least 3 tokens for one to be scored (0: the exported context)", ef.ctx)
	}
	if ef.chunks < 0 {
		return usagef("--chunks must not be negative")
	}
	f, err := os.Open(ef.file)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEvalText+1))
	if err != nil {
		return fmt.Errorf("%s: %w", ef.file, err)
	}
	if len(data) > maxEvalText {
		return fmt.Errorf("%s: larger than %d MiB", ef.file, maxEvalText>>20)
	}
	// llama.cpp's -f drops one trailing newline from the file (common/arg.cpp).
	ef.text = strings.TrimSuffix(string(data), "\n")
	return nil
}

// checkLength refuses, before any build, a text too short for two chunks (llama-perplexity's
// rule, eval.ErrTooFewTokens): of --ctx tokens, or when --ctx is not given of the context the
// chunk plan's export will have, which it says (on w, when note) it uses.
func (ef *evalFlags) checkLength(plan, chunkPlan *pipeline.Plan, w io.Writer, note bool) error {
	exported, known := exportContext(chunkPlan)
	n, what := ef.ctx, fmt.Sprintf("%d tokens (--ctx)", ef.ctx)
	switch {
	case !known:
		if n == 0 {
			return nil // known after the build (an exported package); eval checks it then
		}
	case n > exported:
		return usagef("--ctx %d exceeds the exported context of %d tokens (re-export with --set export.context=N)", n, exported)
	case n == 0:
		n, what = exported, fmt.Sprintf("%d tokens (the exported context; --ctx not given)", exported)
	}
	tok, err := modelTokenizer(plan.Spec.Model)
	if err != nil {
		return err
	}
	tokens, err := ef.tokens(tok)
	if err != nil {
		return err
	}
	if len(tokens) < 2*n {
		return usagef("%s: too few tokens (%d) for two chunks of %s: pass --ctx %d or less",
			ef.file, len(tokens), what, len(tokens)/2)
	}
	if ef.ctx == 0 && note {
		fmt.Fprintf(w, "lilims: perplexity: chunks of %s\n", what)
	}
	return nil
}

// exportContext is the context length the plan's export stage will give the package: its
// `context`, else the model's own capped at export.DefaultContextLength, as the export does.
func exportContext(plan *pipeline.Plan) (int, bool) {
	st := plan.Step(stage.KindExport)
	if st == nil || isExport(plan.Spec.Model) {
		return 0, false
	}
	if n := st.Params.Int("context"); n > 0 {
		return n, true
	}
	f, err := gguf.Open(plan.Spec.Model)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	cfg, err := arch.ReadConfig(f)
	if err != nil || cfg.ContextLength <= 0 {
		return 0, false
	}
	return min(cfg.ContextLength, export.DefaultContextLength), true
}

// tokens tokenizes the text as llama-perplexity does: add_special on (BOS where the
// vocabulary adds one), parse_special off.
func (ef *evalFlags) tokens(tok *tokenizer.Tokenizer) ([]int32, error) {
	ids := tok.Encode(ef.text, true, false)
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: no tokens", ef.file)
	}
	return ids, nil
}

// run scores tokens on t. With base, the divergence from it is computed too; keep keeps the
// log-probabilities for later runs to compare against.
func (ef *evalFlags) run(ctx context.Context, t *evalTarget, tokens []int32, base *eval.Result, keep bool,
	progress func(done, total int, ppl float64)) (*eval.Result, error) {
	n := ef.ctx
	if n == 0 {
		n = t.sess.ContextLength()
		if base != nil {
			n = base.Context
		}
	}
	if n > t.sess.ContextLength() {
		return nil, fmt.Errorf("--ctx %d exceeds the exported context of %d tokens (--set export.context=%d)", n, t.sess.ContextLength(), n)
	}
	return eval.Perplexity(ctx, t.sess, tokens, eval.Options{Context: n, BOS: t.tok.BOS(), AddBOS: t.tok.AddBOS(),
		MaxChunks: ef.chunks, KeepLogProbs: keep, Base: base, Progress: progress})
}

// progress returns a maker of per-run progress callbacks that print llama.cpp's running
// "[i]ppl," sequence to w, only on a terminal or with -v (quick work prints nothing extra).
// With --json the estimates are NDJSON progress events instead ({"stage": "perplexity",
// "event": "progress", "done", "total", "unit": "chunks", "msg": "ppl 4.2171"}), always.
func (ef *evalFlags) progress(w io.Writer, verbose, asJSON bool) func(label string) func(int, int, float64) {
	show := verbose || isTerminalWriter(w)
	events := pipeline.NDJSON(w)
	return func(label string) func(int, int, float64) {
		if asJSON {
			name := "perplexity"
			if label != "" {
				name += " (" + label + ")"
			}
			return func(done, total int, ppl float64) {
				events(stage.Event{Stage: name, Event: "progress", Done: int64(done), Total: int64(total),
					Unit: "chunks", Msg: fmt.Sprintf("ppl %.4f", ppl)})
			}
		}
		if !show {
			return nil
		}
		prefix := "lilims: perplexity: "
		if label != "" {
			prefix = "lilims: perplexity (" + label + "): "
		}
		return func(done, total int, ppl float64) {
			if done == 1 {
				fmt.Fprint(w, prefix)
			}
			fmt.Fprintf(w, "[%d]%.4f,", done, ppl)
			if done == total {
				fmt.Fprintln(w)
			}
		}
	}
}

// evalTarget is a pipeline built and opened for scoring.
type evalTarget struct {
	b    *built
	sess stage.Session
	tok  *tokenizer.Tokenizer
}

// openEvalTarget builds the pipeline for arg (with overrides) into workDir and opens it.
func openEvalTarget(ctx context.Context, arg string, sets []string, workDir string, verbose bool) (*evalTarget, error) {
	plan, err := loadPlan(arg, sets)
	if err != nil {
		return nil, err
	}
	b, err := buildPlan(ctx, plan, workDir, verbose)
	if err != nil {
		return nil, err
	}
	tok, err := modelTokenizer(b.model())
	if err != nil {
		b.cleanup()
		return nil, err
	}
	sess, err := plan.OpenSession(ctx, b.artifacts)
	if err != nil {
		b.cleanup()
		return nil, err
	}
	return &evalTarget{b: b, sess: sess, tok: tok}, nil
}

func (t *evalTarget) close() {
	t.sess.Close()
	t.b.cleanup()
}

// workspace holds the build directories of the several pipelines one command builds: under
// --work-dir when given (kept), else under one temporary directory (removed).
type workspace struct {
	root string
	temp bool
}

func newWorkspace(workDir string) (*workspace, error) {
	if workDir != "" {
		return &workspace{root: workDir}, nil
	}
	dir, err := os.MkdirTemp("", "lilims-eval-")
	if err != nil {
		return nil, err
	}
	return &workspace{root: dir, temp: true}, nil
}

// dir names the build directory of one pipeline; buildPlan creates it.
func (ws *workspace) dir(name string) string {
	return filepath.Join(ws.root, strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, name))
}

func (ws *workspace) cleanup() {
	if ws.temp {
		os.RemoveAll(ws.root)
	}
}
