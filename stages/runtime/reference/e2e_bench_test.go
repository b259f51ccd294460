package reference_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

const modelsDir = "../../../testdata/oracle/models"

// benchModels are the GGUF files the end-to-end benchmarks export: a real trained model
// (stories260K: 5 layers, dim 64, 8 heads / 4 KV heads, vocab 512, f32) and a wider random
// one (tiny-llama256: n_embd 256, f16).
var benchModels = []string{"stories260K.gguf", "tiny-llama256-f16.gguf"}

// benchContext and benchChunk are the export options of the benchmarks: C = 256, N = 64.
const benchContext, benchChunk = 256, 64

// exportModel exports testdata's model into a temporary directory and returns the package path.
func exportModel(tb testing.TB, model string) string {
	tb.Helper()
	f, err := gguf.Open(filepath.Join(modelsDir, model))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(tb.TempDir(), model+".mlpackage")
	if err := export.Export(context.Background(), f, export.Options{ContextLength: benchContext, PrefillChunk: benchChunk}, dir); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// openSession exports model and opens it with the reference runtime, closed with b.
func openSession(b *testing.B, model string) *runtime.Session {
	s, err := runtime.OpenReference(exportModel(b, model))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkDecode measures one decode step (one token through the decode function) after a
// 16-token prompt. Attention in the exported program spans the whole cache of C rows, so the
// cost does not depend on the position; when the context fills, the session is reset and
// the prompt fed again outside the timer.
func BenchmarkDecode(b *testing.B) {
	for _, model := range benchModels {
		b.Run(model, func(b *testing.B) {
			s := openSession(b, model)
			ctx := context.Background()
			prompt := benchTokens(16)
			if _, err := s.Prefill(ctx, prompt); err != nil {
				b.Fatal(err)
			}
			tok := int32(1)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if s.Pos() == s.ContextLength() {
					b.StopTimer()
					s.Reset()
					if _, err := s.Prefill(ctx, prompt); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				logits, err := s.Decode(ctx, tok)
				if err != nil {
					b.Fatal(err)
				}
				tok = argmax(logits)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkPrefill64 measures one call of the prefill function on a 64-token prompt (the
// exported chunk) from position 0.
func BenchmarkPrefill64(b *testing.B) {
	for _, model := range benchModels {
		b.Run(model, func(b *testing.B) {
			s := openSession(b, model)
			ctx := context.Background()
			prompt := benchTokens(benchChunk)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.Reset()
				if _, err := s.Prefill(ctx, prompt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchChunk)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// benchTokens returns n token ids: BOS (1 in both vocabularies) then ordinary ids.
func benchTokens(n int) []int32 {
	t := make([]int32, n)
	t[0] = 1
	for i := 1; i < n; i++ {
		t[i] = int32(100 + 7*i%300)
	}
	return t
}

func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

// TestExportedMetadata reads the user-defined metadata the exporter writes back through
// Model.Metadata: stories260K is a llama (general.architecture) with 5 layers and a
// 512-token vocabulary (oracle README), exported here with C = 256 and N = 64.
func TestExportedMetadata(t *testing.T) {
	m, err := reference.Open(exportModel(t, "stories260K.gguf"), reference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	md := m.Metadata()
	want := map[string]string{
		"lilims.arch":           "llama",
		"lilims.layers":         "5",
		"lilims.vocab_size":     "512",
		"lilims.context_length": strconv.Itoa(benchContext),
		"lilims.prefill_chunk":  strconv.Itoa(benchChunk),
		"lilims.source":         "stories260K.gguf",
	}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, md[k], v)
		}
	}
	md["lilims.arch"] = "changed"
	if m.Metadata()["lilims.arch"] != "llama" {
		t.Error("Metadata returned the model's own map, not a copy")
	}
}
