package reference_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// BenchmarkPackage measures decode and 64-token prefill on a package named by
// $LILIMS_BENCH_PACKAGE (e.g. a Phi-2-shaped INT4 export made from
// internal/tools/genmodel's output), with $LILIMS_BENCH_THREADS workers (default 2), for
// profiling the kernels at real scale; skipped when unset. `lilims bench` measures the same
// through the whole pipeline.
func BenchmarkPackage(b *testing.B) {
	pkg := os.Getenv("LILIMS_BENCH_PACKAGE")
	if pkg == "" {
		b.Skip("LILIMS_BENCH_PACKAGE is not set")
	}
	threads := 2
	if v := os.Getenv("LILIMS_BENCH_THREADS"); v != "" {
		if _, err := fmt.Sscan(v, &threads); err != nil {
			b.Fatal(err)
		}
	}
	s, err := runtime.OpenReferenceOptions(pkg, reference.Options{Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.Run("decode", func(b *testing.B) {
		s.Reset()
		tok := int32(300)
		for b.Loop() {
			if s.Pos() == s.ContextLength() {
				s.Reset()
			}
			logits, err := s.Decode(ctx, tok)
			if err != nil {
				b.Fatal(err)
			}
			tok = argmax(logits)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("prefill64", func(b *testing.B) {
		prompt := benchTokens(64)
		for b.Loop() {
			s.Reset()
			if _, err := s.Prefill(ctx, prompt); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "tokens/s")
	})
}
