package builtin

import (
	"bytes"
	"context"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Where Core ML cannot run (here: not macOS), runtime/auto opens the reference runtime and
// says why in exactly one line — for a single package and for a chunked export alike.
func TestAutoRuntimeFallsBack(t *testing.T) {
	if goruntime.GOOS == "darwin" {
		t.Skip("Core ML may be available: the fallback is tested where it is not")
	}
	f, err := gguf.Open("../../testdata/oracle/models/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunks := range []int{1, 2} {
		out := filepath.Join(t.TempDir(), "m.mlpackage")
		if chunks > 1 {
			out = filepath.Join(t.TempDir(), "m.chunks")
		}
		if err := export.Export(context.Background(), f, export.Options{ContextLength: 32, PrefillChunk: 8, Chunks: chunks}, out); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		sess, err := autoRuntime{stderr: &stderr}.Open(context.Background(), stage.Artifact{Kind: "mlpackage", Path: out},
			stage.Params{"compute_units": "all", "precision": "fp32", "threads": 1})
		if err != nil {
			t.Fatalf("chunks %d: %v", chunks, err)
		}
		sess.Close()
		msg := stderr.String()
		if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "runtime/auto: using the reference runtime: ") || !strings.Contains(msg, "only available on macOS") {
			t.Errorf("chunks %d: stderr %q, want one line with the reason", chunks, msg)
		}
	}
}
