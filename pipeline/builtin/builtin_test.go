package builtin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Where Core ML cannot run (here: not macOS), runtime/auto opens the reference runtime and,
// where Core ML was expected (on a Mac), says why in exactly one line — for a single package
// and for a chunked export alike. Elsewhere it says nothing.
func TestAutoRuntimeFallsBack(t *testing.T) {
	if goruntime.GOOS == "darwin" {
		t.Skip("Core ML may be available: the fallback is tested where it is not")
	}
	defer func(old bool) { expectCoreML = old }(expectCoreML)
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
		open := func(expect bool) string {
			expectCoreML = expect
			var stderr bytes.Buffer
			sess, err := autoRuntime{stderr: &stderr}.Open(context.Background(), stage.Artifact{Kind: "mlpackage", Path: out},
				stage.Params{"compute_units": "all", "precision": "fp32", "threads": 1})
			if err != nil {
				t.Fatalf("chunks %d: %v", chunks, err)
			}
			sess.Close()
			return stderr.String()
		}
		if msg := open(false); msg != "" {
			t.Errorf("chunks %d: off macOS runtime/auto said %q, want nothing", chunks, msg)
		}
		msg := open(true)
		if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "runtime/auto: using the reference runtime: ") || !strings.Contains(msg, "only available on macOS") {
			t.Errorf("chunks %d: stderr %q, want one line with the reason", chunks, msg)
		}
	}
}

// An artifact neither runtime opens (a chunk directory whose index is missing a package)
// gets the reference runtime's error, after the one line saying why Core ML was not used.
func TestAutoRuntimeNeitherOpens(t *testing.T) {
	defer func(old bool) { expectCoreML = old }(expectCoreML)
	expectCoreML = true
	dir := filepath.Join(t.TempDir(), "m.chunks")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "chunks.json"), []byte(`{"format": "lilims.chunks", "version": 1, "layers": 2,
 "chunks": [{"path": "chunk_0.mlpackage", "first": 0, "end": 2}]}`), 0o644)
	var stderr bytes.Buffer
	_, err := autoRuntime{stderr: &stderr}.Open(context.Background(), stage.Artifact{Kind: "mlpackage", Path: dir},
		stage.Params{"compute_units": "all", "precision": "fp32", "threads": 1})
	if err == nil || !strings.Contains(err.Error(), "chunk_0.mlpackage") {
		t.Errorf("error %v, want the reference runtime's, naming the missing package", err)
	}
	if strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q, want one line", stderr.String())
	}
}
