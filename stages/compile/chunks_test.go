package compile

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// chunked exports stories260K (5 layers) as three packages — layers [0, 1), [1, 3), [3, 5)
// — and returns the directory.
func chunked(t *testing.T) string { return exportStories(t, 3, "model.chunks") }

// exportStories exports stories260K at context 32, prefill chunk 8, in chunks packages, to
// a new directory's entry name.
func exportStories(t *testing.T, chunks int, name string) string {
	t.Helper()
	f, err := gguf.Open("../../testdata/oracle/models/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(t.TempDir(), name)
	if err := export.Export(context.Background(), f, export.Options{ContextLength: 32, PrefillChunk: 8, Chunks: chunks}, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func editIndex(t *testing.T, dir string, edit func(idx map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, mlpackage.ChunkIndexFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var idx map[string]any
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	edit(idx)
	if raw, err = json.Marshal(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func chunkList(idx map[string]any) []any { return idx["chunks"].([]any) }

func TestValidateChunks(t *testing.T) {
	dir := chunked(t)
	idx, err := mlpackage.ReadChunkIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := idx.Packages(dir)
	if len(pkgs) != 3 || filepath.Base(pkgs[2]) != "chunk_2.mlpackage" {
		t.Fatalf("packages %v, want chunk_0 … chunk_2", pkgs)
	}
	if err := ValidateChunks(dir); err != nil {
		t.Fatalf("a chunked export: %v", err)
	}
	// The stage validates and passes the directory on (no Core ML compiler here, or never).
	p, errs := Spec.Resolve(map[string]any{"coremlcompiler": "never"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	art, err := Stage{}.Build(context.Background(), stage.BuildRequest{Params: p, OutDir: t.TempDir(),
		Inputs: []stage.Artifact{{Kind: "mlpackage", Path: dir, Meta: map[string]string{"chunks": "3"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if art.Kind != "mlpackage" || art.Path != dir || art.Meta["validated"] != "true" || art.Meta["chunks"] != "3" {
		t.Errorf("artifact %+v", art)
	}

	tests := []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  []string
	}{
		{"gap", func(t *testing.T, dir string) {
			editIndex(t, dir, func(idx map[string]any) { chunkList(idx)[1].(map[string]any)["first"] = 2 })
		}, []string{"chunk 1: layers [2, 3) do not continue from 1"}},
		{"short", func(t *testing.T, dir string) {
			editIndex(t, dir, func(idx map[string]any) { idx["layers"] = 6 })
		}, []string{"chunks cover 5 of 6 layers"}},
		{"escape", func(t *testing.T, dir string) {
			editIndex(t, dir, func(idx map[string]any) { chunkList(idx)[0].(map[string]any)["path"] = "../chunk_0.mlpackage" })
		}, []string{`path "../chunk_0.mlpackage" leaves the directory`}},
		{"format", func(t *testing.T, dir string) {
			editIndex(t, dir, func(idx map[string]any) { idx["version"] = 2 })
		}, []string{"want lilims.chunks version 1"}},
		{"missing", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "chunk_1.mlpackage")); err != nil {
				t.Fatal(err)
			}
		}, []string{"chunk_1.mlpackage: the index lists it, but it does not exist"}},
		{"order", func(t *testing.T, dir string) {
			// The first two packages swapped: the embedding is no longer first.
			editIndex(t, dir, func(idx map[string]any) {
				c := chunkList(idx)
				c[0].(map[string]any)["path"], c[1].(map[string]any)["path"] = "chunk_1.mlpackage", "chunk_0.mlpackage"
			})
		}, []string{`chunk 0 function prefill: no input "input_ids"`,
			`chunk 1 function decode: input "input_ids" belongs to the first chunk only`,
			`chunk 1 function prefill: no input "hidden_states": every chunk but the first takes the previous one's hidden_states_out`}},
		{"chain", func(t *testing.T, dir string) {
			// The middle package's hidden state declared fp32: the chain no longer matches.
			editModel(t, filepath.Join(dir, "chunk_1.mlpackage"), func(m *milpb.Model) {
				for _, fd := range m.GetDescription().GetFunctions() {
					inputNamed(fd, "hidden_states").GetType().GetMultiArrayType().DataType = milpb.ArrayFeatureType_FLOAT32
				}
			})
		}, []string{"chunk 1 function decode: hidden_states is float32 [1 1 64], the previous chunk outputs float16 [1 1 64]",
			// and the package itself no longer matches its program, which the per-package check reports
			`chunk_1.mlpackage: function decode: input "hidden_states": described as FLOAT32, the program declares FLOAT16`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := chunked(t)
			tt.spoil(t, dir)
			err := ValidateChunks(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if _, err := (Stage{}).Build(context.Background(), stage.BuildRequest{Params: p, OutDir: t.TempDir(),
				Inputs: []stage.Artifact{{Kind: "mlpackage", Path: dir}}}); err == nil {
				t.Error("the stage accepted it")
			}
		})
	}
}

func inputNamed(fd *milpb.FunctionDescription, name string) *milpb.FeatureDescription {
	for _, f := range fd.GetInput() {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}
