// Command quant-nf4 is a lilims quantization plugin: the quantize/nf4 stage, which stores
// the linear and embedding weights of a GGUF model as NF4, QLoRA's 4-bit NormalFloat — 16
// fixed values spread as the quantiles of a normal distribution, scaled by the absolute
// maximum of each block of weights.
//
// Core ML has no NF4 op; its constexpr_lut_to_dense (iOS18) decodes 4-bit indices through
// per-group palettes of output channels, which expresses NF4 exactly when the block is a
// row: each row's palette is the NF4 codebook times the row's absmax (fp16), and its
// indices are NF4 codes. That costs 4 bits per weight plus a 16-entry fp16 palette per row,
// 256/in bits per weight (0.06 for in = 4096, 4 for stories260K's in = 64) — where NF4
// proper stores one scale per 64 weights (0.5 bits). Blocks along the row would need a
// palette per block, 16× the scales of NF4, so this plugin keeps the row as the block.
//
// It writes the same artifact as the built-in quantize stage, through the format's package
// (stages/quantize/qweights): weights.safetensors holding, per quantized tensor, NAME.data (uint4 indices packed
// LSB-first, U8) and NAME.lut (fp16 [out, 1, 16, 1]), and manifest.json listing every tensor
// of the model with its encoding ("lut", group_size 1), bits per weight and relative RMS
// error, so the built-in exporter binds them without knowing of NF4. Use it with
//
//   - id: quantize
//     uses: plugin:./plugins/quant-nf4
//
// Its scheme parameter also takes none (every weight fp16), which is what `lilims compare`
// sets for its fp16 base: `lilims compare PIPELINE.yaml --schemes nf4` compares NF4 with
// fp16 through a pipeline whose quantize stage is this plugin.
package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/lilims/lilims/pipeline/plugin/sdk"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize/qweights"
)

// Spec is the stage this plugin serves.
var Spec = stage.Spec{Uses: "quantize/nf4",
	Doc: "Quantize linear and embedding weights to NF4 (QLoRA's 4-bit NormalFloat) with a per-row absmax, " +
		"bound through constexpr_lut_to_dense as one fp16 palette per output channel.",
	Params: []stage.ParamSpec{
		{Name: "scheme", Type: stage.String, Default: "nf4", Enum: []string{"nf4", "none"},
			Doc: "nf4: NF4 codes with a per-row palette; none: every weight stays fp16 (the base of lilims compare)"},
	}}

func main() {
	sdk.Serve(sdk.Quantizer(Spec, nf4Stage{}))
}

type nf4Stage struct{}

// Build quantizes the loader stage's GGUF into req.OutDir and returns the "quantized"
// artifact, with the Meta the built-in stage gives (source, scheme, bits_per_weight).
func (nf4Stage) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	in, ok := req.Input("gguf")
	if !ok {
		return stage.Artifact{}, errors.New("quantize/nf4 needs a GGUF model from a loader stage")
	}
	f, err := gguf.Open(in.Path)
	if err != nil {
		return stage.Artifact{}, err
	}
	defer f.Close()
	report := func(ev stage.Event) {
		if req.Report != nil {
			ev.Stage = req.ID
			req.Report(ev)
		}
	}
	m, err := Quantize(ctx, f, req.Params.String("scheme"), req.OutDir, report)
	if err != nil {
		return stage.Artifact{}, err
	}
	return stage.Artifact{Kind: "quantized", Path: req.OutDir, Meta: map[string]string{
		"source":          in.Path,
		"scheme":          m.Scheme,
		"bits_per_weight": fmt.Sprintf("%.3f", m.BitsPerWeight),
	}}, nil
}

// quantizable reports whether t is a weight this plugin quantizes: a 2-D `.weight` tensor of
// a linear layer or an embedding (token_embd, output, attn_*, ffn_*), as the built-in stage
// chooses. Norms and biases are 1-D and stay fp16.
func quantizable(t *gguf.Tensor) bool {
	if len(t.Shape) != 2 || !strings.HasSuffix(t.Name, ".weight") {
		return false
	}
	base := strings.TrimSuffix(t.Name, ".weight")
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		base = base[i+1:]
	}
	return base == "token_embd" || base == "output" || strings.HasPrefix(base, "attn_") || strings.HasPrefix(base, "ffn_")
}

// Quantize writes NF4 weights of f into dir (qweights.WeightsFile and qweights.ManifestFile)
// and returns the manifest. scheme "none" lists every tensor as fp16 and stores none.
func Quantize(ctx context.Context, f *gguf.File, scheme, dir string, report stage.Reporter) (*qweights.Manifest, error) {
	if scheme != "nf4" && scheme != "none" {
		return nil, fmt.Errorf("quantize/nf4: scheme %q (nf4, none)", scheme)
	}
	m := &qweights.Manifest{Scheme: scheme, Params: map[string]any{"scheme": scheme}, Source: f.Path}
	var work []*gguf.Tensor
	infos := make([]qweights.TensorInfo, len(f.Tensors))
	for i, t := range f.Tensors {
		ti := qweights.TensorInfo{Name: t.Name, Encoding: qweights.FP16, BitsPerWeight: 16}
		for d := len(t.Shape) - 1; d >= 0; d-- { // GGUF ne = [in, out] is [out, in] row-major
			ti.Shape = append(ti.Shape, int(t.Shape[d]))
		}
		switch {
		case scheme == "none":
			ti.Note = "scheme none"
		case len(t.Shape) < 2:
			ti.Note = "1-D: norms and biases stay fp16"
		case !quantizable(t):
			ti.Note = "not a linear or embedding weight"
		default:
			out, in := ti.Shape[0], ti.Shape[1]
			// Both bounded by the GGUF reader against the file's size; their product sizes
			// the packed indices.
			if out <= 0 || in <= 0 || int64(out)*int64(in) > 1<<40 {
				return nil, fmt.Errorf("quantize/nf4: %s: tensor %q: shape %v", f.Path, t.Name, ti.Shape)
			}
			ti.Encoding, ti.DType, ti.GroupSize = qweights.LUT, "uint4", 1
			bits, err := ti.StoredBits()
			if err != nil {
				return nil, fmt.Errorf("quantize/nf4: %s: tensor %q: %w", f.Path, t.Name, err)
			}
			ti.BitsPerWeight = float64(bits) / float64(out*in)
			work = append(work, t)
		}
		infos[i] = ti
	}
	w, err := qweights.Create(dir, scheme, infos)
	if err != nil {
		return nil, fmt.Errorf("quantize/nf4: %w", err)
	}
	byName := map[string]*qweights.TensorInfo{}
	for i := range infos {
		byName[infos[i].Name] = &infos[i]
	}
	for i, t := range work {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return nil, err
		}
		ti := byName[t.Name]
		if ti.RelRMSE, err = quantizeTensor(f, t, w); err != nil {
			w.Abort()
			return nil, fmt.Errorf("quantize/nf4: %s: tensor %q: %w", f.Path, t.Name, err)
		}
		report(stage.Event{Event: "progress", Done: int64(i + 1), Total: int64(len(work)), Unit: "tensors"})
	}
	m.Tensors = infos
	if err := w.Commit(m); err != nil {
		return nil, fmt.Errorf("quantize/nf4: %w", err)
	}
	return m, nil
}

// batchRows is how many rows are dequantized and written at a time: memory stays bounded
// whatever the tensor, and an even count keeps every batch's packed indices byte-aligned.
const batchRows = 256

// quantizeTensor writes t's NF4 indices and palettes to w and returns ‖w − ŵ‖/‖w‖.
func quantizeTensor(f *gguf.File, t *gguf.Tensor, w *qweights.Writer) (float64, error) {
	in, out := int(t.Shape[0]), int(t.Rows())
	x := make([]float32, batchRows*in)
	idx := make([]uint8, batchRows*in)
	packed := make([]byte, (batchRows*in+1)/2)
	lut := make([]byte, batchRows*32)
	var errSum, sigSum float64
	var palette [16]uint16
	var decoded [16]float32
	for r0 := 0; r0 < out; r0 += batchRows {
		k := min(batchRows, out-r0)
		if err := f.DequantizeRows(t, int64(r0), int64(k), x[:k*in]); err != nil {
			return 0, err
		}
		for r := 0; r < k; r++ {
			e, s, ok := row(x[r*in:(r+1)*in], idx[r*in:(r+1)*in], &palette, &decoded)
			if !ok {
				return 0, fmt.Errorf("row %d: its largest magnitude does not fit fp16", r0+r)
			}
			errSum, sigSum = errSum+e, sigSum+s
			for j, h := range palette {
				lut[r*32+2*j], lut[r*32+2*j+1] = byte(h), byte(h>>8)
			}
		}
		n := k * in
		pack4(packed[:(n+1)/2], idx[:n])
		if err := w.WriteTensorAt(t.Name+".data", int64(r0*in/2), packed[:(n+1)/2]); err != nil {
			return 0, err
		}
		if err := w.WriteTensorAt(t.Name+".lut", int64(r0*32), lut[:k*32]); err != nil {
			return 0, err
		}
	}
	if sigSum == 0 {
		return 0, nil
	}
	return math.Sqrt(errSum / sigSum), nil
}
