package main

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/plugin"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/eval"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/loader/tokenizer"
	"github.com/lilims/lilims/stages/quantize/qweights"
)

const (
	oracle  = "../../testdata/oracle"
	stories = oracle + "/models/stories260K.gguf"
)

// The NF4 values QLoRA publishes (Dettmers et al. 2023, appendix E), as float32.
var published = [16]float64{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// The codebook, derived from its definition (normal quantiles), is QLoRA's to float32
// precision.
func TestCodebook(t *testing.T) {
	for k, want := range published {
		if d := math.Abs(codebook[k] - want); d > 1e-6 {
			t.Errorf("code %d = %.9f, QLoRA %.9f", k, codebook[k], want)
		}
	}
}

// A row is coded by the nearest fp16 palette entry, the palette being the codebook times
// the row's absmax; the packing is MIL's LSB-first uint4.
func TestRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 0.02)
	}
	x[17] = -0.125 // the absmax: code 0 (−1) decodes it exactly
	idx := make([]uint8, len(x))
	var palette [16]uint16
	var decoded [16]float32
	errSum, sigSum, ok := row(x, idx, &palette, &decoded)
	if !ok {
		t.Fatal("row refused a finite row")
	}
	if idx[17] != 0 || decoded[0] != -0.125 || decoded[15] != 0.125 || decoded[7] != 0 {
		t.Errorf("absmax code %d, palette ends %v %v, zero %v", idx[17], decoded[0], decoded[15], decoded[7])
	}
	for i, v := range x {
		got := math.Abs(float64(v - decoded[idx[i]]))
		for _, d := range decoded {
			if math.Abs(float64(v-d)) < got-1e-12 {
				t.Fatalf("x[%d] = %v coded %v, %v is nearer", i, v, decoded[idx[i]], d)
			}
		}
	}
	// With an outlier at 6.25σ the codes are coarse for the bulk: a relative RMS error
	// below 0.2 (measured 0.16) says the bulk is coded, not flushed to zero.
	rel := math.Sqrt(errSum / sigSum)
	t.Logf("relative RMS error %.4f", rel)
	if rel > 0.2 || rel == 0 {
		t.Errorf("relative RMS error %.3f", rel)
	}
	b := make([]byte, 2)
	pack4(b, []uint8{1, 2, 15})
	if b[0] != 0x21 || b[1] != 0x0F {
		t.Errorf("pack4(1, 2, 15) = %#x, want 0x21 0x0f (element 2k in the low nibble)", b)
	}
	if _, _, ok := row([]float32{1e5}, idx[:1], &palette, &decoded); ok {
		t.Error("absmax 1e5 does not fit fp16, yet row accepted it")
	}
}

// The plugin, built by the lilims plugin host and run as its own process, quantizes
// stories260K; the built-in exporter binds its palettes, the compile stage validates the
// package, and the reference runtime scores little-stories.txt as llama-perplexity does.
func TestPluginPerplexity(t *testing.T) {
	h := plugin.NewHost(plugin.Options{CacheDir: t.TempDir()})
	defer h.Close()
	reg := builtin.Registry()
	reg.External = h.External
	spec := &pipeline.Spec{Name: "nf4", Model: stories, Stages: []*pipeline.StageSpec{
		{ID: "load", Uses: "loader/gguf", With: map[string]any{}},
		{ID: "quantize", Uses: "plugin:.", With: map[string]any{}},
		{ID: "export", Uses: "export/mil", With: map[string]any{"context": 128, "prefill_chunk": 64}},
		{ID: "compile", Uses: "compile/coreml", With: map[string]any{"coremlcompiler": "never"}},
		{ID: "runtime", Uses: "runtime/reference", With: map[string]any{"precision": "fp32"}},
	}}
	plan, err := pipeline.Resolve(spec, reg)
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Step(stage.KindQuantize).Entry.Spec.Uses; got != "quantize/nf4" {
		t.Fatalf("the plugin describes itself as %q", got)
	}
	ctx := context.Background()
	built, err := plan.Build(ctx, pipeline.BuildOptions{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var qdir string
	for _, b := range built {
		if b.Artifact.Kind == "quantized" {
			qdir = b.Artifact.Path
		}
	}
	checkArtifact(t, qdir)

	sess, err := plan.OpenSession(ctx, built)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	f, err := gguf.Open(stories)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(oracle + "/eval/little-stories.txt")
	if err != nil {
		t.Fatal(err)
	}
	r, err := eval.Perplexity(ctx, sess, tok.Encode(string(text), true, false), eval.Options{Context: 128, BOS: tok.BOS(), AddBOS: tok.AddBOS()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NF4 (per-row absmax) stories260K: perplexity %.4f ± %.4f over %d chunks (llama.cpp: F32 4.2179, Q4_0 4.706)", r.PPL, r.PPLError, r.Chunks)
	// testdata/oracle/perplexity.json: 7 chunks of 128, 441 tokens scored. The fp16 model
	// scores 4.2179 and llama.cpp's Q4_0 4.706; a 4-bit code should land in that region,
	// where a broken palette or packing scatters the 512-token vocabulary into the hundreds.
	if r.Chunks != 7 || r.Scored != 441 {
		t.Errorf("chunks %d scored %d, want 7 and 441", r.Chunks, r.Scored)
	}
	if math.IsNaN(r.PPL) || math.IsInf(r.PPL, 0) || r.PPL < 4.2179*0.98 || r.PPL > 4.2179*1.5 {
		t.Errorf("perplexity %.4f outside [0.98, 1.5] × the fp16 model's 4.2179", r.PPL)
	}
}

// checkArtifact reads the artifact back through package quantize: every linear and
// embedding weight of stories260K is a uint4 LUT tensor with one palette per row, and the
// manifest's error is the one the stored arrays decode to.
func checkArtifact(t *testing.T, dir string) {
	t.Helper()
	set, err := qweights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	m := set.Manifest()
	f, err := gguf.Open(stories)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// 48 tensors: 37 weights (embedding, output, 7 per layer × 5) and 11 norms.
	if m.Scheme != "nf4" || len(m.Tensors) != 48 {
		t.Fatalf("manifest: scheme %q, %d tensors", m.Scheme, len(m.Tensors))
	}
	lut := 0
	for _, ti := range m.Tensors {
		if ti.Encoding == qweights.FP16 {
			continue
		}
		lut++
		q, ok := set.Lookup(ti.Name)
		if !ok || ti.Encoding != qweights.LUT || ti.GroupSize != 1 || ti.DType != "uint4" {
			t.Fatalf("%s: %+v", ti.Name, ti)
		}
		src, _ := f.Tensor(ti.Name)
		w, err := f.Float32s(src)
		if err != nil {
			t.Fatal(err)
		}
		var e, s float64
		for i, v := range q.Dequantize() {
			d := float64(v - w[i])
			e, s = e+d*d, s+float64(w[i])*float64(w[i])
		}
		if rel := math.Sqrt(e / s); math.Abs(rel-ti.RelRMSE) > 1e-9 || rel > 0.15 {
			t.Errorf("%s: decoded relative RMS error %.6f, manifest %.6f (want equal, and below 0.15)", ti.Name, rel, ti.RelRMSE)
		}
	}
	if lut != 37 {
		t.Errorf("%d quantized tensors, want 37", lut)
	}
	// 4 bits per index plus a 16 × fp16 palette per row, 4 + 256/in bits per weight: 8 for
	// the rows of 64, 5.49 for ffn_down's rows of 172; over stories260K's 292 096 quantized
	// weights, 2 198 528 bits, 7.527 bits per weight — small rows make the palettes as
	// costly as the codes.
	if math.Abs(m.BitsPerWeight-2198528.0/292096) > 1e-9 {
		t.Errorf("bits per weight %.4f, want %.4f", m.BitsPerWeight, 2198528.0/292096)
	}
}
