package export

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Limits of the stage's parameters.
const (
	maxPrefillChunk = 4096
)

// Spec describes the built-in export stage.
var Spec = stage.Spec{Uses: "export/mil", Kind: stage.KindExport,
	Doc: "Build the model's MIL program and write a Core ML .mlpackage (spec 9, fp16 compute, stateful KV cache, " +
		"prefill+decode functions). Weights from a quantize stage are bound through constexpr " +
		"dequantization ops; the rest stay fp16.",
	Params: []stage.ParamSpec{
		{Name: "context", Type: stage.Int, Default: 0, Doc: "context length the package is exported for (0: the model's trained context, at most 2048); larger ones are limited by the KV state's memory only"},
		{Name: "prefill_chunk", Type: stage.Int, Default: DefaultPrefillChunk, Doc: "tokens per prefill call"},
		{Name: "layout", Type: stage.String, Default: "standard", Enum: []string{"standard", "ane"},
			Doc: "standard: [1, N, C] activations and linear; ane: channels-first [1, C, 1, N] activations, 1×1 conv " +
				"projections, per-head attention with the softmax on the channel axis (Apple's Neural Engine guidance)"},
		{Name: "chunks", Type: stage.String, Default: "1",
			Doc: "split the layers into this many packages, each with its layers' KV states, chained by the runtime " +
				"(the first embeds, the last holds the LM head); 1: one package; auto: as few as keep each package's " +
				"weights under max_chunk_bytes"},
		{Name: "max_chunk_bytes", Type: stage.Int, Default: DefaultMaxChunkBytes,
			Doc: "with chunks: auto, the ceiling of one package's weights in bytes (default 1 GiB: the ANE compiler is " +
				"reported to fail on single programs of 1.5 to 3.4 GB of weights; see docs/export.md)"},
		{Name: "kv_pad", Type: stage.String, Default: "auto", Enum: []string{"auto", "32", "0"},
			Doc: "pad the KV states' head_dim with zero lanes to a multiple of 32 (logits unchanged): the Neural Engine " +
				"fails on states whose last dimension is not one (coremltools issue 2631); auto: 32 in the ane layout, " +
				"0 (none) in standard"},
	}}

// Stage is the export build stage. It takes the "gguf" input artifact and, when the pipeline
// has a quantize stage, its "quantized" artifact. It reports a "progress" event in tensors
// after each weight it writes.
//
// An architecture plugin serves this same stage for the architecture it registers with
// arch.Register: its main is the architecture's graph and
//
//	sdk.Serve(sdk.Export(export.PluginSpec("export/qwen2", doc), export.Stage{}))
type Stage struct{}

// PluginSpec is Spec under another name, for an architecture plugin that serves Stage: the
// same parameters, so a pipeline configures the plugin's export as it does the built-in one.
func PluginSpec(uses, doc string) stage.Spec {
	s := Spec
	s.Uses, s.Doc = uses, doc
	s.Params = append([]stage.ParamSpec(nil), Spec.Params...)
	return s
}

// Build implements stage.Builder. The output is the "mlpackage" artifact model.mlpackage,
// or for chunks > 1 the directory model.chunks (Meta "chunks" gives the count) holding
// chunk_<i>.mlpackage and chunks.json.
func (Stage) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	in, ok := req.Input("gguf")
	if !ok {
		return stage.Artifact{}, fmt.Errorf("export needs a GGUF model from a loader stage")
	}
	opts, err := stageOptions(req.Params)
	if err != nil {
		return stage.Artifact{}, err
	}
	f, err := gguf.Open(in.Path)
	if err != nil {
		return stage.Artifact{}, err
	}
	defer f.Close()
	meta := map[string]string{"layout": opts.Layout.String()}
	if q, ok := req.Input("quantized"); ok {
		w, err := OpenWeightsFor(q.Path, in.Path)
		if err != nil {
			return stage.Artifact{}, fmt.Errorf("export: quantized weights: %w", err)
		}
		defer w.Close()
		opts.Weights = w
		meta["quantization"] = w.Manifest().Scheme
	}
	if req.Report != nil {
		opts.Progress = func(done, total int) {
			req.Report(stage.Event{Stage: req.ID, Event: "progress", Done: int64(done), Total: int64(total), Unit: "tensors"})
		}
	}
	ranges, err := ChunkLayers(f, opts)
	if err != nil {
		return stage.Artifact{}, err
	}
	out := filepath.Join(req.OutDir, "model.mlpackage")
	if len(ranges) > 1 {
		out = filepath.Join(req.OutDir, "model.chunks")
		meta["chunks"] = strconv.Itoa(len(ranges))
	}
	if err := Export(ctx, f, opts, out); err != nil {
		return stage.Artifact{}, err
	}
	return stage.Artifact{Kind: "mlpackage", Path: out, Meta: meta}, nil
}

// stageOptions checks the stage's parameters and turns them into Options.
func stageOptions(p stage.Params) (Options, error) {
	var o Options
	o.PrefillChunk = p.Int("prefill_chunk")
	if o.PrefillChunk < 1 || o.PrefillChunk > maxPrefillChunk {
		return o, fmt.Errorf("export: prefill_chunk %d out of range [1, %d]", o.PrefillChunk, maxPrefillChunk)
	}
	o.ContextLength = p.Int("context")
	if o.ContextLength < 0 || o.ContextLength > MaxContextLength {
		return o, fmt.Errorf("export: context %d out of range [0, %d] (0: the model's)", o.ContextLength, MaxContextLength)
	}
	var err error
	if o.Layout, err = arch.ParseLayout(p.String("layout")); err != nil {
		return o, err
	}
	switch c := p.String("chunks"); c {
	case "", "1":
		o.Chunks = 1
	case "auto":
		o.Chunks = ChunksAuto
	default:
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			return o, fmt.Errorf("export: chunks %q must be a count of at least 1, or auto", c)
		}
		o.Chunks = n
	}
	o.MaxChunkBytes = int64(p.Int("max_chunk_bytes"))
	if _, set := p["max_chunk_bytes"]; !set {
		o.MaxChunkBytes = DefaultMaxChunkBytes
	}
	if o.MaxChunkBytes < 1 {
		return o, fmt.Errorf("export: max_chunk_bytes %d must be positive", o.MaxChunkBytes)
	}
	switch pad := p.String("kv_pad"); pad {
	case "", "auto":
		o.KVPad = KVPadAuto
	case "0":
		o.KVPad = NoKVPad
	case "32":
		o.KVPad = ANEStateAlign
	default:
		return o, fmt.Errorf("export: kv_pad %q: want auto, 32 or 0", pad)
	}
	return o, nil
}

// Resolving a pipeline runs stageOptions' checks too, so that `lilims validate` refuses what
// the build would. (Set here, not in Spec's literal: an initialization cycle otherwise.)
func init() {
	Spec.Check = func(p stage.Params) error { _, err := stageOptions(p); return err }
}
