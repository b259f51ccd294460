package reference

import (
	"context"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// TestBufferSharing opens stories260K exported with C = 256, N = 64 (5 layers, dim 64, 8
// heads, vocab 512) and measures the float storage behind the prefill function's op
// outputs. Each layer's intermediates die within the layer, so shared storage must come to
// a small fraction of the sum of all outputs (one buffer per output, as before sharing):
// here at most a quarter. The oracle tests of package runtime check that the shared buffers
// compute the same logits.
func TestBufferSharing(t *testing.T) {
	f, err := gguf.Open("../../../testdata/oracle/models/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(t.TempDir(), "m.mlpackage")
	if err := export.Export(context.Background(), f, export.Options{ContextLength: 256, PrefillChunk: 64}, dir); err != nil {
		t.Fatal(err)
	}
	m, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fn := m.funcs["prefill"]
	if fn == nil {
		t.Fatalf("no prefill function (have %v)", m.names)
	}
	var total, distinct int
	largest := map[*float32]int{} // storage base → the largest output it holds
	for _, s := range fn.steps {
		for _, o := range s.outs {
			if cap(o.f32) == 0 {
				continue
			}
			total += cap(o.f32)
			base := unsafe.SliceData(o.f32)
			largest[base] = max(largest[base], cap(o.f32))
		}
	}
	for _, n := range largest {
		distinct += n
	}
	t.Logf("prefill outputs: %d floats in all, %d in distinct storage", total, distinct)
	if distinct == 0 || 4*distinct > total {
		t.Errorf("distinct output storage %d floats of %d: want at most a quarter", distinct, total)
	}
}
