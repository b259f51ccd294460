package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/internal/server"
	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/chattmpl"
)

type serveFlags struct {
	host, apiKey string
	port         int
	parallel     int
	queue        int
	maxBody      int64
	drain        time.Duration
	chatTemplate string
}

func newServeCmd() *cobra.Command {
	var (
		pf pipelineFlags
		sf serveFlags
	)
	cmd := &cobra.Command{
		Use:   "serve MODEL|PIPELINE|PACKAGE [--port 11434]",
		Short: "Serve the model with the OpenAI API (chat and text completions, streaming)",
		Long: `Build the pipeline once, open the model and serve it over HTTP with the OpenAI API:
POST /v1/chat/completions and /v1/completions (stream: true for server-sent events),
GET /v1/models and GET /health. Each of --parallel sessions keeps its own KV state; requests
wait their turn in arrival order, and a request that repeats the start of an earlier one
(a chat client re-sending the history) prefills only what is new. A request whose client
disconnects is cancelled. SIGTERM or Ctrl-C stops taking requests and lets the running ones
finish (at most --drain), then exits.

The server listens on loopback unless --host names another address; --api-key (or
$LILIMS_API_KEY) then requires "Authorization: Bearer KEY". Per-request sampling parameters
(temperature, top_p, top_k, min_p, seed, presence/frequency/repeat penalties, stop,
max_tokens) override the pipeline's sampler.`,
		Example: `  lilims serve testdata/oracle/models/stories260K.gguf
  curl -s localhost:11434/v1/completions -d '{"prompt": "Once upon a time", "max_tokens": 32}'
  lilims serve pipelines/phi2-ane.yaml --parallel 2 --api-key secret`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if sf.parallel < 1 || sf.parallel > 64 {
				return usagef("--parallel must be between 1 and 64")
			}
			if sf.port < 0 || sf.port > 65535 {
				return usagef("--port must be between 0 and 65535")
			}
			if sf.apiKey == "" {
				sf.apiKey = os.Getenv("LILIMS_API_KEY")
			}
			ip := net.ParseIP(sf.host)
			if sf.host != "localhost" && (ip == nil || !ip.IsLoopback()) && sf.apiKey == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "lilims: warning: serving on %s without --api-key: anyone who reaches this address can use the model\n", sf.host)
			}
			plan, err := loadPlan(a[0], pf.sets)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			srv, closeModel, err := openServer(ctx, plan, pf, sf, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeModel()
			ln, err := net.Listen("tcp", net.JoinHostPort(sf.host, fmt.Sprint(sf.port)))
			if err != nil {
				return fmt.Errorf("listen on %s:%d: %w (another server there? pick one with --port)", sf.host, sf.port, err)
			}
			return serveUntilSignal(ctx, srv, ln, sf.drain, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&sf.host, "host", "127.0.0.1", "address to listen on (loopback by default; another address exposes the model)")
	cmd.Flags().IntVar(&sf.port, "port", 11434, "port to listen on (0: any free port)")
	cmd.Flags().IntVar(&sf.parallel, "parallel", 1, "sessions generating at once, each with its own KV state")
	cmd.Flags().IntVar(&sf.queue, "queue", 64, "requests that may wait for a session; more get HTTP 503")
	cmd.Flags().StringVar(&sf.apiKey, "api-key", "", "require Authorization: Bearer KEY on /v1 (default $LILIMS_API_KEY)")
	cmd.Flags().Int64Var(&sf.maxBody, "max-body", 4<<20, "largest request body in bytes (HTTP 413 beyond)")
	cmd.Flags().StringVar(&sf.chatTemplate, "chat-template", "", "chat template: a built-in format (chatml, llama3, phi3, gemma … see docs/chat.md) or a Jinja file (default: the model's, else chatml)")
	cmd.Flags().DurationVar(&sf.drain, "drain", 30*time.Second, "on SIGTERM, how long running requests may take to finish before they are cancelled")
	pf.register(cmd)
	return cmd
}

// openServer builds the plan, opens one session per --parallel slot and returns the server
// and a function that closes the sessions.
func openServer(ctx context.Context, plan *pipeline.Plan, pf pipelineFlags, sf serveFlags, stderr io.Writer) (*server.Server, func(), error) {
	start := time.Now()
	b, err := buildPlan(ctx, plan, pf.workDir, pf.verbose)
	if err != nil {
		return nil, nil, err
	}
	tok, err := modelTokenizer(b.model())
	if err != nil {
		b.cleanup()
		return nil, nil, err
	}
	var sessions []stage.Session
	closeAll := func() {
		for _, s := range sessions {
			s.Close()
		}
		b.cleanup()
	}
	for range sf.parallel {
		s, err := plan.OpenSession(ctx, b.artifacts)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		sessions = append(sessions, s)
		if err := warmUp(ctx, s); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	vocab := sessions[0].VocabSize()
	eng := server.NewEngine(tok, sessions, func(over map[string]any) (stage.TokenSampler, error) {
		return plan.NewSamplerWith(vocab, over)
	})
	eng.MaxQueue = sf.queue
	if st := plan.Step(stage.KindSampler); st != nil {
		eng.Stops = st.Params.Strings("stop")
	}
	tmpl, chatStops, err := chatTemplate(b.model(), tok, sf.chatTemplate)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	encode := func(msgs []server.Message) ([]int32, error) {
		turns := make([]chattmpl.Message, len(msgs))
		for i, m := range msgs {
			turns[i] = chattmpl.Message{Role: m.Role, Content: m.Content}
		}
		return encodeChat(tok, tmpl, turns)
	}
	srv := &server.Server{Engine: eng, ModelID: modelID(plan), Chat: encode, ChatStops: chatStops, APIKey: sf.apiKey, MaxBody: sf.maxBody}
	if pf.verbose {
		logger := log.New(stderr, "lilims: ", log.LstdFlags)
		srv.Log = logger.Printf
	}
	fmt.Fprintf(stderr, "lilims: %s ready in %.2fs: %d session(s) of %d tokens\n", srv.ModelID, time.Since(start).Seconds(), len(sessions), eng.ContextLength())
	return srv, closeAll, nil
}

// modelID names the served model: the pipeline's name, else the GGUF's base name, else (an
// exported package, whose file is model.mlpackage) the general.name it carries.
func modelID(plan *pipeline.Plan) string {
	if plan.Spec.Path != "" && plan.Spec.Name != "" {
		return plan.Spec.Name
	}
	if isExport(plan.Spec.Model) {
		if f, err := openModelMetadata(plan.Spec.Model); err == nil {
			defer f.Close()
			if name, err := f.GetString("general.name"); err == nil && name != "" {
				return name
			}
		}
	}
	return strings.TrimSuffix(filepath.Base(plan.Spec.Model), filepath.Ext(plan.Spec.Model))
}

// serveUntilSignal serves on ln until ctx ends or SIGTERM/SIGINT arrives, then drains: new
// requests get 503, running ones may finish within drain, then they are cancelled.
func serveUntilSignal(ctx context.Context, srv *server.Server, ln net.Listener, drain time.Duration, stderr io.Writer) error {
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	genCtx, cancelGen := context.WithCancel(context.Background())
	defer cancelGen()
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return genCtx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(stderr, "lilims: serving %s on http://%s (OpenAI API: /v1/chat/completions, /v1/completions, /v1/models; /health)\n", srv.ModelID, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-sigCtx.Done():
	}
	fmt.Fprintf(stderr, "lilims: shutting down: finishing running requests (at most %s)\n", drain)
	srv.Draining()
	shutCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil {
		cancelGen() // past the drain time: cancel what still runs
		hs.Close()
		fmt.Fprintln(stderr, "lilims: cancelled the requests still running")
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// warmUp runs the prefill and decode functions once, so that the first request does not pay
// for the runtime's first-call set-up (buffer planning, Core ML's first prediction), then
// forgets it.
func warmUp(ctx context.Context, s stage.Session) error {
	if _, err := s.Prefill(ctx, []int32{0, 0}); err != nil {
		return fmt.Errorf("warming up the session: %w", err)
	}
	if _, err := s.Decode(ctx, 0); err != nil {
		return fmt.Errorf("warming up the session: %w", err)
	}
	s.Reset()
	return nil
}
