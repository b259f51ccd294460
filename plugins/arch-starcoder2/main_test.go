package main

import (
	"context"
	"math"
	"testing"

	"github.com/lilims/lilims/internal/oracle"
	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/plugin"
	"github.com/lilims/lilims/pipeline/stage"
)

// testdata holds the plugin's fixture, a random-weight starcoder2 model (made by
// internal/tools/genfixture, see testdata/README.md at the repository root), and llama.cpp's
// answers on it in the format of testdata/oracle/llamacpp-reference.json.
const (
	oracleDir = "testdata"
	model     = "testdata/tiny-starcoder2-f16.gguf"
)

// The plugin, built from this directory by the lilims plugin host (go build into its cache)
// and run as a separate process, exports tiny-starcoder2-f16.gguf — an architecture lilims
// does not know — into a package that the built-in reference runtime runs within llama.cpp's
// tolerances (testdata/oracle/README.md): max |Δp| ≤ 0.005 over the 20 listed tokens of every
// step, and the same argmax wherever llama.cpp's top-1/top-2 margin exceeds 0.02.
func TestStarCoder2MatchesLlamaCpp(t *testing.T) {
	ref, err := oracle.Load(oracleDir)
	if err != nil {
		t.Fatal(err)
	}
	prompts := ref.Models["tiny-starcoder2-f16.gguf"].Prompts
	if len(prompts) == 0 {
		t.Fatal("no llama.cpp reference for tiny-starcoder2-f16.gguf")
	}

	h := plugin.NewHost(plugin.Options{CacheDir: t.TempDir()})
	defer h.Close()
	reg := builtin.Registry()
	reg.External = h.External
	spec := &pipeline.Spec{Name: "starcoder2", Model: model, Stages: []*pipeline.StageSpec{
		{ID: "load", Uses: "loader/gguf", With: map[string]any{}},
		{ID: "export", Uses: "plugin:.", With: map[string]any{"context": 64, "prefill_chunk": 8}},
		{ID: "runtime", Uses: "runtime/reference", With: map[string]any{"precision": "fp32"}},
	}}
	plan, err := pipeline.Resolve(spec, reg)
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Step(stage.KindExport).Entry.Spec.Uses; got != "export/starcoder2" {
		t.Fatalf("the plugin describes itself as %q", got)
	}
	ctx := context.Background()
	built, err := plan.Build(ctx, pipeline.BuildOptions{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := plan.OpenSession(ctx, built)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	var worst float64
	for _, p := range prompts {
		sess.Reset()
		rows, err := sess.Prefill(ctx, p.Tokens)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range p.Steps {
			d, best, ok := st.Check(rows[st.Pos])
			worst = math.Max(worst, d)
			if !ok {
				t.Errorf("tokens %v, pos %d: argmax %d, llama.cpp %v", p.Tokens, st.Pos, best, st.Top[0][0])
			}
		}
	}
	t.Logf("max |Δp| = %.5f over %d prompts", worst, len(prompts))
	if worst > 0.005 {
		t.Errorf("max |Δp| = %.5f, llama.cpp tolerance 0.005", worst)
	}
}
