package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/chzyer/readline"
	"github.com/spf13/cobra"

	"github.com/lilims/lilims/internal/generate"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/chattmpl"
	"github.com/lilims/lilims/stages/loader/tokenizer"
)

// chatFlags are the template options of run --chat and chat.
type chatFlags struct {
	system   string
	template string
}

func (c *chatFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.system, "system", "", "system message")
	cmd.Flags().StringVar(&c.template, "chat-template", "", "chat template: a built-in format (chatml, llama3, phi3, gemma, mistral-v7, zephyr, deepseek3 … all in docs/chat.md) or a Jinja file (default: the model's, else chatml)")
}

func newChatCmd() *cobra.Command {
	var (
		pf        pipelineFlags
		chat      chatFlags
		maxTokens int
		sampling  samplingFlags
	)
	cmd := &cobra.Command{
		Use:   "chat MODEL.gguf|PIPELINE.yaml|PACKAGE.mlpackage [--system TEXT]",
		Short: "Talk with a model: a multi-turn conversation in its chat template",
		Long: `Build the pipeline, open the model once and hold a conversation, written in the model's
chat template (its tokenizer.chat_template; --chat-template picks a built-in format or a Jinja
file). The KV state is kept between turns: only the new turn is prefilled. A reply ends at the
template's end-of-turn token. When the context fills, the oldest turns are dropped and the rest
prefilled again. On a terminal: line editing and history; end a line with \ or open a """ block
for several lines; Ctrl-C stops a reply, Ctrl-C on an empty prompt or Ctrl-D exits. Commands:
/help /clear /system TEXT /set PARAM VALUE /bye. With stdin not a terminal, each line is a turn
and each reply is printed on stdout. See docs/chat.md.`,
		Example: `  lilims chat model.gguf --system "You are terse."
  printf 'Hello\nTell me more\n' | lilims chat testdata/oracle/models/stories260K.gguf --temperature 0`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if maxTokens < 0 {
				return usagef("--max-tokens must not be negative")
			}
			h, err := openWithFlags(cmd, a[0], &pf, &sampling)
			if err != nil {
				return err
			}
			defer h.close()
			tmpl, err := h.template(chat.template)
			if err != nil {
				return err
			}
			c := &conversation{g: h.generator(cmd.OutOrStdout(), cmd.ErrOrStderr(), maxTokens), tmpl: tmpl, system: chat.system}
			// From here Ctrl-C stops a reply, not the program: the loop gets its own signals.
			ctx := context.WithoutCancel(cmd.Context())
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt)
			defer signal.Stop(sigs)
			c.interrupts = sigs
			if isTerminal(os.Stdin) && isTerminalWriter(cmd.OutOrStdout()) {
				return c.terminal(ctx)
			}
			return c.lines(ctx, cmd.InOrStdin())
		},
	}
	cmd.Flags().IntVarP(&maxTokens, "max-tokens", "n", 512, "tokens per reply at most")
	chat.register(cmd)
	sampling.register(cmd, "stop a reply when this string is generated (repeatable)")
	pf.register(cmd)
	return cmd
}

// template selects the chat template: override (a name or a file), else the model's. Where
// the template's end of turn is not an end-of-generation token, its text becomes a stop string.
func (h *openModel) template(override string) (*chattmpl.Template, error) {
	t, stops, err := chatTemplate(h.b.model(), h.tok, override)
	h.stops = append(h.stops, stops...)
	return t, err
}

// chatTemplate selects the chat template of model (a GGUF or an exported package): override
// (a built-in name or a Jinja file), else the model's tokenizer.chat_template, else chatml.
// stops is the template's end-of-turn text when it is not one of the tokenizer's
// end-of-generation tokens (chatml on a model without a template): a reply ends there too.
func chatTemplate(model string, tok *tokenizer.Tokenizer, override string) (t *chattmpl.Template, stops []string, err error) {
	src, err := modelChatTemplate(model)
	if err != nil {
		return nil, nil, err
	}
	if t, err = chattmpl.Select(override, src); err != nil {
		return nil, nil, err
	}
	if id := tok.BOS(); id >= 0 {
		t.BOS = tok.Token(id)
	}
	if id := tok.EOS(); id >= 0 {
		t.EOS = tok.Token(id)
	}
	if eot := t.EndOfTurn(); eot != "" {
		if ids := tok.Encode(eot, false, true); len(ids) != 1 || !tok.IsEOG(ids[0]) {
			stops = append(stops, eot)
		}
	}
	return t, stops, nil
}

// modelChatTemplate reads the model's tokenizer.chat_template ("" when it has none).
func modelChatTemplate(model string) (string, error) {
	f, err := openModelMetadata(model)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if !f.Has(chattmpl.MetadataKey) {
		return "", nil
	}
	return f.GetString(chattmpl.MetadataKey)
}

func withSystem(system string, msgs []chattmpl.Message) []chattmpl.Message {
	if system == "" {
		return msgs
	}
	return append([]chattmpl.Message{{Role: "system", Content: system}}, msgs...)
}

// encodeChat renders msgs ending with an open assistant turn and tokenizes the text with
// special tokens parsed. The tokenizer adds the BOS token where the model wants one, so a BOS
// text the template wrote itself is dropped first (llama.cpp does the same, lest the prompt
// start with two).
func encodeChat(tok *tokenizer.Tokenizer, tmpl *chattmpl.Template, msgs []chattmpl.Message) ([]int32, error) {
	text, err := tmpl.Apply(msgs, true)
	if err != nil {
		return nil, err
	}
	if tok.AddBOS() && tmpl.BOS != "" {
		text = strings.TrimPrefix(text, tmpl.BOS)
	}
	return tok.Encode(text, true, true), nil
}

// conversation is a chat over one session: the turns so far and the tokens whose K/V the
// session holds, so that each turn prefills only what is new.
type conversation struct {
	g          *generator
	tmpl       *chattmpl.Template
	system     string
	turns      []chattmpl.Message
	cached     []int32 // tokens in the session's KV state, in order
	text       string  // the text of cached: the last prompt and the reply tokens after it
	interrupts <-chan os.Signal
	say        func(format string, a ...any) // notes to the user (stderr)
}

// rewinder is a session that can forget its last tokens (runtime.Session can).
type rewinder interface{ Rewind(n int) error }

// turn answers one user message.
func (c *conversation) turn(ctx context.Context, user string) error {
	h := c.g.h
	sess := h.sess
	ctxLen := sess.ContextLength()
	// Room for the reply: the prompt may use the context up to it.
	room := min(c.g.maxTokens, ctxLen/2)
	turns := append(c.turns, chattmpl.Message{Role: "user", Content: user})
	var ids []int32
	var text string
	for {
		var err error
		if text, err = c.tmpl.Apply(withSystem(c.system, turns), true); err != nil {
			return err
		}
		ids = c.tokens(text)
		if len(ids)+room <= ctxLen || len(turns) == 1 {
			break
		}
		// Drop the oldest exchange (a user turn and the reply after it).
		drop := 1
		if len(turns) > 2 && turns[1].Role == "assistant" {
			drop = 2
		}
		turns = turns[drop:]
		c.note("context full (%d tokens): dropped the oldest turn; the rest is prefilled again", ctxLen)
	}
	if len(ids) >= ctxLen {
		return fmt.Errorf("this message makes a prompt of %d tokens, more than the context of %d: not sent", len(ids), ctxLen)
	}
	// Reuse the longest prefix the session already holds; at least one token is prefilled,
	// for the logits of the last.
	keep := 0
	for keep < len(c.cached) && keep < len(ids)-1 && c.cached[keep] == ids[keep] {
		keep++
	}
	if keep < sess.Pos() {
		if r, ok := sess.(rewinder); ok {
			if err := r.Rewind(keep); err != nil {
				return err
			}
		} else {
			sess.Reset()
			keep = 0
		}
	}
	c.cached, c.text = c.cached[:keep], ""
	rctx, cancel := c.interruptible(ctx)
	defer cancel()
	logits, took, err := generate.Prefill(rctx, c.g.h.sess, c.g.h.smp, ids, ids[keep:])
	if err != nil {
		// The session holds what it prefilled before the error (a prefix of ids).
		c.cached = slices.Clone(ids[:min(sess.Pos(), len(ids))])
		if rctx.Err() != nil {
			c.note("interrupted")
			return nil
		}
		return err
	}
	c.cached, c.text = ids, text
	r, err := c.g.stream(rctx, logits)
	c.cached = append(c.cached, r.Fed...)
	for _, id := range r.Fed {
		c.text += string(h.tok.Piece(id, false))
	}
	if err != nil {
		return err
	}
	c.turns = append(turns, chattmpl.Message{Role: "assistant", Content: r.text})
	c.g.summary(len(ids)-keep, keep, took, r)
	return nil
}

// tokens tokenizes a rendered prompt. When it extends the text the session already holds
// (the usual case: the reply as generated, then the new turn), only the new text is tokenized
// and appended to the held tokens, as llama-cli does (common_chat_format_single): the
// re-tokenized reply could differ from the sampled tokens and cost a needless re-prefill.
func (c *conversation) tokens(text string) []int32 {
	tok := c.g.h.tok
	if c.text != "" && strings.HasPrefix(text, c.text) {
		return append(slices.Clone(c.cached), tok.Encode(text[len(c.text):], false, true)...)
	}
	if tok.AddBOS() && c.tmpl.BOS != "" {
		text = strings.TrimPrefix(text, c.tmpl.BOS)
	}
	return tok.Encode(text, true, true)
}

// interruptible returns a context that Ctrl-C cancels, until cancel is called.
func (c *conversation) interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case <-c.interrupts:
			cancel()
		case <-done:
		}
	}()
	return rctx, func() { close(done); cancel() }
}

func (c *conversation) note(format string, a ...any) {
	if c.g.h.json {
		emit(c.g.errOut, "note", map[string]any{"msg": fmt.Sprintf(format, a...)})
		return
	}
	fmt.Fprintf(c.g.errOut, "lilims: "+format+"\n", a...)
}

const chatHelp = `Commands:
  /help                 this text
  /clear                forget the conversation (the system message stays)
  /system TEXT          set the system message (the conversation is prefilled again)
  /set PARAM VALUE      set a sampling parameter: temperature, top_k, top_p, min_p, typical_p,
                        repeat_penalty, frequency_penalty, presence_penalty, penalty_last_n,
                        seed, or max_tokens
  /bye                  exit
Multi-line input: end a line with \ to continue it, or enclose lines in """ … """.
Ctrl-C stops a reply; Ctrl-C on an empty prompt or Ctrl-D exits.`

// command runs a /command; it reports whether the chat should end.
func (c *conversation) command(line string) (bye bool) {
	name, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	switch name {
	case "/bye", "/exit", "/quit":
		return true
	case "/help", "/?":
		fmt.Fprintln(c.g.errOut, chatHelp)
	case "/clear":
		c.turns = nil
		c.note("conversation cleared")
	case "/system":
		c.system = arg
		c.note("system message set")
	case "/set":
		key, val, ok := strings.Cut(arg, " ")
		if !ok {
			c.note("usage: /set PARAM VALUE (e.g. /set temperature 0.2)")
			return false
		}
		if err := c.set(strings.ReplaceAll(key, "-", "_"), strings.TrimSpace(val)); err != nil {
			c.note("/set: %v", err)
			return false
		}
		c.note("%s = %s", key, strings.TrimSpace(val))
	default:
		c.note("unknown command %s (/help lists them)", name)
	}
	return false
}

// set changes one sampling parameter: the sampler stage's parameters are the one source (the
// sampler validates them), and a new sampler is made from them.
func (c *conversation) set(key, val string) error {
	h := c.g.h
	if key == "max_tokens" {
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return fmt.Errorf("max_tokens: want a non-negative integer, got %q", val)
		}
		c.g.maxTokens = n
		return nil
	}
	st := h.plan.Step(stage.KindSampler)
	if st == nil {
		return errors.New("the pipeline has no sampler stage")
	}
	var v any = val
	if i, err := strconv.ParseInt(val, 10, 64); err == nil {
		v = i
	} else if f, err := strconv.ParseFloat(val, 64); err == nil {
		v = f
	}
	old, had := st.Params[key]
	st.Params[key] = v
	smp, err := h.plan.NewSampler(h.sess.VocabSize())
	if err != nil {
		if had {
			st.Params[key] = old
		} else {
			delete(st.Params, key)
		}
		return err
	}
	h.smp = smp
	return nil
}

// input gathers one message from successive lines: a line ending with \ continues on the
// next; a line starting with """ opens a block that a line ending with """ closes.
type input struct {
	buf   []string
	block bool
}

// add takes a line and returns the complete message, or ok = false while more is needed.
func (in *input) add(line string) (msg string, ok bool) {
	switch {
	case in.block:
		if strings.HasSuffix(line, `"""`) {
			in.buf = append(in.buf, strings.TrimSuffix(line, `"""`))
			in.block = false
			return in.flush(), true
		}
		in.buf = append(in.buf, line)
		return "", false
	case len(in.buf) == 0 && strings.HasPrefix(line, `"""`):
		rest := strings.TrimPrefix(line, `"""`)
		if len(rest) >= 3 && strings.HasSuffix(rest, `"""`) {
			return strings.TrimSuffix(rest, `"""`), true
		}
		in.block = true
		if rest != "" {
			in.buf = append(in.buf, rest)
		}
		return "", false
	case strings.HasSuffix(line, `\`):
		in.buf = append(in.buf, strings.TrimSuffix(line, `\`))
		return "", false
	}
	in.buf = append(in.buf, line)
	return in.flush(), true
}

func (in *input) flush() string {
	s := strings.Join(in.buf, "\n")
	in.buf = nil
	return s
}

func (in *input) pending() bool { return len(in.buf) > 0 || in.block }

// handle acts on one complete message: a command or a turn. It reports whether to exit.
func (c *conversation) handle(ctx context.Context, msg string) bool {
	if strings.TrimSpace(msg) == "" {
		return false
	}
	if strings.HasPrefix(msg, "/") {
		return c.command(msg)
	}
	if err := c.turn(ctx, msg); err != nil {
		c.note("%v", err)
	}
	return false
}

// lines runs the chat over a reader that is not a terminal: one message per line (with the
// same continuation rules), replies on stdout.
func (c *conversation) lines(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	var in input
	for sc.Scan() {
		if msg, ok := in.add(sc.Text()); ok && c.handle(ctx, msg) {
			return nil
		}
	}
	if in.pending() {
		c.handle(ctx, in.flush())
	}
	return sc.Err()
}

// terminal runs the chat with line editing and history (kept in the user cache directory).
func (c *conversation) terminal(ctx context.Context) error {
	cfg := &readline.Config{Prompt: ">>> ", InterruptPrompt: "^C", EOFPrompt: "", HistorySearchFold: true}
	if dir, err := os.UserCacheDir(); err == nil {
		if os.MkdirAll(filepath.Join(dir, "lilims"), 0o755) == nil {
			cfg.HistoryFile = filepath.Join(dir, "lilims", "chat_history")
		}
	}
	rl, err := readline.NewEx(cfg)
	if err != nil {
		return err
	}
	defer rl.Close()
	fmt.Fprintln(c.g.errOut, `Type a message; /help for commands, /bye or Ctrl-D to exit.`)
	var in input
	for {
		if in.pending() {
			rl.SetPrompt("... ")
		} else {
			rl.SetPrompt(">>> ")
		}
		line, err := rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			if line == "" && !in.pending() {
				return nil
			}
			in = input{} // Ctrl-C on a half-typed message drops it
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
		if msg, ok := in.add(line); ok && c.handle(ctx, msg) {
			return nil
		}
	}
}
