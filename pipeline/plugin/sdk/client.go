package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lilims/lilims/pipeline/plugin/pluginpb"
	"github.com/lilims/lilims/pipeline/stage"
)

// The go-plugin Plugin types: GRPCServer registers a service in the plugin process,
// GRPCClient returns the host's client for it. The host dispenses them by the *Plugin names.
type (
	InfoGRPC struct {
		plugin.NetRPCUnsupportedPlugin
		srv *server
	}
	BuilderGRPC struct {
		plugin.NetRPCUnsupportedPlugin
		srv *server
	}
	RuntimeGRPC struct {
		plugin.NetRPCUnsupportedPlugin
		srv *server
	}
	SamplerGRPC struct {
		plugin.NetRPCUnsupportedPlugin
		srv *server
	}
)

// ClientPlugins is the host's plugin set.
func ClientPlugins() plugin.PluginSet {
	return plugin.PluginSet{InfoPlugin: &InfoGRPC{}, BuilderPlugin: &BuilderGRPC{},
		RuntimePlugin: &RuntimeGRPC{}, SamplerPlugin: &SamplerGRPC{}}
}

func (p *InfoGRPC) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterInfoServer(s, infoServer{srv: p.srv})
	return nil
}

func (p *InfoGRPC) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &InfoClient{c: pluginpb.NewInfoClient(c)}, nil
}

func (p *BuilderGRPC) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterBuilderServer(s, builderServer{srv: p.srv})
	return nil
}

func (p *BuilderGRPC) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &BuilderClient{c: pluginpb.NewBuilderClient(c)}, nil
}

func (p *RuntimeGRPC) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterRuntimeServer(s, &runtimeServer{srv: p.srv})
	return nil
}

func (p *RuntimeGRPC) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &RuntimeClient{c: pluginpb.NewRuntimeClient(c)}, nil
}

func (p *SamplerGRPC) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterSamplerServer(s, &samplerServer{srv: p.srv})
	return nil
}

func (p *SamplerGRPC) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &SamplerClient{c: pluginpb.NewSamplerClient(c)}, nil
}

// RemoteError turns an error a stage returned inside the plugin back into its message; the
// transport's own failures (Unavailable, DeadlineExceeded …) are returned as they are, for
// the host to explain.
func RemoteError(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unknown {
		return errors.New(st.Message())
	}
	return err
}

// InfoClient asks a plugin what it serves.
type InfoClient struct{ c pluginpb.InfoClient }

// Describe returns the plugin's stages.
func (i *InfoClient) Describe(ctx context.Context) ([]stage.Spec, error) {
	r, err := i.c.Describe(ctx, &pluginpb.Empty{})
	if err != nil {
		return nil, RemoteError(err)
	}
	if r.GetProtocolVersion() != ProtocolVersion {
		return nil, fmt.Errorf("plugin speaks stage protocol %d, this lilims speaks %d", r.GetProtocolVersion(), ProtocolVersion)
	}
	out := make([]stage.Spec, 0, len(r.GetSpecs()))
	for _, p := range r.GetSpecs() {
		s, err := SpecFromPB(p)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// BuilderClient runs a build stage in the plugin.
type BuilderClient struct{ c pluginpb.BuilderClient }

// Build runs stage uses; the plugin's progress events go to req.Report as they arrive.
func (b *BuilderClient) Build(ctx context.Context, uses string, req stage.BuildRequest) (stage.Artifact, error) {
	params, err := ParamsToPB(req.Params)
	if err != nil {
		return stage.Artifact{}, err
	}
	in := &pluginpb.BuildRequest{Uses: uses, Id: req.ID, Params: params, Source: req.Source, OutDir: req.OutDir}
	for _, a := range req.Inputs {
		in.Inputs = append(in.Inputs, ArtifactToPB(a))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := b.c.Build(ctx, in)
	if err != nil {
		return stage.Artifact{}, RemoteError(err)
	}
	var art *pluginpb.Artifact
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return stage.Artifact{}, RemoteError(err)
		}
		switch x := r.GetReply().(type) {
		case *pluginpb.BuildReply_Event:
			if art != nil {
				return stage.Artifact{}, errors.New("plugin sent an event after its artifact")
			}
			if req.Report != nil {
				req.Report(eventFromPB(x.Event))
			}
		case *pluginpb.BuildReply_Artifact:
			if art != nil {
				return stage.Artifact{}, errors.New("plugin sent two artifacts")
			}
			art = x.Artifact
		}
	}
	if art == nil {
		return stage.Artifact{}, errors.New("plugin ended the build without an artifact")
	}
	return ArtifactFromPB(art), nil
}

// RuntimeClient opens sessions in the plugin.
type RuntimeClient struct{ c pluginpb.RuntimeClient }

// Open opens art; calls without a context of their own (Reset, Close) get callTimeout.
func (r *RuntimeClient) Open(ctx context.Context, uses string, art stage.Artifact, params stage.Params, callTimeout time.Duration) (*Session, error) {
	p, err := ParamsToPB(params)
	if err != nil {
		return nil, err
	}
	rep, err := r.c.Open(ctx, &pluginpb.OpenRequest{Uses: uses, Artifact: ArtifactToPB(art), Params: p})
	if err != nil {
		return nil, RemoteError(err)
	}
	const maxDim = 1 << 31
	if rep.GetContextLength() < 1 || rep.GetContextLength() > maxDim || rep.GetVocabSize() < 1 || rep.GetVocabSize() > maxDim {
		return nil, fmt.Errorf("plugin opened a session with context %d and vocabulary %d", rep.GetContextLength(), rep.GetVocabSize())
	}
	return &Session{c: r.c, id: rep.GetSession(), ctxLen: int(rep.GetContextLength()), vocab: int(rep.GetVocabSize()),
		CallTimeout: callTimeout}, nil
}

// Session is a stage.Session whose model runs in the plugin process.
type Session struct {
	c      pluginpb.RuntimeClient
	id     uint64
	pos    int
	ctxLen int
	vocab  int
	// CallTimeout bounds Reset and Close, which take no context.
	CallTimeout time.Duration
	// Err is the first failure of Reset, which cannot return one.
	Err error
}

func (s *Session) row(l *pluginpb.Logits) ([]float32, error) {
	if len(l.GetValues()) != s.vocab {
		return nil, fmt.Errorf("plugin returned %d logits, the vocabulary has %d", len(l.GetValues()), s.vocab)
	}
	if l.GetPos() < 0 || l.GetPos() > int64(s.ctxLen) {
		return nil, fmt.Errorf("plugin reports position %d outside the context of %d", l.GetPos(), s.ctxLen)
	}
	s.pos = int(l.GetPos())
	return l.GetValues(), nil
}

// Prefill implements stage.Session.
func (s *Session) Prefill(ctx context.Context, tokens []int32) ([][]float32, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.c.Prefill(ctx, &pluginpb.PrefillRequest{Session: s.id, Tokens: tokens})
	if err != nil {
		return nil, RemoteError(err)
	}
	out := make([][]float32, 0, len(tokens))
	for {
		l, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, RemoteError(err)
		}
		if len(out) == len(tokens) {
			return nil, fmt.Errorf("plugin returned more logits rows than the %d tokens", len(tokens))
		}
		row, err := s.row(l)
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	if len(out) != len(tokens) {
		return nil, fmt.Errorf("plugin returned %d logits rows for %d tokens", len(out), len(tokens))
	}
	return out, nil
}

// Decode implements stage.Session.
func (s *Session) Decode(ctx context.Context, token int32) ([]float32, error) {
	l, err := s.c.Decode(ctx, &pluginpb.DecodeRequest{Session: s.id, Token: token})
	if err != nil {
		return nil, RemoteError(err)
	}
	return s.row(l)
}

func (s *Session) Pos() int           { return s.pos }
func (s *Session) ContextLength() int { return s.ctxLen }
func (s *Session) VocabSize() int     { return s.vocab }

func (s *Session) callCtx() (context.Context, context.CancelFunc) {
	if s.CallTimeout > 0 {
		return context.WithTimeout(context.Background(), s.CallTimeout)
	}
	return context.WithCancel(context.Background())
}

// Reset implements stage.Session; a failure is kept in Err (the next Prefill fails too).
func (s *Session) Reset() {
	ctx, cancel := s.callCtx()
	defer cancel()
	if _, err := s.c.Reset(ctx, &pluginpb.SessionRef{Session: s.id}); err != nil && s.Err == nil {
		s.Err = RemoteError(err)
	}
	s.pos = 0
}

// Close implements stage.Session.
func (s *Session) Close() error {
	ctx, cancel := s.callCtx()
	defer cancel()
	_, err := s.c.Close(ctx, &pluginpb.SessionRef{Session: s.id})
	return RemoteError(err)
}

// SamplerClient makes token samplers in the plugin.
type SamplerClient struct{ c pluginpb.SamplerClient }

// New makes a token sampler; each of its calls gets callTimeout.
func (s *SamplerClient) New(ctx context.Context, uses string, params stage.Params, vocab int, callTimeout time.Duration) (*TokenSampler, error) {
	p, err := ParamsToPB(params)
	if err != nil {
		return nil, err
	}
	ref, err := s.c.New(ctx, &pluginpb.NewSamplerRequest{Uses: uses, Params: p, VocabSize: int64(vocab)})
	if err != nil {
		return nil, RemoteError(err)
	}
	return &TokenSampler{c: s.c, id: ref.GetSampler(), vocab: vocab, CallTimeout: callTimeout}, nil
}

// maxPending bounds the accepted tokens a TokenSampler holds back for its next Sample.
const maxPending = 4096

// TokenSampler is a stage.TokenSampler running in the plugin process. Accepted tokens are
// sent along with the next Sample, so one generated token costs one round trip.
type TokenSampler struct {
	c       pluginpb.SamplerClient
	id      uint64
	vocab   int
	pending []int32
	// CallTimeout bounds each call.
	CallTimeout time.Duration
	// Err is the first failure: stage.TokenSampler's methods return no error, so Sample
	// returns -1 (no token) and the error waits here.
	Err error
}

func (t *TokenSampler) callCtx() (context.Context, context.CancelFunc) {
	if t.CallTimeout > 0 {
		return context.WithTimeout(context.Background(), t.CallTimeout)
	}
	return context.WithCancel(context.Background())
}

func (t *TokenSampler) fail(err error) {
	if t.Err == nil {
		t.Err = RemoteError(err)
	}
}

// Accept implements stage.TokenSampler.
func (t *TokenSampler) Accept(token int32) {
	t.pending = append(t.pending, token)
	if len(t.pending) < maxPending {
		return
	}
	ctx, cancel := t.callCtx()
	defer cancel()
	if _, err := t.c.Accept(ctx, &pluginpb.AcceptRequest{Sampler: t.id, Tokens: t.pending}); err != nil {
		t.fail(err)
	}
	t.pending = t.pending[:0]
}

// Sample implements stage.TokenSampler; it returns -1 after a failure (see Err).
func (t *TokenSampler) Sample(logits []float32) int32 {
	if t.Err != nil {
		return -1
	}
	ctx, cancel := t.callCtx()
	defer cancel()
	r, err := t.c.Sample(ctx, &pluginpb.SampleRequest{Sampler: t.id, Accepted: t.pending, Logits: logits})
	t.pending = t.pending[:0]
	if err != nil {
		t.fail(err)
		return -1
	}
	if r.GetToken() < 0 || int(r.GetToken()) >= t.vocab {
		t.fail(fmt.Errorf("plugin sampled token %d outside the vocabulary of %d", r.GetToken(), t.vocab))
		return -1
	}
	return r.GetToken()
}

// Reset implements stage.TokenSampler.
func (t *TokenSampler) Reset() {
	t.pending = t.pending[:0]
	ctx, cancel := t.callCtx()
	defer cancel()
	if _, err := t.c.Reset(ctx, &pluginpb.SamplerRef{Sampler: t.id}); err != nil {
		t.fail(err)
	}
}
