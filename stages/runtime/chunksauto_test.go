package runtime_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// TestChunksAuto: chunks auto with a 700 kB ceiling splits tiny-phi2 (3 layers of about
// 394 kB of fp16 weights each, embedding and LM head of 256 kB each) into three packages —
// embedding + layer 0, layer 1, layer 2 + head — whose weight.bin each stays under the
// ceiling, and the logits are the single package's exactly, in both layouts. With the
// default ceiling (1 GiB) the export is one package.
func TestChunksAuto(t *testing.T) {
	const file, ceiling = "tiny-phi2-f16.gguf", 700_000
	o := loadOracle(t)
	for _, layout := range []arch.Layout{arch.Standard, arch.ANE} {
		opts := export.Options{ContextLength: 64, PrefillChunk: 16, Layout: layout}
		one := exportModel(t, file, opts)
		if _, err := os.Stat(filepath.Join(one, mlpackage.ChunkIndexFile)); err == nil {
			t.Fatalf("%v: the single package has a chunk index", layout)
		}
		opts.Chunks = export.ChunksAuto
		if d := exportModel(t, file, opts); fileSize(t, d) != fileSize(t, one) {
			t.Errorf("%v: chunks auto under the default ceiling is not the single package", layout)
		}
		opts.MaxChunkBytes = ceiling
		dir := exportModel(t, file, opts)
		idx, err := mlpackage.ReadChunkIndex(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := []mlpackage.Chunk{{Path: "chunk_0.mlpackage", First: 0, End: 1}, {Path: "chunk_1.mlpackage", First: 1, End: 2}, {Path: "chunk_2.mlpackage", First: 2, End: 3}}
		if len(idx.Chunks) != len(want) {
			t.Fatalf("%v: chunks %+v, want %+v", layout, idx.Chunks, want)
		}
		for i, c := range idx.Chunks {
			size := fileSize(t, filepath.Join(dir, c.Path))
			t.Logf("%v: %s layers [%d, %d): weight.bin %d bytes", layout, c.Path, c.First, c.End, size)
			if c != want[i] || size > ceiling {
				t.Errorf("%v: chunk %d is %+v with %d bytes of weights, want %+v under %d", layout, i, c, size, want[i], ceiling)
			}
		}
		d := maxDiff(promptLogits(t, o, file, one, reference.FP16Faithful), promptLogits(t, o, file, dir, reference.FP16Faithful), false)
		if d != 0 {
			t.Errorf("%v: chunks auto changes the logits by up to %g", layout, d)
		}
	}
}
