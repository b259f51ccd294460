package pipeline_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
)

// check parses and resolves src and returns every error message, sorted by position.
func check(t *testing.T, src string) []string {
	t.Helper()
	spec, err := pipeline.Parse("p.yaml", []byte(src), noEnv)
	var errs pipeline.Errors
	if spec == nil {
		if err == nil {
			t.Fatal("no spec and no error")
		}
		return []string{err.Error()}
	}
	if err != nil {
		errs = append(errs, err.(pipeline.Errors)...)
	}
	if _, err := pipeline.Resolve(spec, builtin.Registry()); err != nil {
		errs = append(errs, err.(pipeline.Errors)...)
	}
	var out []string
	for _, e := range errs.Sorted() {
		out = append(out, e.Error())
	}
	return out
}

// One broken file: every problem is reported at once, each at the line and column of the
// token it concerns (lines and columns counted by hand in the source below, 1-based).
func TestEveryErrorAtOnce(t *testing.T) {
	src := `name: broken
model: m.gguf
colour: blue
stages:
  - id: load
    uses: loader/gguf
  - id: export
    uses: export/mil
    inputs: [load, nowhere, compile]
    with:
      context: lots
      chunk: 3
  - id: compile
    uses: compile/coreml
    inputs: [export, compile]
    with: {coremlcompiler: sometimes}
  - id: runtime
    uses: runtime/teleport
  - id: sample
    uses: sampler/default
    sha256: abc
    with:
      top_k: 1.5
`
	want := []string{
		`p.yaml:3:1: unknown key "colour" (a pipeline has name, model, stages, sweep)`,
		`p.yaml:9:20: stage "export": input "nowhere" is not a stage of this pipeline (stages: load, export, compile, runtime, sample)`,
		`p.yaml:11:7: stage "export": parameter context: "lots" is not a whole number`,
		`p.yaml:12:7: stage "export": export/mil has no parameter "chunk" (it has: context, prefill_chunk`,
		`p.yaml:15:14: stage "compile": inputs form a cycle: export → compile → export`,
		`p.yaml:15:22: stage "compile" lists itself as an input`,
		`p.yaml:16:12: stage "compile": parameter coremlcompiler: "sometimes" is not one of auto, always, never`,
		`p.yaml:17:5: stage "runtime": unknown stage "runtime/teleport" (run 'lilims stages' for the list)`,
		`p.yaml:21:13: sha256 must be 64 hexadecimal digits (the output of sha256sum), got 3 characters`,
		`p.yaml:23:7: stage "sample": parameter top_k: 1.5 is not a whole number`,
	}
	got := check(t, src)
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range min(len(got), len(want)) {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

// Inputs: forward references (without a cycle), inputs of non-build stages, and the default.
func TestInputs(t *testing.T) {
	tests := []struct {
		name, stages string
		want         []string // prefixes, in position order
	}{
		{"forward reference", `
  - {id: load, uses: loader/gguf, inputs: []}
  - {id: export, uses: export/mil, inputs: [compile]}
  - {id: compile, uses: compile/coreml, inputs: [load]}
`, []string{`p.yaml:4:45: stage "export": input "compile" comes later in the pipeline`}},
		{"sampler input", `
  - {id: load, uses: loader/gguf}
  - {id: sample, uses: sampler/default, inputs: [load]}
`, []string{`p.yaml:4:50: stage "sample": a sampler stage takes no inputs`}},
		{"runtime on a sampler", `
  - {id: load, uses: loader/gguf}
  - {id: export, uses: export/mil}
  - {id: runtime, uses: runtime/reference, inputs: [sample]}
  - {id: sample, uses: sampler/default}
`, []string{`p.yaml:5:53: stage "runtime": input "sample" comes later`}},
		{"three-stage cycle", `
  - {id: load, uses: loader/gguf, inputs: [compile]}
  - {id: export, uses: export/mil, inputs: [load]}
  - {id: compile, uses: compile/coreml, inputs: [export]}
`, []string{`p.yaml:4:45: stage "export": inputs form a cycle: load → compile → export → load`}},
		{"explicit, valid", `
  - {id: load, uses: loader/gguf}
  - {id: export, uses: export/mil, inputs: [load]}
  - {id: runtime, uses: runtime/reference, inputs: [export]}
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check(t, "model: m.gguf\nstages:"+tt.stages)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("got  %s\nwant %s", got[i], tt.want[i])
				}
			}
		})
	}
	// Without inputs, a build stage gets every earlier build stage's artifact, in order.
	spec, err := pipeline.Parse("p.yaml", []byte("model: m.gguf\nstages:\n  - {id: load, uses: loader/gguf}\n"+
		"  - {id: export, uses: export/mil}\n  - {id: compile, uses: compile/coreml}\n  - {id: rt, uses: runtime/reference}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pipeline.Resolve(spec, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan.Steps[2].InputIDs, ","); got != "load,export" {
		t.Errorf("compile's default inputs %q, want load,export", got)
	}
}

// Malformed YAML gives one clear, positioned error rather than a crash or a silent default.
func TestHostileYAML(t *testing.T) {
	huge := "name: x\nmodel: m.gguf\nstages:\n" + strings.Repeat("  - {id: load, uses: loader/gguf}\n", 40000)
	tests := []struct {
		name, src, want string
	}{
		{"tab indentation", "name: t\nstages:\n\t- id: load\n", "p.yaml:3:1: tab character: YAML indents with spaces only"},
		{"alias", "name: a\nstages:\n  - &l {id: load, uses: loader/gguf}\n  - *l\n",
			"p.yaml:4:5: YAML aliases (*l) are not supported in pipeline files: write the value out"},
		{"merge key", "name: a\nbase: &b {top_k: 1}\nstages:\n  - id: s\n    uses: sampler/default\n    with:\n      <<: *b\n",
			"p.yaml:2:1: unknown key \"base\""},
		{"duplicate key", "name: a\nstages:\n  - id: load\n    uses: loader/gguf\n    id: again\n",
			"p.yaml:5:5: duplicate key \"id\""},
		{"duplicate parameter", "stages:\n  - id: s\n    uses: sampler/default\n    with: {seed: 1, seed: 2}\n",
			"p.yaml:4:21: duplicate parameter \"seed\""},
		{"huge document", huge, fmt.Sprintf("p.yaml: %d bytes or more is too large for a pipeline file (limit 1048576)", len(huge))},
		{"deep nesting", "stages: " + strings.Repeat("[", 20000), "p.yaml: exceeded max depth of 10000"},
		{"two documents", "stages:\n  - {id: load, uses: loader/gguf}\n---\nstages: []\n",
			"p.yaml:3:1: a pipeline file holds one YAML document; this is a second one"},
		{"unterminated string", "name: \"abc\nstages: []\n", "p.yaml:3: found unexpected end of stream"},
		{"nested list parameter", "model: m\nstages:\n  - id: s\n    uses: sampler/default\n    with: {stop: [[a]]}\n",
			"p.yaml:5:19: a list element must be a single value, not a nested list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check(t, tt.src)
			if len(got) == 0 || !strings.HasPrefix(got[0], tt.want) {
				t.Errorf("got %q\nwant first %q", got, tt.want)
			}
		})
	}
}

// A sweep's keys must name a stage and parameter, and its values must fit the parameter.
func TestSweep(t *testing.T) {
	base := "model: m.gguf\nstages:\n  - {id: load, uses: loader/gguf}\n  - {id: export, uses: export/mil}\n" +
		"  - {id: sample, uses: sampler/default}\nsweep:\n"
	got := check(t, base+"  export.prefill_chunk: [16, lots]\n  nope.x: [1]\n  sample.top_q: [1]\n  bad: [1]\n")
	want := []string{
		`p.yaml:7:3: sweep export.prefill_chunk: parameter prefill_chunk: "lots" is not a whole number`,
		`p.yaml:8:3: sweep: no stage with id "nope"`,
		`p.yaml:9:3: sweep: sampler/default has no parameter "top_q"`,
		`p.yaml:10:3: sweep key "bad": want STAGE.PARAM`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("got  %s\nwant %s", got[i], want[i])
		}
	}

	spec, err := pipeline.Parse("p.yaml", []byte(base+"  export.prefill_chunk: [16, 32]\n  sample.temperature: [0, 0.8, 1.2]\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := spec.Variants()
	if err != nil {
		t.Fatal(err)
	}
	// 2 × 3 combinations, first axis slowest.
	if len(vs) != 6 || vs[0].Label != "prefill_chunk=16,temperature=0" || vs[5].Label != "prefill_chunk=32,temperature=1.2" {
		t.Fatalf("variants %v", vs)
	}
	plan, err := pipeline.Resolve(vs[4].Spec, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if plan.Steps[1].Params.Int("prefill_chunk") != 32 || plan.Steps[2].Params.Float("temperature") != 0.8 {
		t.Errorf("variant 4 params %v %v", plan.Steps[1].Params, plan.Steps[2].Params)
	}
	if _, ok := spec.Stage("export").With["prefill_chunk"]; ok {
		t.Error("Variants changed the original spec")
	}
}

// Unknown stages are told apart from other errors, so a caller can tolerate stages that a
// build lacks.
func TestUnknownStageClass(t *testing.T) {
	spec, _ := pipeline.Parse("p.yaml", []byte("model: m\nstages:\n  - {id: load, uses: loader/gguf}\n  - {id: q, uses: quantize/future}\n"), noEnv)
	_, err := pipeline.Resolve(spec, builtin.Registry())
	if !errors.Is(err.(pipeline.Errors)[0], pipeline.ErrUnknownStage) {
		t.Errorf("%v is not ErrUnknownStage", err)
	}
	good := strings.Repeat("ab", 32)
	spec, err = pipeline.Parse("p.yaml", []byte("stages:\n  - {id: x, uses: plugin:./bin/x, sha256: "+strings.ToUpper(good)+"}\n"), noEnv)
	if err != nil || spec.Stages[0].SHA256 != good {
		t.Errorf("sha256 %q, %v; want %q", spec.Stages[0].SHA256, err, good)
	}
}
