package pipeline_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
)

func noEnv(string) (string, bool) { return "", false }

// Every pipeline shipped in pipelines/ parses and resolves against the built-in stages. A stage
// that is not registered in this build (quantize/int4 while it is being written) is logged, not
// failed: what fails is a registered stage rejecting the file, or any other problem.
func TestShippedPipelines(t *testing.T) {
	files, _ := filepath.Glob("../pipelines/*.yaml")
	want := map[string]bool{"stories.yaml": false, "phi2-ane.yaml": false, "quant-sweep.yaml": false}
	for _, f := range files {
		want[filepath.Base(f)] = true
		t.Run(filepath.Base(f), func(t *testing.T) {
			spec, err := pipeline.LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = pipeline.Resolve(spec, builtin.Registry())
			var errs pipeline.Errors
			errors.As(err, &errs)
			for _, e := range errs {
				if errors.Is(e, pipeline.ErrUnknownStage) || errors.Is(e, pipeline.ErrNoPluginSupport) {
					t.Logf("not available to this test (checked once it is): %v", e)
					continue
				}
				t.Error(e)
			}
			if _, err := spec.Variants(); err != nil {
				t.Error(err)
			}
		})
	}
	for name, found := range want {
		if !found {
			t.Errorf("pipelines/%s is missing", name)
		}
	}
}

// Every problem is reported at once, each as file:line:col.
func TestPipelineErrors(t *testing.T) {
	src := `name: bad
model: m.gguf
stages:
  - id: load
    uses: loader/gguf
  - id: export
    uses: export/mil
    with:
      context: lots
      chunk: 3
  - id: sample
    uses: sampler/nope
`
	spec, err := pipeline.Parse("bad.yaml", []byte(src), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.Resolve(spec, builtin.Registry())
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`bad.yaml:9:7: stage "export": parameter context: "lots" is not a whole number`,
		`bad.yaml:10:7: stage "export": export/mil has no parameter "chunk"`,
		`bad.yaml:11:5: stage "sample": unknown stage "sampler/nope"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := pipeline.Parse("dup.yaml", []byte("name: a\nname: b\nstages: []\n"), noEnv); err == nil ||
		!strings.Contains(err.Error(), `dup.yaml:2:1: duplicate key "name"`) {
		t.Errorf("duplicate key: %v", err)
	}
}

// ${VAR:-default} expansion and --set overrides, typed at resolution.
func TestExpandAndSet(t *testing.T) {
	src := "model: ${M:-default.gguf}\nstages:\n  - {id: load, uses: loader/gguf}\n  - {id: sample, uses: sampler/default, with: {top_k: \"${K:-7}\"}}\n"
	env := func(k string) (string, bool) {
		if k == "M" {
			return "from-env.gguf", true
		}
		return "", false
	}
	spec, err := pipeline.Parse("p.yaml", []byte(src), env)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Model != "from-env.gguf" {
		t.Errorf("model %q", spec.Model)
	}
	if err := spec.Set("sample.temperature=0"); err != nil {
		t.Fatal(err)
	}
	if err := spec.Set("nostage.x=1"); err == nil {
		t.Error("--set on an unknown stage should fail")
	}
	plan, err := pipeline.Resolve(spec, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Steps[1].Params
	if p.Int("top_k") != 7 || p.Float("temperature") != 0 || p.Float("top_p") != 0.95 {
		t.Errorf("params %v", p)
	}
	if _, err := pipeline.Parse("p.yaml", []byte("model: ${NOPE}\nstages: []\n"), noEnv); err == nil ||
		!strings.Contains(err.Error(), "NOPE is not set") {
		t.Errorf("unset variable: %v", err)
	}
}

// --set STAGE.uses=NAME swaps the implementation and drops the old one's parameters.
func TestSetUses(t *testing.T) {
	spec := pipeline.Default("m.gguf")
	if err := spec.Set("quantize.block_size=64"); err != nil {
		t.Fatal(err)
	}
	if err := spec.Set("quantize.uses=plugin:./plugins/quant-nf4"); err != nil {
		t.Fatal(err)
	}
	st := spec.Stage("quantize")
	if st.Uses != "plugin:./plugins/quant-nf4" || len(st.With) != 0 {
		t.Errorf("after --set quantize.uses: uses %q, with %v", st.Uses, st.With)
	}
}

// An entry's DefaultIsolation sends the stage out of process unless the pipeline says
// otherwise (Core ML on macOS).
func TestDefaultIsolation(t *testing.T) {
	reg := builtin.Registry()
	e, _ := reg.Lookup("sampler/default")
	e.DefaultIsolation = "process"
	reg.Register(e)
	var external []string
	reg.External = func(st *pipeline.StageSpec, b *pipeline.Entry) (pipeline.Entry, error) {
		external = append(external, st.ID)
		return *b, nil
	}
	spec := pipeline.Default("m.gguf")
	if _, err := pipeline.Resolve(spec, reg); err != nil {
		t.Fatal(err)
	}
	spec.Stage("sample").Isolation = "inprocess"
	if _, err := pipeline.Resolve(spec, reg); err != nil {
		t.Fatal(err)
	}
	if len(external) != 1 || external[0] != "sample" {
		t.Errorf("stages resolved out of process: %v, want [sample] once", external)
	}
}
