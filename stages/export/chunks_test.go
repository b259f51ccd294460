package export

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
)

// TestStageChunksAuto: the stage's chunks auto with a 700 kB ceiling makes tiny-phi2 (3
// layers of about 394 kB, embedding and head of 256 kB each) a directory of three packages,
// and says so in the artifact; bad values are refused with the parameter named.
func TestStageChunksAuto(t *testing.T) {
	gg := filepath.Join(models, "tiny-phi2-f16.gguf")
	p, errs := Spec.Resolve(map[string]any{"context": 32, "prefill_chunk": 8, "chunks": "auto", "max_chunk_bytes": 700_000})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	art, err := Stage{}.Build(context.Background(), stage.BuildRequest{ID: "export", Params: p, OutDir: t.TempDir(),
		Inputs: []stage.Artifact{{Kind: "gguf", Path: gg}}})
	if err != nil {
		t.Fatal(err)
	}
	if art.Meta["chunks"] != "3" || filepath.Base(art.Path) != "model.chunks" {
		t.Errorf("artifact %s with meta %v, want model.chunks of 3 chunks", art.Path, art.Meta)
	}
	for _, tt := range []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"chunks": "some"}, `chunks "some" must be a count of at least 1, or auto`},
		{map[string]any{"chunks": "auto", "max_chunk_bytes": 0}, "max_chunk_bytes 0 must be positive"},
		{map[string]any{"kv_pad": "16"}, `"16" is not one of auto, 32, 0`},
	} {
		p, errs := Spec.Resolve(tt.raw)
		var err error
		if len(errs) > 0 {
			err = errs[0]
		} else {
			_, err = stageOptions(p)
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one containing %q", tt.raw, err, tt.want)
		}
	}
}
