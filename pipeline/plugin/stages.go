package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/plugin/sdk"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// entry adapts a plugin's stage to the runner's registry entry: New returns a stage.Builder,
// stage.Runtime or stage.Sampler whose work happens in the plugin process.
func (h *Host) entry(p *proc, spec stage.Spec) pipeline.Entry {
	return pipeline.Entry{Spec: spec, New: func() any {
		switch {
		case spec.Kind.IsBuild():
			return &builder{p: p, spec: spec}
		case spec.Kind == stage.KindRuntime:
			return &runtimeStage{p: p, spec: spec}
		case spec.Kind == stage.KindSampler:
			return &samplerStage{p: p, spec: spec}
		}
		return nil
	}}
}

// builder runs a build stage in its plugin process and checks the artifact it reports.
type builder struct {
	p    *proc
	spec stage.Spec
}

func (b *builder) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	raw, err := b.p.dispense(sdk.BuilderPlugin)
	if err != nil {
		return stage.Artifact{}, err
	}
	// A build stage's process has done its one job when Build returns: stop it, freeing its
	// memory (it is started again if the stage is built again).
	defer b.p.kill()
	timeout := b.p.h.opts.StageTimeout
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	art, err := raw.(*sdk.BuilderClient).Build(cctx, b.spec.Uses, req)
	if err != nil {
		if ctx.Err() != nil { // interrupted by the host, not the plugin's fault
			return stage.Artifact{}, fmt.Errorf("%s: %w", b.p.label, ctx.Err())
		}
		return stage.Artifact{}, b.p.explain("Build", timeout, err)
	}
	if err := checkArtifact(b.spec.Kind, art, req); err != nil {
		return stage.Artifact{}, fmt.Errorf("%s returned a malformed artifact: %w", b.p.label, err)
	}
	return art, nil
}

// artifactKinds are the artifact kinds each build stage may produce (compile passes the
// package through where there is no Core ML compiler).
var artifactKinds = map[stage.Kind][]string{
	stage.KindLoader:   {"gguf"},
	stage.KindQuantize: {"quantized"},
	stage.KindExport:   {"mlpackage"},
	stage.KindCompile:  {"mlpackage", "mlmodelc"},
}

// checkArtifact verifies what a plugin claims to have built before the runner trusts it: a
// kind its stage may produce, a path inside the output directory (or one of the stage's own
// inputs, passed through), and the files that kind is made of.
func checkArtifact(k stage.Kind, art stage.Artifact, req stage.BuildRequest) error {
	if !slices.Contains(artifactKinds[k], art.Kind) {
		return fmt.Errorf("a %s stage produces %s, not %q", k, strings.Join(artifactKinds[k], " or "), art.Kind)
	}
	if art.Path == "" {
		return fmt.Errorf("%s artifact without a path", art.Kind)
	}
	passed := art.Path == req.Source
	for _, in := range req.Inputs {
		passed = passed || art.Path == in.Path
	}
	if !passed {
		rel, err := filepath.Rel(req.OutDir, art.Path)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			return fmt.Errorf("%s artifact %s is outside the stage's output directory %s", art.Kind, art.Path, req.OutDir)
		}
	}
	fi, err := os.Stat(art.Path)
	if err != nil {
		return fmt.Errorf("%s artifact: %w", art.Kind, err)
	}
	need := ""
	switch art.Kind {
	case "gguf":
		if fi.IsDir() {
			return fmt.Errorf("gguf artifact %s is a directory", art.Path)
		}
	case "mlpackage":
		need = "Manifest.json" // the package's root file (the .mlpackage layout of coremltools' ModelPackage)
		if mlpackage.IsChunked(art.Path) {
			need = mlpackage.ChunkIndexFile // a chunked export: a directory of packages and their index
		}
	case "quantized":
		need = "manifest.json" // manifest.json + weights.safetensors (docs/pipelines.md)
	case "mlmodelc":
		if !fi.IsDir() {
			return fmt.Errorf("mlmodelc artifact %s is not a directory", art.Path)
		}
	}
	if need != "" {
		if !fi.IsDir() {
			return fmt.Errorf("%s artifact %s is not a directory", art.Kind, art.Path)
		}
		if _, err := os.Stat(filepath.Join(art.Path, need)); err != nil {
			return fmt.Errorf("%s artifact %s has no %s", art.Kind, art.Path, need)
		}
	}
	return nil
}

// runtimeStage opens sessions in its plugin process.
type runtimeStage struct {
	p    *proc
	spec stage.Spec
}

func (r *runtimeStage) Open(ctx context.Context, art stage.Artifact, params stage.Params) (stage.Session, error) {
	raw, err := r.p.dispense(sdk.RuntimePlugin)
	if err != nil {
		return nil, err
	}
	timeout := r.p.h.opts.CallTimeout
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := raw.(*sdk.RuntimeClient).Open(cctx, r.spec.Uses, art, params, timeout)
	if err != nil {
		return nil, r.p.explain("Open", timeout, err)
	}
	return &session{Session: s, p: r.p, timeout: timeout}, nil
}

// session bounds each call by the call timeout and names the plugin in errors.
type session struct {
	*sdk.Session
	p       *proc
	timeout time.Duration
}

func (s *session) Prefill(ctx context.Context, tokens []int32) ([][]float32, error) {
	if s.Session.Err != nil {
		return nil, s.p.explain("Reset", s.timeout, s.Session.Err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.Session.Prefill(cctx, tokens)
	if err != nil && ctx.Err() == nil {
		return nil, s.p.explain("Prefill", s.timeout, err)
	}
	return rows, err
}

func (s *session) Decode(ctx context.Context, token int32) ([]float32, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	row, err := s.Session.Decode(cctx, token)
	if err != nil && ctx.Err() == nil {
		return nil, s.p.explain("Decode", s.timeout, err)
	}
	return row, err
}

func (s *session) Close() error {
	if err := s.Session.Close(); err != nil {
		return s.p.explain("Close", s.timeout, err)
	}
	return nil
}

// samplerStage makes token samplers in its plugin process.
type samplerStage struct {
	p    *proc
	spec stage.Spec
}

func (m *samplerStage) New(params stage.Params, vocab int) (stage.TokenSampler, error) {
	raw, err := m.p.dispense(sdk.SamplerPlugin)
	if err != nil {
		return nil, err
	}
	timeout := m.p.h.opts.CallTimeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ts, err := raw.(*sdk.SamplerClient).New(ctx, m.spec.Uses, params, vocab, timeout)
	if err != nil {
		return nil, m.p.explain("New", timeout, err)
	}
	return &tokenSampler{TokenSampler: ts, p: m.p}, nil
}

// tokenSampler is sdk.TokenSampler with errors that name the plugin. stage.TokenSampler
// has no error results: after a failure Sample returns -1 and Err says why.
type tokenSampler struct {
	*sdk.TokenSampler
	p *proc
}

// Err is the first failure of the sampler, or nil.
func (t *tokenSampler) Err() error {
	if t.TokenSampler.Err == nil {
		return nil
	}
	return t.p.explain("Sample", t.CallTimeout, t.TokenSampler.Err)
}
