package runtime_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/lilims/lilims/internal/oracle"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// quantizedWeights runs the quantize stage on a testdata model with the given parameters
// and opens the result for the exporter.
func quantizedWeights(t testing.TB, file string, raw map[string]any) *export.QuantizedWeights {
	t.Helper()
	f, err := gguf.Open(filepath.Join(oracleDir, "models", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, errs := quantize.Spec.Resolve(raw)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg, err := quantize.ParseConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := quantize.Quantize(context.Background(), f, cfg, dir, nil); err != nil {
		t.Fatal(err)
	}
	w, err := export.OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// promptLogits runs every oracle prompt of file through the package (or chunk directory) at
// path and returns the logits after each prompt token, prompt by prompt.
func promptLogits(t *testing.T, o *oracle.Reference, file, path string, prec reference.Precision) [][][]float32 {
	t.Helper()
	return promptLogitsWith(t, o, file, path, reference.Options{Precision: prec})
}

// promptLogitsWith is promptLogits with the runtime's options.
func promptLogitsWith(t *testing.T, o *oracle.Reference, file, path string, opts reference.Options) [][][]float32 {
	t.Helper()
	s, err := runtime.OpenReferenceOptions(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out [][][]float32
	for _, pr := range o.Models[file].Prompts {
		s.Reset()
		l, err := s.Prefill(context.Background(), pr.Tokens)
		if err != nil {
			t.Fatal(err)
		}
		// Two decode steps after the prompt exercise the decode function too.
		for _, tok := range []int32{oracle.Argmax(l[len(l)-1]), 1} {
			d, err := s.Decode(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			l = append(l, slices.Clone(d)) // Decode's logits last until the next call
		}
		out = append(out, l)
	}
	return out
}

// maxOracleDiff is max |Δp| against llama.cpp over the prompts' steps (the decode rows that
// promptLogits appends have no oracle entry and are skipped).
func maxOracleDiff(o *oracle.Reference, file string, logits [][][]float32) float64 {
	var worst float64
	for i, pr := range o.Models[file].Prompts {
		for j, st := range pr.Steps {
			d, _, _ := st.Check(logits[i][j])
			worst = math.Max(worst, d)
		}
	}
	return worst
}

// maxDiff is the largest difference of logits (probs false) or probabilities (probs true).
func maxDiff(a, b [][][]float32, probs bool) float64 {
	var worst float64
	for i := range a {
		for j := range a[i] {
			if probs {
				pa, pb := oracle.Softmax(a[i][j]), oracle.Softmax(b[i][j])
				for k := range pa {
					worst = math.Max(worst, math.Abs(pa[k]-pb[k]))
				}
				continue
			}
			for k := range a[i][j] {
				worst = math.Max(worst, math.Abs(float64(a[i][j][k]-b[i][j][k])))
			}
		}
	}
	return worst
}

// TestQuantizedTranscoded exports tiny-phi2-q4_0 twice: with the quantize stage's lossless
// Q4_0 transcoding (int4 data, fp16 block scales, run by the reference runtime's fused int4
// kernels) and as fp16 dequantized weights. The two compute the same weights — d·(q − 8),
// rounded to fp16 once on the dense side — so their next-token probabilities agree within
// 1e-3 (fp32 activations), and both stay within llama.cpp's quantized-model tolerance of 0.05.
func TestQuantizedTranscoded(t *testing.T) {
	const file = "tiny-phi2-q4_0.gguf"
	o := loadOracle(t)
	w := quantizedWeights(t, file, map[string]any{"scheme": "gguf"})
	opts := export.Options{ContextLength: 64, PrefillChunk: 16}
	dense := exportModel(t, file, opts)
	opts.Weights = w
	quant := exportModel(t, file, opts)

	// The transcoded package must actually use the constexpr op: weight.bin shrinks from
	// 16 bits to 4.5 bits (Q4_0's 4-bit data plus one fp16 scale per 32) for those tensors.
	ds, qs := fileSize(t, dense), fileSize(t, quant)
	t.Logf("weight.bin: fp16 %d bytes, transcoded %d bytes (manifest: %.3f bits/weight)", ds, qs, w.Manifest().BitsPerWeight)
	if float64(qs) > 0.5*float64(ds) {
		t.Errorf("transcoded weight.bin is %d bytes, fp16 %d: the quantized weights were not bound", qs, ds)
	}
	// fp32 activations isolate the weights: the fused kernel computes d·(q − 8) exactly, the
	// dense one with d·(q − 8) rounded to fp16 (d has 11 significant bits, q − 8 up to 4),
	// and that is all that differs: within 1e-3 (measured 5.8e-4). fp16-faithful execution
	// rounds every op's result as well, which amplifies the same difference (measured
	// 2.1e-3); there the bound is llama.cpp's own 0.05 for both packages, and 0.005 between them.
	for _, tt := range []struct {
		name string
		prec reference.Precision
		tol  float64
	}{{"fp32", reference.FP32, 1e-3}, {"fp16", reference.FP16Faithful, 0.005}} {
		ld, lq := promptLogits(t, o, file, dense, tt.prec), promptLogits(t, o, file, quant, tt.prec)
		dp := maxDiff(ld, lq, true)
		od, oq := maxOracleDiff(o, file, ld), maxOracleDiff(o, file, lq)
		t.Logf("%s: max |Δp| transcoded vs fp16 %.2g; vs llama.cpp: fp16 %.4f, transcoded %.4f", tt.name, dp, od, oq)
		if dp > tt.tol {
			t.Errorf("%s: transcoded and fp16 probabilities differ by %g > %g", tt.name, dp, tt.tol)
		}
		if od > 0.05 || oq > 0.05 {
			t.Errorf("%s: max |Δp| vs llama.cpp fp16 %g, transcoded %g; tolerance 0.05", tt.name, od, oq)
		}
	}
}

func fileSize(t *testing.T, pkg string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(pkg, "Data/com.apple.CoreML/weights/weight.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// layoutModels are the fixture architectures: llama (NORM rope, GQA), phi2 (partial NEOX
// rope, fused qkv, biases), gemma (MQA, tied head), gpt2 (learned positions), qwen2 (q/k/v
// biases), qwen3 (per-head q/k norms, head_dim ≠ n_embd/n_head), Llama 3 (rope_freqs), YaRN,
// phi3 (fused qkv and gate/up, LongRoPE), gemma2 (soft-caps, post-norms, sliding window),
// gemma3 (q/k norms, local layers with their own RoPE base).
var layoutModels = []string{"stories260K.gguf", "tiny-llama-f16.gguf", "tiny-phi2-f16.gguf", "tiny-gemma-f16.gguf", "tiny-gpt2-f32.gguf",
	"tiny-qwen2-f16.gguf", "tiny-qwen3-f16.gguf", "tiny-llama3-f16.gguf", "tiny-llama-yarn-f16.gguf", "tiny-phi3-f16.gguf",
	"tiny-gemma2-f16.gguf", "tiny-gemma3-f16.gguf"}

// TestANELayout: the channels-first export computes what the standard one computes, within
// 1e-3 on the logits (measured: 0 — both layouts reach the reference runtime's kernels with
// the same dot products in the same order). Both run float32 activations (reference.FP32).
func TestANELayout(t *testing.T) {
	o := loadOracle(t)
	for _, file := range layoutModels {
		std := exportModel(t, file, export.Options{ContextLength: 64, PrefillChunk: 16})
		ane := exportModel(t, file, export.Options{ContextLength: 64, PrefillChunk: 16, Layout: arch.ANE})
		ls, la := promptLogits(t, o, file, std, reference.FP32), promptLogits(t, o, file, ane, reference.FP32)
		d := maxDiff(ls, la, false)
		t.Logf("%s: max |Δlogit| ane vs standard %.2g; ane vs llama.cpp max |Δp| %.4f", file, d, maxOracleDiff(o, file, la))
		if d > 1e-3 {
			t.Errorf("%s: ANE layout logits differ from the standard layout's by %g > 1e-3", file, d)
		}
	}
}

// TestANEQuantized: compressed weights bound as [out, in, 1, 1] feed the 1×1 convs; the
// block (int4, block 32) and lut4 (palettes over output groups) exports give the same logits
// in both layouts within 1e-3.
func TestANEQuantized(t *testing.T) {
	o := loadOracle(t)
	const file = "tiny-llama-f16.gguf"
	for _, scheme := range []string{"block", "lut4"} {
		w := quantizedWeights(t, file, map[string]any{"scheme": scheme})
		std := exportModel(t, file, export.Options{ContextLength: 64, PrefillChunk: 16, Weights: w})
		ane := exportModel(t, file, export.Options{ContextLength: 64, PrefillChunk: 16, Weights: w, Layout: arch.ANE})
		d := maxDiff(promptLogits(t, o, file, std, reference.FP32), promptLogits(t, o, file, ane, reference.FP32), false)
		t.Logf("%s %s: max |Δlogit| ane vs standard %.2g", file, scheme, d)
		if d > 1e-3 {
			t.Errorf("%s %s: ANE layout logits differ by %g > 1e-3", file, scheme, d)
		}
	}
}

// TestChunks: splitting the layers over packages chained by hidden_states changes nothing.
// The fp16 hidden state crosses the package boundary exactly as it leaves an fp16-faithful
// op inside one package, so the logits are identical (difference 0) in both layouts.
func TestChunks(t *testing.T) {
	o := loadOracle(t)
	for _, tt := range []struct {
		file   string
		chunks int
		layout arch.Layout
	}{
		{"stories260K.gguf", 2, arch.Standard}, // 5 layers: [0, 2) and [2, 5)
		{"stories260K.gguf", 5, arch.ANE},      // one layer per package
		{"tiny-phi2-f16.gguf", 3, arch.Standard},
		{"tiny-gpt2-f32.gguf", 2, arch.ANE},
		{"tiny-qwen2-f16.gguf", 2, arch.Standard},
		{"tiny-qwen3-f16.gguf", 2, arch.Standard},
		{"tiny-qwen3-f16.gguf", 2, arch.ANE},
		{"tiny-llama3-f16.gguf", 2, arch.Standard},
		{"tiny-llama-yarn-f16.gguf", 2, arch.ANE},
		{"tiny-phi3-f16.gguf", 2, arch.Standard},
		{"tiny-phi3-f16.gguf", 2, arch.ANE},
		{"tiny-gemma2-f16.gguf", 2, arch.Standard},
		{"tiny-gemma2-f16.gguf", 2, arch.ANE},
		{"tiny-gemma3-f16.gguf", 3, arch.Standard},
		{"tiny-gemma3-f16.gguf", 2, arch.ANE},
	} {
		one := exportModel(t, tt.file, export.Options{ContextLength: 64, PrefillChunk: 16, Layout: tt.layout})
		dir := exportModel(t, tt.file, export.Options{ContextLength: 64, PrefillChunk: 16, Layout: tt.layout, Chunks: tt.chunks})
		if _, err := os.Stat(filepath.Join(dir, mlpackage.ChunkIndexFile)); err != nil {
			t.Fatalf("%s: chunked export has no index: %v", tt.file, err)
		}
		d := maxDiff(promptLogits(t, o, tt.file, one, reference.FP16Faithful), promptLogits(t, o, tt.file, dir, reference.FP16Faithful), false)
		t.Logf("%s %d chunks %v: max |Δlogit| vs one package %g", tt.file, tt.chunks, tt.layout, d)
		if d != 0 {
			t.Errorf("%s %d chunks %v: logits differ from one package's by %g", tt.file, tt.chunks, tt.layout, d)
		}
	}
}

// TestChunkIndexErrors: a damaged index is reported with its path, before any package opens.
func TestChunkIndexErrors(t *testing.T) {
	dir := exportModel(t, "stories260K.gguf", export.Options{ContextLength: 32, PrefillChunk: 8, Chunks: 2})
	index := filepath.Join(dir, mlpackage.ChunkIndexFile)
	good, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ from, to, want string }{
		{`"first": 2`, `"first": 3`, "do not continue from 2"},
		{`"chunk_1.mlpackage"`, `"../chunk_1.mlpackage"`, "leaves the directory"},
		{`"layers": 5`, `"layers": 6`, "cover 5 of 6 layers"},
		{`"lilims.chunks"`, `"other"`, "want lilims.chunks version 1"},
	}
	for _, tt := range tests {
		bad := strings.Replace(string(good), tt.from, tt.to, 1)
		if bad == string(good) {
			t.Fatalf("index has no %s:\n%s", tt.from, good)
		}
		if err := os.WriteFile(index, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := runtime.OpenReference(dir)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), index) {
			t.Errorf("index with %s: error %v, want one naming %s and containing %q", tt.to, err, index, tt.want)
		}
	}
}

// TestChunkStates: each chunk package holds the KV states of its own layers only.
func TestChunkStates(t *testing.T) {
	dir := exportModel(t, "stories260K.gguf", export.Options{ContextLength: 32, PrefillChunk: 8, Chunks: 2})
	want := [][]string{
		{"k_cache_0", "k_cache_1", "v_cache_0", "v_cache_1"},
		{"k_cache_2", "k_cache_3", "k_cache_4", "v_cache_2", "v_cache_3", "v_cache_4"},
	}
	for i, w := range want {
		m, err := reference.Open(filepath.Join(dir, []string{"chunk_0.mlpackage", "chunk_1.mlpackage"}[i]), reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := m.Describe(runtime.DecodeFunction)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range d.States {
			got = append(got, s.Name)
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("chunk %d states %v, want %v", i, got, w)
		}
	}
}
