package quantize_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/compile"
	"github.com/lilims/lilims/stages/eval"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize"
	"github.com/lilims/lilims/stages/quantize/calibrate"
	"github.com/lilims/lilims/stages/runtime"
)

const (
	oracle      = "../../testdata/oracle/"
	stories     = oracle + "models/stories260K.gguf"
	evalText    = oracle + "eval/little-stories.txt"
	calibration = "testdata/calibration.txt" // written for these tests; not the evaluation text
)

// measured is one scheme's quantize → export → reference runtime → perplexity run.
type measured struct {
	bits, ppl, seconds float64
	weightBytes        int64
	m                  *quantize.Manifest
}

// measure quantizes stories260K with params (none: the fp16 export), exports it with
// context 128, validates the package as Core ML would load it and scores
// little-stories.txt as llama-perplexity does (ctx 128).
func measure(t *testing.T, params map[string]any) measured {
	t.Helper()
	ctx := context.Background()
	f, err := gguf.Open(stories)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, errs := quantize.Spec.Resolve(params)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg, err := quantize.ParseConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	if cfg.Calibration != "" {
		if cfg.Activations, err = calibrate.File(ctx, f, cfg.Calibration); err != nil {
			t.Fatal(err)
		}
	}
	m, err := quantize.Quantize(ctx, f, cfg, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := measured{bits: m.BitsPerWeight, seconds: time.Since(start).Seconds(), m: m}
	// The arrays' bytes: the file less its 8-byte header length and JSON header (safetensors).
	if raw, err := os.ReadFile(filepath.Join(dir, quantize.WeightsFile)); err == nil && len(raw) >= 8 {
		r.weightBytes = int64(len(raw)) - 8 - int64(binary.LittleEndian.Uint64(raw))
	}
	opts := export.Options{ContextLength: 128, PrefillChunk: 64}
	if cfg.Scheme != "none" {
		ws, err := export.OpenWeights(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		opts.Weights = ws
	}
	pkg := filepath.Join(t.TempDir(), "model.mlpackage")
	if err := export.Export(ctx, f, opts, pkg); err != nil {
		t.Fatal(err)
	}
	if err := compile.Validate(pkg); err != nil { // what Core ML checks when it loads the package
		t.Fatal(err)
	}
	sess, err := runtime.OpenReference(pkg)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	text, err := os.ReadFile(evalText)
	if err != nil {
		t.Fatal(err)
	}
	ids, bos, err := calibrate.Tokens(f, string(text))
	if err != nil {
		t.Fatal(err)
	}
	res, err := eval.Perplexity(ctx, sess, ids, eval.Options{Context: 128, BOS: bos, AddBOS: true})
	if err != nil {
		t.Fatal(err)
	}
	r.ppl = res.PPL
	return r
}

// TestCalibratedPerplexity quantizes stories260K with a calibration text (GPTQ error
// feedback, importance-weighted searches) and scores little-stories.txt with context 128 as
// llama-perplexity does, through export and the reference runtime. The goal (issue 4): at
// ≤ 4.5 bits per quantized weight, Δppl vs fp16 below llama.cpp Q4_0's +11.6%
// (perplexity.json: 4.706 vs 4.2179), aiming at Q4_K_M's +2.9% (4.342).
//
// Measured (fp16: 4.2177), data-free → calibrated:
//
//	block 32   4.476 bits  +11.43% → +8.3…8.5% (runs differ in float summation order)
//	channel    4.220 bits  +13.11% → +4.52%
//	channel asymmetric 4.276 bits  → +3.72%
//	lut4       4.179 bits  +14.22% → +10.84%
//
// Each bound is the measured figure plus a margin for float summation order; all are below
// Q4_0's +11.6%. The stored arrays must be within 3% of what bits/weight predicts.
func TestCalibratedPerplexity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four quantize → export → perplexity pipelines")
	}
	base := measure(t, map[string]any{"scheme": "none"})
	// llama.cpp: 4.2179 on the F32 model; our fp16 package within 0.5% (eval's parity test).
	if math.Abs(base.ppl/4.2179-1) > 0.005 {
		t.Fatalf("fp16 perplexity %.4f, llama.cpp 4.2179", base.ppl)
	}
	for _, tc := range []struct {
		params   map[string]any
		bits     float64 // from the geometry: 4 + 16/block (channel: 16/in), lut: + 256/(group·in)
		maxDelta float64 // percent
	}{
		{map[string]any{"scheme": "block"}, 4.476, 9.5},
		{map[string]any{"scheme": "channel"}, 4.220, 5.5},
		{map[string]any{"scheme": "channel", "symmetric": false}, 4.276, 4.8},
		{map[string]any{"scheme": "lut4"}, 4.179, 11.5},
	} {
		tc.params["calibration"] = calibration
		r := measure(t, tc.params)
		delta := 100 * (r.ppl/base.ppl - 1)
		var elems float64
		for _, ti := range r.m.Tensors {
			if ti.Encoding != quantize.FP16 {
				elems += float64(ti.Shape[0] * ti.Shape[1])
			}
		}
		size := float64(r.weightBytes) / (r.bits * elems / 8)
		t.Logf("%v: %.3f bits/weight, ppl %.4f (%+.2f%%), weight arrays %.2f%% over prediction, %.2fs",
			tc.params, r.bits, r.ppl, delta, 100*(size-1), r.seconds)
		if math.Abs(r.bits-tc.bits) > 0.001 || r.bits > 4.5 {
			t.Errorf("%v: %.4f bits/weight, want %.3f (≤ 4.5)", tc.params, r.bits, tc.bits)
		}
		if delta > tc.maxDelta {
			t.Errorf("%v: Δppl %+.2f%%, want ≤ %+.1f%% (Q4_0: +11.6%%)", tc.params, delta, tc.maxDelta)
		}
		if size < 1 || size > 1.03 {
			t.Errorf("%v: weight arrays of %d bytes, %.0f predicted", tc.params, r.weightBytes, r.bits*elems/8)
		}
	}
}

// TestCalibrationErrors: a calibration that was not measured, or a stage without a
// calibrator, fails before any tensor is written.
func TestCalibrationErrors(t *testing.T) {
	f, err := gguf.Open(stories)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := quantize.ParseConfig(map[string]any{"calibration": calibration})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quantize.Quantize(context.Background(), f, cfg, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "was not measured") {
		t.Errorf("unmeasured calibration: %v", err)
	}
	// Scheme none (the fp16 base of lilims compare) has nothing to weigh: the stage skips the
	// measurement, and the calibration (or a budget set for every row) must not then be an error.
	none, err := quantize.ParseConfig(map[string]any{"scheme": "none", "calibration": calibration, "bits_budget": 4.5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quantize.Quantize(context.Background(), f, none, t.TempDir(), nil); err != nil {
		t.Errorf("scheme none with a calibration: %v", err)
	}
	_, err = quantize.Stage{Calibrate: calibrate.File}.Build(context.Background(), stage.BuildRequest{
		Params: map[string]any{"scheme": "none", "calibration": calibration, "bits_budget": 4.5}, OutDir: t.TempDir(),
		Inputs: []stage.Artifact{{Kind: "gguf", Path: stories}}})
	if err != nil {
		t.Errorf("stage with scheme none and a calibration: %v", err)
	}
	_, err = quantize.Stage{}.Build(context.Background(), stage.BuildRequest{
		Params: map[string]any{"calibration": calibration}, OutDir: t.TempDir(),
		Inputs: []stage.Artifact{{Kind: "gguf", Path: stories}}})
	if err == nil || !strings.Contains(err.Error(), "has no calibrator") {
		t.Errorf("stage without calibrator: %v", err)
	}
	_, err = quantize.Stage{Calibrate: calibrate.File}.Build(context.Background(), stage.BuildRequest{
		Params: map[string]any{"calibration": "no/such.txt"}, OutDir: t.TempDir(),
		Inputs: []stage.Artifact{{Kind: "gguf", Path: stories}}})
	if err == nil || !strings.Contains(err.Error(), "no/such.txt") {
		t.Errorf("missing calibration file: %v", err)
	}
}

// TestBestScheme is the ANE-friendly 4-bit scheme at Q4_K_M's quality: per-channel uint4
// scales with GPTQ, and mixed precision under bits_budget 4.45 (tensors ranked by their
// output error on the calibration text move to two scale groups per row or to int8 per
// channel). Both encodings are constexpr_blockwise_shift_scale with per-channel (or
// two-group) scales. Its perplexity on little-stories.txt (ctx 128, the calibration text is
// a different one) is bounded by llama.cpp's own Q4_K_M figure (perplexity.json):
//
//	llama.cpp F32    4.2179
//	llama.cpp Q4_K_M 4.342 (+2.94%; on stories260K it is Q5_0 and F16, 7.54 bits/weight)
//	this scheme      4.3083 (+2.14%) at 4.449 bits per quantized weight (measured 2026-12)
func TestBestScheme(t *testing.T) {
	r := measure(t, map[string]any{"scheme": "channel", "symmetric": false, "bits_budget": 4.45, "calibration": calibration})
	const llamaF32, llamaQ4KM = 4.2179, 4.342
	delta := 100 * (r.ppl/llamaF32 - 1)
	t.Logf("%.3f bits per quantized weight, ppl %.4f (%+.2f%% vs llama.cpp F32)", r.bits, r.ppl, delta)
	if r.bits > 4.5 {
		t.Errorf("%.3f bits per quantized weight, want ≤ 4.5", r.bits)
	}
	if want := 100 * (llamaQ4KM/llamaF32 - 1); delta > want {
		t.Errorf("Δppl %+.2f%% vs llama.cpp's F32 %.4f, want ≤ Q4_K_M's %+.2f%%", delta, llamaF32, want)
	}
	// The budget moved some tensors up, and every one says why in the manifest.
	upgraded := 0
	for _, ti := range r.m.Tensors {
		if strings.Contains(ti.Note, "bits_budget") {
			upgraded++
			if ti.Encoding != quantize.Blockwise || (ti.BlockSize != ti.Shape[1] && ti.Shape[1]/ti.BlockSize != 2) {
				t.Errorf("%s: %s block %d: not per channel or two groups per row", ti.Name, ti.Encoding, ti.BlockSize)
			}
		}
	}
	if upgraded == 0 {
		t.Error("bits_budget upgraded no tensor")
	}
}

// TestBitsBudgetConfig: a budget needs a calibration text and a sane value.
func TestBitsBudgetConfig(t *testing.T) {
	for _, tc := range []struct {
		params map[string]any
		msg    string
	}{
		{map[string]any{"scheme": "channel", "bits_budget": 4.5}, "needs a calibration"},
		{map[string]any{"scheme": "channel", "bits_budget": -1.0, "calibration": calibration}, "outside [0, 16]"},
		{map[string]any{"scheme": "channel", "bits_budget": 17, "calibration": calibration}, "outside [0, 16]"},
	} {
		if _, err := quantize.ParseConfig(tc.params); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: %v, want an error saying %q", tc.params, err, tc.msg)
		}
	}
	// Unmeasured activations at plan time: named, not a panic.
	f, err := gguf.Open(stories)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := quantize.ParseConfig(map[string]any{"scheme": "channel", "bits_budget": 4.5, "calibration": calibration})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quantize.Quantize(context.Background(), f, cfg, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "bits_budget") {
		t.Errorf("budget without activations: %v", err)
	}
}

// TestLUTWidthsPerplexity quantizes stories260K to palettes of every width and scores
// little-stories.txt (ctx 128) through export and the reference runtime. Data-free (the
// stage's default group size), perplexity falls as the width grows, and 8-bit palettes
// are within 0.5% of llama.cpp's F32 figure (perplexity.json: 4.2179; our fp16 export is
// within 0.5% of it too, eval's parity test). Every width composes with a calibration,
// GPTQ with act order and a scale per channel, which must beat the data-free palettes.
// Measured (2026-12), Δ vs llama.cpp F32, data-free → calibrated (bits/weight, Δ):
//
//	lut_bits 2  2.238 bits/weight  +4095%  → 2.458 bits/weight +1131%
//	lut_bits 3  3.161 bits/weight  +276.6% → 3.382 +52.96%
//	lut_bits 4  4.179 bits/weight  +14.21% → 4.399 +10.59%
//	lut_bits 6  6.231 bits/weight  +1.05%  → 6.452 −0.27%
//	lut_bits 8  8.547 bits/weight  +0.30%  → 8.767 −0.31%
func TestLUTWidthsPerplexity(t *testing.T) {
	if testing.Short() {
		t.Skip("quantizes and scores stories260K ten times")
	}
	const llamaF32 = 4.2179
	last := math.Inf(1)
	for _, bits := range quantize.LUTWidths {
		r := measure(t, map[string]any{"scheme": "lut", "lut_bits": bits})
		cal := measure(t, map[string]any{"scheme": "lut", "lut_bits": bits, "calibration": calibration,
			"act_order": true, "lut_scale": "channel"})
		delta, calDelta := 100*(r.ppl/llamaF32-1), 100*(cal.ppl/llamaF32-1)
		t.Logf("lut_bits %d: %.3f bits/weight, ppl %.4f (%+.2f%% vs llama.cpp F32); calibrated %.3f bits/weight, ppl %.4f (%+.2f%%)",
			bits, r.bits, r.ppl, delta, cal.bits, cal.ppl, calDelta)
		if r.ppl >= last {
			t.Errorf("lut_bits %d: ppl %.4f, not below the narrower palettes' %.4f", bits, r.ppl, last)
		}
		last = r.ppl
		if cal.ppl >= r.ppl {
			t.Errorf("lut_bits %d: calibrated ppl %.4f, not below data-free %.4f", bits, cal.ppl, r.ppl)
		}
		for _, ti := range append(r.m.Tensors, cal.m.Tensors...) {
			if ti.Encoding != quantize.FP16 && ti.DType != fmt.Sprintf("uint%d", bits) {
				t.Errorf("lut_bits %d: %s stored as %s %s", bits, ti.Name, ti.Encoding, ti.DType)
			}
		}
		if bits == 8 && math.Abs(delta) > 0.5 {
			t.Errorf("lut_bits 8: ppl %.4f, %+.2f%% from llama.cpp's F32 %.4f, want within 0.5%%", r.ppl, delta, llamaF32)
		}
	}
}
