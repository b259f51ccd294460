// Package builtin registers lilims's own stages. It is the one place that imports every
// stage package; the runner and the stages themselves know nothing of each other.
package builtin

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	goruntime "runtime"
	"strings"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/compile"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/loader"
	"github.com/lilims/lilims/stages/quantize"
	"github.com/lilims/lilims/stages/quantize/calibrate"
	lruntime "github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/coreml"
	"github.com/lilims/lilims/stages/runtime/reference"
	"github.com/lilims/lilims/stages/sampler"
)

// Registry returns a registry holding every built-in stage.
func Registry() *pipeline.Registry {
	r := pipeline.NewRegistry()
	r.Register(pipeline.Entry{Spec: loader.Spec, New: func() any { return loader.GGUF{} }})
	r.Register(pipeline.Entry{Spec: quantize.Spec, New: func() any { return quantize.Stage{Calibrate: calibrate.File} }})
	r.Register(pipeline.Entry{Spec: export.Spec, New: func() any { return export.Stage{} }})
	r.Register(pipeline.Entry{Spec: compile.Spec, New: func() any { return compile.Stage{} }})
	r.Register(pipeline.Entry{Spec: runtimeSpec("runtime/reference",
		"Run the exported package on the pure-Go reference runtime (any OS)."), New: func() any { return referenceRuntime{} }})
	// Core ML runs in a plugin process by default on macOS (docs/mac.md): an
	// Objective-C exception or a wrong call signature kills the plugin, not lilims.
	coremlIsolation := ""
	if runtime.GOOS == "darwin" {
		coremlIsolation = "process"
	}
	r.Register(pipeline.Entry{Spec: runtimeSpec("runtime/auto",
		"Core ML on macOS when available, the reference runtime elsewhere."), New: func() any { return autoRuntime{} },
		DefaultIsolation: coremlIsolation})
	r.Register(pipeline.Entry{Spec: runtimeSpec("runtime/coreml",
		"Core ML through purego (macOS 15+); compute_units picks CPU, GPU and Neural Engine."), New: func() any { return coremlRuntime{} },
		DefaultIsolation: coremlIsolation})
	r.Register(pipeline.Entry{Spec: samplerSpec, New: func() any { return samplerStage{} }})
	return r
}

func runtimeSpec(uses, doc string) stage.Spec {
	return stage.Spec{Uses: uses, Kind: stage.KindRuntime, Doc: doc, Params: []stage.ParamSpec{
		{Name: "threads", Type: stage.Int, Default: 0, Doc: "matmul threads (0: all cores)"},
		{Name: "precision", Type: stage.String, Default: "fp32", Enum: []string{"fp16", "fp32"},
			Doc: "fp32: float32 activations over the fp16 weights and fp16 KV state (meets llama.cpp's tolerances); fp16: round every op result to fp16 as the program declares, emulating fp16 hardware"},
		{Name: "compute_units", Type: stage.String, Default: "all", Enum: []string{"cpu_only", "cpu_and_gpu", "cpu_and_ne", "all"},
			Doc: "Core ML compute units (macOS only; ignored by the reference runtime)"},
		{Name: "decode_only", Type: stage.Bool, Default: false,
			Doc: "Core ML: load the decode function only and run prompts through it, so the weights are held once (slower prompts; ignored by the reference runtime)"},
	}}
}

type referenceRuntime struct{}

func (referenceRuntime) Open(ctx context.Context, art stage.Artifact, p stage.Params) (stage.Session, error) {
	pkg := art.Path
	if art.Kind != "mlpackage" {
		if src, ok := art.Meta["package"]; ok {
			pkg = src // a compiled model keeps its source package beside it
		} else {
			return nil, fmt.Errorf("the reference runtime runs a .mlpackage, got a %s artifact (%s)", art.Kind, art.Path)
		}
	}
	threads := p.Int("threads")
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	prec := reference.FP16Faithful
	if p.String("precision") == "fp32" {
		prec = reference.FP32
	}
	return lruntime.OpenReferenceOptions(pkg, reference.Options{Precision: prec, Threads: threads})
}

// coremlRuntime runs the compiled model with Core ML; it fails off macOS.
type coremlRuntime struct{}

func (coremlRuntime) Open(ctx context.Context, art stage.Artifact, p stage.Params) (stage.Session, error) {
	opts := coreml.Options{ComputeUnits: p.String("compute_units"), PrefillThroughDecode: p.Bool("decode_only")}
	// Compiled models are kept in the lilims cache, at one path per package, so Core ML's
	// own cache of device-specialised models (keyed by path) is hit on the next run.
	// Without a cache directory they are compiled into a temporary one.
	if dir, err := pipeline.DefaultCacheDir(); err == nil {
		opts.CacheDir = dir
	}
	if art.Kind == "mlmodelc" {
		opts.Package = art.Meta["package"]
	}
	return coreml.OpenOptions(art.Path, opts)
}

// autoRuntime prefers Core ML and falls back to the reference runtime whenever Core ML
// cannot open the package: any OS but macOS 15+, no libobjc, or a package or chunk directory
// the framework refuses to compile or load. On a Mac, where Core ML was expected, it says why
// in one line on stderr; elsewhere the reference runtime is simply the runtime. An artifact
// that neither runtime opens gets the reference runtime's error.
type autoRuntime struct {
	stderr io.Writer // os.Stderr when nil
}

func (a autoRuntime) Open(ctx context.Context, art stage.Artifact, p stage.Params) (stage.Session, error) {
	sess, err := coremlRuntime{}.Open(ctx, art, p)
	if err == nil {
		return sess, nil
	}
	if expectCoreML {
		w := a.stderr
		if w == nil {
			w = os.Stderr
		}
		reason, _, _ := strings.Cut(err.Error(), "\n")
		fmt.Fprintf(w, "lilims: runtime/auto: using the reference runtime: %s\n", reason)
	}
	return referenceRuntime{}.Open(ctx, art, p)
}

// expectCoreML: runtime/auto explains a fallback only where Core ML could have run.
var expectCoreML = goruntime.GOOS == "darwin"

var samplerSpec = stage.Spec{Uses: "sampler/default", Kind: stage.KindSampler,
	Doc:    "llama.cpp's sampling chain: penalties → top-k → typical → top-p → min-p → temperature → draw.",
	Params: samplerParams()}

// samplerParams declares the sampler package's parameters (sampler.Parameters, their one
// source) as the stage's.
func samplerParams() []stage.ParamSpec {
	types := map[sampler.Kind]stage.ParamType{sampler.Float: stage.Float, sampler.Int: stage.Int,
		sampler.Seed: stage.Int, sampler.Strings: stage.Strings}
	var out []stage.ParamSpec
	for _, p := range sampler.Parameters() {
		out = append(out, stage.ParamSpec{Name: p.Key, Type: types[p.Kind], Default: p.Default, Doc: p.Doc})
	}
	return out
}

type samplerStage struct{}

func (samplerStage) New(p stage.Params, vocab int) (stage.TokenSampler, error) {
	m := make(map[string]any, len(p))
	for k, v := range p {
		m[k] = v
	}
	sp, err := sampler.FromMap(m)
	if err != nil {
		return nil, err
	}
	return sampler.New(sp, vocab)
}
