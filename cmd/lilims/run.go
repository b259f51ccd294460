package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lilims/lilims/internal/generate"
	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/chattmpl"
	"github.com/lilims/lilims/stages/loader/tokenizer"
	"github.com/lilims/lilims/stages/sampler"
)

// samplingFlags are the commands' sampling options: one typed flag per parameter of
// sampler.Parameters (their one source, with its defaults shown in --help), named with
// dashes (--top-k for top_k), and --stop.
type samplingFlags struct {
	floats map[string]*float64
	ints   map[string]*int64
	stops  []string
}

// flagAliases are llama.cpp's names (llama-cli, llama-server) for sampling flags whose
// lilims name differs, accepted as they are.
var flagAliases = map[string]string{"temp": "temperature"}

func (sf *samplingFlags) register(cmd *cobra.Command, stopUsage string) {
	sf.floats, sf.ints = map[string]*float64{}, map[string]*int64{}
	cmd.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if to, ok := flagAliases[name]; ok {
			name = to
		}
		return pflag.NormalizedName(name)
	})
	for _, p := range sampler.Parameters() {
		name := strings.ReplaceAll(p.Key, "_", "-")
		doc := p.Doc
		for from, to := range flagAliases {
			if to == name {
				doc += " (also --" + from + ")"
			}
		}
		switch p.Kind {
		case sampler.Float:
			sf.floats[p.Key] = cmd.Flags().Float64(name, p.Default.(float64), doc)
		case sampler.Int, sampler.Seed:
			sf.ints[p.Key] = cmd.Flags().Int64(name, p.Default.(int64), doc)
		case sampler.Strings:
			cmd.Flags().StringArrayVar(&sf.stops, name, nil, stopUsage)
		}
	}
}

func newRunCmd() *cobra.Command {
	var (
		pf        pipelineFlags
		prompt    string
		maxTokens int
		sampling  samplingFlags
		chat      chatFlags
		asChat    bool
	)
	cmd := &cobra.Command{
		Use:   "run MODEL.gguf|PIPELINE.yaml|PACKAGE.mlpackage [--prompt TEXT]",
		Short: "Generate text once: build the pipeline, then stream tokens from the runtime",
		Long: `Build the pipeline (a bare GGUF path uses the default one: load → export fp16 →
compile/validate → runtime → sample), open the exported package on the runtime and stream the
continuation of one prompt to stdout. The prompt is --prompt (its backslash escapes \n, \t, \\
become characters, as in llama-cli) or else stdin. With --chat the prompt is one user turn,
written in the model's chat template. Load, prefill and decode times go to stderr; with --json
stderr is NDJSON events (build progress, ready, token, summary). An exported package (or
chunked export directory) runs as it is, without its GGUF: the tokenizer comes from the host
file it carries. MODEL may also be a Hugging Face name (OWNER/REPO[:QUANT]), pulled on first
use. For a conversation, use 'lilims chat'.`,
		Example: `  lilims run testdata/oracle/models/stories260K.gguf --prompt "Once upon a time" --max-tokens 64
  lilims run model.gguf --prompt "Hi" --temperature 0
  lilims run model.gguf --chat --system "Answer briefly." --prompt "Name three colours."
  lilims run pipelines/stories.yaml --prompt "Once\nupon" --set sample.top_k=10 --json
  lilims run out/export/model.mlpackage --prompt "Once upon a time"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if maxTokens < 0 {
				return usagef("--max-tokens must not be negative")
			}
			text := unescapePrompt(prompt)
			if !cmd.Flags().Changed("prompt") {
				if isTerminal(os.Stdin) {
					return usagef("no --prompt and stdin is a terminal: give --prompt TEXT, pipe the prompt, or use 'lilims chat'")
				}
				in, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				text = string(in)
			}
			h, err := openWithFlags(cmd, a[0], &pf, &sampling)
			if err != nil {
				return err
			}
			defer h.close()
			g := h.generator(cmd.OutOrStdout(), cmd.ErrOrStderr(), maxTokens)
			var ids []int32
			if asChat {
				tmpl, err := h.template(chat.template)
				if err != nil {
					return err
				}
				if ids, err = encodeChat(h.tok, tmpl, withSystem(chat.system, []chattmpl.Message{{Role: "user", Content: text}})); err != nil {
					return err
				}
			} else {
				// llama-cli tokenizes with add_special and parse_special both on.
				ids = h.tok.Encode(text, true, true)
			}
			return g.once(cmd.Context(), ids)
		},
	}
	cmd.Flags().StringVarP(&prompt, "prompt", "p", "", "prompt text (\\n, \\t, \\\\ … are unescaped)")
	cmd.Flags().IntVarP(&maxTokens, "max-tokens", "n", 128, "tokens to generate at most")
	cmd.Flags().BoolVar(&asChat, "chat", false, "write the prompt as a user turn in the model's chat template")
	chat.register(cmd)
	sampling.register(cmd, "stop when this string is generated (repeatable)")
	pf.register(cmd)
	return cmd
}

// unescapePrompt turns the backslash escapes of a command-line prompt into characters, as
// llama-cli does (common/common.cpp, string_process_escapes): \n \t \r \\ \' \" and \xHH.
// Any other backslash stays as written.
func unescapePrompt(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch c := s[i+1]; c {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\', '\'', '"':
			b.WriteByte(c)
		case 'x':
			if i+4 <= len(s) {
				if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
					b.WriteByte(byte(v))
					i += 3
					continue
				}
			}
			b.WriteString(s[i : i+2])
		default:
			b.WriteString(s[i : i+2])
		}
		i++
	}
	return b.String()
}

// withSamplerFlags loads the pipeline and applies the sampling flags the user gave to its
// sampler stage, whatever that stage's id (the sampler validates the values when it is made).
// Repeated --stop flags add up to one list.
func withSamplerFlags(cmd *cobra.Command, arg string, sets []string, sf *samplingFlags) (*pipeline.Plan, error) {
	plan, err := loadPlan(arg, sets)
	if err != nil {
		return nil, err
	}
	changed := map[string]any{}
	for key, v := range sf.floats {
		if cmd.Flags().Changed(strings.ReplaceAll(key, "_", "-")) {
			changed[key] = *v
		}
	}
	for key, v := range sf.ints {
		if cmd.Flags().Changed(strings.ReplaceAll(key, "_", "-")) {
			changed[key] = *v
		}
	}
	if len(changed) == 0 && len(sf.stops) == 0 {
		return plan, nil
	}
	smp := plan.Step(stage.KindSampler)
	if smp == nil {
		return nil, fmt.Errorf("%s: sampling flags given, but the pipeline has no sampler stage", arg)
	}
	for key, v := range changed {
		smp.Params[key] = v
	}
	smp.Params["stop"] = append(append([]string(nil), smp.Params.Strings("stop")...), sf.stops...)
	// Check the values now, naming the flag, rather than after the build.
	if _, err := sampler.FromMap(maps.Clone(map[string]any(smp.Params))); err != nil {
		var pe *sampler.ParamError
		if errors.As(err, &pe) && changed[pe.Key] != nil {
			return nil, usagef("--%s: %s", strings.ReplaceAll(pe.Key, "_", "-"), pe.Msg)
		}
	}
	return plan, nil
}

func isTerminal(f *os.File) bool { return isTerminalWriter(f) }

// openModel is a model ready to generate: the built pipeline, its tokenizer, an open session and
// a sampler. run, chat (and serve) are thin loops over it.
type openModel struct {
	plan  *pipeline.Plan
	b     *built
	tok   *tokenizer.Tokenizer
	sess  stage.Session
	smp   stage.TokenSampler
	stops []string
	json  bool // --json: events on stderr instead of text
	load  time.Duration
}

// openWithFlags loads the pipeline for arg with the command's sampling flags and opens it.
func openWithFlags(cmd *cobra.Command, arg string, pf *pipelineFlags, sf *samplingFlags) (*openModel, error) {
	plan, err := withSamplerFlags(cmd, arg, pf.sets, sf)
	if err != nil {
		return nil, err
	}
	return openHost(cmd.Context(), plan, pf)
}

// openHost builds the plan and opens its session. The load time includes one warm-up call of
// each function (prefill, then decode; then forgotten), so that a prompt's prefill and decode
// times are the model's speed, not the first calls' set-up (page faults on the weights,
// buffers, worker start: half a second on stories260K).
func openHost(ctx context.Context, plan *pipeline.Plan, pf *pipelineFlags) (*openModel, error) {
	start := time.Now()
	b, err := buildPlan(ctx, plan, pf.workDir, pf.verbose)
	if err != nil {
		return nil, err
	}
	h := &openModel{plan: plan, b: b, json: pf.json}
	fail := func(err error) (*openModel, error) { h.close(); return nil, err }
	if h.tok, err = modelTokenizer(b.model()); err != nil {
		return fail(err)
	}
	if h.sess, err = plan.OpenSession(ctx, b.artifacts); err != nil {
		return fail(err)
	}
	if h.smp, err = plan.NewSampler(h.sess.VocabSize()); err != nil {
		return fail(err)
	}
	if st := plan.Step(stage.KindSampler); st != nil {
		h.stops = st.Params.Strings("stop")
	}
	warm := max(h.tok.BOS(), 0)
	if _, err := h.sess.Prefill(ctx, []int32{warm, warm, warm}); err != nil {
		return fail(fmt.Errorf("warm-up: %w", err))
	}
	h.sess.Reset()
	h.load = time.Since(start)
	switch {
	case h.json:
		emit(pf.errOut(), "ready", map[string]any{"seconds": h.load.Seconds(),
			"context": h.sess.ContextLength(), "vocab": h.sess.VocabSize()})
	case pf.verbose:
		fmt.Fprintf(pf.errOut(), "lilims: ready in %.2fs\n", h.load.Seconds())
	}
	return h, nil
}

func (h *openModel) close() {
	if h.sess != nil {
		h.sess.Close()
	}
	h.b.cleanup()
}

func (h *openModel) generator(out, errOut io.Writer, maxTokens int) *generator {
	return &generator{h: h, maxTokens: maxTokens, out: out, errOut: errOut}
}

// emit writes one NDJSON event line: {"event": name, "time": …, fields…}.
func emit(w io.Writer, event string, fields map[string]any) {
	m := map[string]any{"event": event, "time": time.Now().UTC().Format(time.RFC3339Nano)}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	w.Write(append(b, '\n'))
}

// generator runs prefill and the decode loop on a host's session.
type generator struct {
	h         *openModel
	maxTokens int
	out       io.Writer
	errOut    io.Writer
}

// reply is what one decode loop produced.
type reply struct {
	generate.Result
	text string
}

// once generates the continuation of ids from an empty conversation (the run command).
func (g *generator) once(ctx context.Context, ids []int32) error {
	sess := g.h.sess
	if len(ids) == 0 {
		return fmt.Errorf("the prompt is empty and the model adds no BOS token: nothing to continue")
	}
	if len(ids) >= sess.ContextLength() {
		return fmt.Errorf("prompt of %d tokens does not fit the exported context of %d tokens; re-export with a larger context (--set export.context=N)",
			len(ids), sess.ContextLength())
	}
	sess.Reset()
	logits, took, err := generate.Prefill(ctx, g.h.sess, g.h.smp, ids, ids)
	if err != nil {
		return err
	}
	r, err := g.stream(ctx, logits)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err // run is one-shot: Ctrl-C ends the program (exit 130)
	}
	g.summary(len(ids), 0, took, r)
	return nil
}

// stream samples and decodes from logits (see generate.Loop), writing the text to out as it
// comes (and token events with --json). A cancelled ctx ends the reply early (reason
// "interrupted") with no error: the tokens decoded so far stay in the session.
func (g *generator) stream(ctx context.Context, logits []float32) (reply, error) {
	h := g.h
	w := bufio.NewWriter(g.out)
	defer w.Flush()
	var text strings.Builder
	loop := generate.Loop{Session: h.sess, Sampler: h.smp, Tok: h.tok, Stops: h.stops, MaxTokens: g.maxTokens,
		OnText: func(s string) error {
			w.WriteString(s)
			text.WriteString(s)
			w.Flush()
			return nil // a failed write to out does not end the reply
		}}
	if h.json {
		loop.OnToken = func(id int32, piece string) {
			emit(g.errOut, "token", map[string]any{"id": id, "text": piece})
		}
	}
	res, err := loop.Run(ctx, logits)
	r := reply{Result: res, text: text.String()}
	if err != nil {
		return r, err
	}
	w.WriteString("\n")
	return r, nil
}

// summary reports load, prefill and decode separately on stderr (an event with --json).
func (g *generator) summary(prefilled, cached int, prefill time.Duration, r reply) {
	defer func() { g.h.load = 0 }() // a chat reports the load once, with its first turn
	if g.h.json {
		emit(g.errOut, "summary", map[string]any{
			"load_seconds":  g.h.load.Seconds(),
			"prompt_tokens": prefilled + cached, "cached_tokens": cached, "prefill_tokens": prefilled,
			"prefill_seconds": prefill.Seconds(), "prefill_tokens_per_second": rate(prefilled, prefill),
			"generated_tokens": r.Sampled, "decode_seconds": r.Took.Seconds(), "decode_tokens_per_second": rate(r.Sampled, r.Took),
			"stop": r.Reason,
		})
		return
	}
	fmt.Fprint(g.errOut, "lilims: ")
	if g.h.load > 0 {
		fmt.Fprintf(g.errOut, "load %.2fs, ", g.h.load.Seconds())
	}
	if cached > 0 {
		fmt.Fprintf(g.errOut, "prefill %d new tokens (cached %d)", prefilled, cached)
	} else {
		fmt.Fprintf(g.errOut, "prefill %d tokens", prefilled)
	}
	fmt.Fprintf(g.errOut, " in %.3fs (%.1f tok/s), decode %d tokens in %.2fs (%.1f tok/s), stopped: %s\n",
		prefill.Seconds(), rate(prefilled, prefill), r.Sampled, r.Took.Seconds(), rate(r.Sampled, r.Took), r.Reason)
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
