package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/lilims/lilims/pipeline/plugin/pluginpb"
	"github.com/lilims/lilims/pipeline/stage"
)

// A Stage is one stage a plugin serves: its description and its implementation.
type Stage struct {
	Spec stage.Spec
	Impl any // stage.Builder, stage.Runtime or stage.Sampler, according to Spec.Kind
}

// Loader, Quantizer, Export, Compiler, Runtime and Sampler pair a spec with the interface its
// kind implements; the spec's Kind is set for you and its Uses must be "KIND/NAME".
func Loader(spec stage.Spec, b stage.Builder) Stage    { return kinded(spec, stage.KindLoader, b) }
func Quantizer(spec stage.Spec, b stage.Builder) Stage { return kinded(spec, stage.KindQuantize, b) }
func Export(spec stage.Spec, b stage.Builder) Stage    { return kinded(spec, stage.KindExport, b) }
func Compiler(spec stage.Spec, b stage.Builder) Stage  { return kinded(spec, stage.KindCompile, b) }
func Runtime(spec stage.Spec, r stage.Runtime) Stage   { return kinded(spec, stage.KindRuntime, r) }
func Sampler(spec stage.Spec, s stage.Sampler) Stage   { return kinded(spec, stage.KindSampler, s) }

func kinded(spec stage.Spec, k stage.Kind, impl any) Stage {
	spec.Kind = k
	return Stage{Spec: spec, Impl: impl}
}

// origStderr is the process's stderr before go-plugin's Serve redirects os.Stderr into its
// stdio stream (which a host may discard); logs written here reach the host's log.
var origStderr = os.Stderr

// Logger returns a logger whose lines the host parses and re-logs under the plugin's name
// (go-plugin reads JSON hclog lines from the plugin's stderr).
func Logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: origStderr, JSONFormat: true, Level: hclog.Info})
}

// Serve serves the stages until the host asks the plugin to stop, then returns. Run by hand
// (not by a lilims host) it prints that it is a plugin and exits with status 1. A set of
// stages that does not make sense (no stage, a duplicate name, an implementation of the
// wrong interface) is reported on stderr with exit status 1.
func Serve(stages ...Stage) {
	cfg, err := ServeConfig(stages...)
	if err != nil {
		fmt.Fprintln(origStderr, "lilims plugin:", err)
		os.Exit(1)
	}
	go watchParent(ParentPollInterval)
	plugin.Serve(cfg)
}

// ServeConfig is what Serve hands to go-plugin, for callers that need to adjust it (tests,
// a debugger's ServeConfig.Test).
func ServeConfig(stages ...Stage) (*plugin.ServeConfig, error) {
	srv, err := newServer(stages)
	if err != nil {
		return nil, err
	}
	return &plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         srv.pluginSet(),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Output: origStderr, JSONFormat: true, Level: hclog.Warn}),
	}, nil
}

// watchParent exits when the host process is gone: the plugin has been re-parented, or the
// host named by HostPIDEnv no longer exists (a plugin started through a wrapper script has
// the script as its parent). A gRPC plugin otherwise returns from Serve only when the host
// sends Shutdown, so a host killed with SIGKILL would leave it running.
func watchParent(every time.Duration) {
	parent := os.Getppid()
	host, err := strconv.Atoi(os.Getenv(HostPIDEnv))
	if err != nil || host <= 1 {
		host = 0
	}
	for range time.Tick(every) {
		if os.Getppid() != parent || host != 0 && gone(host) {
			os.Exit(1)
		}
	}
}

// gone reports whether process pid has exited and been reaped.
func gone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true // Windows: no such process
	}
	defer p.Release()
	return errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// server holds a plugin's stages by `uses:` name.
type server struct {
	specs    []stage.Spec
	builders map[string]stage.Builder
	runtimes map[string]stage.Runtime
	samplers map[string]stage.Sampler
}

func newServer(stages []Stage) (*server, error) {
	if len(stages) == 0 {
		return nil, fmt.Errorf("sdk.Serve needs at least one stage")
	}
	s := &server{builders: map[string]stage.Builder{}, runtimes: map[string]stage.Runtime{}, samplers: map[string]stage.Sampler{}}
	seen := map[string]bool{}
	for _, st := range stages {
		pb, err := SpecToPB(st.Spec)
		if err == nil {
			_, err = SpecFromPB(pb) // the checks the host will make
		}
		if err != nil {
			return nil, err
		}
		if seen[st.Spec.Uses] {
			return nil, fmt.Errorf("stage %q is served twice", st.Spec.Uses)
		}
		seen[st.Spec.Uses] = true
		ok := false
		switch {
		case st.Spec.Kind.IsBuild():
			var b stage.Builder
			if b, ok = st.Impl.(stage.Builder); ok {
				s.builders[st.Spec.Uses] = b
			}
		case st.Spec.Kind == stage.KindRuntime:
			var r stage.Runtime
			if r, ok = st.Impl.(stage.Runtime); ok {
				s.runtimes[st.Spec.Uses] = r
			}
		case st.Spec.Kind == stage.KindSampler:
			var m stage.Sampler
			if m, ok = st.Impl.(stage.Sampler); ok {
				s.samplers[st.Spec.Uses] = m
			}
		}
		if !ok {
			return nil, fmt.Errorf("stage %q: %T does not implement the %s stage interface", st.Spec.Uses, st.Impl, st.Spec.Kind)
		}
		s.specs = append(s.specs, st.Spec)
	}
	return s, nil
}

func (s *server) pluginSet() plugin.PluginSet {
	return plugin.PluginSet{
		InfoPlugin:    &InfoGRPC{srv: s},
		BuilderPlugin: &BuilderGRPC{srv: s},
		RuntimePlugin: &RuntimeGRPC{srv: s},
		SamplerPlugin: &SamplerGRPC{srv: s},
	}
}

// pick finds a stage by name; an empty name selects the only stage of that kind.
func pick[V any](m map[string]V, uses, kind string) (V, error) {
	if v, ok := m[uses]; ok {
		return v, nil
	}
	var zero V
	if uses == "" && len(m) == 1 {
		for _, v := range m {
			return v, nil
		}
	}
	return zero, fmt.Errorf("this plugin serves no %s stage %q (it serves: %v)", kind, uses, sortedUses(m))
}

// --- Info ---

type infoServer struct {
	pluginpb.UnimplementedInfoServer
	srv *server
}

func (i infoServer) Describe(context.Context, *pluginpb.Empty) (*pluginpb.DescribeReply, error) {
	out := &pluginpb.DescribeReply{ProtocolVersion: ProtocolVersion, Sdk: "lilims-go"}
	for _, sp := range i.srv.specs {
		p, err := SpecToPB(sp)
		if err != nil {
			return nil, err
		}
		out.Specs = append(out.Specs, p)
	}
	return out, nil
}

// --- Builder ---

type builderServer struct {
	pluginpb.UnimplementedBuilderServer
	srv *server
}

func (b builderServer) Build(req *pluginpb.BuildRequest, stream pluginpb.Builder_BuildServer) error {
	impl, err := pick(b.srv.builders, req.GetUses(), "build")
	if err != nil {
		return err
	}
	inputs := make([]stage.Artifact, len(req.GetInputs()))
	for i, a := range req.GetInputs() {
		inputs[i] = ArtifactFromPB(a)
	}
	// stage.Reporter may be called from any goroutine; a gRPC stream's Send may not.
	var mu sync.Mutex
	report := func(e stage.Event) {
		mu.Lock()
		defer mu.Unlock()
		stream.Send(&pluginpb.BuildReply{Reply: &pluginpb.BuildReply_Event{Event: eventToPB(e)}})
	}
	art, err := impl.Build(stream.Context(), stage.BuildRequest{ID: req.GetId(), Params: ParamsFromPB(req.GetParams()),
		Source: req.GetSource(), Inputs: inputs, OutDir: req.GetOutDir(), Report: report})
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return stream.Send(&pluginpb.BuildReply{Reply: &pluginpb.BuildReply_Artifact{Artifact: ArtifactToPB(art)}})
}

// --- Runtime ---

type runtimeServer struct {
	pluginpb.UnimplementedRuntimeServer
	srv *server

	mu       sync.Mutex
	next     uint64
	sessions map[uint64]stage.Session
}

func (r *runtimeServer) session(id uint64) (stage.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sessions[id]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("no open session %d", id)
}

func (r *runtimeServer) Open(ctx context.Context, req *pluginpb.OpenRequest) (*pluginpb.OpenReply, error) {
	impl, err := pick(r.srv.runtimes, req.GetUses(), "runtime")
	if err != nil {
		return nil, err
	}
	sess, err := impl.Open(ctx, ArtifactFromPB(req.GetArtifact()), ParamsFromPB(req.GetParams()))
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	if r.sessions == nil {
		r.sessions = map[uint64]stage.Session{}
	}
	r.sessions[r.next] = sess
	return &pluginpb.OpenReply{Session: r.next, ContextLength: int64(sess.ContextLength()), VocabSize: int64(sess.VocabSize())}, nil
}

func (r *runtimeServer) Prefill(req *pluginpb.PrefillRequest, stream pluginpb.Runtime_PrefillServer) error {
	sess, err := r.session(req.GetSession())
	if err != nil {
		return err
	}
	rows, err := sess.Prefill(stream.Context(), req.GetTokens())
	if err != nil {
		return err
	}
	pos := int64(sess.Pos()) - int64(len(rows))
	for _, row := range rows {
		pos++
		if err := stream.Send(&pluginpb.Logits{Values: row, Pos: pos}); err != nil {
			return err
		}
	}
	return nil
}

func (r *runtimeServer) Decode(ctx context.Context, req *pluginpb.DecodeRequest) (*pluginpb.Logits, error) {
	sess, err := r.session(req.GetSession())
	if err != nil {
		return nil, err
	}
	row, err := sess.Decode(ctx, req.GetToken())
	if err != nil {
		return nil, err
	}
	return &pluginpb.Logits{Values: row, Pos: int64(sess.Pos())}, nil
}

func (r *runtimeServer) Reset(_ context.Context, req *pluginpb.SessionRef) (*pluginpb.Empty, error) {
	sess, err := r.session(req.GetSession())
	if err != nil {
		return nil, err
	}
	sess.Reset()
	return &pluginpb.Empty{}, nil
}

func (r *runtimeServer) Close(_ context.Context, req *pluginpb.SessionRef) (*pluginpb.Empty, error) {
	sess, err := r.session(req.GetSession())
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	delete(r.sessions, req.GetSession())
	r.mu.Unlock()
	return &pluginpb.Empty{}, sess.Close()
}

// --- Sampler ---

type samplerServer struct {
	pluginpb.UnimplementedSamplerServer
	srv *server

	mu       sync.Mutex
	next     uint64
	samplers map[uint64]stage.TokenSampler
}

func (s *samplerServer) sampler(id uint64) (stage.TokenSampler, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.samplers[id]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("no sampler %d", id)
}

func (s *samplerServer) New(_ context.Context, req *pluginpb.NewSamplerRequest) (*pluginpb.SamplerRef, error) {
	impl, err := pick(s.srv.samplers, req.GetUses(), "sampler")
	if err != nil {
		return nil, err
	}
	if req.GetVocabSize() < 1 || req.GetVocabSize() > 1<<31-1 {
		return nil, fmt.Errorf("vocabulary size %d out of range", req.GetVocabSize())
	}
	ts, err := impl.New(ParamsFromPB(req.GetParams()), int(req.GetVocabSize()))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	if s.samplers == nil {
		s.samplers = map[uint64]stage.TokenSampler{}
	}
	s.samplers[s.next] = ts
	return &pluginpb.SamplerRef{Sampler: s.next}, nil
}

func (s *samplerServer) Accept(_ context.Context, req *pluginpb.AcceptRequest) (*pluginpb.Empty, error) {
	ts, err := s.sampler(req.GetSampler())
	if err != nil {
		return nil, err
	}
	for _, t := range req.GetTokens() {
		ts.Accept(t)
	}
	return &pluginpb.Empty{}, nil
}

func (s *samplerServer) Sample(_ context.Context, req *pluginpb.SampleRequest) (*pluginpb.SampleReply, error) {
	ts, err := s.sampler(req.GetSampler())
	if err != nil {
		return nil, err
	}
	for _, t := range req.GetAccepted() {
		ts.Accept(t)
	}
	return &pluginpb.SampleReply{Token: ts.Sample(req.GetLogits())}, nil
}

func (s *samplerServer) Reset(_ context.Context, req *pluginpb.SamplerRef) (*pluginpb.Empty, error) {
	ts, err := s.sampler(req.GetSampler())
	if err != nil {
		return nil, err
	}
	ts.Reset()
	return &pluginpb.Empty{}, nil
}

func (s *samplerServer) Free(_ context.Context, req *pluginpb.SamplerRef) (*pluginpb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.samplers, req.GetSampler())
	return &pluginpb.Empty{}, nil
}
