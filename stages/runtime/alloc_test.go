package runtime_test

import (
	"context"
	"slices"
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// decodeSession opens stories260K exported with C = 64 (N = 16), in one package or in
// chunks, and feeds it a 4-token prompt.
func decodeSession(tb testing.TB, chunks int) *runtime.Session {
	tb.Helper()
	pkg := exportModel(tb, "stories260K.gguf", export.Options{ContextLength: 64, PrefillChunk: 16, Chunks: chunks})
	s, err := runtime.OpenReferenceOptions(pkg, reference.Options{Precision: reference.FP32, Threads: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if _, err := s.Prefill(context.Background(), []int32{1, 2, 3, 4}); err != nil {
		tb.Fatal(err)
	}
	return s
}

// A decode step reuses the session's inputs and the backend's tensors: once warm, it
// allocates nothing, in one package as in a chain of three.
func TestDecodeAllocates0(t *testing.T) {
	for _, chunks := range []int{1, 3} {
		s := decodeSession(t, chunks)
		ctx := context.Background()
		if _, err := s.Decode(ctx, 5); err != nil { // warm: the decode call's tensors
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := s.Decode(ctx, 6); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("chunks %d: %.1f allocations per decode step, want 0", chunks, allocs)
		}
	}
}

// Prefill's rows must survive later calls although the backend reuses its logits: the rows
// of a prompt equal, value for value, those of the same prompt fed again after other work.
func TestPrefillRowsAreKept(t *testing.T) {
	s := decodeSession(t, 1)
	ctx := context.Background()
	s.Reset()
	// 17 tokens: one prefill call of 16 and a decode for the last, whose logits must not
	// overwrite the first call's rows.
	prompt := []int32{1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 9, 8, 7, 6, 5, 4, 3}
	rows, err := s.Prefill(ctx, prompt)
	if err != nil {
		t.Fatal(err)
	}
	kept := make([][]float32, len(rows))
	for i, r := range rows {
		kept[i] = slices.Clone(r)
	}
	for range 3 {
		if _, err := s.Decode(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	for i := range rows {
		if !slices.Equal(rows[i], kept[i]) {
			t.Fatalf("row %d of the prompt changed after later calls", i)
		}
	}
	if slices.Equal(rows[15], rows[16]) {
		t.Error("the decode row of the prompt equals the last prefill row: the buffers are shared")
	}
}

// BenchmarkSessionDecode is one decode step of stories260K (C = 64) through Session.Decode;
// allocs/op is 0.
func BenchmarkSessionDecode(b *testing.B) {
	s := decodeSession(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if s.Pos() == s.ContextLength() {
			s.Reset()
		}
		if _, err := s.Decode(ctx, 3); err != nil {
			b.Fatal(err)
		}
	}
}
